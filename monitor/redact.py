"""Secret redaction: the one place that knows every form a secret travels in.

A provider that echoes what it was sent (a 401 body quoting the `Authorization` header, a
debug field in a 200 answer, a program printing its argv) hands the secret back in the
form the client sent it: as given, Base64 inside `Basic ...` (of `user:secret`, with any
user), URL-encoded in a path or query, escaped inside JSON. A `Redactor` holds a set of
secrets and blots each of those forms out of text and of parsed payloads, so what leaves an
adapter (messages, excerpts, readings) and what `config show` prints carries none of them.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

REDACTED = "[redacted]"
MIN_LENGTH = 4
"""Shorter values would blot out ordinary words and digits."""
MIN_CORE = 6
"""Base64 characters a secret must fill by itself to be found inside a longer Base64 run."""
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_URL_TOKEN = 8
"""Parts of a secret URL (path segments, query values) this long are tokens of their own."""


def forms(secret: str) -> set[str]:
    """Every literal form of `secret` a client sends or a server echoes: as given, JSON-escaped,
    URL-encoded (path, component and form style, either hex case), Base64 (standard and
    URL-safe, padded or not). `user:secret` pairs are added whole, so their Base64 is here."""
    found = {secret}
    for text in (quote(secret), quote(secret, safe=""), quote_plus(secret)):
        found.add(text)
        found.add(_PERCENT.sub(lambda m: m.group().lower(), text))
    found.add(json.dumps(secret)[1:-1])
    found.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    raw = secret.encode()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        found.add(encoded.decode("ascii"))
        found.add(encoded.rstrip(b"=").decode("ascii"))
    return {form for form in found if len(form) >= MIN_LENGTH}


def base64_cores(secret: str) -> set[str]:
    """The Base64 characters that encode only `secret`'s bytes, at each of the three byte
    alignments it can have inside a longer value (`Basic base64(anyuser:secret)`). Found in
    a text, they mark a Base64 run that carries the secret."""
    raw = secret.encode()
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        first = -(-8 * offset // 6)  # the first character made of the secret's bits alone
        last = 8 * (offset + len(raw)) // 6  # one past the last such character
        core = encoded[first:last]
        if len(core) >= MIN_CORE:
            cores.add(core)
            cores.add(core.replace("+", "-").replace("/", "_"))
    return cores


def url_secrets(url: str, shortest: int = _URL_TOKEN) -> set[str]:
    """A secret URL (a heartbeat or channel URL) and the parts of it a server may echo on
    their own: the password, path segments and query values of at least `shortest`
    characters (tokens, not `api` or `push`), each as written and decoded."""
    found = {url}
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if parts.password:
        found |= {parts.password, unquote(parts.password)}
    pieces = [*parts.path.split("/"), *(value for _, value in parse_qsl(parts.query))]
    for piece in pieces:
        if len(piece) >= shortest:
            found |= {piece, unquote(piece)}
    return found


SECRET_PARAMS = re.compile(r"token|secret|key|sig|signature|password|auth", re.IGNORECASE)
"""Query parameters whose values an access log never shows."""


def query_redacted(query: str) -> str:
    """A request's query string for a log: the value of every secret-named parameter
    (`?token=...` of a relay URL) replaced, the rest as it came."""
    if not query:
        return ""
    kept = []
    for piece in query.split("&"):
        name, sep, _ = piece.partition("=")
        kept.append(f"{name}={REDACTED}" if sep and SECRET_PARAMS.search(unquote(name)) else piece)
    return "&".join(kept)


class Redactor:
    """A growing set of secrets (configured ones, tokens as they are fetched) and their
    forms. Thread-safe: the lines of every account share one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._forms: tuple[str, ...] = ()
        self._cores: tuple[str, ...] = ()
        self._heads: frozenset[str] = frozenset()
        self.update(secrets)
        with _LIVE_LOCK:
            _LIVE.add(self)

    def add(self, secret: str | None) -> None:
        """Redact this value, in every form, from now on."""
        self.update((secret,) if secret else ())

    def update(self, secrets: Iterable[str | None]) -> None:
        new = {s for s in secrets if s and len(s) >= MIN_LENGTH} - self._secrets
        if not new:
            return
        with self._lock:
            self._secrets |= new
            every = set(self._forms).union(*(forms(s) for s in new))
            cores = set(self._cores).union(*(base64_cores(s) for s in new))
            self._forms = tuple(sorted(every, key=len, reverse=True))
            self._cores = tuple(sorted(cores, key=len, reverse=True))
            self._heads = frozenset(
                form[:n] for form in every for n in range(_first_head(form), len(form))
            )

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._secrets)} secrets>"

    def text(self, text: str) -> str:
        """`text` with every form of every secret replaced by [redacted]."""
        forms_, cores, heads = self._forms, self._cores, self._heads
        for form in forms_:
            if form in text:
                text = text.replace(form, REDACTED)
        text = _cut_head(text, heads, len(forms_[0]) if forms_ else 0)
        spans = []
        for core in cores:
            start = text.find(core)
            while start >= 0:
                spans.append(_base64_run(text, start, start + len(core)))
                start = text.find(core, start + 1)
        if not spans:
            return text
        merged: list[list[int]] = []
        for begin, end in sorted(spans):
            if merged and begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([begin, end])
        out, at = [], 0
        for begin, end in merged:
            out += [text[at:begin], REDACTED]
            at = end
        out.append(text[at:])
        return "".join(out)

    def excerpt(self, text: str, limit: int) -> str:
        """The first `limit` characters of `text`, redacted. Redacting after the cut would
        leave the head of a secret that straddles it; this redacts a window long enough that
        whatever it cuts through lies past `limit` once redacted."""
        longest = len(self._forms[0]) if self._forms else 0
        window = limit + longest
        while True:
            shown = self.text(text[:window])
            if window >= len(text) or len(shown) >= limit + longest:
                return shown[:limit]
            window += limit + longest - len(shown) + longest

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self.text(text)

    def data(self, value: Any) -> Any:
        """A parsed payload (dicts, lists, strings, numbers) with every secret redacted from
        keys and values; returned as is when it holds none (one scan of its JSON text)."""
        if not self._secrets or value is None:
            return value
        try:
            blob = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            blob = repr(value)
        if self.text(blob) == blob:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        if value is None or isinstance(value, bool):
            return value
        shown = str(value)
        cleaned = self.text(shown)
        return value if cleaned == shown else cleaned


_LIVE: weakref.WeakSet[Redactor] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def scrub_log_event(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor, the last wall for log lines: every value of the event (a
    rendered traceback too) through every redactor alive in the process (the cycle's,
    whose secrets are the whole config's). Redaction at the source comes first; this
    catches what a library or an exception message carries."""
    with _LIVE_LOCK:
        live = [redactor for redactor in _LIVE if redactor]
    for redactor in live:
        event = {key: redactor.data(value) for key, value in event.items()}
    return event


_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*(?::|%3[aA])(?://|%2[fF]%2[fF])")
"""A URL's `scheme://`, as written or URL-encoded (the forms a secret URL travels in)."""


def _first_head(form: str) -> int:
    """The length of the shortest head of `form` worth cutting: a URL's `scheme://` alone
    tells nothing (and `http` or `mail` ends many a harmless word)."""
    scheme = _SCHEME.match(form)
    return max(MIN_LENGTH, scheme.end() + 1 if scheme else 0)


def _cut_head(text: str, heads: frozenset[str], longest: int) -> str:
    """A text cut short (an excerpt, a bounded raw reply) may end in the head of a secret
    that the cut went through: redact that head too."""
    body = text.removesuffix("…")
    for n in range(min(longest, len(body)), MIN_LENGTH - 1, -1):
        if body[-n:] in heads:
            return body[:-n] + REDACTED + text[len(body) :]
    return text


def _base64_run(text: str, begin: int, end: int) -> tuple[int, int]:
    """Widen [begin, end) to the whole run of Base64 characters (and padding) around it."""
    while begin > 0 and text[begin - 1] in _B64_CHARS:
        begin -= 1
    while end < len(text) and text[end] in _B64_CHARS:
        end += 1
    while end < len(text) and text[end] == "=":
        end += 1
    return begin, end
