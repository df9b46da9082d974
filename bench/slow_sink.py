"""A slow receiver for Apprise's json:// plugin, run as a child process by bench/delivery.py.

    python bench/slow_sink.py --latency 2

Listens on 127.0.0.1 (the port is printed as a JSON line), answers every POST after
`--latency` seconds, all concurrently, and records each message (path, title, body). A
file named by `--down` that exists makes it answer 503 at once (a receiver outage). When
its stdin closes it prints what it received as one JSON line and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--down", type=Path, help="while this file exists, answer 503")
    args = parser.parse_args()
    received: list[dict[str, Any]] = []
    refused = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if args.down is not None and args.down.exists():
                with lock:
                    refused[0] += 1
                self.send_response(503)
                self.end_headers()
                return
            time.sleep(args.latency)
            message = json.loads(body)
            with lock:
                received.append(
                    {
                        "path": self.path,
                        "title": message.get("title", ""),
                        "body": message.get("message", ""),
                        "at": time.time(),
                    }
                )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    sys.stdin.read()
    server.shutdown()
    with lock:
        print(json.dumps({"received": received, "refused": refused[0]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
