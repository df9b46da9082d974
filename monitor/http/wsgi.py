"""WSGI to `app.Request` and back, and the access log.

The body is read only up to `max_body` (a larger Content-Length is refused unread; waitress
bounds chunked bodies by the same figure). The access log names the method, the path with
secret query values redacted, the status, the client's address (behind a trusted proxy the
one it forwarded, with the proxy's as `via`) and the time taken: never a header or a body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.util import request_uri

import structlog

from monitor.http.app import App, Request, Response
from monitor.http.proxies import forwarded_client
from monitor.redact import query_redacted

log = structlog.get_logger("monitor.http")

_REASONS = {
    200: "OK",
    202: "Accepted",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

StartResponse = Callable[..., Any]


def wsgi_app(app: App) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        try:
            response = _handle(app, environ)
        except Exception:  # a bug answers 500 in one line; the log has the traceback
            log.exception("http request failed unexpectedly")
            response = Response(500, "internal error")
        body = response.body
        if body is None:
            body = (response.text.rstrip("\n") + "\n").encode()
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *response.headers,
        ]
        status = f"{response.status} {_REASONS.get(response.status, 'Unknown')}"
        start_response(status, headers)
        peer = environ.get("REMOTE_ADDR", "")
        client = forwarded_client(peer, environ.get("HTTP_X_FORWARDED_FOR"), app.trusted)
        log.info(
            "http request",
            routine=response.status < 400,  # a refused or failed request is worth reading
            method=environ.get("REQUEST_METHOD", ""),
            path=_logged_path(environ),
            status=response.status,
            remote=client,
            **({"via": peer} if client != peer else {}),
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return serve


def _handle(app: App, environ: dict[str, Any]) -> Response:
    length_text = environ.get("CONTENT_LENGTH") or "0"
    try:
        length = int(length_text)
    except ValueError:
        return Response(400, "Content-Length is not a number")
    if length < 0:
        return Response(400, "Content-Length is negative")
    if length > app.max_body:
        return Response(413, f"the body is larger than {app.max_body} bytes")
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    request = Request(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("PATH_INFO", "/"),
        remote=environ.get("REMOTE_ADDR", ""),
        headers=headers,
        query=query,
        body=body,
        url=request_uri(environ),
    )
    return app.handle(request)


def _logged_path(environ: dict[str, Any]) -> str:
    path = environ.get("PATH_INFO", "/")
    query = query_redacted(environ.get("QUERY_STRING", ""))
    return f"{path}?{query}" if query else path
