"""The test suite's own layout: fakes and helpers live in their own modules
(tests/adapters/fakes/, tests/fake_*.py, tests/logwait.py), so no test module imports
another test module (or a conftest) and the fixtures a module declares stay its own."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def module_stems(root: Path) -> set[str]:
    """The names under which pytest imports the test modules and conftests below root."""
    return {path.stem for path in root.rglob("*.py") if is_test_module(path)}


def is_test_module(path: Path) -> bool:
    return path.stem.startswith("test_") or path.stem == "conftest"


def imports_of_test_modules(root: Path) -> list[str]:
    """Every import, in any file below root, that names a test module or conftest."""
    names = module_stems(root)
    found = []
    for path in sorted(root.rglob("*.py")):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                modules = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                if names & set(module.split(".")):
                    found.append(f"{path.relative_to(root)}:{node.lineno} imports {module}")
                    break
    return found


def test_no_test_module_imports_another() -> None:
    assert imports_of_test_modules(TESTS) == []


def test_the_check_finds_such_an_import(tmp_path: Path) -> None:
    """Each form an import of a test module can take is found; fakes and helpers are not."""
    (tmp_path / "adapters" / "fakes").mkdir(parents=True)
    (tmp_path / "adapters" / "test_acme.py").write_text("X = 1\n")
    (tmp_path / "adapters" / "fakes" / "acme.py").write_text("Y = 2\n")
    (tmp_path / "test_one.py").write_text("import test_acme\n")
    (tmp_path / "test_two.py").write_text("from test_acme import X\n")
    (tmp_path / "test_three.py").write_text("from tests.adapters import test_acme\n")
    (tmp_path / "test_four.py").write_text("from conftest import serve\n")
    (tmp_path / "test_five.py").write_text("import fakes.acme\nfrom fakes.acme import Y\n")
    (tmp_path / "conftest.py").write_text("import pytest\n")
    assert imports_of_test_modules(tmp_path) == [
        "test_four.py:1 imports conftest",
        "test_one.py:1 imports test_acme",
        "test_three.py:1 imports tests.adapters.test_acme",
        "test_two.py:1 imports test_acme",
    ]
