"""The crash suite (bench/crash.py): 30 SIGKILLs of a running daemon at random moments, each
followed by checks of readings, alerts, top-ups and the database's integrity.

Slow (about a minute and a half), so behind the `slow` marker: the default run deselects
it and `.ci/run` runs it after the README's test command (`pytest -m slow`). The suite
runs as the script a person runs, in its own process, so what it reports is the figure a
benchmark run would give; its report explains every violation it finds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 30


@pytest.mark.slow
def test_random_sigkills_lose_and_double_nothing(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "crash.py"), f"--trials={TRIALS}"]
    command += ["--seed=11", f"--dir={tmp_path}", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["violations"] == [], json.dumps(report, indent=2)
    assert report["trials"] == TRIALS and report["kills"] == TRIALS
    # the checks had something to check
    assert report["readings_checks"] > 0 and report["deliveries_total"] > 0
    # after every kill but perhaps the first (killed before the database existed) and the end
    assert report["topups_run"] > 0 and report["integrity_checks"] >= TRIALS
    assert report["doubles"] == report["in_flight_resends"]
