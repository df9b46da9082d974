"""waitress on a thread of its own: started by the daemon, stopped within a bound.

waitress (Pylons) is a production WSGI server in pure Python with no dependencies: it
bounds the request body (`max_request_body_size`, answered 413 unread, chunked bodies
too), closes idle and slow connections (`channel_timeout`), caps connections, and runs the
application on a fixed pool of threads, so a flood of requests queues there instead of
reaching the loop. Its event loop runs here one poll at a time, so `stop` ends it from
this thread: the listening socket closes first, requests under way get up to `wait`
seconds to finish (a relay's reading is committed before its 2xx), then every connection
is closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from monitor.errors import MonitorError
from monitor.units import parse_address

POLL = 0.2
"""Seconds one poll of waitress' event loop waits: how soon a stop is noticed."""
STOP_WAIT = 5.0


class HttpError(MonitorError):
    """The server cannot start (the address is taken, not ours to bind)."""


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HttpServer:
    def __init__(
        self,
        app: WsgiApp,
        address: str,
        *,
        max_body: int,
        timeout: float,
        threads: int = 4,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        from waitress import wasyncore
        from waitress.server import create_server

        host, port = parse_address(address)
        self._wasyncore = wasyncore
        self._map: dict[int, Any] = {}
        try:
            self._server = create_server(
                app,
                map=self._map,
                host=host,
                port=port,
                threads=threads,
                max_request_body_size=max_body,
                channel_timeout=max(int(timeout), 1),
                connection_limit=100,
                ident="esim-monitor",
                expose_tracebacks=False,
                # X-Forwarded-For reaches the app, which believes it only from
                # [http] trusted_proxies (monitor.http.proxies); waitress applies none
                clear_untrusted_proxy_headers=False,
            )
        except OSError as exc:
            raise HttpError(f"cannot serve HTTP on {address}: {exc.strerror or exc}") from None
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._wait = STOP_WAIT
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    def _serve(self) -> None:
        loop = self._wasyncore.loop
        try:
            while not self._stop.is_set():
                loop(timeout=POLL, map=self._map, count=1)
            self._server.close()  # no new connection from here on
            dispatcher = self._server.task_dispatcher
            deadline = time.monotonic() + self._wait
            while (dispatcher.active_count or dispatcher.queue) and time.monotonic() < deadline:
                loop(timeout=POLL / 4, map=self._map, count=1)
            for _ in range(3):  # what the finished requests wrote goes out
                loop(timeout=0.01, map=self._map, count=1)
            dispatcher.shutdown(timeout=0.1)
        finally:
            self._wasyncore.close_all(self._map)
            if self._on_stop is not None:
                self._on_stop()
            self._stopped.set()

    def stop(self, wait: float = STOP_WAIT) -> bool:
        """Stop serving; whether it ended within `wait` (plus a poll) seconds."""
        self._wait = wait
        self._stop.set()
        self._thread.join(timeout=wait + 1.0)
        return self._stopped.is_set()
