"""The provider fakes, one module per provider, and the one provider test base.

`fakes.base` holds what every fake shares (the loopback server, scripted replies, the
virtual clock, the harness, the contract server); `fakes.<provider>` holds one provider's
fake, its test credentials and `config_text`. `PROVIDERS` describes each provider once:
how to write its account and lines, how to start its fakes on loopback, and how to make
them answer healthy, low or hostile. The hostile, top-up, property and contract tests loop
over it, so a new provider joins every one of them by one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fakes import airalo, esimgo, hologram, onence, telnyx, twilio
from fakes.base import (
    Always,
    ContractProvider,
    ContractRoute,
    FakeProvider,
    FakeServer,
    Harness,
    Reply,
    Request,
    Route,
    VirtualClock,
    finishes,
    iso,
    json_reply,
    toml_table,
    toml_value,
)

__all__ = [
    "PROVIDERS",
    "Always",
    "ContractProvider",
    "ContractRoute",
    "FakeProvider",
    "FakeServer",
    "Harness",
    "Provider",
    "Reply",
    "Request",
    "Route",
    "TopUp",
    "VirtualClock",
    "finishes",
    "iso",
    "json_reply",
    "toml_table",
    "toml_value",
]


@dataclass(frozen=True)
class TopUp:
    """How a provider is topped up: a fake that also takes orders, the order request's
    path (a regex), the line to top up and the package to ask for."""

    fake: Callable[[], FakeProvider]
    order: str
    line: str
    package: str | None


@dataclass(frozen=True)
class Provider:
    """One provider as the looped tests see it.

    `fakes()` gives fresh fakes, one loopback server each (Twilio has two hosts);
    `config(urls)` writes the account and `lines` for those servers' URLs; `data_line` is
    the line that reads a data figure; `low(fakes)` turns the fakes' answer for it low
    (less data left than the healthy answer); `hostile(server)` makes a server answer every
    read with an HTML error page. `contracts` names its directory of contract files, and
    `top_up` says how to top it up, where the adapter can."""

    name: str
    contracts: str
    fakes: Callable[[], Sequence[FakeProvider]]
    config: Callable[[Sequence[str]], str]
    lines: tuple[str, ...]
    data_line: str
    low: Callable[[Sequence[FakeProvider]], None]
    top_up: TopUp | None = None

    def start(self) -> list[FakeServer]:
        """Its fakes on loopback (the caller closes them)."""
        return [FakeServer(fake) for fake in self.fakes()]

    @staticmethod
    def hostile(server: FakeServer) -> None:
        page = Reply(502, "<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        server.script("GET", ".*", *[page] * 50)

    def __str__(self) -> str:
        return self.name


def _low_airalo(fakes: Sequence[FakeProvider]) -> None:
    (fake,) = fakes
    assert isinstance(fake, airalo.FakeAiralo)
    fake.sims[airalo.ICCID] = airalo.usage(remaining=10)


def _low_esimgo(fakes: Sequence[FakeProvider]) -> None:
    (fake,) = fakes
    assert isinstance(fake, esimgo.FakeEsimGo)
    fake.sims[esimgo.ICCID] = esimgo.bundles(esimgo.assignment("active", 1_000_000_000, 10_000_000))


def _low_onence(fakes: Sequence[FakeProvider]) -> None:
    (fake,) = fakes
    assert isinstance(fake, onence.FakeOnce)
    fake.quotas["data"]["volume"] = 5


def _low_hologram(fakes: Sequence[FakeProvider]) -> None:
    (fake,) = fakes
    assert isinstance(fake, hologram.FakeHologram)
    fake.periods[0]["bytes"] = 990_000_000


def _low_twilio(fakes: Sequence[FakeProvider]) -> None:
    _, supersim = fakes
    assert isinstance(supersim, twilio.FakeSuperSim)
    supersim.data_used = 990_000_000


def _low_telnyx(fakes: Sequence[FakeProvider]) -> None:
    (fake,) = fakes
    assert isinstance(fake, telnyx.FakeTelnyx)
    fake.sim["current_billing_period_consumed_data"] = {"amount": "2000", "unit": "MB"}


PROVIDERS = (
    Provider(
        name="airalo",
        contracts="airalo",
        fakes=lambda: [airalo.FakeAiralo()],
        config=lambda urls: airalo.config_text(urls[0]),
        lines=("trip", "credit"),
        data_line="trip",
        low=_low_airalo,
        top_up=TopUp(airalo.TopUpAiralo, airalo.ORDER, "trip", airalo.PACKAGE),
    ),
    Provider(
        name="esimgo",
        contracts="esimgo",
        fakes=lambda: [esimgo.FakeEsimGo()],
        config=lambda urls: esimgo.config_text(urls[0]),
        lines=("roam", "org"),
        data_line="roam",
        low=_low_esimgo,
        top_up=TopUp(esimgo.TopUpEsimGo, esimgo.ESIMGO_ORDER, "roam", esimgo.BUNDLE),
    ),
    Provider(
        name="1nce",
        contracts="onence",
        fakes=lambda: [onence.FakeOnce()],
        config=lambda urls: onence.config_text(urls[0]),
        lines=("sensor", "sensor-sms"),
        data_line="sensor",
        low=_low_onence,
        top_up=TopUp(onence.TopUpOnce, onence.ONCE_ORDER, "sensor", None),
    ),
    Provider(
        name="hologram",
        contracts="hologram",
        fakes=lambda: [hologram.FakeHologram()],
        config=lambda urls: hologram.config_text(urls[0]),
        lines=("org", "tracker"),
        data_line="tracker",
        low=_low_hologram,
    ),
    Provider(
        name="twilio",
        contracts="twilio",
        fakes=lambda: [twilio.FakeTwilioApi(), twilio.FakeSuperSim()],
        config=lambda urls: twilio.config_text(urls[0], urls[1]),
        lines=("balance", "tracker"),
        data_line="tracker",
        low=_low_twilio,
    ),
    Provider(
        name="telnyx",
        contracts="telnyx",
        fakes=lambda: [telnyx.FakeTelnyx()],
        config=lambda urls: telnyx.config_text(urls[0]),
        lines=("balance", "modem"),
        data_line="modem",
        low=_low_telnyx,
    ),
)
"""Every provider with a fake, in the order the README lists them."""

BY_CONTRACTS = {provider.contracts: provider for provider in PROVIDERS}
"""Contract directory name -> provider."""
