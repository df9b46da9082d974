"""The ways a top-up is carried out: provider API, Apprise trigger, signed webhook, command,
refill PIN by USSD.

Each action either returns what it knows of the top-up, raises TopUpFailed (nothing was
bought: safe to say so) or TopUpUnknown (money may have been spent: a person must look).
None of them retries a call that spends money.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from monitor import children
from monitor.config import Recharge, Settings
from monitor.errors import CheckFailed, TopUpFailed, TopUpUnknown
from monitor.model import TopUpRequest, TopUpResult

SIGNATURE_HEADER = "X-Esim-Monitor-Signature"


class Action(Protocol):
    name: str

    def execute(self, request: TopUpRequest) -> TopUpResult: ...

    def reconcile(self, request: TopUpRequest) -> TopUpResult | None:
        """Was an intent that a crash interrupted carried out? None: surely not."""
        ...


class _CannotLookUp:
    """Actions whose effect cannot be looked up afterwards: an interrupted intent is
    unknown, and a person is told."""

    name = "action"

    def reconcile(self, request: TopUpRequest) -> TopUpResult | None:
        raise TopUpUnknown(
            f"the {self.name} action was interrupted and cannot be looked up: check whether "
            "the top-up happened"
        )


class ProviderAction:
    """The account's own top-up API, through the line's adapter."""

    name = "provider"

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def execute(self, request: TopUpRequest) -> TopUpResult:
        return self._redacted(self.adapter.top_up, request)

    def reconcile(self, request: TopUpRequest) -> TopUpResult | None:
        return self._redacted(self.adapter.find_top_up, request)

    def _redacted(self, call: Callable[[TopUpRequest], Any], request: TopUpRequest) -> Any:
        """What the provider said, through the adapters' redactor: it goes into the ledger,
        the log and an alert."""
        redactor = getattr(getattr(self.adapter, "context", None), "redactor", None)
        if redactor is None:  # an adapter built without the context
            return call(request)
        try:
            result = call(request)
        except TopUpFailed as exc:
            raise TopUpFailed(redactor.text(str(exc)), sent=exc.sent) from None
        except TopUpUnknown as exc:
            raise TopUpUnknown(redactor.text(str(exc))) from None
        if result is None:
            return None
        return dataclasses.replace(
            result,
            reference=redactor.optional(result.reference),
            detail=redactor.optional(result.detail),
        )


class AppriseAction(_CannotLookUp):
    """Sends the trigger through an Apprise URL; the user's automation does the top-up and
    the next reading confirms it."""

    name = "apprise"

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout

    def execute(self, request: TopUpRequest) -> TopUpResult:
        import apprise

        target = apprise.Apprise()
        if not target.add(self.url, tag="recharge"):
            raise TopUpFailed("Apprise does not accept the recharge url")
        result = target.notify(
            body=json.dumps(payload(request), default=str),
            title=f"esim-monitor recharge: {request.line}",
            body_format=apprise.NotifyFormat.TEXT,  # JSON, not HTML: sent as written
            tag="recharge",
            timeout=self.timeout,
        )
        if result:
            return TopUpResult(detail="trigger sent")
        if result.status == apprise.AppriseResultStatus.TIMEOUT:
            raise TopUpUnknown("the trigger timed out: it may have been received")
        raise TopUpFailed("the trigger could not be sent")


class WebhookAction(_CannotLookUp):
    """POSTs the request as JSON, signed with HMAC-SHA256 in a header, to the user's URL."""

    name = "webhook"

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def execute(self, request: TopUpRequest) -> TopUpResult:
        import httpx

        body = json.dumps(payload(request), default=str, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: "sha256=" + sign(self.secret, body),
            "Idempotency-Key": request.key,
        }
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.ConnectError:
            raise TopUpFailed("the webhook could not be reached: nothing was sent") from None
        except httpx.HTTPError as exc:
            raise TopUpUnknown(
                f"the webhook did not answer ({type(exc).__name__}): it may have acted"
            ) from None
        if response.is_success:
            return TopUpResult(detail=f"webhook answered {response.status_code}")
        if response.status_code >= 500:
            raise TopUpUnknown(f"the webhook answered {response.status_code}: it may have acted")
        raise TopUpFailed(f"the webhook refused the request ({response.status_code})")


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of the raw body: what a receiver recomputes to trust it."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class CommandAction(_CannotLookUp):
    """Runs an argv (no shell) with the request in its environment. Exit 0: submitted;
    another exit: failed; killed at the timeout or by a signal (the daemon's stop ends it
    so): unknown, as it may have paid before it was cut off."""

    name = "command"

    def __init__(self, argv: list[str], timeout: float) -> None:
        self.argv = argv
        self.timeout = timeout

    def execute(self, request: TopUpRequest) -> TopUpResult:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESIM_MONITOR_")}
        for key, value in payload(request).items():
            if value is not None and not isinstance(value, dict | list):
                env[f"ESIM_MONITOR_{key.upper()}"] = str(value)
        try:
            proc = children.start(
                self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
            )
        except OSError as exc:
            raise TopUpFailed(f"the command could not be started: {exc.strerror}") from None
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            children.kill(proc)
            proc.communicate()
            raise TopUpUnknown(f"the command did not finish in {self.timeout:g} s") from None
        finally:
            children.release(proc)
        if proc.returncode < 0:
            raise TopUpUnknown(
                f"the command was killed (signal {-proc.returncode}) before it finished: "
                "it may have acted"
            )
        if proc.returncode != 0:
            excerpt = (err or out).decode(errors="replace").strip()[-300:]
            raise TopUpFailed(f"the command exited {proc.returncode}: {excerpt}")
        first = out.decode(errors="replace").strip().splitlines()
        return TopUpResult(reference=first[0][:200] if first else None, detail="command ran")


class UssdPinAction:
    """Redeems the next unused refill PIN by USSD (AT&T: *888*PIN#). A PIN is marked used
    with the intent, before the code is sent, so no PIN is ever tried twice."""

    name = "ussd-pin"

    def __init__(
        self,
        modem: str,
        code: str,
        timeout: float,
        send: Callable[[str, str, float], str],
    ) -> None:
        self.modem = modem
        self.code = code
        self.timeout = timeout
        self.send = send

    def execute(self, request: TopUpRequest) -> TopUpResult:
        pin = str(request.facts.get("pin") or "")
        if not pin:
            raise TopUpFailed("no unused refill PIN is left", sent=False)
        from monitor import modem

        # Failures before the code left the modem: the PIN was not redeemed.
        before_sending = (
            modem.MmcliMissing,
            modem.ModemManagerUnavailable,
            modem.ModemNotFound,
            modem.ModemNotAuthorized,
            modem.ModemBusy,
            modem.UssdUnsupported,
        )

        def hidden(text: str) -> str:
            """PINs are money: never in a message, a log line or the ledger."""
            return text.replace(pin, "…" + pin[-2:] if len(pin) > 4 else "…")

        try:
            reply = self.send(self.modem, self.code.format(pin=pin), self.timeout)
        except before_sending as exc:
            raise TopUpFailed(f"the PIN was not sent: {hidden(str(exc))}", sent=False) from None
        except CheckFailed as exc:  # mmcli ran: the code may have reached the carrier
            raise TopUpUnknown(f"the PIN may have been redeemed: {hidden(str(exc))}") from None
        if re.search(r"\b(invalid|not valid|already (been )?used|error|failed)\b", reply, re.I):
            raise TopUpFailed(f"the carrier refused the PIN: {hidden(reply[:200])}")
        return TopUpResult(detail=hidden(reply[:200]))

    def reconcile(self, request: TopUpRequest) -> TopUpResult | None:
        raise TopUpUnknown(
            "a refill PIN was being redeemed when the daemon stopped: check the balance"
        )


def pin_hash(pin: str) -> str:
    """PINs are money: the database keeps only their hashes, to know which were used."""
    return hashlib.sha256(pin.encode()).hexdigest()


def pins(recharge: Recharge) -> list[str]:
    text = recharge.pins.get_secret_value() if recharge.pins else ""
    return [p for p in re.split(r"[\s,;]+", text) if p]


def payload(request: TopUpRequest) -> dict[str, Any]:
    """What an automation receives: the request and the line's fields (never a PIN)."""
    facts: Mapping[str, Any] = {k: v for k, v in request.facts.items() if k != "pin"}
    return {
        "event": "recharge",
        "line": request.line,
        "key": request.key,
        "requested_at": request.requested_at.isoformat(),
        "package": request.package,
        "amount": f"{request.amount:f}" if request.amount is not None else None,
        "currency": request.currency,
        **facts,
    }


def build(settings: Settings, line_id: str, adapter: Callable[[], Any]) -> Action:
    """The action a line's recharge config names."""
    recharge = settings.lines[line_id].recharge
    assert recharge is not None
    timeout = recharge.timeout.total_seconds()
    secret = recharge.url.get_secret_value() if recharge.url else ""
    if recharge.action == "provider":
        return ProviderAction(adapter())
    if recharge.action == "apprise":
        return AppriseAction(secret, timeout)
    if recharge.action == "webhook":
        key = recharge.secret.get_secret_value() if recharge.secret else ""
        return WebhookAction(secret, key, timeout)
    if recharge.action == "command":
        return CommandAction(list(recharge.argv or []), timeout)
    from monitor.modem import send_ussd

    modem = recharge.modem or str(settings.lines[line_id].options.get("modem", ""))
    send = functools.partial(send_ussd, lock_at=settings.database_path())
    return UssdPinAction(modem, recharge.code, timeout, send)
