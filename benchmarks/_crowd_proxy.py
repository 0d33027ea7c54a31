"""A JSON-RPC proxy that counts requests per method, for ``crowd.py``'s per-stage RPC counts.

Run: ``python benchmarks/_crowd_proxy.py UPSTREAM_URL PORT_FILE``; it listens on a free
loopback port, writes the port to ``PORT_FILE`` and forwards every POST to ``UPSTREAM_URL``
unchanged. ``GET /counts`` answers ``{method: calls}`` since the start (a batch counts each of
its calls). It runs in its own process so that its work competes with neither the benchmark's
clients nor the node for a Python interpreter lock.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_counts: Counter[str] = Counter()
_lock = threading.Lock()
_local = threading.local()


def _count(body: bytes) -> None:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return
    calls = payload if isinstance(payload, list) else [payload]
    with _lock:
        for call in calls:
            if isinstance(call, dict):
                _counts[str(call.get("method"))] += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without this, delayed ACKs add ~40 ms a call
    disable_nagle_algorithm = True
    upstream = urlsplit("http://127.0.0.1:8545")

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with _lock:
            body = json.dumps(dict(_counts)).encode()
        self._reply(200, body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _count(body)
        # one kept-alive upstream connection per handler thread
        conn: http.client.HTTPConnection | None = getattr(_local, "conn", None)
        for attempt in (0, 1):
            if conn is None:
                host, port = self.upstream.hostname or "127.0.0.1", self.upstream.port or 80
                conn = _local.conn = http.client.HTTPConnection(host, port, timeout=600)
            try:
                conn.request("POST", "/", body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                data = answer.read()
                self._reply(answer.status, data)
                return
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _local.conn = None
                if attempt:
                    self._reply(502, b'{"error": "upstream unreachable"}')


def main() -> None:
    upstream, port_file = sys.argv[1], Path(sys.argv[2])
    _Handler.upstream = urlsplit(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
