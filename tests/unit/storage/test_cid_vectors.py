"""Kubo-identical CIDs: our DAG builder against vectors from a real UnixFS importer.

How the vectors were obtained (tool, version, options, bytes) is in ``vectors.py``'s docstring;
in short, ``ipfs-unixfs-importer`` 17.1.1 configured as ``ipfs add --cid-version=1`` with Kubo's
defaults (256 KiB chunks, raw leaves, balanced layout, 174 links per node), run by
``tests/integration/storage/cid_vectors.mjs``. The same CIDs are also checked against a live
js-ipfs 0.66.1 node in the integration tests.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.storage import CHUNK_SIZE, MAX_LINKS, LocalStore, compute_cid
from visdm.storage._cid import CODEC_DAG_PB, CODEC_RAW, decode_cid
from visdm.storage._dag import DagBuilder, decode_pbnode, decode_unixfs_file

from .vectors import BIG_VECTORS, SMALL_VECTORS, VECTORS, Vector, vector_bytes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("vector", SMALL_VECTORS, ids=lambda v: v.name)
def test_compute_cid_matches_the_importer(vector: Vector) -> None:
    assert compute_cid(vector.data()) == vector.cid


@pytest.mark.slow
@pytest.mark.parametrize("vector", BIG_VECTORS, ids=lambda v: v.name)
def test_compute_cid_matches_the_importer_past_174_links(vector: Vector) -> None:
    assert compute_cid(vector.data()) == vector.cid


@pytest.mark.slow
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_local_store_writes_the_importers_blocks(vector: Vector, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    data = vector.data()
    assert store.put(data) == vector.cid
    blocks = list((tmp_path / "store" / "blocks").glob("*/*"))
    assert len(blocks) == vector.blocks  # same number of distinct blocks as the importer
    assert store.get(vector.cid) == data


def _children(store_root: Path, cid: str) -> tuple[list[str], int | None, list[int]]:
    block = next((store_root / "blocks").glob(f"*/{cid}")).read_bytes()
    links, data = decode_pbnode(block)
    inline, filesize, sizes = decode_unixfs_file(data)
    assert inline == b""
    return [link.to_cid() for link, _tsize in links], filesize, sizes


@pytest.mark.slow
def test_the_tree_shape_of_175_chunks(tmp_path: Path) -> None:
    """Root -> [174 leaves] + [1 leaf]: the second level boxo's balanced layout adds."""
    vector = next(v for v in VECTORS if v.name == "175-chunks")
    store = LocalStore(tmp_path / "store")
    root = store.put(vector.data())
    top, filesize, sizes = _children(store.root, root)
    assert filesize == vector.size
    assert len(top) == 2
    assert sizes == [MAX_LINKS * CHUNK_SIZE, 1]
    left, left_size, left_sizes = _children(store.root, top[0])
    right, right_size, right_sizes = _children(store.root, top[1])
    assert (len(left), left_size, left_sizes) == (174, 174 * CHUNK_SIZE, [CHUNK_SIZE] * 174)
    assert (len(right), right_size, right_sizes) == (1, 1, [1])
    assert all(decode_cid(c).codec == CODEC_RAW for c in left + right)
    assert all(decode_cid(c).codec == CODEC_DAG_PB for c in top)


def test_exact_bytes_of_a_two_leaf_root(tmp_path: Path) -> None:
    """The serialization Kubo emits: Links (Hash, Name "", Tsize) before Data; UnixFS fields
    Type=2, filesize, blocksizes."""
    data = vector_bytes("one-chunk-plus-one", CHUNK_SIZE + 1)
    blocks: dict[str, bytes] = {}
    builder = DagBuilder(lambda cid, block: blocks.__setitem__(cid.to_cid(), block))
    builder.write(data)
    root = builder.finish()
    leaf_a, leaf_b = compute_cid(data[:CHUNK_SIZE]), compute_cid(data[CHUNK_SIZE:])
    link_a = b"\x0a\x24" + decode_cid(leaf_a).to_bytes() + b"\x12\x00" + b"\x18\x80\x80\x10"
    link_b = b"\x0a\x24" + decode_cid(leaf_b).to_bytes() + b"\x12\x00" + b"\x18\x01"
    unixfs = b"\x08\x02" + b"\x18\x81\x80\x10" + b"\x20\x80\x80\x10" + b"\x20\x01"
    expected = (
        b"\x12" + bytes([len(link_a)]) + link_a
        + b"\x12" + bytes([len(link_b)]) + link_b
        + b"\x0a" + bytes([len(unixfs)]) + unixfs
    )  # fmt: skip
    assert blocks[root.to_cid()] == expected
    assert root.to_cid() == "bafybeihcq3f53imj75rupigy3bdrwklyfrlldlxkqthum4fx2fnwsg4rg4"


@settings(max_examples=30, deadline=None, derandomize=True)
@given(cuts=st.lists(st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 5), max_size=8))
def test_the_cid_does_not_depend_on_how_the_bytes_are_split(cuts: list[int]) -> None:
    data = vector_bytes("split", 3 * CHUNK_SIZE + 5)
    points = sorted({0, len(data), *cuts})
    pieces = [data[a:b] for a, b in pairwise(points)]
    assert compute_cid(pieces) == compute_cid(data)


def test_builder_refuses_use_after_finish() -> None:
    builder = DagBuilder()
    builder.finish()
    with pytest.raises(RuntimeError):
        builder.write(b"x")
    with pytest.raises(RuntimeError):
        builder.finish()
