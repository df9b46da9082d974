"""`esim-monitor demo`: the bundled demo in a new folder each start, named on start, so
that a second run shows what the first did and `status` and the page can look at it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_proc import free_port

from monitor import demo as demo_command
from monitor.adapters import demo
from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]
FOLDER = re.compile(r"a fresh database in (\S+) ")


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the demo makes its folders in this test (tempfile's root, as $TMPDIR sets)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def run_demo(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, Path, str]:
    code = main(["demo", "--once", *options])
    err = capsys.readouterr().err
    found = FOLDER.search(err)
    assert found, err
    return code, Path(found.group(1)), err


def events(config: Path, capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str]]:
    assert main(["--config", str(config), "events", "--json"]) == 0
    return sorted((row["line"], row["type"]) for row in json.loads(capsys.readouterr().out))


def test_the_package_holds_the_repositorys_demo_config() -> None:
    assert demo_command.config_text() == (ROOT / "config" / "demo.toml").read_text()


def test_each_start_has_a_fresh_database(
    temp_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database carried over holds the last run's low lines: the second pass would raise
    nothing, where a fresh one shows the first alerts again."""
    code, first, _ = run_demo(capsys, "--keep")
    assert code == 0
    expected = [("home-2fa", "warning"), ("iot-07", "critical")]
    assert events(first / "demo.toml", capsys) == expected
    demo.reset()  # a new process: the simulated lines start over
    code, second, err = run_demo(capsys, "--keep")
    assert code == 0 and second != first
    assert events(second / "demo.toml", capsys) == expected
    assert f"kept {second}" in err
    assert (second.stat().st_mode & 0o777, (second / "demo.toml").stat().st_mode & 0o777) == (
        0o700,
        0o600,
    )
    assert sorted(temp_root.iterdir()) == sorted([first, second])


def test_the_folder_is_deleted_when_the_demo_ends(
    temp_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, folder, err = run_demo(capsys)
    assert code == 0
    assert folder.parent == temp_root and not folder.exists()
    assert f"deleted {folder}" in err and "--keep keeps it" in err


def test_the_demo_ignores_the_users_own_settings(
    temp_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sink: Any,
    tmp_path: Path,
) -> None:
    """A channel of one's own in the environment (or a systemd credential) would get the
    demo's simulated alerts: the demo drops those variables."""
    monkeypatch.setenv("ESIM_MONITOR_CHANNELS__MINE__URL", sink.url)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "channels__other__url").write_text(sink.url)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    code, _, _ = run_demo(capsys)
    assert code == 0
    assert sink.received == []
    assert "ESIM_MONITOR_CHANNELS__MINE__URL" not in os.environ


def test_the_demo_runs_its_own_config_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "mine.toml", "demo"]) == 2
    assert "demo runs its own config" in capsys.readouterr().err
    assert main(["demo", "--port", "0"]) == 2


def test_another_port_moves_the_page_and_its_links() -> None:
    text = demo_command.config_text(9123)
    assert 'listen = "127.0.0.1:9123"' in text
    assert 'public_url = "http://127.0.0.1:9123"' in text
    assert '127.0.0.1:8757"' not in text


def _until(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """`probe()` once it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except OSError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.2)


def test_a_running_demo_answers_status_and_its_page(tmp_path: Path) -> None:
    """The folder named on start is the one `status` and the page read while it runs; Ctrl-C
    ends the demo with 0 and deletes the folder."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    argv = [sys.executable, "-m", "monitor", "--log-format", "json", "demo", "--port", str(port)]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        banner = [proc.stderr.readline() for _ in range(3)]
        found = FOLDER.search(banner[0])
        assert found, banner
        folder = Path(found.group(1))
        assert folder.parent == tmp_path
        assert f"http://127.0.0.1:{port}/" in banner[1]
        command = banner[2].split("from another terminal: ", 1)[1].split()
        assert command[1:] == ["--config", str(folder / "demo.toml"), "status"]

        def status() -> list[dict[str, Any]]:
            """The lines once all three have been checked, else nothing."""
            done = subprocess.run(
                [sys.executable, "-m", "monitor", *command[1:], "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            rows = json.loads(done.stdout) if done.returncode == 0 else []
            checked = [row for row in rows if row["checked_at"]]
            return checked if len(checked) == 3 else []

        rows = _until(status, "status of three checked lines")
        assert {row["line"] for row in rows} == {"travel", "home-2fa", "iot-07"}

        def page() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
                return str(answer.read().decode())

        assert "US travel eSIM" in _until(page, "status page")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not folder.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
