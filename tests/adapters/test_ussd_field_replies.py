"""Every real reply in tests/replies/ussd_field_replies.json, read by the generic parser."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitor.adapters.ussd_replies import UnreadableReply, code_spec, read_reply

CORPUS = Path(__file__).parent.parent / "replies" / "ussd_field_replies.json"
SAMPLES: list[dict[str, Any]] = json.loads(CORPUS.read_text(encoding="utf-8"))["samples"]
NOW = datetime(2021, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["name"] for s in SAMPLES])
def test_generic_parser_reads_the_field_reply(sample: dict[str, Any]) -> None:
    spec = code_spec("*100#")
    if sample["balance"] is None:
        with pytest.raises(UnreadableReply) as caught:
            read_reply(sample["reply"], spec, tz=UTC, now=NOW)
        assert caught.value.raw == sample["reply"]
        return
    figures = read_reply(
        sample["reply"], spec, tz=UTC, now=NOW, currency=sample.get("line_currency")
    )
    assert figures.balance == Decimal(sample["balance"])
    assert figures.currency == sample.get("currency")
    if "expires" in sample:
        assert figures.expires_at is not None
        assert figures.expires_at.date().isoformat() == sample["expires"]
