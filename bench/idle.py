"""Benchmark an idle daemon (issue 18): what `esim-monitor run` costs between its checks.

    .venv/bin/python bench/idle.py [--lines 1000] [--minutes 5]

Starts the fake 1NCE provider (its own process) and the daemon on N lines of one account
with no channels, no HTTP server and no metrics, an `interval` of a day (no jitter), so
after its first pass, which checks every line, it has nothing to do. Once that pass is
logged ("checks done"), the daemon's CPU time (utime + stime from /proc) and RSS are read
over `--minutes`, beside two peers measured in the same run the same way: a bare
`python -c` that sleeps, and one that imports what the daemon imports (monitor.cli and
monitor.daemon) and sleeps, measured over the same window: the floor an idle Python
process of this size costs.

Targets: <= 0.5 % CPU over the window and <= 60 MB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib

TARGET_CPU_PERCENT = 0.5
TARGET_RSS_MB = 60.0
TICK = os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000, help="lines in the config")
    parser.add_argument("--minutes", type=float, default=5.0, help="the idle window measured")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.lines <= 20_000 or not 0.1 <= args.minutes <= 60:
        parser.error("need 1 <= lines <= 20000 and 0.1 <= minutes <= 60")
    return args


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory (VmRSS, VmHWM) in MB."""
    found = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = row.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return round(found["VmRSS"], 1), round(found["VmHWM"], 1)


def watch(pids: dict[str, int], seconds: float) -> dict[str, dict[str, float]]:
    """CPU % and memory of each process over the same `seconds`, from now."""
    began_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    began = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - began
    out = {}
    for name, pid in pids.items():
        spent = cpu_seconds(pid) - began_cpu[name]
        rss, peak = rss_mb(pid)
        out[name] = {
            "cpu_seconds": round(spent, 3),
            "cpu_percent": round(100 * spent / took, 3),
            "rss_mb": rss,
            "peak_rss_mb": peak,
        }
    return out


def wait_for_pass(log: Path, lines: int, daemon: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until the daemon logs its first pass over every line."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited ({daemon.returncode}): see {log}")
        if any(
            e.get("event") == "checks done" and e.get("lines") == lines
            for e in benchlib.log_events(log)
        ):
            return time.monotonic() - began
        time.sleep(0.5)
    raise RuntimeError(f"no pass over {lines} lines within {timeout:g} s: see {log}")


PEERS = {
    "python_sleeping": "import time; print(flush=True); time.sleep(7200)",
    "imports_sleeping": (
        "import time, monitor.cli, monitor.daemon; print(flush=True); time.sleep(7200)"
    ),
}
"""The floor: a bare Python sleeping, and one that imported what the daemon imports."""


def start_peers() -> dict[str, subprocess.Popen[bytes]]:
    procs = {
        name: subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        for name, code in PEERS.items()
    }
    for proc in procs.values():
        assert proc.stdout is not None
        proc.stdout.readline()  # its imports are done
    return procs


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    window = args.minutes * 60
    ids = benchlib.line_ids(args.lines)
    with benchlib.fake_onence_server(0.05, 10 * args.lines + 100, window + 900) as fake:
        config = benchlib.write_config(
            folder / "config.toml",
            lines=ids,
            base_url=fake.base_url,
            database=folder / "history.db",
            monitor={"interval": "24h", "jitter": "0s"},
        )
        log = folder / "daemon.log"
        with log.open("wb") as sink:
            daemon = subprocess.Popen(
                benchlib.esim_monitor("--config", str(config), "--log-format", "json", "run"),
                stdout=sink,
                stderr=sink,
                cwd=folder,
            )
            procs: dict[str, subprocess.Popen[bytes]] = {}
            try:
                first_pass = wait_for_pass(log, args.lines, daemon, 600)
                procs = start_peers()
                time.sleep(5)  # the pass's writes and forecasts settle
                pids = {"daemon": daemon.pid, **{name: p.pid for name, p in procs.items()}}
                idle = watch(pids, window)
            finally:
                for proc in procs.values():
                    proc.kill()
                    proc.wait()
                daemon.terminate()
                try:
                    daemon.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
    return {
        "machine": benchlib.machine(),
        "code": benchlib.code(),
        "calibration_ms": benchlib.calibrate(),
        "lines": args.lines,
        "window_seconds": window,
        "first_pass_seconds": round(first_pass, 1),
        "daemon": idle.pop("daemon"),
        "peers": idle,
    }


def report(figures: dict[str, Any]) -> str:
    d, p = figures["daemon"], figures["peers"]
    cpu_ok = "met" if d["cpu_percent"] <= TARGET_CPU_PERCENT else "MISSED"
    rss_ok = "met" if d["rss_mb"] <= TARGET_RSS_MB else "MISSED"
    out = [
        f"bench/idle.py: an idle daemon on {figures['lines']:,} lines (no channels, no HTTP, "
        f"no metrics) over {figures['window_seconds'] / 60:g} min ({figures['machine']})",
        f"  code: {figures['code']}; calibration loop {figures['calibration_ms']} ms; first "
        f"pass {figures['first_pass_seconds']} s",
        f"  daemon: {d['cpu_percent']} % CPU ({d['cpu_seconds']} s; target <= "
        f"{TARGET_CPU_PERCENT} %: {cpu_ok}), RSS {d['rss_mb']} MB (peak {d['peak_rss_mb']} MB; "
        f"target <= {TARGET_RSS_MB:g} MB: {rss_ok})",
    ]
    for name, figures_of in p.items():
        out.append(
            f"  peer {name}: {figures_of['cpu_percent']} % CPU, RSS {figures_of['rss_mb']} MB"
            f" (the daemon: x{d['rss_mb'] / figures_of['rss_mb']:.1f} its RSS)"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="esim-monitor-idle-") as tmp:
        figures = run(args, Path(tmp))
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
