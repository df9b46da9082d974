"""The notify protocol against real AF_UNIX datagram sockets, as systemd listens."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import sdnotify


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a path, and the NOTIFY_SOCKET value naming it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[socket.socket, str]]:
    name = f"esim-monitor-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


def fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode("utf-8")
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_ready_to_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, name = listener
    notifier = sdnotify.Notifier({"NOTIFY_SOCKET": name})
    assert notifier.enabled
    assert notifier.ready()
    assert fields(sock) == {"READY": "1"}
    notifier.close()


def test_ready_to_an_abstract_socket(abstract_listener: tuple[socket.socket, str]) -> None:
    sock, name = abstract_listener
    notifier = sdnotify.Notifier({"NOTIFY_SOCKET": name})
    assert notifier.ready(status="3 lines, next check 14:05")
    assert fields(sock) == {"READY": "1", "STATUS": "3 lines, next check 14:05"}
    notifier.close()


def test_every_message(listener: tuple[socket.socket, str]) -> None:
    sock, name = listener
    notifier = sdnotify.Notifier({"NOTIFY_SOCKET": name})
    before = sdnotify.monotonic_usec()
    notifier.reloading()
    reload = fields(sock)
    assert reload["RELOADING"] == "1"
    assert int(reload["MONOTONIC_USEC"]) >= before
    notifier.status("12 lines,\n2 low")
    assert fields(sock) == {"STATUS": "12 lines, 2 low"}  # one line, whatever it was given
    notifier.watchdog()
    assert fields(sock) == {"WATCHDOG": "1"}
    notifier.stopping()
    assert fields(sock) == {"STOPPING": "1"}
    notifier.close()


def test_reads_the_environment_by_default(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, name = listener
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    notifier = sdnotify.Notifier()
    assert notifier.stopping()
    assert fields(sock) == {"STOPPING": "1"}
    notifier.close()


@pytest.mark.parametrize("value", [None, "", "@", "relative/path", "x"])
def test_no_socket_is_a_no_op(value: str | None) -> None:
    env = {} if value is None else {"NOTIFY_SOCKET": value}
    notifier = sdnotify.Notifier(env)
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    notifier = sdnotify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.ready() is False
    notifier.close()


def test_watchdog_interval_is_half_the_period() -> None:
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}) == 15.0


def test_watchdog_interval_for_this_process_only() -> None:
    mine = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_interval(mine) == 2.0
    other = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert sdnotify.watchdog_interval(other) is None


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "me"},
    ],
)
def test_no_watchdog(env: dict[str, str]) -> None:
    assert sdnotify.watchdog_interval(env) is None


def test_watchdog_pings_once_per_interval(listener: tuple[socket.socket, str]) -> None:
    sock, name = listener
    now = [100.0]
    dog = sdnotify.Watchdog(sdnotify.Notifier({"NOTIFY_SOCKET": name}), 10.0, clock=lambda: now[0])
    assert dog.due_in() == 0.0
    assert dog.kick()
    assert fields(sock) == {"WATCHDOG": "1"}
    now[0] = 104.0
    assert not dog.kick()
    assert dog.due_in() == 6.0
    now[0] = 111.0
    assert dog.due_in() == 0.0
    assert dog.kick()
    assert fields(sock) == {"WATCHDOG": "1"}
    dog.notifier.close()


def test_watchdog_without_systemd_does_nothing() -> None:
    dog = sdnotify.Watchdog(sdnotify.Notifier({}), 10.0)
    assert dog.due_in() is None
    assert not dog.kick()
    dog = sdnotify.Watchdog(sdnotify.Notifier({"NOTIFY_SOCKET": "/run/x"}), None)
    assert dog.due_in() is None
    assert not dog.kick()
