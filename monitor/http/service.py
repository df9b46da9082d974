"""The server as the daemon runs it: the relay, the app, the rate limit, waitress."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.config import Settings
from monitor.http.app import App, RateLimiter
from monitor.http.server import HttpServer
from monitor.http.wsgi import wsgi_app
from monitor.relay import Relay


@dataclass
class HttpService:
    relay: Relay
    server: HttpServer

    @classmethod
    def start(cls, settings: Settings, database: Path) -> HttpService:
        """Serve `[http]` (listen must be set); HttpError if it cannot bind."""
        http = settings.http
        assert http.listen is not None
        relay = Relay(settings, database)
        app = App(relay, RateLimiter(http.rate.count, http.rate.per), int(http.max_body))
        server = HttpServer(
            wsgi_app(app),
            http.listen,
            max_body=int(http.max_body),
            timeout=http.timeout.total_seconds(),
            threads=http.threads,
            on_stop=relay.close,
        )
        return cls(relay, server)

    def stop(self, wait: float = 5.0) -> bool:
        return self.server.stop(wait)
