"""Serve the node's HTTP API in a background thread of ``visdm node serve``, and the parts that
bound what a request may cost: :class:`BodyLimit`, :class:`TokenBuckets`, :class:`OnceCache`.
:class:`ServeLock` keeps a second ``node serve`` off the same data directory.

:class:`BodyLimit` refuses a request body over a few KiB before anything reads it as JSON: the
node's requests are a handful of fields, and an unbounded body is both memory and — nested
deeply enough — a C-stack overflow in the JSON parser (py_ecc raises Python's recursion limit
to 100,000 in every process that imports it, so the parser's own guard no longer trips).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visdm.errors import ConfigError

__all__ = ["ApiServer", "BodyLimit", "OnceCache", "ServeLock", "TokenBuckets", "api_address"]

log = logging.getLogger("visdm.node.api")
_START_TIMEOUT_S = 20.0
# connections and requests in flight at once; beyond this uvicorn answers 503 instead of
# queueing work for the thread pool without end
_CONCURRENCY = 64
# a Content-Length with more digits than this is over any limit (and not worth converting)
_LENGTH_DIGITS = 12

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def api_address(endpoint: str, host: str | None, port: int | None) -> tuple[str, int]:
    """Where to listen: explicit ``host``/``port`` win, else the endpoint registered on chain,
    else loopback on a free port."""
    parsed = urlsplit(endpoint) if endpoint else None
    chosen_host = host or (parsed.hostname if parsed and parsed.hostname else "127.0.0.1")
    chosen_port = port if port is not None else (parsed.port if parsed and parsed.port else 0)
    return chosen_host, chosen_port


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 ``BodyTooLarge``, unread.

    The declared ``Content-Length`` is checked first; a chunked body is read up to the limit
    and no further. A body within the limit is handed on whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (
            not declared.isdigit()
            or len(declared) > _LENGTH_DIGITS
            or int(declared) > self.max_bytes
        ):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "error": "BodyTooLarge",
                "detail": f"the request body is over {self.max_bytes:,} bytes: a request to "
                "this node is a few small JSON fields",
            },
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class TokenBuckets:
    """A token bucket per account: ``burst`` requests at once, refilled at ``per_minute``.

    Only the ``accounts`` most recently seen are remembered: memory stays bounded, and an
    account forgotten that way starts again with a full bucket.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        accounts: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_second = per_minute / 60.0
        self._burst = float(burst)
        self._accounts = accounts
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def take(self, account: str) -> float:
        """Spend one of ``account``'s tokens and return 0.0 — or, spending nothing, the seconds
        until a token is there."""
        now = self._clock()
        with self._lock:
            tokens, when = self._buckets.pop(account, (self._burst, now))
            tokens = min(self._burst, tokens + (now - when) * self._per_second)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self._per_second
            self._buckets[account] = (tokens, now)
            while len(self._buckets) > self._accounts:
                self._buckets.popitem(last=False)
        return wait


class _Flight(Generic[V]):
    """One computation in progress and how many callers wait for it."""

    __slots__ = ("future", "waiters")

    def __init__(self) -> None:
        self.future: Future[V] = Future()
        self.waiters = 0


class OnceCache(Generic[K, V]):
    """An LRU map of at most ``size`` answers, each computed once however many ask at once.

    The first caller of :meth:`get` for a key computes the answer; callers that arrive while
    it runs wait for that answer instead of repeating the work (single flight). An exception
    is not cached: every waiting caller gets it, and the next caller computes again.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._done: OrderedDict[K, V] = OrderedDict()
        self._running: dict[K, _Flight[V]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._done)

    def waiting(self, key: K) -> int:
        """How many callers wait for ``key``'s answer now, beside the one computing it."""
        with self._lock:
            flight = self._running.get(key)
            return 0 if flight is None else flight.waiters

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            flight = self._running.get(key)
            computing = flight is None
            if flight is None:
                flight = self._running[key] = _Flight()
            else:
                flight.waiters += 1
        if not computing:
            try:
                return flight.future.result()
            finally:
                with self._lock:
                    flight.waiters -= 1
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._running[key]
            flight.future.set_exception(exc)
            raise
        with self._lock:
            self._done[key] = value
            while len(self._done) > self._size:
                self._done.popitem(last=False)
            del self._running[key]
        flight.future.set_result(value)
        return value


class ApiServer:
    """uvicorn in a daemon thread; the bound URL is written to ``info_file`` once listening."""

    def __init__(self, app: FastAPI, host: str, port: int, info_file: Path) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                limit_concurrency=_CONCURRENCY,
                ws="none",  # no websockets here, and their legacy module warns on import
            )
        )
        self.info_file = info_file
        self.thread = threading.Thread(target=self.server.run, name="node-api", daemon=True)
        self.url = ""

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the node's HTTP API did not start (is the port taken?)")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.info_file.write_text(json.dumps({"url": self.url}))
        log.info("node API listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.info_file.unlink(missing_ok=True)


class ServeLock:
    """An exclusive ``flock`` on ``path`` for as long as one ``visdm node serve`` runs.

    Two nodes on one data directory would share its state and job journal and both take the
    same job, so the second is refused with the first one's PID. The kernel drops the lock when
    its process ends however it ends (SIGKILL included), so a crash never leaves a stale lock
    to clear by hand. Two data directories holding the same account on one machine are
    refused by :meth:`for_account`; on two machines the chain still accepts one result per
    proposal, so the slower one only loses its work.
    """

    def __init__(self, path: Path, *, holds: str | None = None) -> None:
        self.path = path
        #: what the lock stands for, in the refusal (default: the node directory)
        self.holds = holds
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`~visdm.errors.ConfigError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            what = self.holds or (
                f"on the node directory {self.path.parent}: stop it first, or give this node "
                "its own --home"
            )
            raise ConfigError(
                f"another `visdm node serve` (pid {holder}) already runs {what}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @classmethod
    def for_account(
        cls, genesis_hash: bytes, market: str, account: str, *, base: Path | None = None
    ) -> ServeLock:
        """The machine-wide lock of one account on one market: two data directories holding
        the same key would both take the same jobs (and race for one nonce). Keyed by the
        chain's genesis block, which a restarted chain keeps and another chain does not."""
        folder = base or Path(tempfile.gettempdir()) / f"visdm-{os.getuid()}"
        name = f"node-{genesis_hash.hex()[:16]}-{market.lower()}-{account.lower()}.lock"
        return cls(
            folder / name,
            holds=(
                f"as {account} on this market, from another data directory: one key serves from "
                "one node directory at a time; stop that node first"
            ),
        )

    def __enter__(self) -> ServeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
