"""Shell completions (bash, zsh, fish) generated from the argparse parser.

`esim-monitor completion SHELL` prints one; made from the parser the program runs, so a new
command or option completes without anyone editing a script. The model (`Command`, `Option`)
is shared with the man page (`monitor.manpage`). Each script finds the command path typed so
far (skipping options and the values they take), then offers that command's subcommands or
options, an option's choices, or file names for an option whose value is a path.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh", "fish")
PROG = "esim-monitor"
PATH_METAVARS = {"PATH": "file", "FILE": "file", "DIR": "dir"}
"""An option whose metavar says it takes a path completes file (or folder) names."""


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    metavar: str | None  # None: a flag, it takes no value
    choices: tuple[str, ...] = ()

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None

    @property
    def completes(self) -> str | None:
        """ "file" or "dir" when the value is a path."""
        return PATH_METAVARS.get(self.metavar or "")


@dataclass(frozen=True)
class Positional:
    metavar: str
    help: str
    choices: tuple[str, ...] = ()


@dataclass
class Command:
    path: tuple[str, ...]
    help: str
    options: list[Option] = field(default_factory=list)
    positionals: list[Positional] = field(default_factory=list)
    subcommands: dict[str, Command] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return " ".join(self.path)

    def words(self) -> dict[str, str]:
        """What may come next that is no option, with its help: the subcommands, else the
        first positional's choices (`completion SHELL`)."""
        if self.subcommands:
            return {name: sub.help for name, sub in self.subcommands.items()}
        if self.positionals:
            first = self.positionals[0]
            return {choice: first.help for choice in first.choices}
        return {}

    def walk(self) -> list[Command]:
        """This command and every command below it, depth first."""
        return [self, *(c for sub in self.subcommands.values() for c in sub.walk())]


def _help(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    text = action.help or ""
    if "%" in text:  # argparse's own expansion: %(default)s, %(prog)s
        with contextlib.suppress(KeyError, TypeError, ValueError):
            text = text % {**vars(action), "prog": parser.prog}
    return " ".join(text.split())


def model(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Command:
    """The parser as plain records, every subcommand in the order it was added."""
    command = Command(path, " ".join((parser.description or "").split()))
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: _help(a, parser) for a in action._choices_actions}
            for name, sub in action.choices.items():
                child = model(sub, (*path, name))
                child.help = child.help or helps.get(name, "")
                command.subcommands[name] = child
        elif action.option_strings:
            metavar = None
            if action.nargs != 0:
                metavar = action.metavar if isinstance(action.metavar, str) else None
                metavar = metavar or action.dest.upper()
            choices = tuple(str(c) for c in action.choices or ())
            command.options.append(
                Option(tuple(action.option_strings), _help(action, parser), metavar, choices)
            )
        else:
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest
            choices = tuple(str(c) for c in action.choices or ())
            command.positionals.append(Positional(metavar, _help(action, parser), choices))
    return command


def render(parser: argparse.ArgumentParser, shell: str) -> str:
    root = model(parser)
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](root)


def _quote(text: str) -> str:
    """One single-quoted word for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_quote(text: str) -> str:
    """fish has no '\\'' trick: a backslash escapes a quote inside single quotes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _scan_cases(root: Command, style: str) -> list[str]:
    """The cases of the loop that walks the typed words: `KEY|WORD` moves to a subcommand,
    or says the option takes the next word as its value."""
    cases = []
    for command in root.walk():
        value_flags = [f for o in command.options if o.takes_value for f in o.flags]
        if value_flags:
            cases.append(([f"{command.key}|{f}" for f in value_flags], None))
        for name, sub in command.subcommands.items():
            cases.append(([f"{command.key}|{name}"], sub.key))
    out = []
    for patterns, target in cases:
        if style == "fish":
            action = "set skip 1" if target is None else f"set key {_fish_quote(target)}"
            out.append(f"            case {' '.join(_fish_quote(p) for p in patterns)}")
            out.append(f"                {action}")
        else:
            action = "skip=1" if target is None else f"key={_quote(target)}"
            opener = "(" if style == "zsh" else ""
            out.append(f"            {opener}{'|'.join(_quote(p) for p in patterns)}) {action} ;;")
    return out


BASH = """\
# bash completion for esim-monitor, generated from its parser by `esim-monitor completion bash`.
# Install: esim-monitor completion bash > /etc/bash_completion.d/esim-monitor
#   (or ~/.local/share/bash-completion/completions/esim-monitor), or source it from ~/.bashrc.

_esim_monitor() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local key="" word skip=0 i subs opts
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if ((skip)); then skip=0; continue; fi
        case "$key|$word" in
@SCAN@
        esac
    done
    if ((skip)); then
        case "$key|$prev" in
@VALUES@
        esac
        return
    fi
    case "$key" in
@LISTS@
    esac
    if [[ "$cur" == -* || -z "$subs" ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    fi
}
complete -o filenames -F _esim_monitor esim-monitor
"""


def bash(root: Command) -> str:
    values, lists = [], []
    for command in root.walk():
        for option in command.options:
            if not option.takes_value:
                continue
            pattern = "|".join(_quote(f"{command.key}|{f}") for f in option.flags)
            if option.choices:
                reply = f'COMPREPLY=($(compgen -W {_quote(" ".join(option.choices))} -- "$cur"))'
            elif option.completes == "dir":
                reply = 'COMPREPLY=($(compgen -d -- "$cur"))'
            elif option.completes == "file":
                reply = 'COMPREPLY=($(compgen -f -- "$cur"))'
            else:
                reply = "COMPREPLY=()"
            values.append(f"            {pattern}) {reply} ;;")
        subs = " ".join(command.words())
        opts = " ".join(f for o in command.options for f in o.flags)
        lists.append(f"        {_quote(command.key)}) subs={_quote(subs)} opts={_quote(opts)} ;;")
    return (
        BASH.replace("@SCAN@", "\n".join(_scan_cases(root, "bash")))
        .replace("@VALUES@", "\n".join(values))
        .replace("@LISTS@", "\n".join(lists))
    )


ZSH = """\
#compdef esim-monitor
# zsh completion for esim-monitor, generated from its parser by `esim-monitor completion zsh`.
# Install: esim-monitor completion zsh > "${fpath[1]}/_esim-monitor" (a folder on $fpath),
#   then start a new shell; or source it from ~/.zshrc after compinit.

_esim_monitor() {
    local key="" word skip=0 i prev="${words[CURRENT-1]}"
    local -a subs opts
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        if ((skip)); then skip=0; continue; fi
        case "$key|$word" in
@SCAN@
        esac
    done
    if ((skip)); then
        case "$key|$prev" in
@VALUES@
        esac
        return
    fi
    case "$key" in
@LISTS@
    esac
    if [[ "$PREFIX" == -* || ${#subs} -eq 0 ]]; then
        _describe -t options option opts
    else
        _describe -t commands command subs
    fi
}

if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then
    _esim_monitor "$@"
else
    compdef _esim_monitor esim-monitor
fi
"""


def _zsh_item(name: str, help: str) -> str:
    """NAME:DESCRIPTION for _describe, a colon in the name escaped."""
    return _quote(name.replace(":", "\\:") + ":" + help)


def zsh(root: Command) -> str:
    values, lists = [], []
    for command in root.walk():
        for option in command.options:
            if not option.takes_value:
                continue
            pattern = "|".join(_quote(f"{command.key}|{f}") for f in option.flags)
            if option.choices:
                reply = f"compadd -- {' '.join(_quote(c) for c in option.choices)}"
            elif option.completes == "dir":
                reply = "_files -/"
            elif option.completes == "file":
                reply = "_files"
            else:
                reply = f"_message {_quote(option.metavar or 'value')}"
            values.append(f"            ({pattern}) {reply} ;;")
        subs = [_zsh_item(n, h) for n, h in command.words().items()]
        opts = [_zsh_item(f, o.help) for o in command.options for f in o.flags]
        lists.append(
            f"        ({_quote(command.key)})\n"
            f"            subs=({' '.join(subs)})\n"
            f"            opts=({' '.join(opts)}) ;;"
        )
    return (
        ZSH.replace("@SCAN@", "\n".join(_scan_cases(root, "zsh")))
        .replace("@VALUES@", "\n".join(values))
        .replace("@LISTS@", "\n".join(lists))
    )


FISH = """\
# fish completion for esim-monitor, generated from its parser by `esim-monitor completion fish`.
# Install: esim-monitor completion fish > ~/.config/fish/completions/esim-monitor.fish

function __esim_monitor_key --description 'the esim-monitor command typed so far'
    set -l key ''
    set -l skip 0
    set -l typed (commandline -opc)
    set -e typed[1]
    for word in $typed
        if test $skip = 1
            set skip 0
            continue
        end
        switch "$key|$word"
@SCAN@
        end
    end
    echo $key
end

function __esim_monitor_at --description 'is the command typed so far this one'
    test (__esim_monitor_key) = "$argv[1]"
end

complete -c esim-monitor -f
"""


def fish(root: Command) -> str:
    lines = []
    for command in root.walk():
        at = f"-n {_fish_quote('__esim_monitor_at ' + _fish_quote(command.key))}"
        for name, help in command.words().items():
            lines.append(
                f"complete -c esim-monitor {at} -a {_fish_quote(name)} -d {_fish_quote(help)}"
            )
        for option in command.options:
            flags = " ".join(
                f"-l {_fish_quote(f[2:])}" if f.startswith("--") else f"-s {_fish_quote(f[1:])}"
                for f in option.flags
            )
            value = ""
            if option.choices:
                value = f" -x -a {_fish_quote(' '.join(option.choices))}"
            elif option.completes:
                value = " -r -F"
            elif option.takes_value:
                value = " -x"
            lines.append(
                f"complete -c esim-monitor {at} {flags}{value} -d {_fish_quote(option.help)}"
            )
    return FISH.replace("@SCAN@", "\n".join(_scan_cases(root, "fish"))) + "\n".join(lines) + "\n"
