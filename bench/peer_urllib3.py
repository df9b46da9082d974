"""The peers of `bench/peers.py`: the same work as one `esim-monitor run --once` pass on the
fake 1NCE, written plainly, as a yardstick (issue 18).

    python bench/peer_urllib3.py BASE_URL ICCID_FILE DATABASE [--threads 64]

One token (`POST /oauth/token`, Basic auth, client_credentials), then `GET
/v1/sims/{iccid}/quota/data` for every ICCID with `--threads` threads over one urllib3
pool, each answer's JSON read to its figures (volume in MB, as the project reads 1NCE),
then every reading written to SQLite in one transaction. `--threads 1` is the sequential
script. Prints one JSON line: the pass's seconds and the readings written. No retries, no
budgets, no redaction, no limits: what the project does beside the work is the difference.
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import urllib3

USER = "bench-user"
PASSWORD = "bench-password"
MB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("iccids", type=Path, help="a file of ICCIDs, one a line")
    parser.add_argument("database", type=Path)
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args(argv)
    iccids = args.iccids.read_text().split()
    began = time.perf_counter()
    pool = urllib3.PoolManager(maxsize=args.threads, block=True, retries=False)
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
    token = pool.request(
        "POST",
        f"{args.base_url}/oauth/token",
        body=json.dumps({"grant_type": "client_credentials"}),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
    ).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def read(iccid: str) -> tuple[str, int, int, str]:
        answer = pool.request("GET", f"{args.base_url}/v1/sims/{iccid}/quota/data", headers=bearer)
        if answer.status != 200:
            raise RuntimeError(f"{iccid}: HTTP {answer.status}")
        quota = json.loads(answer.data)
        left = int(Decimal(str(quota["volume"])) * MB)
        total = int(Decimal(str(quota["total_volume"])) * MB)
        return iccid, left, total, quota["expiry_date"]

    with ThreadPoolExecutor(args.threads) as workers:
        readings = list(workers.map(read, iccids))
    conn = sqlite3.connect(args.database)
    with conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS readings (iccid TEXT, checked_at TEXT, "
            "data_remaining INTEGER, data_total INTEGER, expires_at TEXT)"
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conn.executemany(
            "INSERT INTO readings VALUES (?, ?, ?, ?, ?)",
            [(iccid, now, left, total, expiry) for iccid, left, total, expiry in readings],
        )
    conn.close()
    print(json.dumps({"seconds": round(time.perf_counter() - began, 3), "readings": len(readings)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
