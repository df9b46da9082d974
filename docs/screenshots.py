"""The README's screenshots of the status page, taken from the demo in a real browser.

    .venv/bin/pip install -e '.[test]'     # Selenium; Debian's chromium and chromium-driver
    .venv/bin/python docs/screenshots.py   # writes docs/overview.png, overview-phone.png, line.png

It runs `esim-monitor run` on a copy of config/demo.toml in a temporary folder (its own
database, and a free loopback port instead of 8757, so a demo you are running is left
alone), with a week of earlier readings of the "travel" line written first (a top-up
every three days: the line page's chart has something to show; the demo itself is a
minute old). Once the demo has topped "travel" up (about a minute in), the headless
Chromium of the browser tests (tests/browser.py) saves the overview at a desktop and at a
phone viewport and the travel line's page, each a whole page and a small PNG.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' Chromium (tests/browser.py)

from browser import DESKTOP, PHONE, chromium  # noqa: E402
from daemon_proc import free_port  # noqa: E402

from monitor import logs  # noqa: E402
from monitor.config import RechargeSwitch, load  # noqa: E402
from monitor.cycle import Checker  # noqa: E402
from monitor.model import Reading  # noqa: E402
from monitor.store import Store  # noqa: E402

LIMIT = 300_000
"""Bytes a screenshot may take (the README loads them all)."""
TALLEST = 2400
"""CSS pixels of a page kept at most: the top of a long line page tells enough."""


def demo_copy(folder: Path, port: int) -> Path:
    """config/demo.toml in `folder`, its server on `port`, its database beside it."""
    text = (ROOT / "config" / "demo.toml").read_text()
    pattern = r'^((?:listen|public_url)\s*=\s*"(?:http://)?)127\.0\.0\.1:8757"'
    text, found = re.subn(pattern, rf'\g<1>127.0.0.1:{port}"', text, flags=re.MULTILINE)
    assert found == 2, "config/demo.toml no longer serves on 127.0.0.1:8757 (listen, public_url)"
    path = folder / "demo.toml"
    path.write_text(text)
    return path


def week_of_travel(now: datetime) -> Iterator[Reading]:
    """Readings every two hours for a week: 25 USD and 3 GB after each top-up (a 30-day
    plan bought again), spent down to a top-up every three days."""
    period = timedelta(days=3)
    first = now - timedelta(days=7)
    at = first
    while at < now - timedelta(minutes=10):
        bought = first + period * ((at - first) // period)
        hours = Decimal((at - bought).total_seconds()) / 3600
        yield Reading(
            "travel",
            at,
            balance=(Decimal(25) - hours * Decimal("0.28")).quantize(Decimal("0.01")),
            currency="USD",
            data_remaining=3_000_000_000 - int(hours * 38_000_000),
            data_total=3_000_000_000,
            expires_at=bought + timedelta(days=30),
            status="ACTIVE",
        )
        at += timedelta(hours=2)


def write_history(config: Path) -> None:
    """The week of travel readings, judged and stored as polled ones (no top-ups bought)."""
    settings = load(config)
    settings = settings.model_copy(update={"recharge": RechargeSwitch(enabled=False)})
    checker, store = Checker(settings), Store.open(settings.database_path())
    try:
        for reading in week_of_travel(datetime.now(UTC)):
            checker.record(store, reading)
    finally:
        checker.close()
        store.close()


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def wait_for_demo(base: str, daemon: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until the demo has confirmed its top-up of travel (about 50 s in): a critical, a
    warning and an ok line by then, and a top-up on the travel chart."""
    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise SystemExit(f"the demo stopped ({daemon.returncode}):\n{log.read_text()[-3000:]}")
        try:
            events = get_json(base + "/api/events?since=1h")
        except OSError:  # not listening yet
            events = []
        assert isinstance(events, list)
        if any(e["type"] == "recharge-confirmed" for e in events):
            return
        if time.monotonic() > deadline:
            said = log.read_text()[-3000:]
            raise SystemExit(f"the demo did not get there in {timeout:.0f} s:\n{said}")
        time.sleep(2)  # well under [http] rate (60/min)


def shoot(base: str, path: str, size: tuple[int, int], out: Path) -> int:
    """A whole page (up to TALLEST) at `size`'s width, as PNG; its size in bytes."""
    with chromium(size) as driver:
        driver.get(base + path)
        # the body's own height: the document's is never less than the viewport's
        height = int(driver.execute_script("return Math.ceil(document.body.scrollHeight)"))
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": size[0],
                "height": min(height, TALLEST),
                "deviceScaleFactor": 1,
                "mobile": False,
            },
        )
        png = driver.get_screenshot_as_png()
    out.write_bytes(png)
    if len(png) > LIMIT:
        raise SystemExit(f"{out} is {len(png)} bytes, more than {LIMIT}")
    return len(png)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder of the PNGs")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for the demo")
    options = parser.parse_args()
    logs.setup("warning")  # not a line per reading of the week written first
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        config = demo_copy(Path(folder), port)
        write_history(config)
        base = f"http://127.0.0.1:{port}"
        log = Path(folder) / "daemon.log"
        with log.open("wb") as written:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(config), "run"],
                stdout=written,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_demo(base, daemon, log, options.timeout)
            for path, size, name in (
                ("/", DESKTOP, "overview.png"),
                ("/", PHONE, "overview-phone.png"),
                ("/lines/travel", DESKTOP, "line.png"),
            ):
                written = shoot(base, path, size, options.out / name)
                print(f"{options.out / name}: {written} bytes")
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)


if __name__ == "__main__":
    main()
