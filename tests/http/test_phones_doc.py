"""Every request docs/phones.md shows is replayed verbatim (its TOKEN replaced by a real
token) over loopback to a running daemon, and recorded."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from daemon_proc import DaemonProcess, free_port

from monitor.store import View

DOC = Path(__file__).resolve().parents[2] / "docs" / "phones.md"
REQUESTS = re.findall(r"```http\n(.*?)```", DOC.read_text(), re.DOTALL)
CONFIG = """
[http]
listen = "127.0.0.1:{port}"
[lines.phone]
adapter = "plan"
renews = "monthly 5"
interval = "1h"
relay_preset = "t-mobile-sms"
"""


def test_the_doc_shows_a_request_per_app() -> None:
    assert len(REQUESTS) == 4


@pytest.fixture
def daemon(write_config: Callable[..., Path]) -> Iterator[tuple[DaemonProcess, int]]:
    port = free_port()
    d = DaemonProcess(write_config(CONFIG.format(port=port)))
    d.wait_for("http server listening")
    d.wait_for("checks done")
    yield d, port
    d.kill()


def _response(sock: socket.socket) -> str:
    """One whole response: its head, then as many bytes as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


@pytest.mark.parametrize(
    "request_text", REQUESTS, ids=[f"request{i}" for i in range(len(REQUESTS))]
)
def test_each_documented_request_is_recorded(
    daemon: tuple[DaemonProcess, int], request_text: str
) -> None:
    d, port = daemon
    made = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(d.config), "relay", "url", "phone"],
        capture_output=True,
        text=True,
        check=True,
    )
    token = made.stdout.splitlines()[0].split("token=", 1)[1]
    head, body = request_text.replace("TOKEN", token).split("\n\n", 1)
    data = body.rstrip("\n").encode()
    raw = "\r\n".join([*head.split("\n"), f"Content-Length: {len(data)}", "", ""]).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw + data)
        answer = _response(sock)
    assert answer.startswith("HTTP/1.1 200 "), answer
    assert answer.rstrip().endswith("recorded: a reading")
    view = View.open_existing(d.config.parent / "history.db")
    assert view is not None
    rows = view.history("phone", datetime.now(UTC) - timedelta(days=1))
    view.close()
    assert rows[-1].source == "relay"
    assert rows[-1].balance in (Decimal("61.00"), Decimal("56.78"))  # the two sourced texts
