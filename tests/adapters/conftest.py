"""Fixtures for the REST adapter tests: loopback fake servers, virtual time, a harness.

The helpers themselves live in the fakes package (fakes/base.py, one module per provider,
and the provider test base in fakes/__init__.py); test modules import them from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakes import FakeProvider, FakeServer, Harness, VirtualClock

from monitor.adapters import http


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Every Session made in a test waits on this clock (the real backoff shape, no wait)."""
    virtual = VirtualClock()
    monkeypatch.setattr(
        http, "DEFAULT_BACKOFF", http.Backoff(sleep=virtual.sleep, clock=virtual.now)
    )
    return virtual


@pytest.fixture
def serve() -> Iterator[Callable[[FakeProvider], FakeServer]]:
    """Start fakes on loopback; all are stopped after the test."""
    servers: list[FakeServer] = []

    def start(provider: FakeProvider) -> FakeServer:
        server = FakeServer(provider)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
    assert not [error for server in servers for error in server.errors]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()
