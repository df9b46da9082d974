"""Third parties add carriers with a package that registers an adapter under the
`esim_monitor.adapters` entry-point group. These tests install a tiny distribution the way
pip leaves one (a `*.dist-info` folder beside its module) on sys.path, and find it."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from monitor import adapters, config
from monitor.cli import load_settings, main
from monitor.cycle import Checker

MODULE = "esim_monitor_acme_carrier"

ADAPTER_SOURCE = '''
"""A third party's carrier adapter."""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from monitor.adapters import Adapter
from monitor.model import Reading, utcnow


class AcmeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    msisdn: str
    balance: Decimal = Decimal("4.20")


class AcmeAdapter(Adapter):
    name = "acme-carrier"
    description = "Acme Mobile prepaid lines (third-party package)."
    Options = AcmeOptions

    def read(self) -> Reading:
        return Reading(
            line=self.line_id,
            checked_at=utcnow(),
            balance=self.options.balance,
            currency="EUR",
            raw={"msisdn": self.options.msisdn},
        )


class NotAnAdapter:
    pass
'''


def install(root: Path, entry_points: str, module_source: str | None = ADAPTER_SOURCE) -> None:
    """A distribution as an installer leaves it: the module, and its dist-info metadata."""
    if module_source is not None:
        (root / f"{MODULE}.py").write_text(module_source)
    info = root / "esim_monitor_acme_carrier-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: esim-monitor-acme-carrier\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points).lstrip())


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for this test only; its module is forgotten afterwards."""
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop(MODULE, None)


def test_entry_point_is_found_loaded_and_configured(
    site: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    install(site, f"[esim_monitor.adapters]\nacme-carrier = {MODULE}:AcmeAdapter\n")

    assert adapters.available()["acme-carrier"] == f"{MODULE}:AcmeAdapter"
    cls = adapters.load("acme-carrier")
    assert issubclass(cls, adapters.Adapter) and cls.name == "acme-carrier"

    path = write_config(
        '[lines.abroad]\nadapter = "acme-carrier"\nmsisdn = "+4915112345678"\nbalance = 3.5\n'
    )
    settings = load_settings(path)  # deep: every adapter's options validated
    checker = Checker(settings)
    try:
        [result] = checker.read(["abroad"])
    finally:
        checker.close()
    assert result.error is None
    assert result.reading is not None
    assert result.reading.balance == Decimal("3.5") and result.reading.currency == "EUR"

    assert main(["adapters", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["acme-carrier"]["description"].startswith("Acme Mobile")
    assert rows["acme-carrier"]["options"]["msisdn"]["required"] is True


def test_third_party_options_are_validated_with_the_config(
    site: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    install(site, f"[esim_monitor.adapters]\nacme-carrier = {MODULE}:AcmeAdapter\n")
    path = write_config('[lines.abroad]\nadapter = "acme-carrier"\nmsisdn_typo = "+49"\n')
    assert main(["--config", str(path), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert "lines.abroad.msisdn" in err and "required key is missing" in err
    assert "lines.abroad.msisdn_typo" in err and "unknown key" in err


def test_a_package_cannot_replace_a_builtin_adapter(site: Path) -> None:
    install(site, f"[esim_monitor.adapters]\ndemo = {MODULE}:AcmeAdapter\n")
    assert adapters.available()["demo"] == adapters.BUILTIN["demo"]
    assert adapters.load("demo").__module__ == "monitor.adapters.demo"


@pytest.mark.parametrize(
    ("target", "source", "message"),
    [
        (f"{MODULE}:NotAnAdapter", ADAPTER_SOURCE, "is not an esim-monitor Adapter"),
        (f"{MODULE}:Missing", ADAPTER_SOURCE, "cannot be loaded"),
        ("esim_monitor_no_such_module:Adapter", None, "cannot be loaded"),
    ],
)
def test_broken_packages_are_config_problems(
    site: Path,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    target: str,
    source: str | None,
    message: str,
) -> None:
    install(site, f"[esim_monitor.adapters]\nbroken = {target}\n", source)
    assert "broken" in adapters.available()
    path = write_config('[lines.x]\nadapter = "broken"\n')
    assert main(["--config", str(path), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert "lines.x.adapter" in err and message in err


def test_unknown_adapter_lists_what_is_installed(
    site: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    install(site, f"[esim_monitor.adapters]\nacme-carrier = {MODULE}:AcmeAdapter\n")
    path = write_config('[lines.x]\nadapter = "acme"\n')
    assert main(["--config", str(path), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert "unknown adapter 'acme'" in err
    for name in ("acme-carrier", "command", "demo", "http_json"):
        assert name in err


def test_the_binary_size_table_agrees_with_each_builtin_adapter() -> None:
    for name in adapters.BUILTIN:
        expected = "binary" if name in adapters.BINARY_SIZES else "decimal"
        assert adapters.load(name).sizes == expected, name


def test_a_line_may_say_how_its_provider_counts(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[lines.a]\nadapter = "demo"\nbalance = 1\n'
        '[lines.b]\nadapter = "demo"\nbalance = 1\nsizes = "binary"\n'
    )
    settings = config.load(path)
    assert adapters.line_sizes(settings, "a") == "decimal"
    assert adapters.line_sizes(settings, "b") == "binary"
