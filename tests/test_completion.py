"""The completion scripts, run in the real shells: after each command path typed so far,
each shell offers exactly that command's subcommands, an option's choices, and file names
for a path. bash, zsh and fish must be installed (.ci/run installs zsh and fish); outside CI
a missing shell skips its cases.

zsh's completion system needs a terminal to run whole, so its case stands in `_describe`,
`compadd`, `_files` and `_message` (zsh's own functions) by ones that print what they are
given; the script's own logic runs as it would, and compinit must find it on $fpath.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from parsers import commands

from monitor import completion
from monitor.cli import build_parser, main

CASES = {
    # typed words -> exactly the words a shell must offer next
    ("--log-level",): {"debug", "info", "warning", "error", "critical"},
    ("history", "--format"): {"table", "csv", "json"},
    ("--config", "x.toml", "completion"): {"bash", "zsh", "fish"},
    ("status", "--log-format"): {"auto", "console", "json"},
}


def _children() -> dict[tuple[str, ...], set[str]]:
    """Each command with subcommands -> their names."""
    found: dict[tuple[str, ...], set[str]] = {}
    for path, _ in commands(build_parser()):
        if path:
            found.setdefault(path[:-1], set()).add(path[-1])
    return found


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must install {name}: apt-get install -y {name}")
        pytest.skip(f"{name} is not installed")
    return path


def _script(shell: str, tmp_path: Path) -> Path:
    path = tmp_path / f"esim-monitor.{shell}"
    path.write_text(completion.render(build_parser(), shell))
    return path


def _offers(output: str) -> dict[str, set[str]]:
    """The harness prints `@typed words` and then one offered word a line."""
    found: dict[str, set[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("@"):
            current = line[1:]
            found[current] = set()
        else:
            found[current].add(line.split("\t", 1)[0].split(":", 1)[0])
    return found


def _typed() -> list[tuple[str, ...]]:
    return [*_children(), *CASES]


def _check(offers: dict[str, set[str]]) -> None:
    for typed, names in _children().items():
        assert offers[" ".join(typed)] == names, typed
    for typed, words in CASES.items():
        assert offers[" ".join(typed)] == words, typed


BASH_TRY = """
try() {  # the words typed, the last one being completed
    COMP_WORDS=(esim-monitor "$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
    _esim_monitor; printf '@%s\\n' "${*:1:$#-1}"; printf '%s\\n' "${COMPREPLY[@]}"
}
"""


def _bash(tmp_path: Path, *calls: str) -> str:
    lines = [f"source {_script('bash', tmp_path)}", BASH_TRY, f"cd {tmp_path}", *calls]
    done = subprocess.run(
        [_shell("bash"), "--norc", "-c", "\n".join(lines)], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


def test_bash_offers_every_command_and_choice(tmp_path: Path) -> None:
    calls = [f"try {' '.join(typed)} ''" for typed in _typed()]
    _check(_offers(_bash(tmp_path, *calls)))


def test_bash_completes_a_path_option_with_file_names(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("")
    offers = _offers(_bash(tmp_path, "try --config mi", "try report --png mi", "try status --j"))
    assert offers == {
        "--config": {"mine.toml"},
        "report --png": {"mine.toml"},
        "status": {"--json"},
    }


def test_fish_offers_every_command_and_choice(tmp_path: Path) -> None:
    fish = _shell("fish")
    script = _script("fish", tmp_path)
    assert subprocess.run([fish, "-n", str(script)], capture_output=True).returncode == 0
    lines = [f"source {script}"]
    for typed in _typed():
        words = " ".join(typed)
        lines.append(f"echo '@{words}'; complete -C 'esim-monitor {words} '")
    done = subprocess.run(
        [fish, "--no-config", "-c", "\n".join(lines)], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    _check(_offers(done.stdout))
    options = subprocess.run(
        [fish, "--no-config", "-c", f"source {script}; complete -C 'esim-monitor status --'"],
        capture_output=True,
        text=True,
    )
    assert "--json" in _offers("@\n" + options.stdout)[""]


ZSH_STUBS = """
compdef() { : }
_describe() { print -rl -- "${(@P)4}" }
compadd() { shift; print -rl -- "$@" }
_files() { print -r -- "<files>" }
_message() { print -r -- "<message>" }
try() {
    words=(esim-monitor "$@" ""); CURRENT=${#words}; PREFIX=""; print -r -- "@$*"; _esim_monitor
}
"""


def test_zsh_offers_every_command_and_choice(tmp_path: Path) -> None:
    zsh = _shell("zsh")
    script = _script("zsh", tmp_path)
    assert subprocess.run([zsh, "-n", str(script)], capture_output=True).returncode == 0
    lines = [ZSH_STUBS, f"source {script}"]
    lines += ["try " + " ".join(typed) for typed in _typed()]
    lines.append("try report --png")
    done = subprocess.run([zsh, "-f", "-c", "\n".join(lines)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr, done.stderr
    offers = _offers(done.stdout)
    _check(offers)
    assert offers["report --png"] == {"<files>"}


def test_zsh_finds_the_script_on_fpath(tmp_path: Path) -> None:
    """Installed as `_esim-monitor` in a folder of $fpath, compinit ties it to the command."""
    folder = tmp_path / "functions"
    folder.mkdir()
    (folder / "_esim-monitor").write_text(completion.render(build_parser(), "zsh"))
    command = f"fpath=({folder} $fpath); autoload -U compinit; compinit -D -u; "
    command += "print -r -- ${_comps[esim-monitor]}"
    done = subprocess.run([_shell("zsh"), "-f", "-c", command], capture_output=True, text=True)
    assert done.stdout.strip() == "_esim-monitor", done.stderr


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_every_command_and_option_is_in_each_script(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    for path, parser in commands(build_parser()):
        if path:
            word = rf"(?<![\w-]){re.escape(path[-1])}(?![\w-])"
            assert re.search(word, text), (shell, path)
        for action in parser._actions:
            for flag in action.option_strings:
                word = flag.lstrip("-") if shell == "fish" else flag
                assert word in text, (shell, path, flag)


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "tcsh"]) == 2
    assert "invalid choice" in capsys.readouterr().err
