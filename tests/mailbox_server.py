"""A real SMTP server (aiosmtpd) on loopback, for mail alerts as a mail server gets them."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
import threading
import time
from email.message import EmailMessage
from typing import Any


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback; `messages` holds what it was sent.

    A slow receiver on demand: while `gate` is clear, each message is held (after its
    data arrived, before the server answers) until the gate is set; `holding` says one is.
    `refuse` makes it answer 554 (a failed delivery)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        # Its session log would reach whatever handler a CLI run under test left on the
        # root logger (a captured stream pytest has closed since): keep it to itself.
        server_log = logging.getLogger("mail.log")
        server_log.propagate = False
        if not server_log.handlers:
            server_log.addHandler(logging.NullHandler())
        self.messages: list[EmailMessage] = []
        self.gate = threading.Event()
        self.gate.set()
        self.holding = threading.Event()
        self.refuse = False
        self._arrived = threading.Condition()
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                if mailbox.refuse:
                    return "554 refused"
                if not mailbox.gate.is_set():
                    mailbox.holding.set()
                    await asyncio.get_running_loop().run_in_executor(None, mailbox.gate.wait, 120)
                    mailbox.holding.clear()
                with mailbox._arrived:
                    mailbox.messages.append(message)  # type: ignore[arg-type]
                    mailbox._arrived.notify_all()
                return "250 OK"

        # aiosmtpd's controller cannot start on port 0 (it connects to its port to check)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self, to: str = "me@example.com", timeout: int | None = None) -> str:
        """An Apprise mailto:// URL that sends here, unencrypted (loopback only);
        `timeout`: the client's socket timeout in seconds (Apprise's default is 4)."""
        url = f"mailto://127.0.0.1:{self.port}?from=monitor@example.com&to={to}"
        return url + (f"&cto={timeout}" if timeout is not None else "")

    def wait_for(self, count: int, timeout: float = 60) -> list[EmailMessage]:
        """Until `count` messages arrived (a generous deadline, never a hung suite)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
                self._arrived.wait(left)
            return list(self.messages)

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def close(self) -> None:
        self.gate.set()
        self.controller.stop()
