"""KuboStore against a real IPFS node (js-ipfs 0.66.1's Kubo-compatible RPC API, see conftest).

The conformance suite runs unchanged; corruption is done to the node's own flatfs block file, so
``get``'s re-verification is tested on bytes a real node served. The CID vectors are added
through the node and must come back with the importer's CIDs.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from visdm.errors import BlobNotFoundError, CidMismatchError
from visdm.storage import ContentStore, KuboStore, LocalStore, cid_digest, compute_cid
from visdm.types import Cid

from ...unit.storage.conformance import ContentStoreConformance, Corrupt
from ...unit.storage.vectors import CHUNK, VECTORS, Vector, vector_bytes
from .conftest import IpfsNode

pytestmark = pytest.mark.integration


def flatfs_block(node: IpfsNode, cid: str) -> Path:
    """The file js-ipfs keeps a block in: blocks/<shard>/<base32 multihash>.data."""
    key = base64.b32encode(b"\x12\x20" + cid_digest(cid)).decode().rstrip("=")
    matches = list((node.repo / "blocks").glob(f"*/{key}.data"))
    assert len(matches) == 1, f"block {cid} not found in {node.repo}"
    return matches[0]


@pytest.fixture
def kubo(ipfs_node: IpfsNode) -> Iterator[KuboStore]:
    with KuboStore(
        ipfs_node.url, timeout_s=60, fetch_timeout_s=1, probe_timeout_s=1, offline=True
    ) as store:
        yield store


class TestKuboStore(ContentStoreConformance):
    @pytest.fixture
    def store(self, kubo: KuboStore) -> ContentStore:
        return kubo

    @pytest.fixture
    def corrupt(self, ipfs_node: IpfsNode) -> Corrupt:
        def corrupt(cid: Cid, data: bytes) -> None:
            flatfs_block(ipfs_node, cid).write_bytes(data)

        return corrupt


@pytest.mark.slow
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_the_node_gives_the_vectors_cids(kubo: KuboStore, vector: Vector) -> None:
    """A live cross-check of the importer's vectors: js-ipfs's own `add --cid-version=1`."""
    data = vector.data()
    response = httpx.post(
        f"{kubo.url}/api/v0/add",
        params={"cid-version": "1", "cid-base": "base32"},
        files={"file": ("v", data)},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["Hash"] == vector.cid
    assert kubo.put(data) == vector.cid
    assert kubo.get(vector.cid) == data


def test_local_and_kubo_stores_agree(kubo: KuboStore, tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "store")
    data = vector_bytes("agree", 3 * CHUNK + 99)
    assert kubo.put(data) == local.put(data) == compute_cid(data)
    assert kubo.get(local.put(data)) == local.get(kubo.put(data))


def test_put_file_streams_to_the_node(kubo: KuboStore, tmp_path: Path) -> None:
    data = vector_bytes("kubo-file", 5 * CHUNK + 1)
    path = tmp_path / "blob"
    path.write_bytes(data)
    cid = kubo.put_file(path, pin=True)
    assert cid == compute_cid(data)
    assert kubo.is_pinned(cid)
    assert kubo.get(cid) == data


def test_a_corrupt_leaf_on_the_node_is_caught(kubo: KuboStore, ipfs_node: IpfsNode) -> None:
    data = vector_bytes("kubo-corrupt-leaf", 2 * CHUNK + 5)
    cid = kubo.put(data)
    leaf = compute_cid(data[CHUNK : 2 * CHUNK])
    path = flatfs_block(ipfs_node, leaf)
    block = bytearray(path.read_bytes())
    block[7] ^= 0x01
    path.write_bytes(bytes(block))
    with pytest.raises(CidMismatchError, match=cid):
        kubo.get(cid)


def test_a_missing_block_is_not_found_within_the_fetch_timeout(
    kubo: KuboStore, ipfs_node: IpfsNode
) -> None:
    data = vector_bytes("kubo-missing", 100)
    cid = kubo.put(data)
    flatfs_block(ipfs_node, cid).unlink()
    assert not kubo.has(cid)
    with pytest.raises(BlobNotFoundError, match=cid):
        kubo.get(cid)
