"""Polar's objects as the core's plain values: timestamps and metadata."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def timestamp(value: str | None) -> datetime | None:
    """Polar's ISO timestamps as naive UTC, the way the local tables store times."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def strings(mapping: Any) -> dict[str, str]:
    """Metadata as ``str -> str`` (Polar also allows numbers and booleans as values)."""
    return {str(k): str(v) for k, v in dict(mapping or {}).items()}
