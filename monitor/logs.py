"""Logging: structlog on stderr, readable on a TTY, JSON lines otherwise.

stdout is reserved for command output, so `--json` can be piped to jq. Under journald
(`$JOURNAL_STREAM` set) each line starts with a `<N>` syslog priority, so
`journalctl -p warning` finds warnings. stdlib logging (Apprise's) goes the same way.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal

import structlog

from monitor.redact import scrub_log_event

LogFormat = Literal["auto", "console", "json"]
LEVELS = ("debug", "info", "warning", "error", "critical")

_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}


def _journal_priority(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event["_priority"] = _PRIORITY.get(event.get("level", method), 6)
    return event


class _PriorityPrefix:
    """Wrap a renderer so each rendered line carries journald's `<N>` priority."""

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        priority = event.pop("_priority", 6)
        text = self.renderer(logger, method, event)
        return "\n".join(f"<{priority}>{line}" for line in str(text).splitlines())


def setup(level: str = "info", fmt: LogFormat = "auto", stream: Any = None) -> None:
    """Configure structlog and stdlib logging once per process."""
    stream = stream or sys.stderr
    journal = bool(os.environ.get("JOURNAL_STREAM"))
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty() and not journal)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer: Any = structlog.processors.JSONRenderer()
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty() and not journal,
            exception_formatter=structlog.dev.plain_traceback,
        )
    shared.append(scrub_log_event)  # after tracebacks are rendered: they are scrubbed too
    if journal:
        shared.append(_journal_priority)
        renderer = _PriorityPrefix(renderer)

    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=shared,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log request URLs (tokens in Apprise URLs, webhook ids, SIDs, ICCIDs) at
    # info and debug: they stay at warning even with --log-level debug.
    for name in ("apprise", "httpx", "httpcore", "urllib3", "requests"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
