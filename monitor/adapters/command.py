"""Read a line by running a program: the way in for anything without an adapter.

The program is run without a shell (an argv list), in a process group of its own so a
timeout kills everything it started, and prints one JSON object on stdout:

    {"balance": "12.50", "currency": "USD", "data_remaining": "1.5GB", "data_total": 3000000000,
     "expires_at": "2025-12-01T00:00:00Z", "status": "ACTIVE"}

Every key is optional and may be null; unknown keys fail the check (typos must not read as
"no balance"). A non-zero exit, a timeout, or output that is not such an object is a failed
check carrying an excerpt of what the program said: never a zero.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from monitor import children
from monitor.adapters import Adapter
from monitor.adapters.fields import (
    excerpt,
    to_bytes,
    to_currency,
    to_datetime,
    to_money,
    to_text,
)
from monitor.config import PositiveDuration, argv_secrets
from monitor.errors import CheckFailed
from monitor.model import Reading, utcnow
from monitor.redact import Redactor

ENV_PREFIX = "ESIM_MONITOR_"
STDOUT_LIMIT = 1 << 20
"""A reading is a few hundred bytes; more than this is a runaway program, not a reading."""
STDERR_LIMIT = 64 << 10
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CommandOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str] = Field(
        min_length=1, description="program and its arguments, run without a shell"
    )
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=30),
        description="the program (and all it started) is killed after this long",
    )
    env: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="extra environment variables (names upper-cased); values are secrets",
    )

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if not argv[0].strip():
            raise ValueError("argv[0] must name a program")
        return argv

    @field_validator("env", mode="before")
    @classmethod
    def _env_names(cls, env: Any) -> Any:
        """Names are upper-cased: keys from `ESIM_MONITOR_LINES__X__ENV__API_KEY` or a
        credential file arrive lower-cased. When one name comes both ways, the lower-cased
        one came from the environment or a credential file, which win over the TOML."""
        if not isinstance(env, Mapping):
            return env
        names = sorted(env, key=lambda name: name != name.upper())
        return {str(name).upper(): env[name] for name in names}

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in env:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if name.startswith(ENV_PREFIX):
                raise ValueError(f"{name!r}: names starting with {ENV_PREFIX} are reserved")
        return env


class CommandAdapter(Adapter):
    name = "command"
    description = "Runs a program (argv, no shell) that prints the line's figures as JSON."
    Options = CommandOptions

    def read(self) -> Reading:
        o: CommandOptions = self.options
        result = run(o.argv, child_env(self.line_id, o), o.timeout.total_seconds())
        try:
            return self._reading(result)
        except CheckFailed as exc:
            # A program that echoes its environment or its arguments must not put a key
            # into an alert (the cycle redacts again, with every configured secret).
            redactor = Redactor(
                [*(v.get_secret_value() for v in o.env.values()), *argv_secrets(o.argv)]
            )
            raise CheckFailed(redactor.text(str(exc)), raw=redactor.optional(exc.raw)) from None

    def _reading(self, result: Completed) -> Reading:
        o: CommandOptions = self.options
        program = Path(o.argv[0]).name
        said = excerpt(result.stderr) or excerpt(result.stdout)
        raw = _raw(result)
        if result.timed_out:
            raise CheckFailed(
                f"{program} did not finish within {o.timeout.total_seconds():g}s"
                + (f": {said}" if said else ""),
                raw=raw,
            )
        if result.returncode != 0:
            raise CheckFailed(
                f"{program} {_exit_text(result.returncode)}: {said or 'no output'}", raw=raw
            )
        if result.truncated:
            raise CheckFailed(
                f"{program} printed more than {STDOUT_LIMIT} bytes: not a reading", raw=raw
            )
        try:
            return parse_output(self.line_id, result.stdout, utcnow())
        except ValueError as exc:
            raise CheckFailed(f"{program}: {exc}", raw=raw) from None


@dataclass(frozen=True)
class Completed:
    """What a run left: exit status (None when killed for the timeout) and its output."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    truncated: bool = False


def child_env(line_id: str, options: CommandOptions) -> dict[str, str]:
    """The daemon's environment less its own `ESIM_MONITOR_*` keys (they may hold channel
    URLs and credentials), plus what the program needs to know and the line's `env`."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    env[f"{ENV_PREFIX}LINE"] = line_id
    env[f"{ENV_PREFIX}TIMEOUT"] = f"{options.timeout.total_seconds():g}"
    env.update({k: v.get_secret_value() for k, v in options.env.items()})
    return env


def run(argv: list[str], env: Mapping[str, str], timeout: float) -> Completed:
    """Run without a shell in a new session, so a timeout can kill the whole group, and read
    at most a bounded amount of output, so a runaway program cannot fill memory."""
    program = Path(argv[0]).name
    deadline = time.monotonic() + timeout
    try:
        proc = children.start(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            close_fds=True,
        )
    except OSError as exc:
        raise CheckFailed(f"cannot run {program}: {exc.strerror or exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    out = _Reader(proc.stdout, STDOUT_LIMIT)
    err = _Reader(proc.stderr, STDERR_LIMIT)
    timed_out = not _wait_unreaped(proc.pid, deadline)
    if not timed_out:
        # Output may still be in flight, or held open by something the program started.
        out.join(max(deadline - time.monotonic(), 0))
        err.join(max(deadline - time.monotonic(), 0))
        timed_out = out.alive or err.alive
    # The program is not reaped yet, so its group id cannot have been reused: kill the whole
    # group, which also ends helpers it left behind (they have no business outliving a check).
    children.kill(proc)
    proc.wait()
    out.join(2)
    err.join(2)
    for reader, stream in ((out, proc.stdout), (err, proc.stderr)):
        if not reader.alive:  # one that escaped the group may still hold it: leave that be
            stream.close()
    return Completed(
        None if timed_out else proc.returncode,
        out.data,
        err.data,
        timed_out=timed_out,
        truncated=out.truncated,
    )


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait until the process exits or the deadline passes, leaving it unreaped (a zombie
    keeps its process group id reserved). True when it exited."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            return bool(ready)
        finally:
            os.close(fd)
    while True:  # no pidfd (not Linux): poll without reaping
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


class _Reader:
    """Drains one pipe in a thread, keeping the first `limit` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.truncated = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while chunk := self._stream.read1(65536):  # type: ignore[attr-defined]
                room = self._limit - self._size
                if room > 0:
                    self._chunks.append(chunk[:room])
                    self._size += min(len(chunk), room)
                if len(chunk) > room:
                    self.truncated = True
        except (OSError, ValueError):
            pass  # the pipe was closed under us after a kill

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def data(self) -> bytes:
        return b"".join(self._chunks)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _raw(result: Completed) -> str | None:
    parts = []
    if result.stdout.strip():
        parts.append("stdout: " + excerpt(result.stdout, 1000))
    if result.stderr.strip():
        parts.append("stderr: " + excerpt(result.stderr, 1000))
    return "\n".join(parts) or None


_FIELDS = frozenset(
    {
        "balance",
        "currency",
        "data_remaining",
        "data_total",
        "expires_at",
        "status",
        "renewal_at",
        "renewal_price",
        "critical_reason",
        "extras",
        "error",
    }
)
_FIGURES = ("balance", "data_remaining", "data_total", "expires_at", "status")


def parse_output(line_id: str, stdout: bytes | str, now: datetime) -> Reading:
    """The program's JSON object as a Reading. Raises ValueError saying what is wrong.

    Numbers are parsed as Decimal, so a balance of 12.34 stays exactly 12.34.
    An `"error"` key is the program's own way of saying the check failed.
    """
    text = stdout.decode("utf-8", errors="replace") if isinstance(stdout, bytes) else stdout
    if not text.strip():
        raise ValueError("printed nothing on stdout (expected a JSON object)")
    try:
        payload = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ValueError(f"output is not JSON ({exc.msg}): {excerpt(text)}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"output is not a JSON object: {excerpt(text)}")
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(_FIELDS))}"
        )
    if payload.get("error") is not None:
        raise ValueError(f"reported an error: {excerpt(str(payload['error']))}")
    if all(payload.get(key) is None for key in _FIGURES):
        raise ValueError(f"output has none of {', '.join(_FIGURES)}: {excerpt(text)}")
    balance = _field(payload, "balance", to_money)
    extras = payload.get("extras") or {}
    if not isinstance(extras, dict):
        raise ValueError("'extras' must be a JSON object")
    return Reading(
        line=line_id,
        checked_at=now,
        balance=balance,
        currency=_field(payload, "currency", to_currency),
        data_remaining=_field(payload, "data_remaining", to_bytes),
        data_total=_field(payload, "data_total", to_bytes),
        expires_at=_field(payload, "expires_at", to_datetime),
        status=_field(payload, "status", to_text),
        renewal_at=_field(payload, "renewal_at", to_datetime),
        renewal_price=_field(payload, "renewal_price", to_money),
        critical_reason=_field(payload, "critical_reason", to_text),
        extras=extras,
        raw=payload,
    )


def _field(payload: Mapping[str, Any], key: str, convert: Any) -> Any:
    value = payload.get(key)
    if value is None:
        return None
    try:
        return convert(value)
    except ValueError as exc:
        raise ValueError(f"{key!r}: {exc}") from None
