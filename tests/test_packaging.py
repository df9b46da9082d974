"""The wheel holds what the docs install: a wheel install needs no checkout.

Builds the wheel with pip (hatchling comes from the index pip is configured with) and reads
its file list. Each file the README or docs/ tell a person to copy from the checkout must be
in it, identical, under the name the code reads it by.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHIPPED = {
    "systemd/esim-monitor.service": "monitor/esim-monitor.service",
    "systemd/modem.conf": "monitor/modem.conf",
    "config/example.toml": "monitor/example.toml",
    "config/demo.toml": "monitor/demo.toml",
}
"""A repository file the docs name -> its copy in the wheel."""
CHECKOUT_PATH = re.compile(r"(?<![\w/.-])((?:systemd|config)/[\w.-]+\.\w+)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("esim_monitor-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def _shell_blocks(path: Path) -> list[str]:
    return re.findall(r"```(?:sh|bash|console)\n(.*?)```", path.read_text(), re.S)


def test_the_wheel_ships_the_unit_the_dropin_and_the_configs(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for source, shipped in SHIPPED.items():
        assert shipped in names, f"{source} is not in the wheel"
        assert wheel.read(shipped) == (ROOT / source).read_bytes(), f"{shipped} differs"
    assert "monitor/http/static/style.css" in names


def test_the_wheel_carries_the_licence(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    dist_info = metadata.rsplit("/", 1)[0]
    assert wheel.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    headers = wheel.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_every_file_the_docs_copy_from_the_checkout_is_shipped() -> None:
    """A command block that copies `systemd/x` or `config/x` works from a wheel only when
    the wheel has it (and a command prints it); the list above must name each."""
    named = {
        found
        for path in DOCS
        for block in _shell_blocks(path)
        for found in CHECKOUT_PATH.findall(block)
    }
    assert named <= set(SHIPPED), named - set(SHIPPED)


def test_the_checkout_path_pattern_finds_only_checkout_paths() -> None:
    text = "install -m 0644 systemd/modem.conf /etc/systemd/system/x.d/modem.conf config/a.toml"
    assert CHECKOUT_PATH.findall(text) == ["systemd/modem.conf", "config/a.toml"]
