"""Benchmark the start-up of short commands on the bundled demo (issue 18).

    .venv/bin/python bench/startup.py [--runs 9]

An installed copy has its bytecode compiled, but the machines set PYTHONDONTWRITEBYTECODE=1:
so every process here runs with a private PYTHONPYCACHEPREFIX (in a temporary folder),
filled by one warm-up run of each command first. The demo config (config/demo.toml) is
copied to that folder and its database made there by `run --once` (the demo adapter: no
network), so nothing is written to the checkout. `--baseline DIR` also runs each command
with an older `monitor` package (DIR first on PYTHONPATH), interleaved in the same rounds,
so before and after are measured side by side; it reads the database this checkout made.

Then, in rounds (each round runs every command once, so other work on the machine falls
on all of them alike), it times whole processes (wall seconds, the median of `--runs`):
the peers `python -c pass` and `python -c "import sqlite3, json"`, and `esim-monitor
--help`, `status`, `history travel`, `events` and `config validate`: the median and the
least wall time, and the median CPU time (user + system, which other work on the machine
moves less). Each median is shown beside `python -c pass` (the ratio) and its target.
Last, one `-X importtime` run of each command names the heavy modules it imported and
its largest imports.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import benchlib

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "config" / "demo.toml"
HEAVY = ("apprise", "httpx", "numpy", "pydantic", "pydantic_settings", "sqlite_utils", "structlog")
"""Modules whose import a short command should not pay for unless it needs them."""
READ_TARGET_S = 0.30
HELP_TARGET_S = 0.15


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds, at most")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also time each command with the `monitor` package in DIR, in the same rounds "
        "(made with `git archive REV monitor | tar -x -C DIR`)",
    )
    args = parser.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "monitor" / "cli.py").is_file():
        parser.error(f"no monitor package in {args.baseline}")
    if not 1 <= args.runs <= 50:
        parser.error("runs: 1 to 50")
    return args


class Case(NamedTuple):
    name: str
    argv: list[str]
    target: float | None
    baseline: Path | None = None
    """Run with this folder first on PYTHONPATH (an older `monitor`), when set."""


def cases(config: Path, baseline: Path | None) -> list[Case]:
    """Every timed process, peers first; with a baseline, each command then runs twice."""
    cli = [*benchlib.esim_monitor(), "--config", str(config)]
    commands = [
        Case("esim-monitor --help", [*benchlib.esim_monitor(), "--help"], HELP_TARGET_S),
        Case("status", [*cli, "status"], READ_TARGET_S),
        Case("history travel", [*cli, "history", "travel"], READ_TARGET_S),
        Case("events", [*cli, "events"], READ_TARGET_S),
        Case("config validate", [*cli, "config", "validate"], None),
    ]
    out = [
        Case("python -c pass", [sys.executable, "-c", "pass"], None),
        Case(
            'python -c "import sqlite3, json"', [sys.executable, "-c", "import sqlite3, json"], None
        ),
    ]
    for case in commands:
        out.append(case)
        if baseline is not None:
            out.append(case._replace(name=f"{case.name} (baseline)", baseline=baseline))
    return out


def environment(prefix: Path, *, write: bool, baseline: Path | None = None) -> dict[str, str]:
    """This environment with the private bytecode cache; `write`: fill it (the warm-up)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if baseline is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(baseline), env.get("PYTHONPATH")]))
    return env


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def prepare(folder: Path) -> Path:
    """The demo config and a database of one demo pass, both in `folder`."""
    config = folder / "demo.toml"
    shutil.copyfile(DEMO, config)
    env = environment(folder / "pycache", write=True)
    run([*benchlib.esim_monitor(), "--config", str(config), "run", "--once"], env, folder)
    return config


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_all(
    table: list[Case], folder: Path, runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm the cache with one run of each, then `runs` rounds: wall seconds and CPU
    seconds (user + system: less moved by other work on the machine) per case."""
    prefix = folder / "pycache"
    for case in table:
        run(case.argv, environment(prefix, write=True, baseline=case.baseline), folder)
    times: dict[str, list[float]] = {case.name: [] for case in table}
    cpu: dict[str, list[float]] = {case.name: [] for case in table}
    for _ in range(runs):
        for case in table:
            env = environment(prefix, write=False, baseline=case.baseline)
            used = children_cpu()
            began = time.perf_counter()
            run(case.argv, env, folder)
            times[case.name].append(time.perf_counter() - began)
            cpu[case.name].append(children_cpu() - used)
    return times, cpu


def imports(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """What one run imports, from `-X importtime`: heavy modules, the largest imports."""
    if argv[0] != sys.executable:
        argv = [sys.executable, *argv]  # the venv script is a Python file
    done = run([argv[0], "-X", "importtime", *argv[1:]], env, cwd)
    modules = benchlib.import_times(done.stderr)  # name, depth, cumulative microseconds
    names = {name for name, _, _ in modules}
    heavy = [m for m in HEAVY if any(n == m or n.startswith(m + ".") for n in names)]
    top = sorted((m for m in modules if m[1] <= 1), key=lambda m: -m[2])[:6]
    return {
        "modules": len(names),
        "heavy": heavy,
        "import_ms": round(sum(m[2] for m in modules if m[1] == 0) / 1000, 1),
        "largest_ms": {name: round(us / 1000, 1) for name, _, us in top},
    }


def measure(runs: int, baseline: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="esim-monitor-startup-") as tmp:
        folder = Path(tmp)
        config = prepare(folder)
        table = cases(config, baseline and baseline.resolve())
        times, cpu = time_all(table, folder, runs)
        rows = []
        base = benchlib.median(times["python -c pass"])
        for name, argv, target, other in table:
            env = environment(folder / "pycache", write=False, baseline=other)
            median = benchlib.median(times[name])
            rows.append(
                {
                    "name": name,
                    "median_s": round(median, 3),
                    "min_s": round(min(times[name]), 3),
                    "cpu_s": round(benchlib.median(cpu[name]), 3),
                    "ratio": round(median / base, 1),
                    "target_s": target,
                    "met": None if target is None else median <= target,
                    "imports": imports(argv, env, folder),
                }
            )
    return {
        "machine": benchlib.machine(),
        "code": benchlib.code(),
        "calibration_ms": benchlib.calibrate(),
        "runs": runs,
        "baseline": str(baseline) if baseline else None,
        "rows": rows,
    }


def report(figures: dict[str, Any]) -> str:
    out = [
        f"bench/startup.py: the demo config, bytecode cached, medians of {figures['runs']} "
        f"runs ({figures['machine']})",
        f"  code: {figures['code']}; calibration loop {figures['calibration_ms']} ms",
        *([f"  (baseline): monitor from {figures['baseline']}"] if figures["baseline"] else []),
        "",
        f"  {'process':45} {'median':>8} {'min':>7} {'cpu':>7} {'x pass':>7} {'target':>8}  "
        f"{'imports':>9}  heavy modules imported",
    ]
    for row in figures["rows"]:
        target = "" if row["target_s"] is None else f"{row['target_s']:.2f} s"
        verdict = "" if row["met"] is None else (" met" if row["met"] else " MISSED")
        imp = row["imports"]
        out.append(
            f"  {row['name']:45} {row['median_s']:>6.3f} s {row['min_s']:>5.3f} s "
            f"{row['cpu_s']:>5.3f} s "
            f"{row['ratio']:>6.1f}x {target:>8}{verdict:7} {imp['import_ms']:>6.0f} ms  "
            + (", ".join(imp["heavy"]) or "none")
        )
    out += ["", "  largest imports, two levels deep (ms, one -X importtime run):"]
    for row in figures["rows"][2:]:
        largest = row["imports"]["largest_ms"]
        out.append(f"  {row['name']:45} " + ", ".join(f"{n} {ms}" for n, ms in largest.items()))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with benchlib.deadline(args.timeout, "bench/startup.py"):
        figures = measure(args.runs, args.baseline)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
