"""The contract suite (issue 12): each provider's own documented examples, read by the real
adapter over loopback HTTP, must mean what the provider documents.

One file = one case: tests/adapters/contracts/<provider>/<case>.json, in the format of
contracts/README.md. The file's routes are the only answers the loopback server gives; any
other request fails the case. The account and line go through the real config loader, with
every `*base_url` of the account pointed at the server (keeping the default URL's own path,
so a route's `path` is the request path on the provider's real host).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fakes import (
    BY_CONTRACTS,
    PROVIDERS,
    ContractProvider,
    ContractRoute,
    FakeProvider,
    FakeServer,
    Harness,
    toml_table,
)

from monitor import adapters
from monitor.cli import main
from monitor.errors import CheckFailed, TopUpFailed, TopUpUnknown
from monitor.model import Reading, TopUpRequest, TopUpResult, utcnow
from monitor.store import ts

CONTRACTS = Path(__file__).parent / "contracts"
FILES = sorted(path for p in PROVIDERS for path in (CONTRACTS / p.contracts).glob("*.json"))
"""Each provider's contract files, from its directory in the provider test base (`fakes`:
1NCE's is `onence`, a directory cannot start with a digit comfortably in every tool)."""


def adapter_name(path: Path) -> str:
    return BY_CONTRACTS[path.parent.name].name


TOP_KEYS = {"source", "verbatim", "note", "call", "account", "line", "top_up", "routes", "expect"}
ROUTE_KEYS = {"method", "path", "query", "status", "headers", "body", "body_text", "note"}
CALLS = {"read", "top_up", "find_top_up"}
READING_INTS = {"data_remaining", "data_total"}
READING_MONEY = {"balance", "renewal_price"}
READING_TIMES = {"expires_at", "renewal_at"}
READING_TEXT = {"status", "critical_reason", "warning_reason"}
READING_EXACT = {"currency"}
RESULT_KEYS = {"reference", "price", "price_currency", "detail", "found"}
FAILURE_KEYS = {"error", "error_type", "outcome_unknown"}
EXPECT_KEYS = (
    (READING_INTS | READING_MONEY | READING_TIMES | READING_TEXT | READING_EXACT | {"extras"})
    | RESULT_KEYS
    | FAILURE_KEYS
)

LINE = "line"
ACCOUNT = "acct"


def load(path: Path) -> dict[str, Any]:
    """The contract, its format checked: a file that breaks the format fails, never skips."""
    contract = json.loads(path.read_text())
    assert isinstance(contract, dict), "a contract is a JSON object"
    assert not set(contract) - TOP_KEYS, f"unknown keys {set(contract) - TOP_KEYS}"
    assert isinstance(contract.get("source"), str) and contract["source"].strip(), (
        "`source` must name where the payload comes from"
    )
    assert isinstance(contract.get("verbatim"), bool), "`verbatim` must be true or false"
    if not contract["verbatim"]:
        assert isinstance(contract.get("note"), str) and contract["note"].strip(), (
            "verbatim false: `note` must say what was built and why"
        )
    assert contract.get("call") in CALLS, f"`call` must be one of {sorted(CALLS)}"
    assert isinstance(contract.get("account", {}), dict)
    assert isinstance(contract.get("line"), dict), "`line` holds the line's options"
    assert "base_url" not in contract.get("account", {}), "the harness sets base_url"
    assert isinstance(contract.get("routes"), list) and contract["routes"], "`routes` is needed"
    for route in contract["routes"]:
        assert not set(route) - ROUTE_KEYS, f"unknown route keys {set(route) - ROUTE_KEYS}"
        assert {"method", "path", "status"} <= set(route), "a route needs method, path, status"
        assert route["path"].startswith("/"), "a route's path starts with /"
        assert not ("body" in route and "body_text" in route), "body or body_text, not both"
    expect = contract.get("expect")
    assert isinstance(expect, dict) and expect, "`expect` says what the example means"
    assert not set(expect) - EXPECT_KEYS, f"unknown expect keys {set(expect) - EXPECT_KEYS}"
    failing = bool({"error", "error_type", "outcome_unknown"} & set(expect))
    assert not (failing and set(expect) - FAILURE_KEYS), "a failing case expects only the failure"
    if contract["call"] == "read":
        assert not set(expect) & RESULT_KEYS, "a read has no top-up result"
        assert "top_up" not in contract, "`top_up` is for the top-up calls"
    else:
        assert not (set(expect) - RESULT_KEYS - FAILURE_KEYS), "a top-up expects its result"
    return contract


def routes(contract: dict[str, Any]) -> list[ContractRoute]:
    return [
        ContractRoute(
            method=route["method"].upper(),
            path=route["path"],
            status=route["status"],
            query={k: str(v) for k, v in route.get("query", {}).items()},
            headers=route.get("headers", {}),
            body=route.get("body"),
            body_text=route.get("body_text"),
        )
        for route in contract["routes"]
    ]


def config_text(provider: str, contract: dict[str, Any], url: str) -> str:
    """The account and line as a user writes them, every `*base_url` on the loopback server."""
    account_options = adapters.load(provider).AccountOptions
    account: dict[str, Any] = {"provider": provider, **contract.get("account", {})}
    if account_options is not None:
        for name, info in account_options.model_fields.items():
            if name.endswith("base_url") and isinstance(info.default, str):
                account[name] = url + urlsplit(info.default).path.rstrip("/")
    line = {"account": ACCOUNT, **contract["line"]}
    return toml_table(f"accounts.{ACCOUNT}", account) + toml_table(f"lines.{LINE}", line)


def top_up_request(contract: dict[str, Any]) -> TopUpRequest:
    fields = contract.get("top_up", {})
    when = fields.get("requested_at")
    now = datetime.fromisoformat(when) if when else utcnow()
    amount = fields.get("amount")
    return TopUpRequest(
        line=LINE,
        key=f"{LINE}:{ts(now)}",
        requested_at=now,
        package=fields.get("package"),
        amount=Decimal(str(amount)) if amount is not None else None,
        currency=fields.get("currency"),
    )


def run(adapter: adapters.Adapter, contract: dict[str, Any]) -> Reading | TopUpResult | None:
    if contract["call"] == "read":
        return adapter.read()
    if contract["call"] == "top_up":
        return adapter.top_up(top_up_request(contract))
    return adapter.find_top_up(top_up_request(contract))


def check_failure(error: Exception, expect: dict[str, Any]) -> None:
    message = str(error)
    if "error" in expect:
        assert expect["error"] in message, f"{expect['error']!r} not in {message!r}"
    if "error_type" in expect:
        names = [cls.__name__ for cls in type(error).__mro__]
        assert expect["error_type"] in names, (
            f"{type(error).__name__} is not {expect['error_type']}"
        )
    assert isinstance(error, TopUpUnknown) == bool(expect.get("outcome_unknown")), (
        f"outcome unknown expected {bool(expect.get('outcome_unknown'))}, got {error!r}"
    )


def check_reading(reading: Reading, expect: dict[str, Any]) -> None:
    for key, want in expect.items():
        got = getattr(reading, key, None)
        if key == "extras":
            shown = {name: reading.extras.get(name) for name in want}
            assert shown == want, f"extras {dict(reading.extras)} do not hold {want}"
        elif want is None:
            assert got is None, f"{key}: expected none, got {got!r}"
        elif key in READING_INTS:
            assert type(got) is int and got == want, f"{key}: {got!r} != {want!r} bytes"
        elif key in READING_MONEY:
            assert isinstance(got, Decimal) and got == Decimal(want), f"{key}: {got!r} != {want}"
        elif key in READING_TIMES:
            assert got == datetime.fromisoformat(want), f"{key}: {got!r} != {want}"
            assert got.tzinfo is not None
        elif key in READING_TEXT:
            assert isinstance(got, str) and want in got, f"{key}: {want!r} not in {got!r}"
        else:
            assert got == want, f"{key}: {got!r} != {want!r}"


def check_result(result: TopUpResult | None, expect: dict[str, Any]) -> None:
    if "found" in expect:
        assert (result is not None) == expect["found"], f"found: {result!r}"
    if result is None:
        assert not set(expect) - {"found"}, "no result to compare"
        return
    if "reference" in expect:
        assert result.reference == expect["reference"]
    if "price" in expect:
        want = expect["price"]
        assert result.price == (None if want is None else Decimal(want)), f"price {result.price}"
        assert want is None or isinstance(result.price, Decimal)
    if "price_currency" in expect:
        assert result.currency == expect["price_currency"]
    if "detail" in expect:
        assert expect["detail"] in (result.detail or ""), f"detail: {result.detail!r}"


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_contract(
    path: Path, harness: Harness, serve: Callable[[FakeProvider], FakeServer]
) -> None:
    contract = load(path)
    provider = ContractProvider(routes(contract))
    server = serve(provider)
    name = adapter_name(path)
    settings = harness.settings(config_text(name, contract, server.url))
    adapter = adapters.build(settings, LINE, harness.context())
    expect = contract["expect"]
    failing = bool(set(expect) & FAILURE_KEYS)
    outcome: Reading | TopUpResult | None = None
    error: Exception | None = None
    try:
        outcome = run(adapter, contract)
    except (CheckFailed, TopUpFailed, TopUpUnknown) as exc:
        error = exc
    assert not provider.unexpected, f"requests no route answers: {provider.unexpected}"
    if failing:
        assert error is not None, f"expected a failure, got {outcome!r}"
        check_failure(error, expect)
        return
    assert error is None, f"the documented example failed: {error}"
    if contract["call"] == "read":
        assert isinstance(outcome, Reading)
        check_reading(outcome, expect)
        # what `config validate` believes the line reads (to warn when no threshold
        # watches it) holds every metric the provider's example gave
        reports = type(adapter).reports(adapter.options)
        assert reports is None or adapters.reading_metrics(outcome) <= reports, reports
    else:
        assert outcome is None or isinstance(outcome, TopUpResult)
        check_result(outcome, expect)


VALID = {
    "source": "https://example.invalid/spec#/paths/x",
    "verbatim": True,
    "call": "read",
    "line": {"iccid": "1"},
    "routes": [{"method": "GET", "path": "/x", "status": 200, "body": {}}],
    "expect": {"data_remaining": 1},
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"source": ""}, "`source`"),
        ({"verbatim": False}, "`note`"),
        ({"verbatim": "yes"}, "`verbatim`"),
        ({"call": "buy"}, "`call`"),
        ({"account": {"base_url": "http://elsewhere"}}, "base_url"),
        ({"routes": []}, "`routes`"),
        ({"routes": [{"method": "GET", "path": "x", "status": 200}]}, "starts with /"),
        ({"expect": {"data_left": 1}}, "unknown expect keys"),
        ({"expect": {"error": "x", "balance": "1"}}, "only the failure"),
        ({"expect": {"reference": "r"}}, "no top-up result"),
        ({"surprise": 1}, "unknown keys"),
    ],
)
def test_a_file_that_breaks_the_format_fails(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(VALID))
    load(path)  # the valid one loads
    path.write_text(json.dumps({**VALID, **change}))
    with pytest.raises(AssertionError, match=problem):
        load(path)


def test_every_provider_directory_names_an_adapter() -> None:
    """A misspelt directory would quietly test nothing of a provider: each directory is a
    provider's of the test base, and each provider of the base has contract files."""
    directories = {d.name for d in CONTRACTS.iterdir() if d.is_dir()}
    assert directories == set(BY_CONTRACTS), directories ^ set(BY_CONTRACTS)
    for provider in PROVIDERS:
        adapters.load(provider.name)
        assert list((CONTRACTS / provider.contracts).glob("*.json")), provider.name


@pytest.mark.parametrize(
    ("case", "shown"),
    [
        (
            "onence/quota-data-overuse",
            {
                "state": "critical",
                "data_remaining_bytes": 0,
                "data_total_bytes": 524288000,
                "status": "OVERUSE: data 1.5 MB over the quota",
            },
        ),
        (
            "esimgo/bundles-processing",
            {"state": "ok", "data_remaining_bytes": 1000000000, "status": "processing"},
        ),
        (
            "esimgo/organisation",
            {
                "balance": "9500",
                "currency": "USD",
                "status": "test credit 500 USD until 2023-12-31",
            },
        ),
    ],
)
def test_check_json_shows_the_documented_meaning(
    case: str,
    shown: dict[str, Any],
    tmp_path: Path,
    serve: Callable[[FakeProvider], FakeServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end: `esim-monitor check --json` on a documented example."""
    path = CONTRACTS / f"{case}.json"
    contract = load(path)
    provider = ContractProvider(routes(contract))
    server = serve(provider)
    name = adapter_name(path)
    config = tmp_path / "check.toml"
    config.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "h.db"}"\n' + config_text(name, contract, server.url)
    )
    code = main(["--config", str(config), "check", "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert {key: row.get(key) for key in shown} == shown, row
    assert code == 0 and row["error"] is None
    assert not provider.unexpected
