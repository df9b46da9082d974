"""Top-up actions: what a provider's top-up answer says reaches the ledger and alerts only
through the adapters' redactor (issue 11.6)."""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.actions import CommandAction, ProviderAction
from monitor.adapters import AdapterContext
from monitor.errors import TopUpFailed, TopUpUnknown
from monitor.model import TopUpRequest, TopUpResult

SECRET = "top-up/Secret+9"
ECHOED = base64.b64encode(f"apikey:{SECRET}".encode()).decode()
REQUEST = TopUpRequest("a", "a:1", datetime(2026, 11, 10, 15, 0, tzinfo=UTC))


class EchoingAdapter:
    """Answers every top-up with the credentials it was sent, as HTTP Basic carried them."""

    def __init__(self, outcome: str) -> None:
        self.context = AdapterContext(secrets=[SECRET])
        self.outcome = outcome

    def top_up(self, request: TopUpRequest) -> TopUpResult:
        if self.outcome == "failed":
            raise TopUpFailed(f"refused: Basic {ECHOED} is not allowed", sent=False)
        if self.outcome == "unknown":
            raise TopUpUnknown(f"HTTP 502 for Basic {ECHOED}")
        return TopUpResult(reference=f"ref-{SECRET}", detail=f"paid with Basic {ECHOED}")

    find_top_up = top_up


@pytest.mark.parametrize("outcome", ["failed", "unknown"])
def test_a_refusal_echoing_credentials_is_redacted(outcome: str) -> None:
    action = ProviderAction(EchoingAdapter(outcome))
    with pytest.raises((TopUpFailed, TopUpUnknown)) as caught:
        action.execute(REQUEST)
    assert ECHOED not in str(caught.value) and "[redacted]" in str(caught.value)
    if outcome == "failed":
        assert caught.value.sent is False  # type: ignore[union-attr]


def test_a_result_echoing_credentials_is_redacted() -> None:
    action = ProviderAction(EchoingAdapter("ok"))
    for result in (action.execute(REQUEST), action.reconcile(REQUEST)):
        assert result is not None
        assert result.reference == "ref-[redacted]"
        assert result.detail == "paid with Basic [redacted]"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("raise SystemExit(3)", TopUpFailed),
        ("import os, signal; os.kill(os.getpid(), 9)", TopUpUnknown),
    ],
)
def test_a_top_up_command_killed_by_a_signal_may_have_paid(
    tmp_path: Path, code: str, outcome: type[Exception]
) -> None:
    """An exit of its own says it failed; a program killed (by the daemon's stop, the OOM
    killer) said nothing: unknown, so its intent is never taken as unspent."""
    action = CommandAction([sys.executable, "-c", code], timeout=60)
    with pytest.raises((TopUpFailed, TopUpUnknown)) as caught:
        action.execute(REQUEST)
    assert type(caught.value) is outcome
