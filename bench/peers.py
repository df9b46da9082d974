"""The project beside its peers on the same fake, in the same run (issue 18).

    .venv/bin/python bench/peers.py [--lines 1000] [--latency 0.1] [--runs 3] [--sequential]

One fake 1NCE provider (its own process, `--latency` per request) serves, in interleaved
rounds (medians of `--runs`), whole processes that each check every line once and write
the readings:

- the project: `esim-monitor run --once` on N lines of one account, no channels, a fresh
  database each round; its cycle is the "checks done" time it logs;
- `bench/peer_urllib3.py` with 64 threads over one urllib3 pool (token, GETs, JSON, one
  SQLite transaction), and with `--sequential` the same with one thread (up to 1,000
  lines: 10,000 would take 17 minutes at 100 ms);
- the ideal, ceil(N / 64) x latency: 64 requests in flight and nothing else.

CPU per check is a process's CPU time (user + system, from wait4) over N: the fake's is
not in it. Targets (issue 18): cycle <= 1.25 x ideal for 1,000 lines (1.2 x for 10,000),
the whole process <= 1.3 x the urllib3 peer's, <= 0.7 ms of CPU a check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib

HERE = Path(__file__).resolve().parent
IN_FLIGHT = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000, help="lines in the config")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    parser.add_argument("--runs", type=int, default=3, help="rounds; medians are printed")
    parser.add_argument("--sequential", action="store_true", help="also the one-thread peer")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.lines <= 20_000 or not 0 <= args.latency <= 1 or not 1 <= args.runs <= 9:
        parser.error("need 1 <= lines <= 20000, 0 <= latency <= 1 and 1 <= runs <= 9")
    if args.sequential and args.lines > 1000:
        parser.error("--sequential: at most 1,000 lines")
    return args


def timed_process(argv: list[str], cwd: Path, log: Path) -> dict[str, float]:
    """Run `argv` to its end: wall seconds and CPU seconds (user + system) of the process."""
    began = time.perf_counter()
    with log.open("wb") as sink:
        child = subprocess.Popen(argv, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {child.returncode}: see {log}")
    return {
        "wall": time.perf_counter() - began,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def project(folder: Path, base_url: str, ids: list[str], round_no: int) -> dict[str, float]:
    config = benchlib.write_config(
        folder / f"project-{round_no}.toml",
        lines=ids,
        base_url=base_url,
        database=folder / f"project-{round_no}.db",
    )
    log = folder / f"project-{round_no}.log"
    figures = timed_process(
        benchlib.esim_monitor("--config", str(config), "--log-format", "json", "run", "--once"),
        folder,
        log,
    )
    for event in benchlib.log_events(log):
        if event.get("event") == "checks done" and event.get("lines") == len(ids):
            if event.get("failed"):
                raise RuntimeError(f"the project failed {event['failed']} checks: see {log}")
            figures["cycle"] = float(event["seconds"])
    if "cycle" not in figures:
        raise RuntimeError(f"no pass over every line logged: see {log}")
    return figures


def peer(
    folder: Path, base_url: str, ids: list[str], threads: int, round_no: int
) -> dict[str, float]:
    listing = folder / "iccids.txt"
    listing.write_text("\n".join(benchlib.iccid(i) for i in ids) + "\n")
    log = folder / f"peer-{threads}-{round_no}.log"
    figures = timed_process(
        [
            sys.executable,
            str(HERE / "peer_urllib3.py"),
            base_url,
            str(listing),
            str(folder / f"peer-{threads}-{round_no}.db"),
            f"--threads={threads}",
        ],
        folder,
        log,
    )
    answer = json.loads(log.read_text().strip().splitlines()[-1])
    if answer["readings"] != len(ids):
        raise RuntimeError(f"the peer wrote {answer['readings']} readings of {len(ids)}")
    figures["cycle"] = float(answer["seconds"])
    return figures


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(benchlib.median([r[key] for r in rounds]), 3) for key in rounds[0]}


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    ids = benchlib.line_ids(args.lines)
    kinds = ["project", "urllib3"] + (["sequential"] if args.sequential else [])
    rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    requests = (args.lines + 2) * len(kinds) * args.runs + 100
    lifetime = args.runs * len(kinds) * (args.lines * args.latency + 120)
    with benchlib.fake_onence_server(args.latency, requests, lifetime) as fake:
        for round_no in range(args.runs):
            rounds["project"].append(project(folder, fake.base_url, ids, round_no))
            rounds["urllib3"].append(peer(folder, fake.base_url, ids, IN_FLIGHT, round_no))
            if args.sequential:
                rounds["sequential"].append(peer(folder, fake.base_url, ids, 1, round_no))
    return {
        "machine": benchlib.machine(),
        "code": benchlib.code(),
        "calibration_ms": benchlib.calibrate(),
        "lines": args.lines,
        "latency": args.latency,
        "runs": args.runs,
        "ideal": round(math.ceil(args.lines / IN_FLIGHT) * args.latency, 3),
        "medians": {kind: median_of(found) for kind, found in rounds.items()},
    }


def report(f: dict[str, Any]) -> str:
    n, ideal, m = f["lines"], f["ideal"], f["medians"]
    p, u = m["project"], m["urllib3"]
    bound = 1.25 if n <= 1000 else 1.2

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    def row(name: str, figures: dict[str, float]) -> str:
        return (
            f"  {name:<22} cycle {figures['cycle']:7.3f} s "
            f"({figures['cycle'] / ideal:4.2f} x ideal), "
            f"whole process {figures['wall']:7.3f} s, CPU {figures['cpu']:6.2f} s "
            f"({1000 * figures['cpu'] / n:.2f} ms a check)"
        )

    out = [
        f"bench/peers.py: {n:,} lines, {f['latency']:g} s a request, {IN_FLIGHT} in flight, "
        f"medians of {f['runs']} ({f['machine']})",
        f"  code: {f['code']}; calibration loop {f['calibration_ms']} ms",
        f"  ideal (ceil(N/{IN_FLIGHT}) x latency): {ideal:.3f} s",
        row("esim-monitor run --once", p),
        row("urllib3 + 64 threads", u),
    ]
    if "sequential" in m:
        out.append(row("sequential (1 thread)", m["sequential"]))
    cpu_check = 1000 * p["cpu"] / n
    out += [
        f"  cycle / ideal: {p['cycle'] / ideal:.2f} (target <= {bound}: "
        f"{verdict(p['cycle'] <= bound * ideal)})",
        f"  whole process / urllib3's: {p['wall'] / u['wall']:.2f} (target <= 1.3: "
        f"{verdict(p['wall'] <= 1.3 * u['wall'])})",
        f"  CPU a check: {cpu_check:.2f} ms, urllib3's {1000 * u['cpu'] / n:.2f} ms "
        f"(target <= 0.7 ms: {verdict(cpu_check <= 0.7)})",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="esim-monitor-peers-") as tmp:
        figures = run(args, Path(tmp))
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
