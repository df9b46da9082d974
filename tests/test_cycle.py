"""Checks are isolated: whatever an adapter does, it is a failed check for its line alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from monitor import adapters
from monitor.adapters import Adapter
from monitor.cli import load_settings
from monitor.cycle import Checker
from monitor.errors import CheckFailed
from monitor.model import Level, Reading, utcnow
from monitor.store import Store


class Exploding(Adapter):
    name = "exploding"

    def read(self) -> Reading:
        raise RuntimeError("bug in adapter with token=abc123")


class Garbage(Adapter):
    name = "garbage"

    def read(self) -> Reading:
        raise CheckFailed("provider answered an HTML page", raw="<html>502 Bad Gateway</html>")


class Good(Adapter):
    name = "good"

    def read(self) -> Reading:
        return Reading(self.line_id, utcnow(), balance=Decimal("3"), currency="EUR")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for cls in (Exploding, Garbage, Good):
        monkeypatch.setitem(adapters.BUILTIN, cls.name, f"{__name__}:{cls.__name__}")
    yield


CONFIG = """
[defaults.thresholds]
balance_critical = 5
[defaults.alerts]
failures_before_alert = 1
[lines.bad]
adapter = "exploding"
[lines.ugly]
adapter = "garbage"
[lines.fine]
adapter = "good"
"""


def test_each_line_isolated(registry: None, write_config: Callable[..., Path]) -> None:
    settings = load_settings(write_config(CONFIG))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    try:
        judged = {j.result.line: j for j in checker.run(store, list(settings.lines))}
    finally:
        checker.close()
    assert judged["bad"].result.error == "internal error in adapter: RuntimeError"
    assert "abc123" not in judged["bad"].result.error
    assert judged["ugly"].result.raw == "<html>502 Bad Gateway</html>"
    assert judged["fine"].state.level is Level.CRITICAL
    states = store.states()
    assert states["bad"].level is None and states["bad"].failures == 1  # not a zero balance
    assert store.status()["ugly"]["balance"] is None
    events = {(e["line"], e["type"]) for e in store.events(utcnow().replace(year=2000))}
    assert events == {("bad", "failure"), ("ugly", "failure"), ("fine", "critical")}
    store.close()
