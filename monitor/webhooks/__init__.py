"""Providers' webhooks, pure: one module per provider knows its signature and payloads.

A provider's module exposes a `Webhook`: which account options it needs (its secrets),
how it checks that a request is the provider's (`verify`), and what the body says
(`notices`: bytes in, typed notices out, `BadRequest` with a one-line reason for what is
none). `monitor.hooks` maps the notices onto configured lines and records them; nothing
here touches the store. Adding a provider is its module, a line in `WEBHOOKS` and its
documented payloads under tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from monitor.http.relay import BadRequest

__all__ = [
    "WEBHOOKS",
    "BadRequest",
    "Figures",
    "Push",
    "Target",
    "Trigger",
    "Webhook",
    "body_key",
    "ok_status",
    "secret_text",
]


@dataclass(frozen=True)
class Push:
    """One webhook request as the provider sent it."""

    body: bytes
    headers: Mapping[str, str]
    """Lower-case names."""
    url: str
    """The URL the provider called (`[http] public_url` + path + query when set, else the
    address the server saw): Twilio signs it."""
    received_at: datetime
    """Aware UTC: a signed timestamp is compared with it (`[http] replay_window`)."""


@dataclass(frozen=True)
class Target:
    """Which line of the account a notice is about: the one whose line option `option`
    equals `value`; `value = None` is the account's line without that option (Airalo's
    credit line is the Airalo line without an `iccid`)."""

    option: str
    value: str | None
    aliases: tuple[str, ...] = ()
    """Other values that name the same line, tried after `value`: a Twilio Super SIM is
    configured by its SID or by its unique name, and its events carry both."""


@dataclass(frozen=True)
class Figures:
    """A notice that carries figures: recorded as a reading (`source = hook`) of its line.
    Absent figures stay absent; a missing currency is the line's last known one."""

    target: Target
    event_id: str | None = None
    """The provider's id of this event, when it sends one: a retry is known by it."""
    balance: Decimal | None = None
    currency: str | None = None
    data_remaining: int | None = None
    data_total: int | None = None
    expires_at: datetime | None = None
    status: str | None = None
    warning_reason: str | None = None
    critical_reason: str | None = None
    raw: Any = None
    """What of the payload is kept with the reading (no secret: payloads carry none)."""


@dataclass(frozen=True)
class Trigger:
    """A notice that says the line changed without figures we can record (a percentage, a
    session's usage): the daemon checks that line now, out of schedule."""

    target: Target
    reason: str
    """A few words for the log: "90%", "Utilisation 80"."""
    event_id: str | None = None


Notice = Figures | Trigger


class Webhook(Protocol):
    """One provider's webhooks."""

    secrets: tuple[str, ...]
    """The account options that must all be set for the account to take webhooks."""

    targets: tuple[str, ...]
    """The line options its notices name lines by (`Target.option`), for the index."""

    def verify(self, options: Mapping[str, Any], push: Push, window: timedelta) -> bool:
        """Whether `push` is signed (or authenticated) by the account's keys in `options`;
        a signed timestamp older or newer than `window` is refused."""

    def notices(self, push: Push) -> Sequence[Notice]:
        """What the verified body says; `BadRequest` (400) when it is no notification."""

    # Optional: `ok_status: int`, the one status a provider wants for every delivery it
    # should not send again (1NCE asks for 200); read through `ok_status()`, so a module
    # without it answers as the recorder does (200 a reading, 202 a trigger).


def ok_status(webhook: Webhook) -> int | None:
    """The status a provider wants for every delivery taken, when its module names one."""
    wanted = getattr(webhook, "ok_status", None)
    return wanted if isinstance(wanted, int) else None


def body_key(body: bytes) -> str:
    """The key of a delivery whose provider sends no event id."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def secret_text(value: Any) -> str:
    """An account option's text, a `SecretStr` revealed; empty when unset."""
    if value is None:
        return ""
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _registry() -> dict[str, Webhook]:
    from monitor.webhooks import airalo, esimgo, onence, telnyx, twilio

    return {
        "airalo": airalo.WEBHOOK,
        "esimgo": esimgo.WEBHOOK,
        "1nce": onence.WEBHOOK,
        "telnyx": telnyx.WEBHOOK,
        "twilio": twilio.WEBHOOK,
    }


WEBHOOKS: Mapping[str, Webhook] = _registry()
"""The providers whose webhooks are built, by adapter name."""
