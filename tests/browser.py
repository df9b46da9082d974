"""A real headless Chromium for the status page's end-to-end tests: Debian's `chromium`
and `chromium-driver` packages (`.ci/run` installs them), driven by Selenium. Playwright's
own browser download cannot be reached from our machines, so the system Chromium it is."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PHONE = (390, 844)
"""The viewport the page must fit without scrolling sideways (an iPhone 12 to 15)."""
DESKTOP = (1280, 900)


@contextmanager
def chromium(
    size: tuple[int, int] = DESKTOP, downloads: Path | None = None
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium at `size` (CSS pixels), closed afterwards. Missing packages
    fail the test with the command that installs them (never a skip: CI has them)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            raise RuntimeError(
                f"{path} not found: apt-get install chromium chromium-driver (see .ci/run)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--force-device-scale-factor=1",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # --window-size sets the window; the viewport is what the page is laid out in
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()
