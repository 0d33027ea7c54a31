"""A loopback JSON-RPC proxy in front of anvil that injects seeded faults.

Each request draws one of: pass it on; refuse it (close the connection before anvil sees it);
lose the answer (anvil executes it, the caller never hears back — the nasty case for a
transaction); answer HTTP 500; or delay it (longer than the caller's timeout, sometimes).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("refuse", "lose", "http500", "delay")


class FaultyRpcProxy:
    """``url`` forwards to ``upstream``; while ``rate`` > 0 that share of requests gets a
    fault drawn with ``random.Random(seed)``; ``counts`` says what was injected."""

    def __init__(self, upstream: str, *, seed: int, max_delay_s: float = 3.0) -> None:
        self.upstream = upstream
        self.rate = 0.0
        self.max_delay_s = max_delay_s
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fault, delay = proxy._draw()
                if fault == "refuse":
                    self.close_connection = True
                    return
                if fault == "delay":
                    time.sleep(delay)
                if fault == "http500":
                    self._answer(500, b"injected fault")
                    return
                try:
                    answer = httpx.post(
                        proxy.upstream,
                        content=body,
                        headers={"Content-Type": "application/json"},
                        timeout=30,
                    )
                except httpx.HTTPError:
                    self.close_connection = True  # anvil itself is down: so is the proxy
                    return
                if fault == "lose":
                    self.close_connection = True
                    return
                self._answer(answer.status_code, answer.content)

            def _answer(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the caller gave up (its timeout)
                    self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _draw(self) -> tuple[str | None, float]:
        with self._lock:
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None, 0.0
            fault = self._rng.choice(FAULTS)
            self.counts[fault] += 1
            return fault, self._rng.uniform(0.2, self.max_delay_s)

    def __enter__(self) -> FaultyRpcProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
