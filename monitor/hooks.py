"""Provider webhooks' recording side: verified notices become readings or checks.

Called by the HTTP server's threads (`monitor.http.app.HookSink`). Each provider's module
under `monitor.webhooks` checks the signature and reads the body; here each notice finds
its line (by the line option it names, through an index built per config) and is
either recorded as a reading (`source = hook`, judged like any other) or asks the daemon
to check that line now. Every notice is remembered a day by its event id, or by the
body's SHA-256 where the provider sends none, in the same transaction as its reading and
before the 2xx, so a provider's retry is answered without a second record. A notice for no
configured line is taken (a retry would not help) and dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from monitor.config import Settings
from monitor.errors import ReadingRejected
from monitor.http.relay import BadRequest
from monitor.model import Reading
from monitor.recording import Recorder
from monitor.store import Store
from monitor.store import hooks as deliveries
from monitor.webhooks import (
    WEBHOOKS,
    Figures,
    Push,
    Target,
    Trigger,
    Webhook,
    body_key,
    ok_status,
)
from monitor.webhooks import secret_text as _text

log = structlog.get_logger("monitor.hooks")

PROVIDERS = tuple(WEBHOOKS)
"""The providers whose webhooks are built."""


@dataclass(frozen=True)
class _Account:
    webhook: Webhook
    options: Mapping[str, Any]


class Hooks(Recorder):
    """Verified notifications of the accounts that take webhooks."""

    def __init__(
        self, settings: Settings, database: Path, check_soon: Callable[[str], None] | None
    ) -> None:
        self.check_soon = check_soon
        super().__init__(settings, database)

    def _configured(self, settings: Settings) -> None:
        accounts: dict[str, _Account] = {}
        for name, account in settings.accounts.items():
            webhook = WEBHOOKS.get(account.provider)
            if webhook is not None and all(_text(account.options.get(k)) for k in webhook.secrets):
                accounts[name] = _Account(webhook, account.options)
        index: dict[tuple[str, str, str | None], str] = {}
        for line_id, line in settings.lines.items():
            taking = accounts.get(line.account or "")
            if taking is None:
                continue
            for option in taking.webhook.targets:
                value = line.options.get(option)
                key = (line.account or "", option, None if value is None else str(value))
                index.setdefault(key, line_id)
        self._accounts, self._index = accounts, index

    # ---- HookSink --------------------------------------------------------------------

    def accounts(self) -> Mapping[str, str]:
        """Every account that takes webhooks, with its provider."""
        return {name: self.settings.accounts[name].provider for name in self._accounts}

    def verify(self, account: str, push: Push) -> bool:
        taking = self._accounts.get(account)
        return taking is not None and taking.webhook.verify(
            taking.options, push, self.settings.http.replay_window
        )

    def record(self, account: str, push: Push) -> tuple[int, str]:
        """Take a verified delivery: (status, what was done, in a few words)."""
        taking = self._accounts[account]
        notices = taking.webhook.notices(push)
        whole = body_key(push.body)
        done: Counter[str] = Counter()
        checks: dict[str, str] = {}  # line -> the first reason: one check and one log line each
        store = self._store()
        with self._recording, store.transaction():
            deliveries.prune(store, push.received_at)
            for number, notice in enumerate(notices):
                key = self._key(account, notice.event_id, whole, number, len(notices))
                if deliveries.taken(store, key, push.received_at):
                    done["retry"] += 1
                    continue
                deliveries.remember(store, key, account, push.received_at)
                line = self._line_of(account, notice.target)
                if line is None:
                    done["unwatched"] += 1
                elif isinstance(notice, Trigger):
                    done["check"] += 1
                    checks.setdefault(line, notice.reason)
                else:
                    refused = self._reading(store, line, notice, push)
                    if refused is not None and len(notices) == 1:
                        raise BadRequest(422, f"the figures cannot be a reading: {refused}")
                    done["rejected" if refused else "reading"] += 1
                    log.info(
                        "webhook recorded as a reading" if refused is None else "webhook refused",
                        line=line,
                        reason=refused,
                    )
        # after the commit: the daemon reads what the readings wrote
        for line, reason in checks.items():
            log.info("webhook asks for a check", line=line, level=reason)
            if self.check_soon is not None:
                self.check_soon(line)
        if done["unwatched"]:
            log.info("webhook for no configured line", account=account, notices=done["unwatched"])
        status, text = _answer(done, list(checks))
        wanted = ok_status(taking.webhook)
        return (wanted if wanted is not None and 200 <= status < 300 else status), text

    @staticmethod
    def _key(account: str, event_id: str | None, whole: str, number: int, count: int) -> str:
        if event_id:
            return f"{account}:{event_id}"
        return whole if count == 1 else f"{whole}#{number}"

    def _reading(self, store: Store, line: str, notice: Figures, push: Push) -> str | None:
        """Record the notice's figures; why they cannot be a reading, if so."""
        reading = Reading(
            line=line,
            checked_at=push.received_at,
            balance=notice.balance,
            currency=notice.currency
            or (store.last_currency(line) if notice.balance is not None else None),
            data_remaining=notice.data_remaining,
            data_total=notice.data_total,
            expires_at=notice.expires_at,
            status=notice.status,
            warning_reason=notice.warning_reason,
            critical_reason=notice.critical_reason,
            raw=notice.raw,
            source="hook",
        )
        try:
            self._checker_now().record(store, reading)
        except ReadingRejected as exc:
            return str(exc)
        return None

    def _line_of(self, account: str, target: Target) -> str | None:
        for value in (target.value, *target.aliases):
            line = self._index.get((account, target.option, value))
            if line is not None:
                return line
        return None


def _answer(done: Counter[str], checks: list[str]) -> tuple[int, str]:
    """One notice answers in a few words; a batch with its counts."""
    total = sum(done.values())
    if total == 0:
        return 200, "taken: it holds no notice"
    if total == 1:
        if done["retry"]:
            return 200, "already taken: a retry of the same delivery"
        if done["reading"]:
            return 200, "recorded: a reading"
        if done["check"]:
            return 202, f"taken: line {checks[0]} is checked now"
        return 202, "taken: no configured line is the one it names"
    parts = [
        f"{done['reading']} recorded as readings",
        f"{len(set(checks))} lines checked now",
        f"{done['retry']} retries",
        f"{done['unwatched']} for no line",
        f"{done['rejected']} refused",
    ]
    return (200 if done["reading"] or total == done["retry"] else 202), "taken: " + ", ".join(parts)
