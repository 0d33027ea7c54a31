"""LocalStore batches: one sync for a batch's data and one for its renames, whatever the
number of blocks, and an interrupted batch — an exception, or a process killed part-way
through its writes or its renames — leaves no object half visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from visdm.errors import BlobNotFoundError
from visdm.storage import CHUNK_SIZE, LocalStore
from visdm.storage import _local as local_module
from visdm.storage._cid import decode_cid

from .vectors import vector_bytes

pytestmark = pytest.mark.unit

BIG = vector_bytes("batch", 9 * CHUNK_SIZE + 7)  # 10 leaves and a root


def _root_file(store: LocalStore, cid: str) -> Path:
    name = decode_cid(cid).to_cid()
    return store.root / "blocks" / name[-3:-1] / name


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counts = {"syncfs": 0, "fsync": 0}
    real_sync, real_fsync = local_module._sync_filesystem, os.fsync

    def sync(folder: Path) -> None:
        counts["syncfs"] += 1
        real_sync(folder)

    def fsync(fd: int) -> None:
        counts["fsync"] += 1
        real_fsync(fd)

    monkeypatch.setattr(local_module, "_sync_filesystem", sync)
    monkeypatch.setattr(os, "fsync", fsync)
    return counts


def test_a_many_block_put_syncs_twice_not_once_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    counts = _count_syncs(monkeypatch)
    cid = store.put(BIG)
    assert counts == {"syncfs": 2, "fsync": 0}  # data, then renames; 11 blocks
    assert store.get(cid) == BIG
    counts.update(syncfs=0, fsync=0)
    assert store.put(b"one block") and counts == {"syncfs": 0, "fsync": 1}
    counts.update(syncfs=0, fsync=0)
    store.put(BIG)  # already stored: nothing to write, nothing to sync
    assert counts == {"syncfs": 0, "fsync": 0}


def test_a_batch_publishes_every_put_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    counts = _count_syncs(monkeypatch)
    blobs = [f"sample {i}".encode() * 50 for i in range(40)] + [BIG]
    with store.batch():
        cids = [store.put(b, pin=i == 0) for i, b in enumerate(blobs)]
        with store.batch():  # a nested batch joins the outer one
            cids.append(store.put(b"nested"))
        assert not any(store.has(c) for c in cids)  # not visible before the batch ends
        assert not store.is_pinned(cids[0])
    assert counts == {"syncfs": 2, "fsync": 0}
    assert [store.get(c) for c in cids] == [*blobs, b"nested"]
    assert store.is_pinned(cids[0])


def test_an_exception_in_a_batch_publishes_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cids: list[str] = []

    def fill() -> None:
        with store.batch():
            cids.extend([store.put(BIG), store.put(b"small")])
            raise ValueError("stop")

    with pytest.raises(ValueError, match="stop"):
        fill()
    assert len(cids) == 2
    for cid in cids:
        assert not store.has(cid)
        with pytest.raises(BlobNotFoundError, match="no content under"):
            store.get(cid)
    assert list((tmp_path / "blocks").glob("*/*")) == []
    assert list((tmp_path / "tmp").iterdir()) == []


_CHILD = """
import os, signal, sys
from visdm.storage import LocalStore
from visdm.storage import _local

store = LocalStore(sys.argv[1])
when, after = sys.argv[2], int(sys.argv[3])
blobs = [bytes([i]) * (3 * 262144 + i) for i in range(4)] + [b"x" * 100]
renamed = 0
real_replace = os.replace

def replace(src, dst):
    global renamed
    if renamed == after:
        os.kill(os.getpid(), signal.SIGKILL)
    renamed += 1
    real_replace(src, dst)

if when == "renames":
    _local.os.replace = replace
with store.batch():
    for blob in blobs:
        print(store.put(blob), flush=True)
    if when == "writes":
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(
    ("when", "after", "published"), [("writes", 0, 0), ("renames", 3, 0), ("renames", 9, 2)]
)
def test_a_batch_killed_part_way_leaves_no_object_half_visible(
    tmp_path: Path, when: str, after: int, published: int
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(tmp_path), when, str(after)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL
    cids = child.stdout.split()
    assert len(cids) == 5
    store = LocalStore(tmp_path)
    blobs = [bytes([i]) * (3 * 262144 + i) for i in range(4)] + [b"x" * 100]
    whole = 0
    for cid, blob in zip(cids, blobs, strict=True):
        if store.has(cid):
            whole += 1
            assert store.get(cid) == blob
        else:  # absent: its root was never renamed into place
            assert not _root_file(store, cid).exists()
            with pytest.raises(BlobNotFoundError):
                store.get(cid)
    # 7 blocks are inner ones and go first, the 5 roots last: killed before any rename,
    # nothing is there; during the renames, only the objects whose root made it, whole
    assert whole == published
    store.gc()  # removes the dead batch's temp files
    assert list((tmp_path / "tmp").iterdir()) == []
