"""A content store on an IPFS node, through the Kubo HTTP RPC API (``/api/v0``).

This is the "at scale" storage of design section 2: the provider's own Kubo node, or any
service that speaks the same RPC API. Three choices matter:

* **Explicit import options.** ``add`` is always called with ``cid-version=1``,
  ``raw-leaves=true``, ``chunker=size-262144`` and ``hash=sha2-256`` rather than relying on the
  node's defaults, which an operator can change (Kubo's ``Import.*`` settings). The CID the node
  returns is then compared with the one computed locally; a node that builds a different DAG is
  refused with ``CidMismatchError`` instead of silently recording a different CID on chain.
* **Never trust the node's bytes.** ``get`` recomputes the CID of what ``cat`` returned, with the
  same chunking as :class:`~visdm.storage.LocalStore`, and raises ``CidMismatchError`` when it
  differs. This only works for content laid out with Kubo's defaults — the only layout ViSDM
  writes; content added by others with another chunker is refused rather than unverified.
* **Bounded waits.** A CID the node does not hold makes Kubo search the network, possibly
  forever; every call that may do so carries the RPC's ``timeout`` option, ``has`` and
  ``is_pinned`` always ask ``offline``, and ``offline=True`` keeps every call local. A refused
  connection or an HTTP timeout becomes ``StorageUnavailableError`` naming the URL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from visdm.errors import (
    BlobNotFoundError,
    CidMismatchError,
    ConfigError,
    StorageError,
    StorageUnavailableError,
)
from visdm.jsonsafe import load_untrusted_json
from visdm.types import Cid

from ._base import ContentStore, too_large
from ._cid import parse_cid
from ._dag import CHUNK_SIZE, compute_cid

__all__ = ["KuboStore"]

_ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "cid-base": "base32",
    "trickle": "false",
    "wrap-with-directory": "false",
    "progress": "false",
}
# Words Kubo (and js-ipfs) use when a block is not available locally or in time.
_ABSENT_HINTS = ("not found", "could not find", "timed out", "timeout", "deadline exceeded")
_NOT_PINNED_HINTS = ("not pinned", "is not pinned")
_READ_PIECE = 1 << 20
#: one JSON answer of the RPC (a CID, a pin listing, an error) is far smaller
_MAX_ANSWER_BYTES = 16 << 20


class _RpcError(Exception):
    """A non-200 answer from the RPC API (internal; mapped to a StorageError by callers)."""

    def __init__(self, command: str, status: int, message: str) -> None:
        super().__init__(f"{command}: HTTP {status}: {message}")
        self.command = command
        self.status = status
        self.message = message

    def says(self, hints: tuple[str, ...]) -> bool:
        text = self.message.lower()
        return self.status == 500 and any(hint in text for hint in hints)


class KuboStore(ContentStore):
    """A :class:`ContentStore` backed by an IPFS node's Kubo RPC API at ``url``.

    ``url`` is the API's base address, e.g. ``http://127.0.0.1:5001`` (a trailing ``/api/v0`` is
    accepted). ``timeout_s`` bounds each HTTP step (connect, each read, each write).
    ``fetch_timeout_s`` is how long the node may look for content it does not hold (``get``,
    ``pin``); ``probe_timeout_s`` bounds ``has``/``is_pinned``, which never leave the node.
    ``offline=True`` forbids the node to fetch anything from the network. ``headers`` are added
    to every request (e.g. ``Authorization`` for a pinning service); ``transport`` replaces
    httpx's network transport (tests).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        fetch_timeout_s: float = 60.0,
        probe_timeout_s: float = 2.0,
        offline: bool = False,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = url.strip().rstrip("/")
        base = base.removesuffix("/api/v0")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(
                f"IPFS RPC API URL {url!r} must start with http:// or https:// "
                "(for a local Kubo node: http://127.0.0.1:5001)"
            )
        for name, value in (
            ("timeout_s", timeout_s),
            ("fetch_timeout_s", fetch_timeout_s),
            ("probe_timeout_s", probe_timeout_s),
        ):
            if not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
        self.url = base
        self.offline = offline
        self._timeout_s = timeout_s
        self._fetch_timeout = _duration(fetch_timeout_s)
        self._probe_timeout = _duration(probe_timeout_s)
        self._client = httpx.Client(
            base_url=base + "/api/v0/",
            timeout=httpx.Timeout(timeout_s),
            headers=dict(headers or {}),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    def close(self) -> None:
        self._client.close()

    # --- writing ------------------------------------------------------------------------------
    def put(self, data: bytes, *, pin: bool = False) -> Cid:
        data = bytes(data)
        return self._add(compute_cid(data), data, pin=pin)

    def put_file(self, path: str | os.PathLike[str], *, pin: bool = False) -> Cid:
        """Stream a file to the node (read twice: once to compute the CID, once to upload)."""
        source = Path(path)
        with source.open("rb") as handle:
            expected = compute_cid(iter(lambda: handle.read(_READ_PIECE), b""))
        with source.open("rb") as handle:
            return self._add(expected, handle, pin=pin)

    def _add(self, expected: Cid, content: bytes | IO[bytes], *, pin: bool) -> Cid:
        params = dict(_ADD_PARAMS, pin="true" if pin else "false")
        files = {"file": ("blob", content, "application/octet-stream")}
        try:
            response = self._call("add", params, files=files)
        except _RpcError as exc:
            raise StorageError(
                f"the IPFS node at {self.url} refused to add the content: {exc}"
            ) from None
        got = None
        for line in _json_lines(response.text):
            if isinstance(line, dict) and isinstance(line.get("Hash"), str):
                got = line["Hash"]
        if got is None:
            raise StorageError(
                f"the IPFS node at {self.url} answered add without a CID: {response.text[:200]!r}"
            )
        cid = parse_cid(got)
        if cid != expected:
            raise CidMismatchError(
                f"the IPFS node at {self.url} stored the content as {cid}, but "
                f"'ipfs add --cid-version=1' with Kubo's defaults gives {expected}: the node "
                "builds its DAG differently (check its Import.* settings); ViSDM will not use "
                "that CID"
            )
        return cid

    # --- reading ------------------------------------------------------------------------------
    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        key = parse_cid(cid)
        params = self._params(key, self._fetch_timeout)
        if max_bytes is not None:
            params["length"] = str(max_bytes + 1)  # one byte more tells "too large" apart
        try:
            response = self._call("cat", params)
        except _RpcError as exc:
            if exc.says(_ABSENT_HINTS):
                raise BlobNotFoundError(
                    f"the IPFS node at {self.url} could not provide {key} "
                    f"(within {self._fetch_timeout}): {exc.message}"
                ) from None
            raise StorageError(f"the IPFS node at {self.url} failed to cat {key}: {exc}") from None
        data = response.content
        if max_bytes is not None and len(data) > max_bytes:
            raise too_large(key, max_bytes, f"the IPFS node at {self.url}")
        got = compute_cid(data)
        if got != key:
            raise CidMismatchError(
                f"the IPFS node at {self.url} returned {len(data)} bytes for {key} that hash to "
                f"{got}: the node's copy is corrupt, the transfer broke off, or the content was "
                "not added with Kubo's default chunking; do not use these bytes"
            )
        return data

    def has(self, cid: str) -> bool:
        """Whether the node holds ``cid``'s root block locally (asked offline, never fetched)."""
        key = parse_cid(cid)
        try:
            self._call("block/stat", self._params(key, self._probe_timeout, offline=True))
        except _RpcError as exc:
            if exc.says(_ABSENT_HINTS):
                return False
            raise StorageError(
                f"the IPFS node at {self.url} failed block/stat {key}: {exc}"
            ) from None
        return True

    # --- pins ---------------------------------------------------------------------------------
    def pin(self, cid: str) -> None:
        key = parse_cid(cid)
        params = self._params(key, self._fetch_timeout)
        params["recursive"] = "true"
        try:
            self._call("pin/add", params)
        except _RpcError as exc:
            if exc.says(_ABSENT_HINTS):
                raise BlobNotFoundError(
                    f"cannot pin {key}: the IPFS node at {self.url} could not get it "
                    f"(within {self._fetch_timeout}): {exc.message}; put the content first"
                ) from None
            raise StorageError(f"the IPFS node at {self.url} failed to pin {key}: {exc}") from None

    def unpin(self, cid: str) -> None:
        key = parse_cid(cid)
        try:
            self._call("pin/rm", {"arg": key, "recursive": "true"})
        except _RpcError as exc:
            if exc.says(_NOT_PINNED_HINTS):
                raise BlobNotFoundError(
                    f"cannot unpin {key}: it is not pinned (recursively) on the IPFS node at "
                    f"{self.url}: {exc.message}"
                ) from None
            raise StorageError(
                f"the IPFS node at {self.url} failed to unpin {key}: {exc}"
            ) from None

    def is_pinned(self, cid: str) -> bool:
        key = parse_cid(cid)
        params = self._params(key, self._probe_timeout, offline=True)
        params["type"] = "recursive"
        try:
            response = self._call("pin/ls", params)
        except _RpcError as exc:
            if exc.says(_NOT_PINNED_HINTS + _ABSENT_HINTS):
                return False
            raise StorageError(f"the IPFS node at {self.url} failed pin/ls {key}: {exc}") from None
        return any(
            isinstance(line, dict) and bool(line.get("Keys") or line.get("Cid"))
            for line in _json_lines(response.text)
        )

    # --- transport ----------------------------------------------------------------------------
    def _params(self, key: Cid, timeout: str, *, offline: bool = False) -> dict[str, str]:
        params = {"arg": str(key), "timeout": timeout}
        if offline or self.offline:
            params["offline"] = "true"
        return params

    def _call(
        self, command: str, params: Mapping[str, str], *, files: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        try:
            response = self._client.post(command, params=params, files=files)
        except httpx.ConnectError as exc:
            raise StorageUnavailableError(
                f"cannot connect to the IPFS RPC API at {self.url} ({exc}): start the node "
                "('ipfs daemon') or set the URL to its Addresses.API"
            ) from exc
        except httpx.TimeoutException as exc:
            raise StorageUnavailableError(
                f"the IPFS RPC API at {self.url} did not answer '{command}' within "
                f"{self._timeout_s:g} s: check that the node is healthy, or raise timeout_s"
            ) from exc
        except httpx.TransportError as exc:
            raise StorageUnavailableError(
                f"talking to the IPFS RPC API at {self.url} failed during '{command}': {exc}"
            ) from exc
        if response.status_code == 200:
            return response
        if response.status_code in (403, 404, 405):
            raise StorageError(
                f"{self.url} answered HTTP {response.status_code} to /api/v0/{command}: is it "
                "a Kubo RPC API (port 5001 by default), not a gateway, and does it allow this "
                "client (API.HTTPHeaders, authorization)?"
            )
        raise _RpcError(command, response.status_code, _error_message(response))


def _duration(seconds: float) -> str:
    """A Go duration string for the RPC's ``timeout`` option (millisecond precision)."""
    return f"{max(1, round(seconds * 1000))}ms"


def _error_message(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        body = _parse(response.content)
        if isinstance(body, dict) and isinstance(body.get("Message"), str):
            message: str = body["Message"]
            return message
    return response.text.strip()[:500] or response.reason_phrase


def _json_lines(text: str) -> Iterator[object]:
    for line in text.splitlines():
        if line.strip():
            with contextlib.suppress(ValueError):
                yield _parse(line)


def _parse(data: bytes | str) -> Any:
    """One JSON answer of the RPC: a pinning service is a third party, so nested or oversized
    answers are refused (:mod:`visdm.jsonsafe`) like any untrusted document."""
    return load_untrusted_json(data, what="the IPFS node's answer", max_bytes=_MAX_ANSWER_BYTES)
