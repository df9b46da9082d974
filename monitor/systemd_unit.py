"""The systemd unit, with the paths of this installation filled in.

The template ships inside the package (`monitor/esim-monitor.service`; `systemd/` in the
repository holds the same file) so that an installed copy can print a unit that matches it:
`esim-monitor systemd-unit`. Secrets are loaded by a second file, a drop-in with one
`LoadCredential=` line per credential file, which `render_credentials` writes. The drop-in
for USSD lines ships the same way (`monitor/modem.conf`, a copy of `systemd/modem.conf`):
`esim-monitor systemd-unit --modem` prints it, so a wheel install needs no checkout.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

import monitor

TEMPLATE = "esim-monitor.service"
MODEM_DROPIN = "modem.conf"
DEFAULT_EXECUTABLE = Path("/opt/esim-monitor/venv/bin/esim-monitor")
DEFAULT_CONFIG = Path(monitor.DEFAULT_CONFIG)
DEFAULT_CREDENTIALS = Path("/etc/esim-monitor/credentials")
CONFIG_ENV = f"{monitor.ENV_PREFIX}CONFIG"
ENCRYPTED_SUFFIX = ".cred"

# What the unit's sandbox hides from the service: ProtectHome=yes and PrivateTmp=yes.
HIDDEN = (Path("/home"), Path("/root"), Path("/run/user"), Path("/tmp"), Path("/var/tmp"))
EXEC_KEYS = ("ExecStartPre=", "ExecStart=", "ExecReload=")
CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def template() -> str:
    return files("monitor").joinpath(TEMPLATE).read_text(encoding="utf-8")


def modem_dropin() -> str:
    """The drop-in that starts the service after ModemManager (no paths to fill in)."""
    return files("monitor").joinpath(MODEM_DROPIN).read_text(encoding="utf-8")


def installed_executable() -> Path:
    """The `esim-monitor` script of the running installation.

    `sys.argv[0]` when it is that script; else the one beside `sys.executable`, which in a
    virtualenv is `venv/bin/python` (not resolved: the link leads out of the venv).
    """
    argv0 = Path(sys.argv[0])
    if argv0.name == "esim-monitor" and argv0.is_file():
        return Path(os.path.abspath(argv0))
    return Path(os.path.abspath(sys.executable)).parent / "esim-monitor"


def render_unit(executable: Path, config: Path) -> str:
    """The unit with `executable` in every Exec line and `config` as $ESIM_MONITOR_CONFIG."""
    exe = _word(str(Path(os.path.abspath(executable))), command=True)
    cfg = Path(os.path.abspath(config))
    out = []
    for line in template().splitlines(keepends=True):
        if line.startswith(EXEC_KEYS):
            line = line.replace(str(DEFAULT_EXECUTABLE), exe)
        elif line.startswith(f"Environment={CONFIG_ENV}="):
            line = f"Environment={_word(f'{CONFIG_ENV}={cfg}', command=False)}\n"
        out.append(line)
    return "".join(out)


def check_paths(executable: Path, config: Path, hidden_roots: Iterable[Path] = HIDDEN) -> list[str]:
    """Why the unit would not run with these paths: an empty list when it would.

    The sandbox hides home directories and /tmp from the service, so a virtualenv in a home
    directory, or one made from a Python that lives there (pyenv's), cannot start.
    """
    roots = tuple(hidden_roots)
    problems = []
    executable = Path(os.path.abspath(executable))
    config = Path(os.path.abspath(config))
    if not executable.is_file():
        problems.append(f"{executable} does not exist")
    elif hidden := _hidden(Path(os.path.realpath(executable)), roots):
        problems.append(f"{executable} is under {hidden}, which the service cannot see")
    else:
        interpreter = _interpreter(executable)
        if interpreter is not None and (hidden := _hidden(interpreter, roots)):
            problems.append(
                f"{executable} runs {interpreter}, under {hidden}, which the service cannot "
                "see: make the virtualenv from a system Python (/usr/bin/python3 -m venv)"
            )
    if hidden := _hidden(Path(os.path.realpath(config)), roots):
        problems.append(f"{config} is under {hidden}, which the service cannot see")
    return problems


def render_credentials(directory: Path = DEFAULT_CREDENTIALS) -> str:
    """A drop-in loading every file of `directory` as the credential of its name.

    `NAME` is loaded as is, `NAME.cred` (made by `systemd-creds encrypt --name=NAME`) is
    decrypted by systemd; either way the service finds `$CREDENTIALS_DIRECTORY/NAME`.
    """
    directory = Path(os.path.abspath(directory))
    if not directory.is_dir():
        raise ValueError(
            f"no credentials folder {directory}: make it (install -d -m 0700 {directory}) and "
            "put one file per secret in it (docs/systemd.md)"
            if not directory.exists()
            else f"{directory} is not a folder: --credentials takes the folder of the files"
        )
    lines = [
        f"# Written by esim-monitor: one credential per file in {directory}.",
        "# Install as /etc/systemd/system/esim-monitor.service.d/credentials.conf",
        "[Service]",
    ]
    loaded: dict[str, Path] = {}
    for path in sorted(_credential_files(directory)):
        name = path.name
        key = "LoadCredential"
        if name.endswith(ENCRYPTED_SUFFIX):
            name, key = name.removesuffix(ENCRYPTED_SUFFIX), "LoadCredentialEncrypted"
        if not CREDENTIAL_NAME.fullmatch(name):
            raise ValueError(f"{path}: not a usable credential name")
        if name in loaded:
            raise ValueError(
                f"{loaded[name].name} and {path.name} in {directory} are both the credential "
                f"{name!r}: keep one (the plain file can go once {name}{ENCRYPTED_SUFFIX} is made)"
            )
        loaded[name] = path
        lines.append(f"{key}={name}:{_escape_specifiers(str(path))}")
    return "\n".join(lines) + "\n"


def _credential_files(directory: Path) -> Iterable[Path]:
    return (p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def _hidden(path: Path, roots: tuple[Path, ...]) -> Path | None:
    return next((root for root in roots if path.is_relative_to(root)), None)


def _interpreter(script: Path) -> Path | None:
    """The interpreter a console script's `#!` line names, resolved, if it names one."""
    try:
        with script.open("rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words or words[0] == "/bin/sh":  # pip's wrapper for long paths: not worth parsing
        return None
    return Path(os.path.realpath(words[0]))


def _escape_specifiers(text: str) -> str:
    if "\n" in text:
        raise ValueError(f"a path with a line break cannot go in a unit file: {text!r}")
    return text.replace("%", "%%")


def _word(text: str, command: bool) -> str:
    """One word for an Exec line (`command`: `$` expands there) or an Environment= line."""
    text = _escape_specifiers(text)
    if command:
        text = text.replace("$", "$$")
    if not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
