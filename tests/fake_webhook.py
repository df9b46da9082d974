"""A provider webhook that says what the test tells it: for the recording side alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from monitor.webhooks import Figures, Push, Trigger, secret_text


class FakeWebhook:
    """Takes a push whose `x-fake-key` header is the account's `webhook_secret`; its
    notices are whatever the test set in `said`."""

    secrets = ("webhook_secret",)
    targets = ("iccid",)

    def __init__(self) -> None:
        self.said: Sequence[Figures | Trigger] = ()

    def verify(self, options: Mapping[str, Any], push: Push, window: timedelta) -> bool:
        secret = secret_text(options.get("webhook_secret"))
        return bool(secret) and push.headers.get("x-fake-key") == secret

    def notices(self, push: Push) -> Sequence[Figures | Trigger]:
        return self.said
