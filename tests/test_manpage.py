"""The man page: valid roff that groff renders without a warning, a section for every
command that runs something, each option in it, and the exit codes the CLI returns."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess

import pytest
from parsers import commands

from monitor import errors
from monitor.cli import build_parser, main


def _is_group(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


@pytest.fixture
def page(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["manpage"]) == 0
    return capsys.readouterr().out


def _sections(page: str) -> dict[str, str]:
    """Each command's `.SS` section, by its command words."""
    parts = re.split(r'^\.SS "(.+)"\n', page.split(".SH COMMANDS\n", 1)[1], flags=re.M)
    return {
        name.replace("\\-", "-"): body.split(".SH ", 1)[0]
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def test_groff_renders_it_without_a_warning(page: str) -> None:
    groff = shutil.which("groff")
    if groff is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install groff: apt-get install -y groff-base")
        pytest.skip("groff is not installed")
    done = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww"], input=page, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    text = re.sub(r".\x08", "", done.stdout)
    assert "esim-monitor config show [--json]" in text
    assert "EXIT STATUS" in text


def test_every_command_has_a_section_with_each_of_its_options(page: str) -> None:
    sections = _sections(page)
    root = build_parser()
    global_flags = {f for a in root._actions for f in a.option_strings}
    leaves = [(path, parser) for path, parser in commands(root) if path and not _is_group(parser)]
    assert set(sections) == {" ".join(path) for path, _ in leaves}
    for path, parser in leaves:
        body = sections[" ".join(path)].replace("\\-", "-")
        for action in parser._actions:
            for flag in set(action.option_strings) - global_flags:
                assert f"\\fB{flag}\\fR" in body, (path, flag)
    top = page.split(".SH COMMANDS", 1)[0].replace("\\-", "-")
    for flag in global_flags:
        assert f"\\fB{flag}\\fR" in top, flag


def test_it_lists_every_exit_code(page: str) -> None:
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    status = page.split(".SH EXIT STATUS\n", 1)[1].split(".SH ", 1)[0]
    assert set(map(int, re.findall(r"^\\fB(\d+)\\fR$", status, re.M))) == codes


def test_no_line_of_text_is_taken_for_a_request(page: str) -> None:
    """A help text starting with a dot or a quote would be read as a roff request."""
    for line in page.splitlines():
        if line.startswith((".", "'")):
            assert re.match(r"\.(TH|SH|SS|TP|PP|nh)\b", line), line
