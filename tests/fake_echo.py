"""A hostile provider that echoes credentials, on loopback, and a program that does the same.

`EchoServer` answers `/<account>/<kind>/<form>` with the secret of that account (as its
config gave it) sent back in one form: `given`, `base64`, `basic` (Base64 of `user:secret`,
as HTTP Basic sends it), `quote` (path style), `quote_all` and `quote_plus` (URL-encoded).
`kind` is `unauth` (401 with the secret in the message and the `Authorization` header
echoed), `shape` (200 without the expected figures) or `good` (200 with a balance and the
secret in extra fields). `/beat/...` is an Uptime Kuma push endpoint that refuses its token
(`{"ok": false, "msg": ...}`) with the path token and the query token in every form.

Run as a script it is a `command` adapter program: `fake_echo.py --token T MODE FORM` echoes
T and `$API_KEY` in FORM on stderr with exit 1 (`stderr`), as non-JSON text on stdout
(`stdout`), or inside a good reading's extras (`good`).

The forms are computed here, independently of monitor.redact, so a test checks the code
against what a client really sends.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote, urlsplit

FORMS = ("given", "base64", "basic", "quote", "quote_all", "quote_plus")


def encode(secret: str, form: str, user: str = "anyone") -> str:
    """`secret` as a client sends it in `form`."""
    if form == "given":
        return secret
    if form == "base64":
        return base64.b64encode(secret.encode()).decode()
    if form == "basic":
        return base64.b64encode(f"{user}:{secret}".encode()).decode()
    if form == "quote":
        return quote(secret)
    if form == "quote_all":
        return quote(secret, safe="")
    if form == "quote_plus":
        return quote_plus(secret)
    raise ValueError(form)


def every_form(secret: str, user: str = "anyone") -> list[str]:
    return [encode(secret, form, user) for form in FORMS]


class EchoServer:
    """`accounts` maps the first path segment to (user, secret) of that account."""

    def __init__(self, accounts: dict[str, tuple[str, str]]) -> None:
        self.accounts = accounts
        self.seen: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.seen.append(self.path)
                status, body = fake.answer(self.path, dict(self.headers))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        parts = urlsplit(path)
        account, kind, form = [*parts.path.strip("/").split("/"), "", "", ""][:3]
        if account == "beat":  # /beat/api/push/<token>?token=<query token>
            token = unquote(parts.path.rsplit("/", 1)[-1])
            query = parse_qs(parts.query).get("token", [""])[0]
            echoed = [*every_form(token), *every_form(query)]
            return 200, {"ok": False, "msg": "unknown push token " + " ".join(echoed)}
        user, secret = self.accounts[account]
        echoed = encode(secret, form, user)
        if kind == "unauth":
            received = headers.get("Authorization") or headers.get("X-API-Key")
            return 401, {"message": f"bad credentials: {echoed}", "received": received}
        if kind == "shape":
            return 200, {"error": {"detail": echoed}, "echo": [echoed]}
        return 200, {"balance": "12.50", "debug": {"auth": echoed}, echoed: True}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str]) -> int:
    token = argv[argv.index("--token") + 1]
    mode, form = argv[-2:]
    said = f"{encode(token, form)} {encode(os.environ['API_KEY'], form)}"
    if mode == "stderr":
        print(said, file=sys.stderr)
        return 1
    if mode == "stdout":
        print(said)
        return 0
    print(json.dumps({"balance": "5.00", "currency": "USD", "extras": {"echo": said}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
