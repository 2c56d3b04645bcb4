"""Serve a WSGI app over real HTTP on 127.0.0.1 with an ephemeral port, in a daemon thread.

Real HTTP (rather than a mocked transport) is the point: the provider SDK runs its own retry,
timeout and connection handling against the stand-in exactly as it would against the provider.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["StandInServer"]


class _QuietHandler(WSGIRequestHandler):
    """Tests and benchmarks make thousands of requests: do not log each one to stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            super().log(type, message, *args)


class StandInServer:
    """A threaded werkzeug server around ``app``; ``url`` is known once started."""

    def __init__(self, app: WSGIApplication, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self._server.server_port}"

    @property
    def running(self) -> bool:
        """Whether ``start()`` was called and ``stop()`` was not."""
        return self._server is not None

    def start(self) -> StandInServer:
        """Bind and serve in a daemon thread (idempotent); returns self for chaining."""
        if self._server is not None:
            return self
        server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            args=(0.05,),
            name=f"standin-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Requests in flight (e.g. stalls) are abandoned."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
