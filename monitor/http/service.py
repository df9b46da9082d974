"""The server as the daemon runs it: the relay, the webhooks, the status page, the app,
the rate limit, waitress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.config import Settings
from monitor.dashboard import Dashboard
from monitor.hooks import Hooks
from monitor.http.app import App, RateLimiter
from monitor.http.server import HttpServer
from monitor.http.web import Web
from monitor.http.wsgi import wsgi_app
from monitor.relay import Relay


@dataclass
class HttpService:
    relay: Relay
    hooks: Hooks
    dashboard: Dashboard
    server: HttpServer

    @classmethod
    def start(
        cls,
        settings: Settings,
        database: Path,
        check_soon: Callable[[str], None] | None = None,
    ) -> HttpService:
        """Serve `[http]` (listen must be set); HttpError if it cannot bind. `check_soon`
        asks the daemon to check a line now (a provider's webhook said it changed)."""
        http = settings.http
        assert http.listen is not None
        relay = Relay(settings, database)
        hooks = Hooks(settings, database, check_soon)
        dashboard = Dashboard(settings, database, check_soon)

        def close() -> None:
            relay.close()
            hooks.close()
            dashboard.close()

        app = App(
            relay,
            RateLimiter(http.rate.count, http.rate.per),
            int(http.max_body),
            hooks,
            http.public_url,
            http.trusted_proxies,
            Web(dashboard),
        )
        server = HttpServer(
            wsgi_app(app),
            http.listen,
            max_body=int(http.max_body),
            timeout=http.timeout.total_seconds(),
            threads=http.threads,
            on_stop=close,
        )
        return cls(relay, hooks, dashboard, server)

    def stop(self, wait: float = 5.0) -> bool:
        return self.server.stop(wait)
