"""LocalStore: the conformance suite, then what only an on-disk blockstore can get wrong.

Corruption is done to the real block files; crash safety is tested by failing the write of a
block part-way (a stand-in for a power cut between write and rename) and checking that nothing
half-written is visible.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from visdm.errors import BlobNotFoundError, CidMismatchError, StorageError
from visdm.storage import (
    CHUNK_SIZE,
    ContentStore,
    LocalStore,
    cid_digest,
    compute_cid,
    parse_cid,
)
from visdm.storage import _local as local_module
from visdm.storage._cid import CODEC_DAG_PB, make_cid
from visdm.types import Cid

from .conformance import ContentStoreConformance, Corrupt
from .vectors import vector_bytes

pytestmark = pytest.mark.unit


def block_files(store: LocalStore) -> dict[str, Path]:
    return {p.name: p for p in (store.root / "blocks").glob("*/*")}


def block_path(store: LocalStore, cid: str) -> Path:
    return block_files(store)[parse_cid(cid)]


def leaf_cids(data: bytes) -> list[str]:
    """The raw-leaf CIDs of ``data``'s chunks, in order."""
    return [compute_cid(data[i : i + CHUNK_SIZE]) for i in range(0, max(len(data), 1), CHUNK_SIZE)]


class TestLocalStore(ContentStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ContentStore:
        return LocalStore(tmp_path / "store")

    @pytest.fixture
    def corrupt(self, store: ContentStore) -> Corrupt:
        assert isinstance(store, LocalStore)

        def corrupt(cid: Cid, data: bytes) -> None:
            block_path(store, cid).write_bytes(data)

        return corrupt


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


DATA = vector_bytes("local-store", 3 * CHUNK_SIZE + 12_345)


def test_every_block_is_stored_under_its_own_hash(store: LocalStore) -> None:
    root = store.put(DATA)
    files = block_files(store)
    assert set(files) == {root, *leaf_cids(DATA)}  # 4 leaves and the root
    assert len(files) == 5
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).digest() == cid_digest(name)


def test_corrupt_leaf_of_a_multi_block_file_is_detected(store: LocalStore) -> None:
    root = store.put(DATA)
    leaf = leaf_cids(DATA)[2]
    path = block_path(store, leaf)
    block = bytearray(path.read_bytes())
    block[100] ^= 0x40
    path.write_bytes(bytes(block))
    with pytest.raises(CidMismatchError, match=leaf) as info:
        store.get(root)
    assert "put the original bytes again" in str(info.value)


def test_corrupt_root_node_is_detected(store: LocalStore) -> None:
    root = store.put(DATA)
    path = block_path(store, root)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CidMismatchError, match=root):
        store.get(root)


def test_putting_the_original_again_repairs_a_corrupt_block(store: LocalStore) -> None:
    root = store.put(DATA)
    path = block_path(store, leaf_cids(DATA)[0])
    path.write_bytes(b"garbage")
    with pytest.raises(CidMismatchError):
        store.get(root)
    assert store.put(DATA) == root
    assert store.get(root) == DATA


def test_missing_leaf_raises_blob_not_found_and_has_is_false(store: LocalStore) -> None:
    root = store.put(DATA)
    leaf = leaf_cids(DATA)[1]
    block_path(store, leaf).unlink()
    assert not store.has(root)
    with pytest.raises(BlobNotFoundError, match=leaf):
        store.get(root)
    with pytest.raises(BlobNotFoundError, match=leaf):
        store.pin(root)


def test_a_valid_block_that_is_not_a_file_node_is_refused(store: LocalStore) -> None:
    # a well-hashed dag-pb block whose Data is not UnixFS: verification passes, decoding must not
    block = b"\x0a\x03abc"  # PBNode{Data: "abc"}
    cid = make_cid(CODEC_DAG_PB, block)
    path = store.root / "blocks" / cid[-3:-1] / cid
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(block)
    with pytest.raises(StorageError, match="not a UnixFS file node"):
        store.get(cid)


def test_a_failed_write_leaves_no_partial_block(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_sync(folder: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_module, "_sync_filesystem", failing_sync)
    with pytest.raises(OSError, match="No space left"):
        store.put(DATA)
    monkeypatch.undo()
    assert block_files(store) == {}  # the batch's data never reached disk: nothing renamed
    assert list((store.root / "tmp").iterdir()) == []
    root = store.put(DATA)  # and the store carries on
    assert store.get(root) == DATA


def test_gc_removes_stray_temp_files_left_by_a_crash(store: LocalStore) -> None:
    stray = store.root / "tmp" / ".block-crashed"
    stray.write_bytes(b"half a block")
    store.gc()
    assert not stray.exists()


def test_pins_persist_across_instances(store: LocalStore) -> None:
    root = store.put(DATA, pin=True)
    again = LocalStore(store.root)
    assert again.is_pinned(root)
    assert again.pins() == [root]
    assert again.get(root) == DATA


def test_gc_keeps_pinned_dags_and_removes_the_rest(store: LocalStore) -> None:
    pinned = store.put(DATA, pin=True)
    loose = store.put(vector_bytes("loose", 2 * CHUNK_SIZE + 1))
    shared = DATA[:CHUNK_SIZE]  # its only block is also the first leaf of the pinned file
    shared_cid = store.put(shared)
    report = store.gc()
    assert report.removed_blocks == 4  # the loose file's three leaves and its root
    assert report.removed_bytes > 2 * CHUNK_SIZE
    assert report.kept_blocks == 5
    assert store.get(pinned) == DATA
    assert store.get(shared_cid) == shared
    assert not store.has(loose)
    with pytest.raises(BlobNotFoundError):
        store.get(loose)
    store.unpin(pinned)
    assert store.gc().kept_blocks == 0
    assert block_files(store) == {}


def test_gc_refuses_to_run_when_a_pinned_dag_is_corrupt(store: LocalStore) -> None:
    pinned = store.put(DATA, pin=True)
    loose = store.put(b"loose")
    path = block_path(store, pinned)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(CidMismatchError, match=pinned):
        store.gc()
    assert store.has(loose)  # nothing was deleted


def test_put_file_streams_big_files(store: LocalStore, tmp_path: Path) -> None:
    data = vector_bytes("stream", 7 * CHUNK_SIZE + 3)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    cid = store.put_file(path, pin=True)
    assert cid == compute_cid(data)
    assert store.is_pinned(cid)
    assert store.get(cid) == data


def test_an_unwritable_root_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError, match="cannot create the local store"):
        LocalStore(blocker / "store")
