"""A dead man's switch: one request to a push URL after every completed cycle.

Healthchecks.io and Uptime Kuma raise the alarm when the pings stop, which is the one
failure the daemon cannot report itself (the host is down, the daemon hangs or is gone).
The URL is a secret (its path is the check's token): it is never logged and never part of
an error text. `ping` never raises: a failed heartbeat is the monitor's problem to notice.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor import __version__
from monitor.redact import Redactor, url_secrets

DEFAULT_TIMEOUT = 10.0
MAX_BODY = 64 * 1024
USER_AGENT = f"esim-monitor/{__version__}"


@dataclass(frozen=True)
class Beat:
    """The outcome of one ping; `error` is safe to log (it never contains the URL)."""

    ok: bool
    status: int | None = None
    error: str | None = None


def ping(url: str, timeout: float = DEFAULT_TIMEOUT) -> Beat:
    """GET `url`; ok on a 2xx answer that does not say otherwise (Uptime Kuma's `ok: false`)."""
    try:
        if urlsplit(url).scheme not in ("http", "https"):
            return Beat(False, error="the heartbeat URL must start with http:// or https://")
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
            body = response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        exc.close()
        return Beat(False, status=exc.code, error=f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        return Beat(False, error=_scrub(_reason(exc.reason), url))
    except TimeoutError:
        return Beat(False, error="timed out")
    except Exception as exc:  # a heartbeat must never take the loop down
        return Beat(False, error=_scrub(_reason(exc), url))
    refused = _refusal(body)
    if refused is not None:
        return Beat(False, status=status, error=_scrub(refused, url))
    return Beat(True, status=status)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, Exception) else str(reason)


def _refusal(body: bytes) -> str | None:
    """Uptime Kuma answers `{"ok": false, "msg": ...}` for a wrong or paused push token."""
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("ok") is False:
        return f"refused: {data.get('msg') or 'ok is false'}"
    return None


def _scrub(text: str, url: str) -> str:
    """Remove the URL and each of its parts, in every form a server may echo them (decoded,
    URL-encoded, Base64), from `text`, whatever produced it; then bound it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "invalid URL"
    pieces = {parts.netloc, parts.path, parts.query, *url_secrets(url, 4)}
    return Redactor(pieces).excerpt(text, 300)
