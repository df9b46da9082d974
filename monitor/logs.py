"""Logging: structlog on stderr, readable on a TTY (coloured unless `$NO_COLOR`), JSON
lines otherwise.

stdout is reserved for command output, so `--json` can be piped to jq. Under journald
(`$JOURNAL_STREAM` names stderr) each line starts with a `<N>` syslog priority, so
`journalctl -p warning` finds warnings. stdlib logging (Apprise's) goes the same way, and
so do the CLI's own error messages (`as_error`): a broken config is priority err, not the
info that journald gives a bare line.

A person at a terminal reads what they act on: fields without a value (`raw=None`) are
left out, and at the default level (info) so are the lines a call marks `routine=True` (a
pass's "checks done", an event raised before its alert, an alert delivered that the
terminal already shows). JSON lines and journald keep them all; `--log-level debug` shows
the routine lines on a terminal too.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal

from monitor.redact import scrub_log_event

LogFormat = Literal["auto", "console", "json"]
LEVELS = ("debug", "info", "warning", "error", "critical")

_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}
ERR = 3
WARNING = 4


def journal(stream: Any = None) -> bool:
    """Whether `stream` (stderr) is journald's: `$JOURNAL_STREAM` is its `device:inode`.
    A child that inherited the variable but writes elsewhere (a terminal, a file) is not.
    A stream without a file descriptor (a test's StringIO) trusts the variable."""
    named = os.environ.get("JOURNAL_STREAM", "")
    if not named:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True
    return named == f"{st.st_dev}:{st.st_ino}"


def colour(stream: Any) -> bool:
    """Whether to colour what goes to `stream`: only a terminal, and never with `$NO_COLOR`
    set to anything but the empty string (no-color.org); journald records no escapes."""
    if os.environ.get("NO_COLOR", ""):
        return False
    return terminal(stream)


def as_error(text: str, stream: Any = None) -> str:
    """`text` (a message for stderr) as journald reads an error: each line prefixed with
    `<3>` when stderr is the journal, unchanged otherwise."""
    return _prefixed(text, ERR, stream)


def as_warning(text: str, stream: Any = None) -> str:
    return _prefixed(text, WARNING, stream)


def _prefixed(text: str, priority: int, stream: Any) -> str:
    if not journal(stream):
        return text
    return "".join(f"<{priority}>{line}" for line in text.splitlines(keepends=True))


ROUTINE = "routine"
"""The key a log call sets to True to say its line is bookkeeping a terminal leaves out."""


def _routine(drop: bool) -> Any:
    """A processor taking the `routine` key off every line, and with `drop` the line too."""
    import structlog

    def processor(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.pop(ROUTINE, False) and drop:
            raise structlog.DropEvent
        return event

    return processor


def _omit_empty(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """A readable line shows the fields that say something: `raw=None` says nothing."""
    return {k: v for k, v in event.items() if k == "event" or not _is_empty(v)}


def _is_empty(value: Any) -> bool:
    """None, or an empty text or collection; a zero is a figure and is shown."""
    return value is None or (isinstance(value, str | list | tuple | dict | set) and not value)


def terminal(stream: Any) -> bool:
    """Whether `stream` is a person's terminal (not journald's stream)."""
    try:
        return bool(stream.isatty()) and not journal(stream)
    except (AttributeError, OSError, ValueError):
        return False


def _journal_priority(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event["_priority"] = _PRIORITY.get(event.get("level", method), 6)
    return event


class _PriorityPrefix:
    """Wrap a renderer so each rendered line carries journald's `<N>` priority (and, with
    `drop_level`, not the level too)."""

    def __init__(self, renderer: Any, drop_level: bool = False) -> None:
        self.renderer = renderer
        self.drop_level = drop_level

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        priority = event.pop("_priority", 6)
        if self.drop_level:
            event.pop("level", None)
        text = self.renderer(logger, method, event)
        return "\n".join(f"<{priority}>{line}" for line in str(text).splitlines())


def setup(level: str = "info", fmt: LogFormat = "auto", stream: Any = None) -> None:
    """Configure structlog and stdlib logging once per process. structlog is imported here,
    not with the module: `--help` and a usage error need only `as_error`."""
    import structlog

    stream = stream or sys.stderr
    to_journal = journal(stream)
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty() and not to_journal)
    # journald stamps each line with its time and (from the `<N>` prefix) its priority: a
    # readable line there repeats neither (`journalctl -o json` has both as fields).
    bare = to_journal and not use_json
    # A person's terminal shows the fields that hold something, and at the default level
    # what they act on, not bookkeeping. journald and JSON keep every line and field.
    person = not use_json and terminal(stream)
    terse = person and level.lower() == "info"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    if not bare:
        shared.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
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
            colors=colour(stream),
            exception_formatter=structlog.dev.plain_traceback,
            **({"pad_event_to": 0} if bare else {}),
        )
    if person:
        shared.append(_omit_empty)
    shared.append(scrub_log_event)  # after tracebacks are rendered: they are scrubbed too
    if to_journal:
        shared.append(_journal_priority)
        renderer = _PriorityPrefix(renderer, drop_level=bare)

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
        processors=[
            _routine(drop=terse),
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
