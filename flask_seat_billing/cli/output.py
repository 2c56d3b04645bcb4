"""Plain-text tables, JSON, and a terminal-only progress bar for the ``seats`` commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns sized to their content; ``-`` for missing values."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def to_json(data: Any) -> str:
    """JSON with datetimes as ISO strings, stable key order for diffs in monitoring."""
    return json.dumps(data, default=_default, indent=2, sort_keys=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class Progress:
    """A click progress bar per phase, on stderr, only when stdout is a terminal.

    Redirected or piped output (cron, ``--json``, CI) stays free of control characters.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self._phase: str | None = None
        self._bar: Any = None
        self._count = 0

    def __call__(self, phase: str, advanced: int, total: int | None) -> None:
        if not self.enabled:
            return
        if phase != self._phase:
            self.close()
            self._phase, self._count = phase, 0
            if total:
                self._bar = click.progressbar(length=total, label=phase, file=sys.stderr)
                self._bar.__enter__()
        self._count += advanced
        if self._bar is not None:
            self._bar.update(advanced)
        elif advanced:
            click.echo(f"\r{phase}: {self._count}", nl=False, err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        elif self._phase is not None and self.enabled and self._count:
            click.echo("", err=True)
        self._phase = None
