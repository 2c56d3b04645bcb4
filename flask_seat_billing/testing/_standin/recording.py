"""Request recording shared by the provider stand-ins.

Tests of billing code mostly assert on *what was sent* to the provider (how many writes, with
which idempotency keys, whether a retry was replayed). Recording every request, including faulted
ones, lets a test make those assertions without patching the SDK.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest", "RequestLog"]


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the stand-in saw it, and how it was answered.

    ``status`` is 0 when the connection was dropped without any response. ``replayed`` is true when
    an idempotency key made the stand-in answer from its stored response instead of acting again.
    ``fault`` names the injected fault kind (``"fail"``, ``"rate_limit"``, ``"stall"``, ``"drop"``)
    or is ``None``; ``changed`` is true when the request changed stand-in state.
    """

    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int
    idempotency_key: str | None
    replayed: bool
    at: float
    fault: str | None = None
    changed: bool = False
    query: dict[str, Any] = field(default_factory=dict)


class RequestLog:
    """Thread-safe, append-only list of :class:`RecordedRequest` (the server is multi-threaded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, request: RecordedRequest) -> None:
        """Record one request (called by the middleware once the response status is known)."""
        with self._lock:
            self._items.append(request)

    def all(self) -> list[RecordedRequest]:
        """A snapshot copy, so callers can iterate while the server keeps recording."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget everything recorded so far (for a test that only cares about what follows)."""
        with self._lock:
            self._items.clear()

    def requests_to(
        self, method: str | None = None, path_prefix: str | None = None
    ) -> list[RecordedRequest]:
        """Requests whose method (case-insensitive) and path prefix match; ``None`` matches all."""
        want = method.upper() if method else None
        return [
            r
            for r in self.all()
            if (want is None or r.method == want)
            and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    def writes(self) -> list[RecordedRequest]:
        """Non-GET requests that changed state: replays and faulted requests are excluded.

        A stalled or dropped request whose change *was* applied counts as a write, since that
        is exactly the case where the client believes nothing happened.
        """
        return [r for r in self.all() if r.method != "GET" and r.changed and not r.replayed]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.all())

    def __getitem__(self, index: int) -> RecordedRequest:
        with self._lock:
            return self._items[index]
