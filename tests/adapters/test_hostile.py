"""One cycle against hostile providers next to healthy ones (issue 7): one hangs, one
answers garbage, one answers 429 to everything. Each is a failed check for its own lines;
the healthy account is read, nothing crashes, and the cycle ends on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import test_telnyx
from fakes import FakeServer, Reply, json_reply

from monitor import config
from monitor.adapters import validate_lines
from monitor.cycle import Checker
from monitor.store import Store

ACCOUNTS = ("healthy", "hanging", "garbage", "limited")


def test_hostile_providers_fail_alone(tmp_path: Path, clock: Any) -> None:
    servers = {name: FakeServer(test_telnyx.FakeTelnyx()) for name in ACCOUNTS}
    try:
        servers["hanging"].script("GET", ".*", *[Reply(hold=30)] * 20)
        servers["garbage"].script(
            "GET", ".*", *[Reply(200, "<html><body>Bad gateway</body></html>")] * 20
        )
        servers["limited"].script(
            "GET", ".*", *[json_reply(429, {"errors": []}, **{"Retry-After": "3600"})] * 20
        )
        text = f'[monitor]\ndatabase = "{tmp_path / "h.db"}"\ncheck_timeout = "3s"\n'
        for name, server in servers.items():
            text += (
                f'[accounts.{name}]\nprovider = "telnyx"\napi_key = "{test_telnyx.API_KEY}"\n'
                f'base_url = "{server.url}"\ntimeout = "2s"\n'
            )
            for i in range(3):
                text += f'[lines.{name}-{i}]\naccount = "{name}"\n'
                text += f'sim_card_id = "{test_telnyx.SIM_ID}"\n' if i else ""
        path = tmp_path / "config.toml"
        path.write_text(text)
        settings = config.load(path, [validate_lines])
        store = Store.open(settings.database_path())
        checker = Checker(settings)
        try:
            judged = {j.result.line: j.result for j in checker.run(store, list(settings.lines))}
        finally:
            checker.close()
        assert len(judged) == 12
        for i in range(3):
            assert judged[f"healthy-{i}"].error is None
            assert judged[f"healthy-{i}"].reading is not None
            for name in ("hanging", "garbage", "limited"):
                result = judged[f"{name}-{i}"]
                assert result.reading is None and result.error, (name, result)
        assert "429" in judged["limited-1"].error or "rate" in judged["limited-1"].error.lower()
        assert store.status()["garbage-1"]["balance"] is None  # never a zero
        store.close()
    finally:
        for server in servers.values():
            server.close()
