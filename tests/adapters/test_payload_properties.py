"""Property tests on provider payloads: each provider's fake answers its documented shapes
with leaves replaced or removed at random (nulls, huge numbers, text, wrong types); read
through the real HTTP client and adapter, a line either gives a Reading or fails with the
project's CheckFailed. Nothing else escapes, and a broken answer is never a zero."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fakes import PROVIDERS, FakeProvider, FakeServer, Harness, Provider, Reply, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import CheckFailed
from monitor.model import Reading

WEIRD: list[Any] = [
    None,
    True,
    -1,
    0,
    10**30,
    1e308,
    "",
    "NaN",
    "-5",
    "abc",
    "2GB",
    [],
    {},
    "2029-13-45 99:99:99",
    "1e999",
]
TOKEN_PATHS = ("/v2/token", "/oauth/token")


def mutate(value: Any, rng: random.Random, rate: float) -> Any:
    if isinstance(value, dict):
        return {k: mutate(v, rng, rate) for k, v in value.items() if rng.random() >= rate / 2}
    if isinstance(value, list):
        return [mutate(v, rng, rate) for v in value]
    return rng.choice(WEIRD) if rng.random() < rate else value


class Mutating(FakeProvider):
    """Wraps a real fake: its JSON answers (tokens aside) come back mutated."""

    def __init__(self, inner: FakeProvider) -> None:
        self.inner = inner
        self.rng = random.Random(0)
        self.rate = 0.0

    def handle(self, request: Request) -> Reply:
        reply = self.inner.handle(request)
        if request.path.endswith(TOKEN_PATHS) or not isinstance(reply.body, dict | list):
            return reply
        return Reply(reply.status, mutate(reply.body, self.rng, self.rate), reply.headers)


@pytest.mark.parametrize("provider", PROVIDERS, ids=str)
def test_garbled_answers_are_readings_or_failed_checks(
    provider: Provider, harness: Harness, clock: Any
) -> None:
    wrapped = [Mutating(fake) for fake in provider.fakes()]
    servers = [FakeServer(w) for w in wrapped]
    try:
        settings_ = harness.settings(provider.config([s.url for s in servers]))

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([0.05, 0.2, 0.5, 1.0]))
        def check(seed: int, rate: float) -> None:
            for w in wrapped:
                w.rng, w.rate = random.Random(seed), rate
            for line in provider.lines:
                try:
                    reading = harness.read(settings_, line)
                except CheckFailed:
                    continue
                assert isinstance(reading, Reading)
                if reading.balance is not None:
                    assert reading.balance.is_finite()
                for figure in (reading.data_remaining, reading.data_total):
                    assert figure is None or (isinstance(figure, int) and figure >= 0)

        check()
    finally:
        for server in servers:
            server.close()
