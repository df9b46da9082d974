"""The store's door holds: outside `monitor/store/` no module speaks SQLite or reads a
stored form, so changing how a value is stored touches the store package alone."""

from __future__ import annotations

import ast
from pathlib import Path

import monitor

PACKAGE = Path(monitor.__file__).parent
SQLITE = {"sqlite3", "sqlite_utils"}
STORED_FORMS = {"ts", "parse_ts", "money", "parse_money", "parse_level", "parse_facts"}
"""The codec's names: text forms are the store's business (`store.clip` cuts text, and
`make_private_dirs`, `translate` are no forms)."""
PARSERS = {"fromisoformat", "strptime"}
"""Time parsers: only the store (its rows) and the adapters (providers' replies) read text."""


def problems(path: Path, source: str) -> list[str]:
    """What a module outside the store does that only the store may."""
    found = []
    inside_adapters = "adapters" in path.relative_to(PACKAGE).parts[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in SQLITE]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in SQLITE:
                found.append(f"imports {node.module}")
            elif node.module == "monitor.store.codec" or (
                node.module == "monitor.store" and any(a.name == "codec" for a in node.names)
            ):
                found.append("imports the store's codec")
            elif node.module == "monitor.store":
                found += [f"imports store.{a.name}" for a in node.names if a.name in STORED_FORMS]
        elif isinstance(node, ast.Attribute) and node.attr in PARSERS and not inside_adapters:
            found.append(f"parses text with {node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr == "conn":
            found.append("runs SQL on the store's connection")
    return [f"{path.relative_to(PACKAGE.parent)}: {p}" for p in found]


def test_no_module_outside_the_store_speaks_sqlite_or_reads_stored_text() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "store" not in path.relative_to(PACKAGE).parts[:1]:
            found += problems(path, path.read_text())
    assert found == []


def test_the_check_finds_each_kind_of_breach() -> None:
    outside = PACKAGE / "report.py"
    source = (
        "import sqlite3\nfrom sqlite_utils import Database\n"
        "from monitor.store import codec, parse_ts\nfrom monitor.store.codec import money\n"
        "when = datetime.fromisoformat(row[0])\n"
        "row = store.conn.execute('SELECT currency FROM readings').fetchone()\n"
    )
    assert [p.split(": ", 1)[1] for p in problems(outside, source)] == [
        "imports sqlite3",
        "imports sqlite_utils",
        "imports the store's codec",
        "imports the store's codec",
        "parses text with fromisoformat",
        "runs SQL on the store's connection",
    ]
    adapter = PACKAGE / "adapters" / "airalo.py"
    assert problems(adapter, "when = datetime.fromisoformat(text)\n") == []
    assert problems(outside, "from monitor.store import Store, parse_ts\n") == [
        "monitor/report.py: imports store.parse_ts"
    ]
