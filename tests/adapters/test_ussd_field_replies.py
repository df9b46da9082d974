"""Every real reply in tests/replies/ussd_field_replies.json, read by the generic parser."""

import json
import re
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
            read_reply(sample["reply"], spec, tz=UTC, now=NOW, currency=sample.get("line_currency"))
        assert caught.value.raw == sample["reply"]
        if sample.get("notice"):
            assert "is a notice, not a balance" in str(caught.value)
        return
    figures = read_reply(
        sample["reply"], spec, tz=UTC, now=NOW, currency=sample.get("line_currency")
    )
    assert figures.balance == Decimal(sample["balance"])
    assert figures.currency == sample.get("currency")
    if "expires" in sample:
        found = figures.expires_at.date().isoformat() if figures.expires_at else None
        assert found == sample["expires"]


def test_every_sample_names_its_source_or_the_corpus_s() -> None:
    corpus = json.loads(CORPUS.read_text(encoding="utf-8"))
    assert "@ " in corpus["_source"]
    for sample in SAMPLES:
        source = sample.get("source", corpus["_source"])
        assert "https://" in source or re.search(r"@ [0-9a-f]{40}", source), sample["name"]
