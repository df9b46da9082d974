"""The string tables that must agree stay in agreement (as sqlite-utils checks its docs):
event types, their headlines and Apprise notify types, template variables and the CLI,
each against the code and the README a user reads."""

from __future__ import annotations

import argparse
import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from parsers import commands

from monitor import notify
from monitor.cli import build_parser
from monitor.config import Settings
from monitor.model import EVENT_TYPES, Event

README = Path(__file__).resolve().parent.parent / "README.md"
CODE = re.compile(r"`([^`]+)`")


def _section(heading: str) -> str:
    """The README's text from `heading` to the next heading of its level or above."""
    text = README.read_text()
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2 :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, re.M)]
    return rest[: ends[0]] if ends else rest


def _first_cells(text: str) -> Iterator[str]:
    """The first cell of each body row of the Markdown tables in `text`."""
    rows = text.splitlines()
    for i, row in enumerate(rows):
        header = i + 1 < len(rows) and rows[i + 1].startswith("|---")
        if row.startswith("|") and not row.startswith("|---") and not header:
            yield re.split(r"(?<!\\)\|", row)[1].strip()


# ---- event types ------------------------------------------------------------------------


def test_the_readme_lists_every_event_type_in_order() -> None:
    """Users route events by these names: the README's list is the model's, in its order."""
    text = README.read_text()
    section = text.split("**Event types**", 1)[1].split("\n\n", 1)[0]
    listed = CODE.findall(section.split(":", 1)[1].split(" (the daemon", 1)[0])
    assert listed == list(EVENT_TYPES)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_event_type_has_a_headline_and_a_notify_type(kind: str) -> None:
    """Listed explicitly: a new event type without them fails here, not by a silent
    fallback (`{label}: {event}`, Apprise's INFO) in someone's phone."""
    assert kind in notify._HEADLINES
    assert kind in notify._NOTIFY_TYPES


def test_no_headline_or_notify_type_for_an_event_type_that_does_not_exist() -> None:
    assert set(notify._HEADLINES) <= set(EVENT_TYPES)
    assert set(notify._NOTIFY_TYPES) <= set(EVENT_TYPES)


def test_headlines_use_only_documented_variables() -> None:
    """A headline is a template too: a variable the code does not offer renders empty."""
    documented = set(notify.TEMPLATE_VARIABLES)
    templates = [*notify._HEADLINES.values(), notify._IMPROVED, notify._ESCALATED]
    for template in templates:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        assert used <= documented, (template, used - documented)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_event_type_that_may_be_grouped_has_a_grouped_headline(kind: str) -> None:
    """A grouped message's headline is listed per type too, with documented variables."""
    if kind in notify.NEVER_GROUPED:
        assert kind not in notify._GROUP_HEADLINES
        return
    template = notify._GROUP_HEADLINES[kind]
    used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    assert "count" in used and used <= set(notify.TEMPLATE_VARIABLES), template


# ---- template variables -------------------------------------------------------------------


def _readme_variables() -> set[str]:
    table = _section("### `[channels.NAME]`").split("Variables:", 1)[1]
    return {name for cell in _first_cells(table) for name in CODE.findall(cell)}


def test_the_readme_documents_every_template_variable_and_no_other() -> None:
    offered = set(notify.TEMPLATE_VARIABLES) | {"EVENT"}
    documented = _readme_variables()
    assert offered - documented == set(), "offered but not in the README's table"
    assert documented - offered == set(), "in the README's table but not offered"


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_templates_are_given_exactly_the_documented_variables(kind: str) -> None:
    """What `variables()` hands a template (beyond the event's own facts) is the table
    that config validation accepts: nothing offered that a template may not name."""
    settings = Settings.model_validate({"lines": {"a": {"adapter": "demo"}}})
    event = Event(kind, "a", datetime(2026, 12, 3, 12, 0, tzinfo=UTC), {})
    assert set(notify.variables(event, settings)) == set(notify.TEMPLATE_VARIABLES) | {"EVENT"}


# ---- the CLI --------------------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and not isinstance(action, argparse._HelpAction)
    }


def _readmecommands() -> dict[tuple[str, ...], list[str]]:
    """The CLI reference: each row's synopsis by the command words it starts with; the
    usage line above the table under ()."""
    section = _section("## CLI reference")
    usage = CODE.search(section)
    assert usage is not None and usage.group(1).startswith("esim-monitor ")
    rows: dict[tuple[str, ...], list[str]] = {(): [usage.group(1)]}
    for cell in _first_cells(section):
        (synopsis,) = CODE.findall(cell)
        words: list[str] = []
        for word in synopsis.split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        rows.setdefault(tuple(words), []).append(synopsis)
    return rows


def _is_group(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def test_every_cli_command_and_option_is_in_the_readme() -> None:
    """Walks the real parser: each command that runs something has a row (or rows: the
    forms of `run` and `recharge`), and each of its options is in one of them."""
    rows = _readmecommands()
    root = build_parser()
    everywhere = _options(root) - {"--version"}  # the global options, also after a command
    for path, parser in commands(root):
        if path and _is_group(parser):
            continue  # `config`, `notify`: their subcommands have the rows
        if path:
            synopses = [s for key, found in rows.items() if key[: len(path)] == path for s in found]
        else:
            synopses = rows[()]
        name = " ".join(path) or "esim-monitor"
        assert synopses, f"`{name}` is not in the README's CLI reference"
        written = {w for s in synopses for w in re.findall(r"--[a-z][a-z-]*", s)}
        missing = _options(parser) - written - (everywhere if path else set())
        assert not missing, f"`{name}`: options not in the README's CLI reference: {missing}"


def test_the_readme_documents_no_command_the_cli_lacks() -> None:
    """Each row names a command that runs something (`recharge history` is `recharge`
    with its `history` form)."""
    parsers = dict(commands(build_parser()))
    for key in _readmecommands():
        if not key:
            continue
        known = max(
            (key[:n] for n in range(len(key), 0, -1) if key[:n] in parsers), key=len, default=()
        )
        assert known and not _is_group(parsers[known]), f"`{' '.join(key)}` is no command"


# ---- metrics --------------------------------------------------------------------------------


def test_the_readme_lists_every_metric_the_endpoint_serves() -> None:
    """Dashboards are written from the README's table: it names each of our series, and
    each of its names is served (with every figure known and every counter counted)."""
    from monitor import metrics
    from monitor.counters import Counters

    counters = Counters()
    counters.check("ok")
    line = metrics.LineSnapshot(
        "a",
        "A",
        balance=1,
        data_remaining_bytes=1,
        data_total_bytes=1,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        last_check_at=datetime(2030, 1, 1, tzinfo=UTC),
        last_success_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    health = metrics.Health(1.0, datetime(2030, 1, 1, tzinfo=UTC), 0)
    snapshot = metrics.Snapshot([line], health, ("phone",))
    text = metrics.Exposition(lambda: snapshot, counters).render().decode()
    served = {
        row.split(" ")[2] for row in text.splitlines() if row.startswith("# TYPE esim_monitor_")
    }
    listed = {cell.strip("`") for cell in _first_cells(_section("## Metrics (Prometheus)"))}
    assert listed == served


# ---- docs/scale.md --------------------------------------------------------------------------


def test_the_sample_alertmanager_config_in_docs_scale_is_valid(tmp_path: Path) -> None:
    """The Alertmanager config people copy from docs/scale.md passes Alertmanager's own
    check (amtool, from the prometheus-alertmanager package the suite runs)."""
    import shutil
    import subprocess

    text = (README.parent / "docs" / "scale.md").read_text()
    (sample,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "inhibit_rules" in b]
    path = tmp_path / "alertmanager.yml"
    path.write_text(sample)
    amtool = shutil.which("amtool")
    assert amtool, "amtool is missing (.ci/run installs prometheus-alertmanager)"
    done = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_phone_sections_config_loads_with_and_without_the_relay(tmp_path: Path) -> None:
    """What "A line that lives in a phone" tells a person to write: its plan config, then
    the relay's blocks and the two keys step 5 adds to the line, each a valid config."""
    from monitor.config import load

    section = _section("## A line that lives in a phone")
    plan, relay = re.findall(r"```toml\n(.*?)```", section, re.S)
    path = tmp_path / "config.toml"
    path.write_text(plan)
    settings = load(path)
    assert settings.lines["phone"].adapter == "plan"
    keys = re.findall(r"`(relay_senders = \[.*?\])`|`(relay_preset = \"[a-z-]+\")`", section)
    added = "\n".join(a or b for a, b in keys)
    assert "relay_senders" in added and "relay_preset" in added
    relay_text = "\n".join(line.strip() for line in relay.splitlines())
    path.write_text(plan.replace("[lines.phone]\n", f"[lines.phone]\n{added}\n") + relay_text)
    settings = load(path)
    assert settings.lines["phone"].relay_preset == "t-mobile-sms"
    assert settings.http.listen and settings.channels["texts"].events == ["relay"]


# ---- Quick start ----------------------------------------------------------------------------


def test_the_quick_start_runs_the_demo_and_its_one_pass_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first command a newcomer pastes ends in `esim-monitor demo`, which works from
    any folder (no checkout path); its one pass (`--once`) exits 0 and leaves nothing."""
    import tempfile

    from monitor.cli import main

    demo_block, tests_block = re.findall(r"```sh\n(.*?)```", _section("## Quick start"), re.S)[:2]
    command = demo_block.strip().split(" && ")[-1].split()
    assert command[:2] == [".venv/bin/esim-monitor", "demo"], demo_block
    assert tests_block.strip().endswith(".venv/bin/pytest")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main([*command[1:], "--once"]) == 0
    assert "a fresh database in" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_quick_starts_own_line_is_one_line_and_one_channel(tmp_path: Path) -> None:
    """The path from the demo to one's own line: a real config (it validates, adapters and
    Apprise included), one line, one channel that is no terminal, and the commands after it
    name that file."""
    from monitor.cli import load_settings

    section = _section("### Your own line")
    (config,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    (commands,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    path = tmp_path / "config.toml"
    path.write_text(config)
    settings = load_settings(path)
    assert len(settings.lines) == 1 and len(settings.channels) == 1
    (channel,) = settings.channels.values()
    assert not channel.url.get_secret_value().startswith("console://")
    assert [c.split()[1:3] for c in commands.strip().splitlines()] == [
        ["--config", "config.toml"]
    ] * 3


def test_one_polkit_rule_in_the_docs() -> None:
    """The rule the modem lines need lives in docs/modems.md; the other pages point to it."""
    pages = [README, *sorted((README.parent / "docs").glob("*.md"))]
    texts = {page.name: page.read_text() for page in pages}
    holding = [name for name, text in texts.items() if "polkit.addRule" in text]
    assert holding == ["modems.md"] and texts["modems.md"].count("polkit.addRule") == 1
    assert "modems.md#what-the-host-needs" in texts["systemd.md"]


def test_the_carriers_table_lists_every_preset_and_every_unsupported_carrier() -> None:
    from monitor.adapters.ussd_replies import NOT_SUPPORTED, PRESETS

    text = (README.parent / "docs" / "modems.md").read_text()
    table = text[text.index("\n## Carriers\n") : text.index("\n## Adding a preset\n")]
    rows = {
        line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")
    }
    for name in PRESETS:
        assert any(f"(preset `{name}`)" in row for row in rows.values()), name
    for carrier in NOT_SUPPORTED:
        assert "not supported yet" in rows[carrier], carrier
