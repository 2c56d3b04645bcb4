"""Counting what the hostile-input tests tried and what came of it, for docs/reliability.md.

Each test records one case: its class, the HTTP status, the rows it left in the extension's
state tables and the requests the provider stand-in received because of it. A module-scoped
fixture writes the totals to ``test-output/bad-input-<suite>-<database>.json`` (as the chaos
suite writes its figures), so the "bad input" section says what a real run observed.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.apps import AppUnderTest

OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
STATE_TABLES = ("subscriptions", "outbox", "seat_changes", "webhook_events", "owner_tags")


def state_rows(t: AppUnderTest) -> dict[str, int]:
    """Row counts of the extension's tables (and the app's member table)."""
    counts = {}
    with t.db.engine.connect() as conn:
        for name in STATE_TABLES:
            table = t.db.metadata.tables[f"seat_billing_{name}"]
            counts[name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    return counts


@dataclass
class Tally:
    """Cases per class of hostile input, with their answers, rows written and provider calls."""

    suite: str
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, kind: str, status: int, rows: int, calls: int) -> None:
        entry = self.classes.setdefault(
            kind, {"cases": 0, "statuses": Counter(), "rows_written": 0, "provider_calls": 0}
        )
        entry["cases"] += 1
        entry["statuses"][str(status)] += 1
        entry["rows_written"] += rows
        entry["provider_calls"] += calls

    def write(self) -> None:
        database = os.environ.get("SEAT_BILLING_TEST_DATABASE", "sqlite")
        OUTPUT.mkdir(exist_ok=True)
        figures = {
            "suite": self.suite, "database": database,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "classes": {k: {**v, "statuses": dict(v["statuses"])} for k, v in self.classes.items()},
        }
        path = OUTPUT / f"bad-input-{self.suite}-{database}.json"
        path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@dataclass
class Watch:
    """Rows and provider requests before a case, to measure what the case caused."""

    t: AppUnderTest
    stand_in: Any
    rows: dict[str, int]
    requests: int

    @classmethod
    def start(cls, t: AppUnderTest, stand_in: Any) -> Watch:
        return cls(t, stand_in, state_rows(t), len(stand_in.requests.all()))

    def rows_written(self, *, ignore: tuple[str, ...] = ()) -> int:
        after = state_rows(self.t)
        return sum(after[n] - self.rows[n] for n in STATE_TABLES if n not in ignore)

    def provider_calls(self) -> int:
        return len(self.stand_in.requests.all()) - self.requests


def raw_post(port: int, path: str, headers: dict[str, str], body: bytes) -> int:
    """POST over a raw socket (for bodies no HTTP client would send); the answer's status."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


BROKEN_CHUNKS = [
    b"zz\r\nabc\r\n0\r\n\r\n",  # a chunk size that is not hex
    b"-5\r\nabc\r\n0\r\n\r\n",  # a negative chunk size
    b"2\r\nabcdef\r\n0\r\n\r\n",  # a chunk longer than its size says
]
DEEP_JSON = b'{"organization_id": 1, "plan": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
# Timestamps a careless int() or float subtraction would take or choke on; the full-width digits
# arrive as their UTF-8 bytes read as latin-1, as a WSGI server hands them over.
HUGE_STAMPS = ["9" * 400, "9" * 5000, "1_700_000_000", "-1",
               "\uff11\uff12".encode().decode("latin-1"), "1e9", " 1700000000", ""]


_TALLIES: dict[str, Tally] = {}


def tally(suite: str) -> Tally:
    """The one tally of ``suite`` in this run: the shared behaviour suite and a provider's own
    module both count into it, and whichever writes last writes every case."""
    return _TALLIES.setdefault(suite, Tally(suite))
