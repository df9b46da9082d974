"""Provider webhooks' recording side: a verified notification becomes a reading or a check.

Called by the HTTP server's threads (`monitor.http.app.HookSink`). Built for Airalo only:
the credit limit notification carries the partner credit left, so it becomes a reading
(`source = hook`) of the account's credit line (the line without an `iccid`), judged like
any other; the low data notification carries a percentage, not a byte count, so it asks
the daemon to check the line whose `iccid` it names now. A delivery is remembered a day
by the SHA-256 of its body (Airalo sends no event id), in the same transaction as its
reading and before the 2xx, so a provider's retry is answered without a second record.
A notification for no configured line is taken (2xx: a retry would not help) and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from monitor.config import Settings
from monitor.errors import ReadingRejected
from monitor.http.hooks import CreditLimit, LowData, airalo_notice, airalo_signed, body_key
from monitor.http.relay import BadRequest
from monitor.model import Reading, utcnow
from monitor.recording import Recorder
from monitor.store import Store
from monitor.store import hooks as deliveries

log = structlog.get_logger("monitor.hooks")

PROVIDERS = ("airalo",)
"""The providers whose webhooks are built."""


class Hooks(Recorder):
    """Verified notifications of the accounts that take webhooks."""

    def __init__(
        self, settings: Settings, database: Path, check_soon: Callable[[str], None] | None
    ) -> None:
        self.check_soon = check_soon
        super().__init__(settings, database)

    # ---- HookSink --------------------------------------------------------------------

    def secrets(self) -> Mapping[str, str]:
        """Every account that takes webhooks, with its webhook key."""
        found: dict[str, str] = {}
        for name, account in self.settings.accounts.items():
            secret = account.options.get("webhook_secret")
            if account.provider in PROVIDERS and secret is not None:
                value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
                if str(value):
                    found[name] = str(value)
        return found

    def verify(self, account: str, body: bytes, headers: Mapping[str, str]) -> bool:
        secret = self.secrets().get(account)
        signature = headers.get("airalo-signature", "")
        return secret is not None and bool(signature) and airalo_signed(secret, body, signature)

    def record(self, account: str, body: bytes) -> tuple[int, str]:
        """Take a verified delivery: (status, what was done, in a few words)."""
        notice = airalo_notice(body)
        now = utcnow()
        key = body_key(body)
        store = self._store()
        with self._recording, store.transaction():
            if deliveries.taken(store, key, now):
                return 200, "already taken: a retry of the same delivery"
            if isinstance(notice, LowData):
                line = self._line_of(account, notice.iccid)
                deliveries.remember(store, key, account, now)
                if line is None:
                    log.info("webhook for no configured line", account=account)
                    return 202, "taken: no line watches this ICCID"
                if self.check_soon is not None:
                    self.check_soon(line)
                log.info("webhook asks for a check", line=line, level=notice.level)
                return 202, f"taken: line {line} is checked now"
            return self._credit(store, account, notice, key, body)

    def _credit(
        self, store: Store, account: str, notice: CreditLimit, key: str, body: bytes
    ) -> tuple[int, str]:
        now = utcnow()
        line = self._line_of(account, None)
        deliveries.remember(store, key, account, now)
        if line is None:
            log.info("webhook for no configured line", account=account)
            return 202, "taken: no line watches this account's credit"
        reading = Reading(
            line=line,
            checked_at=now,
            balance=notice.remaining,
            currency=store.last_currency(line),
            raw={"hook": body.decode("utf-8", "replace")[:2000]},
            source="hook",
        )
        try:
            self._checker_now().record(store, reading)
        except ReadingRejected as exc:
            raise BadRequest(422, f"the figures cannot be a reading: {exc}") from None
        log.info("webhook recorded as a reading", line=line)
        return 200, "recorded: a reading"

    def _line_of(self, account: str, iccid: str | None) -> str | None:
        """The line of `account` whose eSIM is `iccid` (None: the account's credit line)."""
        for line_id, line in self.settings.lines.items():
            if line.account == account and line.options.get("iccid") == iccid:
                return line_id
        return None
