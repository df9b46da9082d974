"""Provider top-ups (the recharge `provider` action) against loopback fakes that count orders.

The fakes extend the read fakes of test_airalo, test_onence and test_esimgo with the order
endpoints of providers.md: Airalo `POST /v2/orders/topups` and `GET /v2/sims/{iccid}/packages`
(its documented sample: no `created_at`, ISO `activated_at`), 1NCE
`POST /v1/sims/{iccid}/topup` (201 + Location), eSIM Go `POST /orders` and the assignments of
`GET /esims/{iccid}/bundles`. What matters most: an order is sent at most once, whatever
happens to it, and an outcome that cannot be known is never called a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakes import PROVIDERS, FakeProvider, FakeServer, Harness, Provider, Reply, json_reply
from fakes import airalo as fake_airalo
from fakes import esimgo as fake_esimgo
from fakes import onence as fake_onence
from fakes.airalo import ORDER, PACKAGE, TopUpAiralo, catalogue_entry, history_entry
from fakes.base import iso
from fakes.esimgo import BUNDLE, ESIMGO_ORDER, TopUpEsimGo
from fakes.onence import ONCE_ORDER, TopUpOnce

from monitor import adapters
from monitor.adapters import Adapter
from monitor.adapters.http import token_key
from monitor.cli import load_settings
from monitor.errors import ConfigError, TopUpFailed, TopUpUnknown
from monitor.model import Level, Reading, TopUpRequest, TopUpResult, utcnow
from monitor.recharge import Recharger
from monitor.store import Recharge, Store
from monitor.store.ledger import need_key
from monitor.tokens import TokenCache

MIB = 2**20


def request(line: str, package: str | None = PACKAGE, **fields: Any) -> TopUpRequest:
    now = utcnow()
    return TopUpRequest(
        line=line, key=need_key(line, now), requested_at=now, package=package, **fields
    )


def build(harness: Harness, text: str, line: str) -> Adapter:
    return adapters.build(harness.settings(text), line, harness.context())


# ---- every provider of the test base -----------------------------------------------------

TOP_UPS = [provider for provider in PROVIDERS if provider.top_up is not None]


@pytest.mark.parametrize("provider", PROVIDERS, ids=str)
def test_each_provider_offers_top_ups_as_the_test_base_says(
    provider: Provider, harness: Harness
) -> None:
    servers = provider.start()
    try:
        for line in provider.lines:
            adapter = build(harness, provider.config([s.url for s in servers]), line)
            assert adapter.supports_top_up == (provider.top_up is not None), line
    finally:
        for server in servers:
            server.close()


@pytest.mark.parametrize(
    "reply",
    [None, Reply(drop=True), json_reply(500, {"message": "Internal"})],
    ids=["answered", "dropped", "500"],
)
@pytest.mark.parametrize("provider", TOP_UPS, ids=str)
def test_each_provider_sends_one_order_whatever_its_answer(
    provider: Provider,
    reply: Reply | None,
    harness: Harness,
    serve: Callable[[FakeProvider], FakeServer],
) -> None:
    """An answered order is a result with a reference; a lost or failed answer is
    unknown (it may have gone through); either way the order was sent once."""
    top_up = provider.top_up
    assert top_up is not None
    server = serve(top_up.fake())
    adapter = build(harness, provider.config([server.url]), top_up.line)
    if reply is None:
        result = adapter.top_up(request(top_up.line, package=top_up.package))
        assert result.reference
    else:
        server.script("POST", top_up.order, reply)
        with pytest.raises(TopUpUnknown):
            adapter.top_up(request(top_up.line, package=top_up.package))
    assert orders(server, top_up.order) == 1


# ---- Airalo -------------------------------------------------------------------------------


@pytest.fixture
def airalo() -> TopUpAiralo:
    return TopUpAiralo()


@pytest.fixture
def airalo_server(serve: Callable[[FakeProvider], FakeServer], airalo: TopUpAiralo) -> FakeServer:
    return serve(airalo)


def airalo_adapter(harness: Harness, url: str, line: str = "trip", **config: str) -> Adapter:
    return build(harness, fake_airalo.config_text(url, **config), line)


def orders(server: FakeServer, pattern: str = ORDER) -> int:
    return len(server.seen("POST", pattern))


def test_airalo_order_is_sent_once_with_the_key_and_reports_what_was_paid(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo
) -> None:
    adapter = airalo_adapter(harness, airalo_server.url)
    wanted = request("trip")
    assert adapter.supports_top_up
    result = adapter.top_up(wanted)
    assert result.reference == "20251118-000111"
    assert result.price == Decimal("8") and result.currency == "USD"  # net: what is charged
    assert "retail price 10 USD (not what the partner credit paid)" in (result.detail or "")
    (sent,) = airalo_server.seen("POST", ORDER)
    assert sent.headers["Content-Type"].startswith("multipart/form-data")
    assert sent.bearer == "airalo-token-1"
    assert airalo.orders == [
        {
            "package_id": PACKAGE,
            "iccid": fake_airalo.ICCID,
            "description": f"esim-monitor {wanted.key}",
        }
    ]


def test_airalo_price_paid_is_the_catalogues_net_price_not_the_orders_retail_price(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo
) -> None:
    """The documented order answer has `price` (retail) only; the ledger gets the catalogue's
    net_price of the package bought, read before the one order."""
    airalo.catalogue = [
        catalogue_entry("bonbon-mobile-30days-5gb-topup", price=15, net_price=12),
        catalogue_entry(PACKAGE, price=10, net_price=7.5),
    ]
    result = airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    assert result.price == Decimal("7.5") and result.currency == "USD"
    seen = [r.path for r in airalo_server.seen() if r.method != "POST" or ORDER in r.path]
    assert seen.index(f"/v2/sims/{fake_airalo.ICCID}/topups") < seen.index("/v2/orders/topups")


@pytest.mark.parametrize(
    "catalogue",
    [
        [catalogue_entry(PACKAGE, price=10)],  # the documented example: no net_price
        [catalogue_entry("another-topup", price=5, net_price=4)],  # the package is not listed
    ],
)
def test_airalo_without_a_net_price_the_price_paid_is_unknown_and_retail_says_so(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo, catalogue: Any
) -> None:
    airalo.catalogue = catalogue
    result = airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    assert result.price is None and result.currency is None
    assert "price paid unknown" in (result.detail or "")
    assert "retail price 10 USD (not what the partner credit paid)" in (result.detail or "")
    assert orders(airalo_server) == 1


def test_airalo_catalogue_that_cannot_be_read_does_not_stop_the_order(
    harness: Harness, airalo_server: FakeServer
) -> None:
    airalo_server.script("GET", r".*/topups", Reply(200, "<html>maintenance</html>"))
    result = airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    assert result.reference == "20251118-000111" and result.price is None
    assert orders(airalo_server) == 1


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (11, "add credit"),
        (13, "maintenance"),
        (23, "top-ups are disabled"),
        (33, "out of stock"),
        (34, "not a top-up of this eSIM"),
        (73, "recycled"),
    ],
)
def test_airalo_business_errors_fail_with_advice_after_one_order(
    harness: Harness, airalo_server: FakeServer, code: int, advice: str
) -> None:
    airalo_server.script("POST", ORDER, json_reply(422, {"code": code, "reason": f"reason {code}"}))
    with pytest.raises(TopUpFailed) as info:
        airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    message = str(info.value)
    assert advice in message and f"code {code}: reason {code}" in message
    assert "nothing was bought" in message
    assert orders(airalo_server) == 1


def test_airalo_validation_error_names_the_field(
    harness: Harness, airalo_server: FakeServer
) -> None:
    # Airalo's docs: 422 {"data": {"package_id": "invalid topup package"}, "meta": {...}}.
    airalo_server.script(
        "POST",
        ORDER,
        json_reply(
            422,
            {
                "data": {"package_id": "invalid topup package"},
                "meta": {"message": "the parameter is invalid"},
            },
        ),
    )
    with pytest.raises(TopUpFailed) as info:
        airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    assert "the parameter is invalid (package_id: invalid topup package)" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (json_reply(403, {"code": 89, "reason": "IP not allowed"}), "IP not allowed"),
        (json_reply(429, {"message": "Too Many Attempts."}, **{"Retry-After": "1"}), "rate"),
        (json_reply(400, {"message": "Bad request"}), "Bad request"),
        (Reply(302, headers={"Location": "https://elsewhere.example/"}), "check base_url"),
    ],
)
def test_airalo_refusals_before_processing_fail_and_are_not_resent(
    harness: Harness, airalo_server: FakeServer, reply: Reply, shown: str
) -> None:
    airalo_server.script("POST", ORDER, reply)
    with pytest.raises(TopUpFailed) as info:
        airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    assert shown in str(info.value)
    assert orders(airalo_server) == 1


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(500, {"message": "Server Error"}),
        Reply(502, "<html>Bad Gateway</html>", content_type="text/html"),
        json_reply(503, {"message": "down"}, **{"Retry-After": "1"}),
        Reply(drop=True),  # the connection closes after the order was sent
        Reply(200, "<html>captive portal</html>", content_type="text/html"),
        json_reply(200, {"data": {}, "meta": {"message": "success"}}),
        Reply(303, headers={"Location": "/v2/orders/111"}),
    ],
)
def test_airalo_lost_or_unreadable_answers_are_unknown_and_never_resent(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo, reply: Reply
) -> None:
    airalo_server.script("POST", ORDER, reply)
    with pytest.raises(TopUpUnknown) as info:
        airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    assert "may have gone through" in str(info.value)
    assert orders(airalo_server) == 1
    assert airalo.orders == []  # scripted: the fake's own handler never ran


def test_airalo_order_timeout_is_unknown_and_not_resent(
    harness: Harness, airalo_server: FakeServer
) -> None:
    airalo_server.script("POST", ORDER, Reply(hold=5), Reply(hold=5))
    adapter = airalo_adapter(harness, airalo_server.url, timeout="0.3s")
    with pytest.raises(TopUpUnknown) as info:
        adapter.top_up(request("trip"))
    assert "ReadTimeout" in str(info.value)
    assert orders(airalo_server) == 1


def test_airalo_unreachable_means_nothing_was_sent(
    harness: Harness, airalo_server: FakeServer
) -> None:
    url = airalo_server.url
    airalo_server.close()
    context = harness.context()
    # A token in the cache, so that the order itself, not a token request, meets the port.
    context.tokens.put(token_key("airalo", "travel", url, fake_airalo.CLIENT_ID), "cached", None)
    settings = harness.settings(fake_airalo.config_text(url, timeout="2s"))
    with pytest.raises(TopUpFailed) as info:
        adapters.build(settings, "trip", context).top_up(request("trip"))
    assert "ConnectError" in str(info.value) and "nothing was bought" in str(info.value)


def test_airalo_order_refused_for_its_token_is_sent_again_with_a_new_one(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo
) -> None:
    # A 401 is Airalo refusing the token before it looks at the order: nothing was bought,
    # so a new token and one more send are safe (send_once's `reauth`).
    adapter = airalo_adapter(harness, airalo_server.url)
    adapter.read()
    airalo_server.script("POST", ORDER, json_reply(401, {"message": "Unauthenticated."}))
    result = adapter.top_up(request("trip"))
    assert result.reference == "20251118-000111"
    first, second = airalo_server.seen("POST", ORDER)
    assert (first.bearer, second.bearer) == ("airalo-token-1", "airalo-token-2")
    assert len(airalo.orders) == 1


def test_airalo_order_refused_twice_for_its_token_fails(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo
) -> None:
    airalo.accept_tokens = False
    with pytest.raises(TopUpFailed) as info:
        airalo_adapter(harness, airalo_server.url).top_up(request("trip"))
    assert "authentication failed for account travel" in str(info.value)
    assert orders(airalo_server) == 2 and airalo.orders == []


@pytest.mark.parametrize(
    ("line", "fields", "shown"),
    [
        ("credit", {}, "give the line its `iccid`"),
        ("trip", {"amount": Decimal(20), "currency": "USD"}, "not amounts"),
        ("trip", {"package": None}, "set `package`"),
    ],
)
def test_airalo_requests_it_cannot_carry_out_are_refused_before_sending(
    harness: Harness, airalo_server: FakeServer, line: str, fields: dict[str, Any], shown: str
) -> None:
    adapter = airalo_adapter(harness, airalo_server.url, line=line)
    with pytest.raises(TopUpFailed) as info:
        adapter.top_up(request(line, **fields))
    assert shown in str(info.value)
    assert airalo_server.seen("POST", ORDER) == []


def test_airalo_history_finds_an_order_made(harness: Harness, airalo_server: FakeServer) -> None:
    adapter = airalo_adapter(harness, airalo_server.url)
    wanted = request("trip")
    adapter.top_up(wanted)
    found = adapter.find_top_up(wanted)
    assert found is not None and found.reference == "111"
    assert "package history" in (found.detail or "")
    assert orders(airalo_server) == 1


def test_airalo_history_without_the_order_is_none(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=3)
    airalo.history = [
        history_entry(1, "other-package-topup", activated_at=iso(long_ago)),
        history_entry(2, PACKAGE, created_at=iso(long_ago), activated_at=iso(long_ago)),
    ]
    assert airalo_adapter(harness, airalo_server.url).find_top_up(request("trip")) is None
    assert orders(airalo_server) == 0


def test_airalo_history_allows_for_clock_skew(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo
) -> None:
    wanted = request("trip")
    airalo.history = [
        history_entry(7, PACKAGE, created_at=iso(wanted.requested_at - timedelta(minutes=3)))
    ]
    found = airalo_adapter(harness, airalo_server.url).find_top_up(wanted)
    assert found is not None and found.reference == "7"


@pytest.mark.parametrize("activated", [None, "2023-01-09T10:30:45+00:00"])
def test_airalo_earlier_package_without_a_purchase_time_is_unknown_not_none(
    harness: Harness, airalo_server: FakeServer, airalo: TopUpAiralo, activated: str | None
) -> None:
    # The documented sample gives two packages the same `activated_at`: it may be the
    # eSIM's, so an earlier one cannot prove this top-up was not bought.
    airalo.history = [history_entry(728, PACKAGE, activated_at=activated)]
    with pytest.raises(TopUpUnknown) as info:
        airalo_adapter(harness, airalo_server.url).find_top_up(request("trip"))
    assert "without a purchase time" in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(500, {"message": "boom"}),
        json_reply(200, {"data": {"oops": True}}),
        json_reply(404, {"data": [], "meta": {"message": "messages.resource_not_found"}}),
    ],
)
def test_airalo_history_that_cannot_be_read_is_unknown(
    harness: Harness, airalo_server: FakeServer, reply: Reply
) -> None:
    airalo_server.script("GET", r"/v2/sims/.*/packages", *[reply] * 50)
    with pytest.raises(TopUpUnknown) as info:
        airalo_adapter(harness, airalo_server.url).find_top_up(request("trip"))
    assert "cannot be told" in str(info.value)


def test_airalo_history_when_the_server_is_down_is_unknown(
    harness: Harness, airalo_server: FakeServer
) -> None:
    url = airalo_server.url
    airalo_server.close()
    with pytest.raises(TopUpUnknown):
        airalo_adapter(harness, url, timeout="2s").find_top_up(request("trip"))


def test_airalo_request_never_sendable_was_surely_not_bought(
    harness: Harness, airalo_server: FakeServer
) -> None:
    adapter = airalo_adapter(harness, airalo_server.url)
    assert adapter.find_top_up(request("trip", amount=Decimal(5))) is None
    assert airalo_server.seen("GET", r".*/packages") == []
    with pytest.raises(TopUpUnknown):  # no ICCID now: cannot look, so cannot say
        airalo_adapter(harness, airalo_server.url, line="credit").find_top_up(request("credit"))


# ---- 1NCE ---------------------------------------------------------------------------------


@pytest.fixture
def once() -> TopUpOnce:
    return TopUpOnce()


@pytest.fixture
def once_server(serve: Callable[[FakeProvider], FakeServer], once: TopUpOnce) -> FakeServer:
    return serve(once)


def once_adapter(harness: Harness, url: str, account_extra: str = "") -> Adapter:
    text = fake_onence.config_text(url).replace('base_url = "', account_extra + 'base_url = "', 1)
    return build(harness, text, "sensor")


def test_once_top_up_is_one_order_with_the_default_payment_method(
    harness: Harness, once_server: FakeServer, once: TopUpOnce
) -> None:
    result = once_adapter(harness, once_server.url).top_up(request("sensor", package=None))
    assert result == TopUpResult(
        reference="1234",
        price=Decimal("19.99"),
        currency="EUR",
        detail="1NCE order 1234 (COMPLETED)",
    )
    assert once_server.seen("GET", r".*/v1/orders/1234")  # the price, from the order
    (sent,) = once_server.seen("POST", ONCE_ORDER)
    assert sent.query == {"payment_method": ["banktransfer"]}
    assert once.orders == ["banktransfer"]


@pytest.mark.parametrize("method", ["monthlyinvoice", "creditcard", "boleto"])
def test_once_payment_method_comes_from_the_account(
    harness: Harness, once_server: FakeServer, once: TopUpOnce, method: str
) -> None:
    adapter = once_adapter(harness, once_server.url, f'payment_method = "{method}"\n')
    adapter.top_up(request("sensor", package="topup"))
    assert once.orders == [method]


def test_once_top_up_that_went_through_stays_done_when_its_order_cannot_be_read(
    harness: Harness, once_server: FakeServer, once: TopUpOnce
) -> None:
    once_server.script("GET", r".*/v1/orders/1234", *[Reply(503)] * 10)
    result = once_adapter(harness, once_server.url).top_up(request("sensor", package=None))
    assert result.reference == "1234" and result.price is None
    assert "price could not be read" in (result.detail or "")
    assert once.orders == ["banktransfer"]


def test_once_unknown_payment_method_is_a_config_error(
    harness: Harness, once_server: FakeServer
) -> None:
    with pytest.raises(ConfigError) as info:
        once_adapter(harness, once_server.url, 'payment_method = "cash"\n')
    assert "payment_method" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (400, {"message": "Payment method used is not valid."}, "does not take the payment"),
        (403, None, "not one of account iot's"),
        (404, None, "check the line's `iccid`"),
        (422, None, "has expired"),
    ],
)
def test_once_refusals_fail_after_one_order(
    harness: Harness, once_server: FakeServer, status: int, body: Any, shown: str
) -> None:
    once_server.script("POST", ONCE_ORDER, Reply(status, body))
    with pytest.raises(TopUpFailed) as info:
        once_adapter(harness, once_server.url).top_up(request("sensor", package=None))
    assert shown in str(info.value)
    assert body is None or body["message"] in str(info.value)
    assert orders(once_server, ONCE_ORDER) == 1


@pytest.mark.parametrize(
    "reply", [json_reply(500, {"message": "Internal"}), Reply(504), Reply(drop=True)]
)
def test_once_server_errors_are_unknown_after_one_order(
    harness: Harness, once_server: FakeServer, reply: Reply
) -> None:
    once_server.script("POST", ONCE_ORDER, reply)
    with pytest.raises(TopUpUnknown):
        once_adapter(harness, once_server.url).top_up(request("sensor", package=None))
    assert orders(once_server, ONCE_ORDER) == 1


def test_once_order_timeout_is_unknown_after_one_order(
    harness: Harness, once_server: FakeServer
) -> None:
    once_server.script("POST", ONCE_ORDER, Reply(hold=5), Reply(hold=5))
    adapter = once_adapter(harness, once_server.url, 'timeout = "0.3s"\n')
    with pytest.raises(TopUpUnknown):
        adapter.top_up(request("sensor", package=None))
    assert orders(once_server, ONCE_ORDER) == 1


@pytest.mark.parametrize(
    "fields", [{"package": "500mb-extra"}, {"package": None, "amount": Decimal(10)}]
)
def test_once_sells_one_top_up_only(
    harness: Harness, once_server: FakeServer, fields: dict[str, Any]
) -> None:
    adapter = once_adapter(harness, once_server.url)
    with pytest.raises(TopUpFailed) as info:
        adapter.top_up(request("sensor", **fields))
    assert 'package = "topup"' in str(info.value)
    assert adapter.find_top_up(request("sensor", **fields)) is None  # never sendable
    assert once_server.seen("POST", ONCE_ORDER) == []


def test_once_top_up_with_a_garbled_price_stays_done_without_one(
    harness: Harness, once_server: FakeServer, once: TopUpOnce
) -> None:
    garbled = {"order_number": 1234, "invoice_amount": "n/a", "currency": "EUR"}
    once_server.script("GET", r".*/v1/orders/1234", json_reply(200, garbled))
    result = once_adapter(harness, once_server.url).top_up(request("sensor", package=None))
    assert result.reference == "1234" and result.price is None
    assert "invoice_amount is not a number" in (result.detail or "")


@pytest.mark.parametrize("page_count", [True, False])
def test_once_interrupted_top_up_is_found_among_the_orders(
    harness: Harness, once_server: FakeServer, once: TopUpOnce, page_count: bool
) -> None:
    once.page_count = page_count
    asked = request("sensor", package="topup")
    once.add_order(fake_onence.ICCID, order_date=iso(asked.requested_at - timedelta(days=3)))
    once.add_order("8988280666000000777")  # another SIM's top-up
    once.add_order(fake_onence.ICCID, "ADDITIONAL_ORDER")
    for _ in range(20):  # more than two pages of other orders first
        once.add_order("8988280666000000777", order_date=iso(asked.requested_at))
    ours = once.add_order(fake_onence.ICCID, invoice_amount="9.50", currency="EUR")
    found = once_adapter(harness, once_server.url).find_top_up(asked)
    assert found == TopUpResult(
        reference=str(ours["order_number"]),
        price=Decimal("9.50"),
        currency="EUR",
        detail=f"1NCE order {ours['order_number']} (COMPLETED)",
    )


def test_once_no_order_since_the_intent_means_it_was_not_bought(
    harness: Harness, once_server: FakeServer, once: TopUpOnce
) -> None:
    asked = request("sensor", package="topup")
    for days in (40, 30, 20):  # the SIM's earlier top-ups
        once.add_order(fake_onence.ICCID, order_date=iso(asked.requested_at - timedelta(days=days)))
    once.add_order("8988280666000000777")
    assert once_adapter(harness, once_server.url).find_top_up(asked) is None


def test_once_unreadable_order_list_leaves_the_top_up_unknown(
    harness: Harness, once_server: FakeServer
) -> None:
    once_server.script("GET", r".*/v1/orders", *[Reply(503)] * 10)
    with pytest.raises(TopUpUnknown) as info:
        once_adapter(harness, once_server.url).find_top_up(request("sensor", package="topup"))
    assert "could not be read" in str(info.value)
    assert once_server.seen("POST", ONCE_ORDER) == []


# ---- eSIM Go ------------------------------------------------------------------------------


@pytest.fixture
def esimgo() -> TopUpEsimGo:
    return TopUpEsimGo()


@pytest.fixture
def esimgo_server(serve: Callable[[FakeProvider], FakeServer], esimgo: TopUpEsimGo) -> FakeServer:
    return serve(esimgo)


def esimgo_adapter(harness: Harness, url: str, line: str = "roam") -> Adapter:
    return build(harness, fake_esimgo.config_text(url), line)


def test_esimgo_order_assigns_the_bundle_to_the_esim_once(
    harness: Harness, esimgo_server: FakeServer, esimgo: TopUpEsimGo
) -> None:
    result = esimgo_adapter(harness, esimgo_server.url).top_up(request("roam", package=BUNDLE))
    assert result.reference == "ref-0001"
    assert result.price == Decimal("2.67") and result.currency == "USD"
    assert "completed" in (result.detail or "")
    assert esimgo.orders == [
        {
            "type": "transaction",
            "assign": True,
            "order": [
                {
                    "type": "bundle",
                    "quantity": 1,
                    "item": BUNDLE,
                    "iccids": [fake_esimgo.ICCID],
                    "allowReassign": False,
                }
            ],
        }
    ]
    (sent,) = esimgo_server.seen("POST", ESIMGO_ORDER)
    assert sent.headers["X-API-Key"] == fake_esimgo.API_KEY


@pytest.mark.parametrize(
    ("status", "shown"), [(400, "bundle name (case sensitive)"), (403, "API key was refused")]
)
def test_esimgo_refusals_fail_after_one_order(
    harness: Harness, esimgo_server: FakeServer, status: int, shown: str
) -> None:
    esimgo_server.script("POST", ESIMGO_ORDER, json_reply(status, {"message": "Nope"}))
    with pytest.raises(TopUpFailed) as info:
        esimgo_adapter(harness, esimgo_server.url).top_up(request("roam", package=BUNDLE))
    assert shown in str(info.value) and "Nope" in str(info.value)
    assert orders(esimgo_server, ESIMGO_ORDER) == 1


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(500, {"message": "Internal"}),
        json_reply(503, {"message": "busy"}, **{"Retry-After": "1"}),
        Reply(drop=True),
        json_reply(200, {"status": "completed"}),  # no order reference
    ],
)
def test_esimgo_lost_answers_are_unknown_after_one_order(
    harness: Harness, esimgo_server: FakeServer, reply: Reply
) -> None:
    esimgo_server.script("POST", ESIMGO_ORDER, reply)
    with pytest.raises(TopUpUnknown):
        esimgo_adapter(harness, esimgo_server.url).top_up(request("roam", package=BUNDLE))
    assert orders(esimgo_server, ESIMGO_ORDER) == 1


def test_esimgo_line_without_an_iccid_cannot_be_topped_up(
    harness: Harness, esimgo_server: FakeServer
) -> None:
    with pytest.raises(TopUpFailed) as info:
        esimgo_adapter(harness, esimgo_server.url, "org").top_up(request("org", package=BUNDLE))
    assert "`iccid`" in str(info.value)
    assert esimgo_server.requests == []


def test_esimgo_assignments_find_an_order_made_and_only_that(
    harness: Harness, esimgo_server: FakeServer
) -> None:
    adapter = esimgo_adapter(harness, esimgo_server.url)
    wanted = request("roam", package=BUNDLE)
    # The fake's eSIM already holds an older assignment of the same bundle (2024-12-11).
    assert adapter.find_top_up(wanted) is None
    adapter.top_up(wanted)
    found = adapter.find_top_up(wanted)
    assert found is not None and found.reference == "assigned-ref-0001"
    assert orders(esimgo_server, ESIMGO_ORDER) == 1


def test_esimgo_assignments_when_the_server_is_down_are_unknown(
    harness: Harness, esimgo_server: FakeServer
) -> None:
    esimgo_server.script("GET", r".*/bundles", *[json_reply(503, {"message": "x"})] * 50)
    with pytest.raises(TopUpUnknown):
        esimgo_adapter(harness, esimgo_server.url).find_top_up(request("roam", package=BUNDLE))


# ---- end to end: the recharge policy, the ledger and a crash -------------------------------


def recharge_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "recharge.toml"
    path.write_text(
        f"""
[monitor]
database = "{tmp_path / "h.db"}"

[recharge]
enabled = true

[accounts.travel]
provider = "airalo"
client_id = "{fake_airalo.CLIENT_ID}"
client_secret = "{fake_airalo.CLIENT_SECRET}"
base_url = "{url}"

[lines.trip]
account = "travel"
iccid = "{fake_airalo.ICCID}"

[lines.trip.recharge]
action = "provider"
when = "data < 300MB"
package = "{PACKAGE}"
"""
    )
    return path


@pytest.fixture
def recharger(tmp_path: Path, airalo_server: FakeServer) -> Iterator[tuple[Recharger, Store]]:
    settings = load_settings(recharge_config(tmp_path, airalo_server.url))
    store = Store.open(tmp_path / "h.db")
    context = adapters.AdapterContext(TokenCache(None))
    built: dict[str, Adapter] = {}

    def adapter(line: str) -> Adapter:
        return built.setdefault(line, adapters.build(settings, line, context))

    yield Recharger(settings, store, adapter), store
    context.close()
    store.close()


def low(now: datetime) -> Reading:
    return Reading(line="trip", checked_at=now, data_remaining=100 * MIB, data_total=2048 * MIB)


def test_one_low_spell_buys_exactly_once(
    recharger: tuple[Recharger, Store], airalo_server: FakeServer, airalo: TopUpAiralo
) -> None:
    policy, store = recharger
    start = utcnow()
    first = policy.after_check("trip", Level.CRITICAL, low(start), start)
    for later in (timedelta(minutes=30), timedelta(hours=7), timedelta(days=1)):
        policy.after_check("trip", Level.CRITICAL, low(start + later), start + later)
    assert [e.type for e in first] == ["recharge-requested"]
    assert first[0].facts["reference"] == "20251118-000111"
    assert orders(airalo_server) == 1 and len(airalo.orders) == 1
    (entry,) = store.recharges("trip")
    assert (entry.reference, entry.price, entry.currency) == (
        "20251118-000111",
        Decimal("8"),
        "USD",
    )
    assert airalo.orders[0]["description"] == f"esim-monitor {entry.key}"


@pytest.mark.parametrize(
    ("went_through", "state"), [(True, "submitted"), (False, "failed"), (None, "unknown")]
)
def test_interrupted_intent_is_reconciled_and_never_bought_again(
    recharger: tuple[Recharger, Store],
    airalo_server: FakeServer,
    airalo: TopUpAiralo,
    went_through: bool | None,
    state: str,
) -> None:
    policy, store = recharger
    since = utcnow() - timedelta(minutes=2)
    # As if the daemon died between writing its intent and learning the outcome.
    store.set_need("trip", since)
    store.add_recharge(
        Recharge(
            line="trip",
            key=need_key("trip", since),
            state="requested",
            action="provider",
            requested_at=since,
            package=PACKAGE,
            baseline_data=100 * MIB,
        )
    )
    if went_through:
        airalo.history = [history_entry(111, PACKAGE, activated_at=iso(since))]
    elif went_through is None:
        airalo_server.script("GET", r".*/packages", *[json_reply(500, {"message": "x"})] * 50)
    now = utcnow()
    events = policy.after_check("trip", Level.CRITICAL, low(now), now)
    (entry,) = store.recharges("trip")
    assert entry.state == state
    if went_through:
        assert events == [] and entry.reference == "111"
    else:
        assert [e.type for e in events] == ["recharge-failed"]
    later = now + timedelta(hours=8)
    policy.after_check("trip", Level.CRITICAL, low(later), later)
    if went_through is False:
        # reconciliation showed nothing was bought: the line, still low, is bought for once
        assert orders(airalo_server) == 1
        assert [e.state for e in store.recharges("trip")] == ["failed", "submitted"]
    else:
        assert orders(airalo_server) == 0
        assert len(store.recharges("trip")) == 1


# ---- the ledger with 1NCE's Order Management API ----------------------------------------


@pytest.fixture
def once_recharger(tmp_path: Path, once_server: FakeServer) -> Iterator[tuple[Recharger, Store]]:
    path = tmp_path / "once.toml"
    path.write_text(
        fake_onence.config_text(f"{once_server.url}")
        + f"""
[monitor]
database = "{tmp_path / "o.db"}"

[recharge]
enabled = true

[lines.sensor.recharge]
action = "provider"
when = "data < 300MB"
"""
    )
    settings = load_settings(path)
    store = Store.open(tmp_path / "o.db")
    context = adapters.AdapterContext(TokenCache(None))
    yield Recharger(settings, store, lambda line: adapters.build(settings, line, context)), store
    context.close()
    store.close()


def once_low(now: datetime) -> Reading:
    return Reading(line="sensor", checked_at=now, data_remaining=10 * MIB, data_total=500 * MIB)


def test_once_top_up_price_is_recorded_in_the_ledger(
    once_recharger: tuple[Recharger, Store], once: TopUpOnce
) -> None:
    policy, store = once_recharger
    now = utcnow()
    policy.after_check("sensor", Level.CRITICAL, once_low(now), now)
    (entry,) = store.recharges("sensor")
    assert (entry.state, entry.reference, entry.price, entry.currency) == (
        "submitted",
        "1234",
        Decimal("19.99"),
        "EUR",
    )


@pytest.mark.parametrize("went_through", [True, False])
def test_once_interrupted_intent_is_reconciled_from_the_orders(
    once_recharger: tuple[Recharger, Store],
    once_server: FakeServer,
    once: TopUpOnce,
    went_through: bool,
) -> None:
    policy, store = once_recharger
    since = utcnow() - timedelta(minutes=2)
    store.set_need("sensor", since)  # as if the daemon died after writing its intent
    store.add_recharge(
        Recharge(
            line="sensor",
            key=need_key("sensor", since),
            state="requested",
            action="provider",
            requested_at=since,
            baseline_data=10 * MIB,
        )
    )
    if went_through:
        once.add_order(fake_onence.ICCID, invoice_amount="9.50")
    now = utcnow()
    policy.after_check("sensor", Level.CRITICAL, once_low(now), now)
    entries = store.recharges("sensor")
    if went_through:
        (entry,) = entries
        assert (entry.state, entry.reference, entry.price) == ("submitted", "1234", Decimal("9.50"))
        assert orders(once_server, ONCE_ORDER) == 0
    else:
        assert entries[0].state == "failed"  # nothing was bought: the need can be met anew
        later = now + timedelta(hours=8)
        policy.after_check("sensor", Level.CRITICAL, once_low(later), later)
        assert orders(once_server, ONCE_ORDER) == 1
