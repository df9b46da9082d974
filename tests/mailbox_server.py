"""A real SMTP server (aiosmtpd) on loopback, for mail alerts as a mail server gets them."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from email.message import EmailMessage
from typing import Any


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback; `messages` holds what it was sent."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        # Its session log would reach whatever handler a CLI run under test left on the
        # root logger (a captured stream pytest has closed since): keep it to itself.
        server_log = logging.getLogger("mail.log")
        server_log.propagate = False
        if not server_log.handlers:
            server_log.addHandler(logging.NullHandler())
        self.messages: list[EmailMessage] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                mailbox.messages.append(message)  # type: ignore[arg-type]
                return "250 OK"

        # aiosmtpd's controller cannot start on port 0 (it connects to its port to check)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self, to: str = "me@example.com") -> str:
        """An Apprise mailto:// URL that sends here, unencrypted (loopback only)."""
        return f"mailto://127.0.0.1:{self.port}?from=monitor@example.com&to={to}"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def close(self) -> None:
        self.controller.stop()
