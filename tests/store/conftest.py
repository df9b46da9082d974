"""Store fixtures: a database as an older version of the monitor left it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlite_utils import Database, Migrations

from monitor.store import schema


@pytest.fixture
def database_before(tmp_path: Path) -> Callable[[str], Path]:
    """A database file migrated up to, but not including, the named step."""

    def build(step_name: str) -> Path:
        older = Migrations(schema.MIGRATION_SET)
        for step in schema.STEPS[: schema.NAMES.index(step_name)]:
            older(name=step.name, transactional=step.transactional)(step.apply)
        path = tmp_path / "old.db"
        db = Database(path)
        older.apply(db)
        db.close()
        return path

    return build
