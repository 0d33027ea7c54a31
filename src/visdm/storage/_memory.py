"""An in-memory content store: a fast fake for the unit tests of other packages.

It keeps whole blobs in a dict but computes CIDs with the same Kubo-identical DAG builder as
the real stores, and still verifies on ``get``, so code tested against it sees the same CIDs and
the same errors it will see in production. It is not meant for production use: nothing
survives the process, and there is no garbage collection.
"""

from __future__ import annotations

import threading

from visdm.errors import BlobNotFoundError, CidMismatchError
from visdm.types import Cid

from ._base import ContentStore, too_large
from ._cid import parse_cid
from ._dag import compute_cid

__all__ = ["MemoryStore"]


class MemoryStore(ContentStore):
    """Blobs in a dict, keyed by their canonical CID; thread-safe."""

    def __init__(self) -> None:
        self._blobs: dict[Cid, bytes] = {}
        self._pins: set[Cid] = set()
        self._lock = threading.Lock()

    def put(self, data: bytes, *, pin: bool = False) -> Cid:
        data = bytes(data)
        cid = compute_cid(data)
        with self._lock:
            self._blobs[cid] = data
            if pin:
                self._pins.add(cid)
        return cid

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        key = parse_cid(cid)
        with self._lock:
            data = self._blobs.get(key)
        if data is None:
            raise BlobNotFoundError(f"no content under {key} in this in-memory store")
        if max_bytes is not None and len(data) > max_bytes:
            raise too_large(key, max_bytes, "this in-memory store")
        if compute_cid(data) != key:
            raise CidMismatchError(f"the bytes held under {key} in memory do not hash to it")
        return data

    def has(self, cid: str) -> bool:
        key = parse_cid(cid)
        with self._lock:
            return key in self._blobs

    def pin(self, cid: str) -> None:
        key = parse_cid(cid)
        with self._lock:
            if key not in self._blobs:
                raise BlobNotFoundError(f"cannot pin {key}: this in-memory store does not hold it")
            self._pins.add(key)

    def unpin(self, cid: str) -> None:
        key = parse_cid(cid)
        with self._lock:
            if key not in self._pins:
                raise BlobNotFoundError(f"cannot unpin {key}: it is not pinned")
            self._pins.remove(key)

    def is_pinned(self, cid: str) -> bool:
        key = parse_cid(cid)
        with self._lock:
            return key in self._pins

    def corrupt_for_testing(self, cid: str, data: bytes) -> None:
        """Replace what is held under ``cid`` without rehashing (to test callers' error paths)."""
        key = parse_cid(cid)
        with self._lock:
            self._blobs[key] = bytes(data)
