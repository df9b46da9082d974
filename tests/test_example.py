"""`config example` (config/example.toml, shipped as monitor/example.toml) is honest: what
it leaves active is every default and nothing else, so as printed it watches nothing and
sends nowhere; each commented example (`#key = value`, no space after the #), uncommented,
makes a valid config with an example of every adapter; each provider says where its
credentials come from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor import adapters
from monitor.cli import load_settings, main
from monitor.config import Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example.toml"
COMMENTED_OUT = re.compile(r"^#(?=[^\s#])", re.M)
"""A commented-out line of config: a # right before it; prose has a space after the #."""


def uncommented(text: str) -> str:
    return COMMENTED_OUT.sub("", text)


def test_every_active_option_is_a_default() -> None:
    settings = load_settings(EXAMPLE)
    defaults = Settings.model_validate({})
    assert settings.monitor == defaults.monitor
    assert settings.defaults == defaults.defaults
    assert settings.recharge == defaults.recharge
    assert settings.http == defaults.http
    assert settings.lines == {} and settings.accounts == {}


def test_as_printed_it_sends_nowhere() -> None:
    """Its one channel prints on the terminal; every other is an example to edit."""
    channels = load_settings(EXAMPLE).channels
    assert list(channels) == ["terminal"]
    assert channels["terminal"].model_fields_set == {"url"}
    url = channels["terminal"].url
    assert (url.get_secret_value() if hasattr(url, "get_secret_value") else url) == "console://"


def test_every_example_uncommented_is_valid_and_every_adapter_has_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "all.toml"
    path.write_text(uncommented(EXAMPLE.read_text()))
    assert main(["--config", str(path), "config", "validate"]) == 0, capsys.readouterr().err
    settings = load_settings(path)
    shown = {a.provider for a in settings.accounts.values()}
    shown |= {line.adapter for line in settings.lines.values() if line.adapter}
    assert set(adapters.available()) <= shown
    assert {"phone", "mail", "sms", "am"} <= set(settings.channels)


def test_the_uncommenting_finds_config_and_leaves_prose() -> None:
    text = '# a comment\n#key = "v"\n#[table]\n#\n## heading\n#{label} is {state}\n'
    assert (
        uncommented(text) == '# a comment\nkey = "v"\n[table]\n#\n## heading\n{label} is {state}\n'
    )


def _account_sections(text: str) -> dict[str, str]:
    """Each `#[accounts.NAME]` example's provider -> the comment paragraph above it."""
    found = {}
    for match in re.finditer(
        r"((?:^# .*\n)+)#\[accounts\.[\w-]+\]\n#provider = \"(\w+)\"", text, re.M
    ):
        found[match[2]] = " ".join(line[2:] for line in match[1].splitlines())
    return found


def test_each_provider_says_where_its_credentials_come_from() -> None:
    sections = _account_sections(EXAMPLE.read_text())
    assert set(sections) == {
        "airalo",
        "esimgo",
        "1nce",
        "hologram",
        "twilio",
        "telnyx",
        "http_json",
    }
    for provider, text in sections.items():
        assert "Credentials:" in text, provider
    airalo = sections["airalo"]
    assert "for resellers" in airalo and "app customer" in airalo and "docs/phones.md" in airalo


def test_a_refill_code_goes_with_its_carrier(tmp_path: Path) -> None:
    """`*888*PIN#` is AT&T's refill-card code: only an AT&T line redeems with it."""
    path = tmp_path / "all.toml"
    path.write_text(uncommented(EXAMPLE.read_text()))
    for line in load_settings(path).lines.values():
        if line.recharge is not None and line.recharge.action == "ussd-pin":
            assert line.recharge.code.startswith("*888*")
            assert (line.model_extra or {}).get("preset") == "att-prepaid", line.label
