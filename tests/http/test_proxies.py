"""Who a request counts as coming from behind reverse proxies: the forwarded client when
the peer is a trusted proxy (rightmost untrusted hop, as nginx's real_ip_recursive), the
peer otherwise; and the rate limit and its refusal using that address."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from monitor.http.app import App, RateLimiter, Request
from monitor.http.proxies import address, client_address, forwarded_client, network
from monitor.http.relay import RelayMessage

PROXIES = [network("10.0.0.0/8"), network("::1"), network("127.0.0.1")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.5", "203.0.113.7", "203.0.113.7"),
        # a client's own X-Forwarded-For is kept on the left by the proxy: never believed
        ("10.0.0.5", "198.51.100.1, 203.0.113.7", "203.0.113.7"),
        ("10.0.0.5", "203.0.113.7, 10.0.0.9", "203.0.113.7"),  # two proxies in a row
        ("10.0.0.5", "garbage, 203.0.113.7", "203.0.113.7"),  # what lies left is not read
        ("10.0.0.5", "10.0.0.8, 10.0.0.9", "10.0.0.8"),  # all proxies: the leftmost
        ("10.0.0.5", "203.0.113.7:4711", "203.0.113.7"),
        ("10.0.0.5", "[2001:db8::7]:443", "2001:db8::7"),
        ("10.0.0.5", " 2001:db8::7 ", "2001:db8::7"),
        ("::1", "203.0.113.7", "203.0.113.7"),
        ("::ffff:127.0.0.1", "203.0.113.7", "203.0.113.7"),  # a dual-stack socket's IPv4
        # malformed, as the trusted proxy wrote it: the peer
        ("10.0.0.5", "203.0.113.7, unknown", "10.0.0.5"),
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", ",", "10.0.0.5"),
        ("10.0.0.5", "203.0.113.300", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
        # from any other peer the header is never read
        ("192.0.2.1", "203.0.113.7", "192.0.2.1"),
        ("11.0.0.1", "10.0.0.8", "11.0.0.1"),
        ("not-an-address", "203.0.113.7", "not-an-address"),
    ],
)
def test_the_client_behind_trusted_proxies(peer: str, forwarded: str | None, client: str) -> None:
    assert forwarded_client(peer, forwarded, PROXIES) == client


def test_no_trusted_proxies_means_the_peer_always() -> None:
    assert forwarded_client("127.0.0.1", "203.0.113.7", []) == "127.0.0.1"


def test_client_address_reads_the_request() -> None:
    request = Request("POST", "/relay/open", "10.1.2.3", {"x-forwarded-for": "203.0.113.7"})
    assert client_address(request, PROXIES) == "203.0.113.7"
    assert client_address(request, []) == "10.1.2.3"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("10.0.0.1", "10.0.0.1/32"), ("10.1.2.3/8", "10.0.0.0/8"), ("fd00::/8", "fd00::/8")],
)
def test_networks_are_addresses_or_cidr(text: str, parsed: str) -> None:
    assert str(network(text)) == parsed


@pytest.mark.parametrize("text", ["10.0.0.0/33", "proxy.example.org", "", "10.0.0.1-10.0.0.9"])
def test_a_bad_network_says_what_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or a CIDR network"):
        network(text)


def test_an_address_is_none_when_it_is_no_address() -> None:
    assert address("unknown") is None
    assert address("[::1") is None


class Sink:
    def lines(self) -> Mapping[str, list[str] | None]:
        return {"open": None}

    def verify(self, line: str, token: str) -> bool:
        return token == "open-token"

    def record(self, line: str, message: RelayMessage) -> str:
        return "recorded"


def _app(proxies: list[str]) -> App:
    return App(
        Sink(),
        RateLimiter(1, 60.0, lambda: 100.0),
        max_body=1000,
        trusted=[network(p) for p in proxies],
    )


def _from(peer: str, forwarded: str) -> Request:
    headers = {"x-forwarded-for": forwarded, "authorization": "Bearer open-token"}
    return Request("POST", "/relay/open", peer, headers, {}, b"hi")


def test_clients_behind_a_trusted_proxy_are_limited_each_by_its_own_address() -> None:
    app = _app(["127.0.0.1"])
    assert app.handle(_from("127.0.0.1", "203.0.113.7")).status == 200
    refused = app.handle(_from("127.0.0.1", "203.0.113.7"))
    assert (refused.status, refused.text) == (
        429,
        "too many requests from 203.0.113.7: retry in 60 s",
    )
    assert app.handle(_from("127.0.0.1", "203.0.113.8")).status == 200


def test_an_untrusted_peer_cannot_pick_its_bucket_by_the_header() -> None:
    app = _app(["127.0.0.1"])
    assert app.handle(_from("192.0.2.1", "203.0.113.7")).status == 200
    assert app.handle(_from("192.0.2.1", "203.0.113.8")).status == 429
