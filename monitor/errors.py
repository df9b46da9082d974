"""The project's typed errors. The CLI is the one place that turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DATABASE = 65  # EX_DATAERR: a corrupt database or one from a newer version
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h; systemd units list it in RestartPreventExitStatus


class MonitorError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = EXIT_FAILURE


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where (dotted key path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"At '{self.path}': {self.message}" if self.path else self.message


class ConfigError(MonitorError):
    """The config file is missing, unreadable or invalid; carries every problem found at once."""

    exit_code = EXIT_CONFIG

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {p}" for p in problems]
        super().__init__("\n".join(lines))


class UnitError(ValueError):
    """A human unit ("15m", "2GB", "10%") could not be parsed."""


class UsageError(MonitorError):
    """The command line asks for something that does not exist (an unknown line, say)."""

    exit_code = EXIT_USAGE


class ReadingRejected(MonitorError):
    """A reading from outside the poll (recorded by hand, relayed, pushed) holds a figure
    out of range: nothing was recorded."""

    exit_code = EXIT_USAGE


class StoreError(MonitorError):
    """The history database cannot be opened, migrated or written."""


class DatabaseUnusable(StoreError):
    """The database cannot be used at all (corrupt, from a newer version, not creatable):
    restarting will not help, so it has its own exit code that systemd does not restart."""

    exit_code = EXIT_DATABASE


class AlreadyRunning(MonitorError):
    """Another daemon holds the database's lock: two would double every reading and alert."""


class DaemonUnreachable(MonitorError):
    """`esim-monitor reload` found no daemon to ask (none runs, or a `run --once`), or
    had no verdict from it in time."""


class ReloadRejected(MonitorError):
    """The running daemon rejected its new config and runs on with the old one. The exit
    code is the one `run` would give that config (78 invalid, 65 unusable database)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LoopFailed(MonitorError):
    """The daemon's loop keeps failing and no watchdog will restart it: it exits (1)."""


class CheckFailed(MonitorError):
    """A line could not be read. Never a zero balance: the check failed, and says why.

    `raw` keeps what the provider or modem answered, for the user to see.
    """

    def __init__(self, message: str, *, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw


class NotifyError(MonitorError):
    """A channel could not be built or a message could not be sent."""


class TopUpFailed(MonitorError):
    """A top-up was refused or could not be sent: nothing was bought. Not retried for the
    same need; a person is told. `sent` is False when the request never left (a refill PIN
    it carried is still good)."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class TopUpUnknown(MonitorError):
    """A top-up call whose outcome is unknown (a timeout after sending, a 5xx): money may
    have been spent. Never retried automatically; a person is told."""
