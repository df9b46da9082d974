"""The shipped unit: its hardening score, the directives the daemon relies on, and rendering.

The score comes from `systemd-analyze security --offline=true`, which needs no running
systemd. Where the analyzer is missing the test is skipped, except in CI (CI=true), which
must install it: `apt-get update && apt-get install -y systemd`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import errors, systemd_unit
from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]
REPO_UNIT = ROOT / "systemd" / "esim-monitor.service"
MODEM_DROPIN = ROOT / "systemd" / "modem.conf"
MAX_EXPOSURE = 2.0
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def analyzer() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install systemd-analyze: apt-get install -y systemd")
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd)")
    return path


def directives(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value it is given, in order."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


def exposure(unit_dir: Path) -> float:
    result = subprocess.run(
        [analyzer(), "security", "--offline=true", "--no-pager", "esim-monitor.service"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = EXPOSURE.search(result.stdout)
    assert match, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))


def unit_dir(tmp_path: Path, *dropins: Path) -> Path:
    """A copy of the unit alone (with the given drop-ins), so nothing else is picked up."""
    tmp_path.mkdir(exist_ok=True)
    shutil.copy(REPO_UNIT, tmp_path / "esim-monitor.service")
    if dropins:
        (tmp_path / "esim-monitor.service.d").mkdir()
        for dropin in dropins:
            shutil.copy(dropin, tmp_path / "esim-monitor.service.d" / dropin.name)
    return tmp_path


def test_repository_unit_is_the_packaged_template() -> None:
    assert REPO_UNIT.read_text(encoding="utf-8") == systemd_unit.template()


def test_repository_modem_dropin_is_the_packaged_one() -> None:
    assert MODEM_DROPIN.read_text(encoding="utf-8") == systemd_unit.modem_dropin()


def test_the_command_prints_the_modem_dropin(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/systemd.md installs it from the command, so a wheel install needs no checkout."""
    assert main(["systemd-unit", "--modem"]) == 0
    assert capsys.readouterr().out == MODEM_DROPIN.read_text(encoding="utf-8")


def test_the_command_prints_one_dropin_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["systemd-unit", "--modem", "--credentials", "/etc"]) == errors.EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err


def test_hardening_score(tmp_path: Path) -> None:
    assert exposure(unit_dir(tmp_path)) <= MAX_EXPOSURE


def test_modem_dropin_keeps_the_score(tmp_path: Path) -> None:
    assert exposure(unit_dir(tmp_path, MODEM_DROPIN)) <= MAX_EXPOSURE


def test_what_the_daemon_relies_on() -> None:
    unit = directives(REPO_UNIT.read_text(encoding="utf-8"))
    assert unit["Service.Type"] == ["notify"]
    assert unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.WatchdogSec"]
    assert unit["Service.TimeoutStartSec"] == ["30min"]  # a big history's check and migration
    (pre,) = unit["Service.ExecStartPre"]
    assert pre.endswith("esim-monitor config validate")
    assert unit["Service.ExecStart"][0].endswith("esim-monitor run")
    # The daemon's own verdict, not a `config validate`: systemd 252 gives ExecReload= no
    # credentials, so that would fail for every config whose secrets are credentials.
    assert unit["Service.ExecReload"] == [
        "/opt/esim-monitor/venv/bin/esim-monitor reload --pid $MAINPID"
    ]
    assert unit["Service.Restart"] == ["on-failure"]
    prevented = " ".join(unit["Service.RestartPreventExitStatus"]).split()
    assert str(errors.EXIT_CONFIG) in prevented  # invalid config
    assert str(errors.EXIT_DATABASE) in prevented  # unusable database
    assert unit["Service.DynamicUser"] == ["yes"]
    assert unit["Service.StateDirectory"] == ["esim-monitor"]
    assert unit["Service.Environment"] == ["ESIM_MONITOR_CONFIG=/etc/esim-monitor/config.toml"]
    assert "Service.MemoryDenyWriteExecute" not in unit


def test_modem_dropin_relaxes_no_service_setting() -> None:
    dropin = directives(MODEM_DROPIN.read_text(encoding="utf-8"))
    assert not [key for key in dropin if key.startswith("Service.")]
    assert dropin["Unit.After"] == ["ModemManager.service"]


def test_render_with_the_default_paths_is_the_template() -> None:
    rendered = systemd_unit.render_unit(
        systemd_unit.DEFAULT_EXECUTABLE, systemd_unit.DEFAULT_CONFIG
    )
    assert rendered == systemd_unit.template()


def test_render_fills_in_this_installation(tmp_path: Path) -> None:
    exe = Path("/srv/esim/venv/bin/esim-monitor")
    unit = directives(systemd_unit.render_unit(exe, Path("/srv/esim/config.toml")))
    assert unit["Service.ExecStartPre"] == [f"-{exe} config validate"]
    assert unit["Service.ExecStart"] == [f"{exe} run"]
    assert unit["Service.ExecReload"] == [f"{exe} reload --pid $MAINPID"]
    assert unit["Service.Environment"] == ["ESIM_MONITOR_CONFIG=/srv/esim/config.toml"]


def test_render_makes_relative_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    unit = directives(systemd_unit.render_unit(Path("venv/bin/esim-monitor"), Path("c.toml")))
    assert unit["Service.ExecStart"] == [f"{tmp_path}/venv/bin/esim-monitor run"]
    assert unit["Service.Environment"] == [f"ESIM_MONITOR_CONFIG={tmp_path}/c.toml"]


def test_render_quotes_what_systemd_would_split_or_expand(tmp_path: Path) -> None:
    exe = tmp_path / "my venv 100%" / "bin" / "esim-monitor"
    rendered = systemd_unit.render_unit(exe, Path("/etc/esim monitor/config.toml"))
    unit = directives(rendered)
    assert unit["Service.ExecStart"] == [f'"{tmp_path}/my venv 100%%/bin/esim-monitor" run']
    assert unit["Service.Environment"] == ['"ESIM_MONITOR_CONFIG=/etc/esim monitor/config.toml"']
    # systemd itself reads the quoted path as one word: verify finds the executable.
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "esim-monitor.service").write_text(rendered)
    result = subprocess.run(
        [analyzer(), "verify", "--man=no", "esim-monitor.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_render_refuses_a_line_break() -> None:
    with pytest.raises(ValueError, match="line break"):
        systemd_unit.render_unit(Path("/opt/a\nb/esim-monitor"), systemd_unit.DEFAULT_CONFIG)


def test_installed_executable_from_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "bin" / "esim-monitor"
    script.parent.mkdir()
    script.write_text("#!/usr/bin/python3\n")
    monkeypatch.setattr(sys, "argv", [str(script), "systemd-unit"])
    assert systemd_unit.installed_executable() == script


def test_installed_executable_beside_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/monitor/__main__.py"])
    expected = Path(os.path.abspath(sys.executable)).parent / "esim-monitor"
    assert systemd_unit.installed_executable() == expected


def test_check_paths_accepts_a_usable_installation(tmp_path: Path) -> None:
    exe = tmp_path / "esim-monitor"
    exe.write_text("#!/usr/bin/python3\n")
    config = tmp_path / "config.toml"
    assert systemd_unit.check_paths(exe, config, hidden_roots=[Path("/root")]) == []


def test_check_paths_finds_what_the_sandbox_hides(tmp_path: Path) -> None:
    exe = tmp_path / "esim-monitor"
    exe.write_text("#!/root/.pyenv/versions/3.11.7/bin/python3.11\n")
    problems = systemd_unit.check_paths(
        exe, Path("/root/config.toml"), hidden_roots=[Path("/root")]
    )
    assert len(problems) == 2
    assert "runs /root/.pyenv/versions/3.11.7/bin/python3.11" in problems[0]
    assert problems[1] == "/root/config.toml is under /root, which the service cannot see"


def test_check_paths_by_default_hides_tmp(tmp_path: Path) -> None:
    missing = systemd_unit.check_paths(Path("/nonexistent/esim-monitor"), Path("/etc/x.toml"))
    assert missing == ["/nonexistent/esim-monitor does not exist"]
    exe = Path("/tmp") / tmp_path.name / "esim-monitor"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text("#!/usr/bin/python3\n")
    try:
        problems = systemd_unit.check_paths(exe, Path("/etc/x.toml"))
    finally:
        shutil.rmtree(exe.parent)
    assert problems == [f"{exe} is under /tmp, which the service cannot see"]


def test_credentials_dropin(tmp_path: Path) -> None:
    (tmp_path / "channels__phone__url").write_text("tgram://token/chat")
    (tmp_path / "accounts__airalo__client_secret.cred").write_bytes(b"encrypted")
    (tmp_path / ".keep").write_text("")
    dropin = systemd_unit.render_credentials(tmp_path)
    assert directives(dropin) == {
        "Service.LoadCredentialEncrypted": [
            f"accounts__airalo__client_secret:{tmp_path}/accounts__airalo__client_secret.cred"
        ],
        "Service.LoadCredential": [f"channels__phone__url:{tmp_path}/channels__phone__url"],
    }


def test_credentials_dropin_refuses_unusable_names(tmp_path: Path) -> None:
    (tmp_path / "channels phone url").write_text("x")
    with pytest.raises(ValueError, match="not a usable credential name"):
        systemd_unit.render_credentials(tmp_path)


def test_credentials_dropin_refuses_a_missing_folder_and_a_credential_given_twice(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match=r"^no credentials folder .*/missing: make it \(install"):
        systemd_unit.render_credentials(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        systemd_unit.render_credentials(tmp_path / "file")
    (tmp_path / "file").unlink()
    (tmp_path / "channels__phone__url").write_text("tgram://token/chat")
    (tmp_path / "channels__phone__url.cred").write_bytes(b"encrypted")
    with pytest.raises(ValueError, match=r"are both the credential 'channels__phone__url'"):
        systemd_unit.render_credentials(tmp_path)


def test_credentials_dropin_is_accepted_by_systemd(tmp_path: Path) -> None:
    secrets = tmp_path / "credentials"
    secrets.mkdir()
    (secrets / "channels__phone__url").write_text("x")
    units = unit_dir(tmp_path / "units")
    (units / "esim-monitor.service.d").mkdir()
    (units / "esim-monitor.service.d" / "credentials.conf").write_text(
        systemd_unit.render_credentials(secrets)
    )
    result = subprocess.run(
        [analyzer(), "verify", "--man=no", "esim-monitor.service"],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The only complaint allowed is the executable, which is not installed here.
    complaints = [
        line for line in result.stderr.splitlines() if "is not executable" not in line and line
    ]
    assert complaints == []
