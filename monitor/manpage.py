"""The man page, esim-monitor(1), generated from the argparse parser in roff (man(7)).

`esim-monitor manpage` prints it, so it always lists the commands and options the program
has; the prose around them (exit status, environment, files) is kept here, in step with the
README's. The output has no date, so the same version prints the same page.
"""

from __future__ import annotations

import argparse

from monitor import __version__
from monitor.completion import Command, Option, model
from monitor.errors import EXIT_CONFIG, EXIT_DATABASE, EXIT_FAILURE, EXIT_OK, EXIT_USAGE

EXIT_STATUS = (
    (EXIT_OK, "success"),
    (
        EXIT_FAILURE,
        "a runtime failure: a locked database, a failed check or delivery in check or notify "
        "test, a refused top-up, another daemon holding the database's lock",
    ),
    (EXIT_USAGE, "usage: an unknown command, line or channel, a bad argument"),
    (
        EXIT_DATABASE,
        "the database is unusable: corrupt, written by a newer version, or not creatable",
    ),
    (EXIT_CONFIG, "the config is invalid: every problem is listed with the file and key path"),
)
ENVIRONMENT = (
    ("ESIM_MONITOR_CONFIG", "the config file when --config is not given"),
    (
        "ESIM_MONITOR_SECTION__KEY",
        "any config key, such as ESIM_MONITOR_CHANNELS__PHONE__URL; wins over the file",
    ),
    ("CREDENTIALS_DIRECTORY", "systemd credentials: each file NAME is the config key a__b__c"),
    ("STATE_DIRECTORY", "the database's folder when [monitor] database is unset (systemd)"),
    ("XDG_STATE_HOME", "else the database is $XDG_STATE_HOME/esim-monitor/history.db"),
    ("ESIM_MONITOR_DEBUG", "set to 1: print a traceback with an error"),
    ("NO_COLOR", "set: no colour on the terminal"),
)
FILES = (
    ("/etc/esim-monitor/config.toml", "the config file by default"),
    ("/var/lib/esim-monitor/history.db", "the database under the shipped systemd unit"),
    ("~/.local/state/esim-monitor/history.db", "the database otherwise, by default"),
)
SEE_ALSO = "systemctl(1), journalctl(1), systemd.exec(5), systemd-creds(1)"


def _text(text: str) -> str:
    """Roff-safe running text: backslashes and hyphens escaped, no line starts a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in ".'" else line for line in text.splitlines())


def _option(option: Option) -> str:
    flags = ", ".join(f"\\fB{_text(f)}\\fR" for f in option.flags)
    if option.choices:
        flags += " \\fI{" + _text(",".join(option.choices)) + "}\\fR"
    elif option.metavar:
        flags += f" \\fI{_text(option.metavar)}\\fR"
    return f".TP\n{flags}\n{_text(option.help or '(no description)')}\n"


def _synopsis(command: Command, global_dests: set[str]) -> str:
    words = [f"\\fBesim\\-monitor {_text(command.key)}\\fR"]
    for option in command.options:
        if option.flags[-1] in global_dests or option.flags == ("-h", "--help"):
            continue
        word = f"\\fB{_text(option.flags[-1])}\\fR"
        if option.metavar:
            word += f" \\fI{_text(option.metavar)}\\fR"
        words.append(f"[{word}]")
    words += [f"\\fI{_text(p.metavar)}\\fR" for p in command.positionals]
    return " ".join(words)


def render(parser: argparse.ArgumentParser) -> str:
    root = model(parser)
    global_flags = {o.flags[-1] for o in root.options}
    out = [
        '.TH ESIM\\-MONITOR 1 "" "esim-monitor ' + __version__ + '" "User Commands"\n',
        ".nh\n",  # no hyphenation: paths and option names stay whole
        ".SH NAME\nesim\\-monitor \\- " + _text(root.help) + "\n",
        ".SH SYNOPSIS\n\\fBesim\\-monitor\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n",
        ".SH DESCRIPTION\n"
        + _text(
            "A daemon that asks each prepaid or eSIM line's carrier or provider for its money "
            "balance, remaining data and plan expiry on a schedule, keeps every reading in "
            "SQLite, and alerts through Apprise when a line runs low, recovers, or cannot be "
            "read. Configured by one TOML file; runs as a systemd service. The options below "
            "go before the command or after it."
        )
        + "\n",
        ".SH OPTIONS\n" + "".join(_option(o) for o in root.options),
        ".SH COMMANDS\n",
    ]
    for command in root.walk()[1:]:
        if command.subcommands:
            continue  # a group: its subcommands have the sections
        out.append(f'.SS "{_text(command.key)}"\n{_synopsis(command, global_flags)}\n.PP\n')
        out.append(_text(command.help) + "\n")
        for positional in command.positionals:
            if positional.help:
                out.append(f".TP\n\\fI{_text(positional.metavar)}\\fR\n{_text(positional.help)}\n")
        out += [_option(o) for o in command.options if o.flags[-1] not in global_flags]
    out.append(".SH EXIT STATUS\n")
    out += [f".TP\n\\fB{code}\\fR\n{_text(text)}\n" for code, text in EXIT_STATUS]
    out.append(".SH ENVIRONMENT\n")
    out += [f".TP\n\\fB{_text(name)}\\fR\n{_text(text)}\n" for name, text in ENVIRONMENT]
    out.append(".SH FILES\n")
    out += [f".TP\n\\fI{_text(name)}\\fR\n{_text(text)}\n" for name, text in FILES]
    out.append(".SH SEE ALSO\n" + _text(SEE_ALSO) + "\n")
    return "".join(out)
