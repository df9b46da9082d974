"""Lock files beside the database: one holder at a time, a bounded wait, a private file."""

from __future__ import annotations

from pathlib import Path

from monitor.locks import file_lock


def test_a_held_lock_makes_the_next_holder_wait_its_bound_and_give_up(tmp_path: Path) -> None:
    path = tmp_path / "history.db.recharge.lock"
    # the second is a separate open of the file: flock refuses it as another process's
    with file_lock(path, 0) as first, file_lock(path, 0.2, poll=0.05) as second:
        assert first and not second
    with file_lock(path, 0) as again:
        assert again  # released on leaving
    assert path.stat().st_mode & 0o777 == 0o600
