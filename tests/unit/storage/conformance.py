"""The behaviour every ContentStore backend must show, as one test class.

A backend's test module subclasses :class:`ContentStoreConformance` (as ``TestXxx``) and provides
two fixtures: ``store``, a fresh or shared backend, and ``corrupt``, a function that replaces
the bytes a backend holds for a single-block CID (so the verification path can be tested on
real storage, not on a mock). Content is made unique per test (``payload``) so that a store
shared across tests (a live IPFS node) cannot make one test depend on another.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visdm.errors import (
    BlobNotFoundError,
    CidMismatchError,
    InvalidCidError,
    StorageError,
)
from visdm.storage import ContentStore, compute_cid, parse_cid
from visdm.types import Cid

from .vectors import CHUNK, SMALL_VECTORS, Vector

Corrupt = Callable[[Cid, bytes], None]

#: a CID of content no test ever puts (sha2-256 of this label, as a raw block)
UNKNOWN = compute_cid(b"visdm/storage/conformance: never stored")

MALFORMED = [
    "",
    " ",
    "hello",
    "bafk",
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",  # one character short
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykua",  # one character long
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk1",  # '1' is not base32
    "fafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # unknown multibase
    "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYeca0",  # '0' is not base58
    "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # dag-cbor codec
    " bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
]


def _other_spellings(cid: str) -> list[str]:
    """The same CID as upper-case base32 and as base58btc."""
    raw = base64.b32decode(cid[1:].upper() + "=" * (-(len(cid) - 1) % 8))
    number = int.from_bytes(raw, "big")
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    b58 = ""
    while number:
        number, rest = divmod(number, 58)
        b58 = alphabet[rest] + b58
    return ["B" + cid[1:].upper(), "z" + "1" * (len(raw) - len(raw.lstrip(b"\0"))) + b58]


class ContentStoreConformance:
    """Subclass as ``TestMyStore`` and provide the ``store`` and ``corrupt`` fixtures."""

    @pytest.fixture
    def store(self) -> ContentStore:
        raise NotImplementedError("a backend's test class provides the store fixture")

    @pytest.fixture
    def corrupt(self, store: ContentStore) -> Corrupt:
        raise NotImplementedError("a backend's test class provides the corrupt fixture")

    @pytest.fixture
    def payload(self, request: pytest.FixtureRequest) -> bytes:
        """Bytes no other test puts (the test's id), a little over two chunks long."""
        seed = request.node.nodeid.encode()
        return (seed * (2 * CHUNK // len(seed) + 2))[: 2 * CHUNK + 100]

    # --- put / get ----------------------------------------------------------------------------
    @pytest.mark.parametrize("vector", SMALL_VECTORS, ids=lambda v: v.name)
    def test_put_gives_kubo_cid_and_get_returns_the_bytes(
        self, store: ContentStore, vector: Vector
    ) -> None:
        data = vector.data()
        assert store.put(data) == vector.cid
        assert store.get(vector.cid) == data

    def test_puts_in_a_batch_are_all_there_after_it(
        self, store: ContentStore, payload: bytes
    ) -> None:
        with store.batch():
            cids = [store.put(payload), store.put(payload[:100]), store.put(payload, pin=True)]
        assert cids[0] == cids[2]
        assert [store.get(c) for c in cids] == [payload, payload[:100], payload]
        assert store.is_pinned(cids[0])

    def test_get_refuses_content_over_the_callers_limit(
        self, store: ContentStore, payload: bytes
    ) -> None:
        from visdm.errors import BlobTooLargeError

        cid = store.put(payload)
        assert store.get(cid, max_bytes=len(payload)) == payload
        for limit in (len(payload) - 1, CHUNK, 10):
            with pytest.raises(BlobTooLargeError, match=f"larger than the {limit:,} bytes"):
                store.get(cid, max_bytes=limit)
        assert store.get(cid) == payload  # nothing was lost or left half-read

    def test_put_is_idempotent(self, store: ContentStore, payload: bytes) -> None:
        first = store.put(payload)
        assert store.put(payload) == first
        assert store.get(first) == payload

    def test_put_file_equals_put(self, store: ContentStore, payload: bytes, tmp_path: Path) -> None:
        path = tmp_path / "blob.bin"
        path.write_bytes(payload[::-1])
        cid = store.put_file(path)
        assert cid == compute_cid(payload[::-1])
        assert store.get(cid) == payload[::-1]

    def test_get_accepts_other_spellings_of_a_cid(
        self, store: ContentStore, payload: bytes
    ) -> None:
        cid = store.put(payload)
        for spelling in _other_spellings(cid):
            assert parse_cid(spelling) == cid
            assert store.get(spelling) == payload

    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        # the store is per test (or one shared node); the same method runs in every backend's class
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.binary(max_size=4096))
    def test_round_trip_of_arbitrary_bytes(self, store: ContentStore, data: bytes) -> None:
        cid = store.put(data)
        assert cid == compute_cid(data)
        assert store.has(cid)
        assert store.get(cid) == data

    # --- has / unknown ------------------------------------------------------------------------
    def test_has(self, store: ContentStore, payload: bytes) -> None:
        cid = compute_cid(payload)
        assert not store.has(cid)
        store.put(payload)
        assert store.has(cid)

    def test_get_unknown_cid_raises_blob_not_found(self, store: ContentStore) -> None:
        with pytest.raises(BlobNotFoundError, match=UNKNOWN):
            store.get(UNKNOWN)
        assert not store.has(UNKNOWN)

    @pytest.mark.parametrize("bad", MALFORMED)
    @pytest.mark.parametrize("method", ["get", "has", "pin", "unpin", "is_pinned"])
    def test_malformed_cid_is_rejected_naming_the_input(
        self, store: ContentStore, method: str, bad: str
    ) -> None:
        with pytest.raises(InvalidCidError) as info:
            getattr(store, method)(bad)
        assert repr(bad) in str(info.value)

    # --- verification -------------------------------------------------------------------------
    def test_corrupt_content_raises_cid_mismatch(
        self, store: ContentStore, corrupt: Corrupt, payload: bytes
    ) -> None:
        data = payload[:1000]  # one raw block
        cid = store.put(data)
        corrupt(cid, data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(CidMismatchError, match=cid):
            store.get(cid)
        # the error is a StorageError and a ValueError, as the error tree promises
        with pytest.raises(StorageError):
            store.get(cid)

    # --- pins ---------------------------------------------------------------------------------
    def test_pin_and_unpin(self, store: ContentStore, payload: bytes) -> None:
        cid = store.put(payload)
        assert not store.is_pinned(cid)
        store.pin(cid)
        assert store.is_pinned(cid)
        store.pin(cid)  # pinning twice is fine
        assert store.is_pinned(cid)
        store.unpin(cid)
        assert not store.is_pinned(cid)
        assert store.get(cid) == payload

    def test_put_with_pin(self, store: ContentStore, payload: bytes) -> None:
        cid = store.put(payload, pin=True)
        assert store.is_pinned(cid)
        store.unpin(cid)
        assert not store.is_pinned(cid)

    def test_unpin_of_what_is_not_pinned_is_an_error(
        self, store: ContentStore, payload: bytes
    ) -> None:
        cid = store.put(payload)
        with pytest.raises(BlobNotFoundError, match=cid):
            store.unpin(cid)
        store.pin(cid)
        store.unpin(cid)
        with pytest.raises(BlobNotFoundError, match=cid):
            store.unpin(cid)

    def test_pin_of_unknown_content_raises_blob_not_found(self, store: ContentStore) -> None:
        with pytest.raises(BlobNotFoundError, match=UNKNOWN):
            store.pin(UNKNOWN)
        assert not store.is_pinned(UNKNOWN)
