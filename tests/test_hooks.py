"""The recording side of provider webhooks (`monitor.hooks.Hooks`): notices onto lines,
retries known per notice, checks asked only after the commit. The providers' own
payloads and signatures are tested under tests/webhooks/ and end to end beside each
adapter; here a fake provider says exactly the notices a test needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fake_webhook import FakeWebhook

from monitor import hooks as hooks_module
from monitor.config import load
from monitor.hooks import Hooks
from monitor.http.relay import BadRequest
from monitor.store import View
from monitor.webhooks import Figures, Push, Target, Trigger

ESIM = "8944465400000267221"
CONFIG = f"""
[accounts.travel]
provider = "airalo"
client_id = "id"
client_secret = "client-secret"
webhook_secret = "fake-key"

[accounts.quiet]
provider = "airalo"
client_id = "id"
client_secret = "client-secret"

[lines.trip]
account = "travel"
iccid = "{ESIM}"

[lines.credit]
account = "travel"
"""
CREDIT = Figures(Target("iccid", None), balance=Decimal("225.35"), currency="USD")
LOW = Trigger(Target("iccid", ESIM), "90%")
STRANGER = Trigger(Target("iccid", "8900000000000000001"), "75%")


class Taken:
    def __init__(self, hooks: Hooks, fake: FakeWebhook, database: Path) -> None:
        self.hooks, self.fake, self.database = hooks, fake, database
        self.checked: list[tuple[str, int]] = []

    def push(self, body: bytes = b"{}", key: str = "fake-key") -> Push:
        headers = {"x-fake-key": key}
        return Push(body, headers, "https://monitor.example/hooks/travel", datetime.now(UTC))

    def send(self, *said: Figures | Trigger, body: bytes = b"{}") -> tuple[int, str]:
        self.fake.said = said
        push = self.push(body)
        assert self.hooks.verify("travel", push)
        return self.hooks.record("travel", push)

    def readings(self, line: str) -> list[Decimal | None]:
        view = View.open_existing(self.database)
        if view is None:
            return []
        try:
            return [row.balance for row in view.history(line, datetime.now(UTC) - timedelta(1))]
        finally:
            view.close()

    def deliveries(self) -> int:
        view = View.open_existing(self.database)
        assert view is not None
        try:
            return view.conn.execute("SELECT count(*) FROM hook_deliveries").fetchone()[0]
        finally:
            view.close()


@pytest.fixture
def taken(write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Taken]:
    fake = FakeWebhook()
    monkeypatch.setattr(hooks_module, "WEBHOOKS", {"airalo": fake})
    path = write_config(CONFIG)
    settings = load(path)
    database = path.parent / "history.db"
    box: list[Taken] = []
    hooks = Hooks(
        settings, database, lambda line: box[0].checked.append((line, box[0].deliveries()))
    )
    box.append(Taken(hooks, fake, database))
    try:
        yield box[0]
    finally:
        hooks.close()


def test_only_accounts_with_their_secrets_take_webhooks(taken: Taken) -> None:
    assert taken.hooks.accounts() == {"travel": "airalo"}
    assert not taken.hooks.verify("quiet", taken.push(key=""))
    assert not taken.hooks.verify("travel", taken.push(key="guess"))
    assert not taken.hooks.verify("nobody", taken.push())


def test_a_batch_lands_on_its_lines_and_asks_each_check_once_after_the_commit(
    taken: Taken,
) -> None:
    status, said = taken.send(CREDIT, LOW, LOW, STRANGER, body=b'{"batch": 1}')
    assert status == 200
    assert said == (
        "taken: 1 recorded as readings, 1 lines checked now, 0 retries, 1 for no line, 0 refused"
    )
    assert taken.readings("credit") == [Decimal("225.35")]
    # asked once for the two notices of one line, when all four were already committed
    assert taken.checked == [("trip", 4)]


def test_a_retry_of_a_batch_records_and_asks_nothing(taken: Taken) -> None:
    taken.send(CREDIT, LOW, body=b'{"batch": 1}')
    status, said = taken.send(CREDIT, LOW, body=b'{"batch": 1}')
    assert (status, said.split(", ")[2]) == (200, "2 retries")
    assert taken.readings("credit") == [Decimal("225.35")]
    assert [line for line, _ in taken.checked] == ["trip"]


def test_event_ids_know_a_retry_whatever_the_body(taken: Taken) -> None:
    first = Figures(Target("iccid", None), event_id="ev-1", balance=Decimal("10"), currency="USD")
    assert taken.send(first, body=b'{"sent": 1}') == (200, "recorded: a reading")
    again = taken.send(first, body=b'{"sent": 2}')
    assert again == (200, "already taken: a retry of the same delivery")
    other = Figures(Target("iccid", None), event_id="ev-2", balance=Decimal("9"), currency="USD")
    assert taken.send(other, body=b'{"sent": 2}')[0] == 200
    assert taken.readings("credit") == [Decimal("10"), Decimal("9")]


def test_figures_out_of_range_refuse_one_notice_and_spare_the_rest_of_a_batch(
    taken: Taken,
) -> None:
    wild = Figures(Target("iccid", None), balance=Decimal("1e30"), currency="USD")
    with pytest.raises(BadRequest) as caught:
        taken.send(wild, body=b'{"alone": 1}')
    assert caught.value.status == 422
    assert taken.readings("credit") == [] and taken.deliveries() == 0
    status, said = taken.send(wild, LOW, body=b'{"batch": 2}')
    assert status == 202 and said.endswith("1 refused")
    assert [line for line, _ in taken.checked] == ["trip"]
