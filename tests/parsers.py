"""Walking the CLI's argparse parser: every command path with its own parser (the docs,
completion, man page and help tests each check something of all of them)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The parser itself (path ()), then every command and subcommand with its parser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def actions(parser: argparse.ArgumentParser) -> Iterator[tuple[tuple[str, ...], argparse.Action]]:
    """Every option and argument of every command (not the subcommand lists themselves)."""
    for path, command in commands(parser):
        for action in command._actions:
            if not isinstance(action, argparse._SubParsersAction):
                yield path, action
