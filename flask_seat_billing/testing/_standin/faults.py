"""Fault injection: make the next N matching requests fail the way real networks and providers do.

Billing code must survive 5xx answers, rate limits, timeouts after the provider already applied a
change, and connections that die without an answer. Faults are queued here and consumed, one count
per matching request, by :class:`~flask_seat_billing.testing._standin.middleware.StandInMiddleware`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Fault", "FaultInjector"]


@dataclass
class Fault:
    """A queued fault. ``remaining`` counts down per matching request; at 0 it is discarded.

    kind: ``"fail"`` (answer ``status`` with a provider error body, change not applied),
    ``"rate_limit"`` (429 with ``Retry-After``), ``"stall"`` (sleep ``seconds`` before answering;
    with ``apply`` the change is applied and the answer is merely late, otherwise the late answer is
    an error ``status`` and nothing is applied), ``"drop"`` (close the connection without any
    response; with ``apply`` the change is applied first).
    """

    kind: str
    remaining: int
    status: int = 500
    path_prefix: str | None = None
    method: str | None = None
    retry_after: float = 1.0
    seconds: float = 0.0
    apply: bool = False

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request (method compared case-insensitively)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class FaultInjector:
    """Thread-safe queue of faults. The first queued fault that matches a request is consumed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.latency = 0.0

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds``, as a network round trip to the real provider
        would (the stand-in otherwise answers over loopback in about a millisecond, which makes
        a request look far cheaper than it is). Not a fault: :meth:`clear` keeps it (the stand-in's
        ``reset()`` does not)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0 seconds")
        self.latency = float(seconds)

    def _add(self, fault: Fault) -> Fault:
        if fault.remaining < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """Answer the next ``n`` matching requests with ``status`` and do not apply them."""
        return self._add(Fault("fail", n, status=status, path_prefix=path_prefix, method=method))

    def rate_limit_next(
        self,
        n: int = 1,
        retry_after: float = 1.0,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """Answer 429 with ``Retry-After`` (seconds) to the next ``n`` matching requests."""
        return self._add(
            Fault(
                "rate_limit",
                n,
                status=429,
                retry_after=retry_after,
                path_prefix=path_prefix,
                method=method,
            )
        )

    def stall_next(
        self,
        n: int = 1,
        seconds: float = 5.0,
        apply: bool = True,
        path_prefix: str | None = None,
        method: str | None = None,
        status: int = 500,
    ) -> Fault:
        """Delay the answer by ``seconds`` so a client with a shorter timeout gives up.

        ``apply=True`` (default) applies the change first: the client times out although the
        provider did the work, which is the case idempotency keys exist for. ``apply=False``
        sleeps and then answers ``status`` without applying anything.
        """
        return self._add(
            Fault(
                "stall",
                n,
                status=status,
                seconds=seconds,
                apply=apply,
                path_prefix=path_prefix,
                method=method,
            )
        )

    def drop_next(
        self,
        n: int = 1,
        apply: bool = False,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """Close the connection without answering the next ``n`` matching requests.

        With ``apply=True`` the change is applied before the connection is closed.
        """
        return self._add(Fault("drop", n, apply=apply, path_prefix=path_prefix, method=method))

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """Copies of the faults still queued (for assertions that all faults were consumed)."""
        with self._lock:
            return [Fault(**vars(f)) for f in self._faults]

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one count of the first fault matching this request; return a copy or None."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[i]
                    return Fault(**{**vars(fault), "remaining": 1})
        return None
