"""`esim-monitor demo`: the bundled demo on a fresh database, from a checkout or a wheel.

The demo config ships inside the package (`monitor/demo.toml`, a copy of `config/demo.toml`).
Each start copies it into a new private folder, so its database, recharge ledger and locks
start empty: a second run shows all that the first did, where a database carried over would
hold the last run's top-up (its cap then skips this one) and its low lines (reminders every
minute instead of the first alerts). The folder is named on start, so `status` and the page
can look at it while the demo runs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from monitor import ENV_PREFIX

CONFIG_NAME = "demo.toml"
FOLDER_PREFIX = "esim-monitor-demo-"
DEFAULT_PORT = 8757
_ADDRESS = re.compile(
    r'^((?:listen|public_url)\s*=\s*"(?:http://)?127\.0\.0\.1:)8757"', re.MULTILINE
)
KEPT_ENV = (f"{ENV_PREFIX}DEBUG",)
"""The one variable of ours the demo heeds: every other would mix a setting of the user's
(a channel's URL from the environment or a systemd credential) into the simulated lines."""


def config_text(port: int = DEFAULT_PORT) -> str:
    """The bundled demo config, its page on `port` (listen and public_url alike)."""
    text = files("monitor").joinpath(CONFIG_NAME).read_text(encoding="utf-8")
    if port == DEFAULT_PORT:
        return text
    text, found = _ADDRESS.subn(rf'\g<1>{port}"', text)
    if found != 2:  # listen and public_url: a change of the demo config must come here too
        raise RuntimeError(f"the demo config names its address {found} times, not 2")
    return text


@contextmanager
def workspace(keep: bool, port: int = DEFAULT_PORT, parent: Path | None = None) -> Iterator[Path]:
    """A new folder (0700) holding the demo config (0600); its database goes beside it.
    Removed on the way out unless `keep`."""
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=parent))
    path = folder / CONFIG_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(config_text(port))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def isolate(environ: MutableMapping[str, str]) -> None:
    """Drop the user's own settings from `environ`: ESIM_MONITOR_* (but the debug switch)
    and systemd's CREDENTIALS_DIRECTORY, which the config would merge into the demo's."""
    for name in list(environ):
        if (name.startswith(ENV_PREFIX) and name not in KEPT_ENV) or (
            name == "CREDENTIALS_DIRECTORY"
        ):
            del environ[name]


def banner(path: Path, port: int, executable: Path, *, keep: bool, once: bool) -> str:
    """What a person needs on start: where the demo lives, its page, how to ask it."""
    fate = "kept when it ends" if keep else "deleted when it ends; --keep keeps it"
    ask = shlex.join([str(executable), "--config", str(path), "status"])
    if once:
        return (
            f"esim-monitor demo: one pass over three simulated lines, a fresh database in "
            f"{path.parent} ({fate})\n"
        )
    return (
        f"esim-monitor demo: three simulated lines, a fresh database in {path.parent} "
        f"({fate})\n"
        f"  status page: http://127.0.0.1:{port}/\n"
        f"  from another terminal: {ask}\n"
        "  Ctrl-C stops it\n"
    )


def farewell(path: Path, executable: Path, *, keep: bool) -> str:
    if not keep:
        return f"esim-monitor demo: deleted {path.parent}\n"
    ask = shlex.join([str(executable), "--config", str(path), "status"])
    return f"esim-monitor demo: kept {path.parent}; to look at it: {ask}\n"
