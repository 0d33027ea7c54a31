"""CID test vectors derived from a real IPFS implementation, and the bytes they cover.

Every CID below was printed by ``tests/integration/storage/cid_vectors.mjs``, which runs
``ipfs-unixfs-importer`` 17.1.1 (the UnixFS importer of js-ipfs and Helia) into a
``blockstore-core`` 7.0.1 ``MemoryBlockstore`` on Node 20.20.2 with the options that reproduce
``ipfs add --cid-version=1`` under Kubo's defaults::

    cidVersion: 1, rawLeaves: true, chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 }), reduceSingleLeafToSelf: true

The same CIDs are also checked live against js-ipfs 0.66.1's ``/api/v0/add?cid-version=1`` in
``tests/integration/storage/test_kubo_store.py``. The bytes are deterministic:
SHAKE-256(``"visdm/storage/vector/" + name``) cut to ``size`` bytes, or zeros for ``zeros-*``
(identical chunks, so one leaf block is linked three times). ``blocks`` is how many distinct
blocks the importer wrote.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CHUNK = 262_144


@dataclass(frozen=True)
class Vector:
    name: str
    size: int
    cid: str
    blocks: int

    def data(self) -> bytes:
        return vector_bytes(self.name, self.size)


def vector_bytes(name: str, size: int) -> bytes:
    """The bytes of vector ``name`` (same generator as cid_vectors.mjs)."""
    if name.startswith("zeros"):
        return bytes(size)
    return hashlib.shake_256(f"visdm/storage/vector/{name}".encode()).digest(size)


# fmt: off
VECTORS = [
    Vector("empty", 0, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 1),
    Vector("tiny", 11, "bafkreiatq6bdfhmdkorblwjnmp3undpz5rn3t4pxzzgoskvlikfoaakaya", 1),
    Vector("one-chunk", CHUNK,
           "bafkreif7bpzll27cidyyzxz6kbbke7qvsv23obef5seq7auh4oiqxvatri", 1),
    Vector("one-chunk-plus-one", CHUNK + 1,
           "bafybeihcq3f53imj75rupigy3bdrwklyfrlldlxkqthum4fx2fnwsg4rg4", 3),
    Vector("zeros-three-chunks", 3 * CHUNK + 7,
           "bafybeicvv5clybjn4zny6ezt4ht654kdk3ddf44zif3lxvisnpdc2kbaye", 3),
    Vector("five-mib", 5 * 1024 * 1024,
           "bafybeidz2gsojk6smrbcihilypjwwxzi2z2uelqmbrx2xzzufrjadipk2q", 21),
    # 174 chunks: the root holds the maximum of 174 links
    Vector("174-chunks", 174 * CHUNK,
           "bafybeich3tsgm5ms5fmozdp3dt4brnjdiznauqbewqb3s5v6cr6srxqohu", 175),
    # one byte more: a second level (root -> [174 leaves], [1 leaf])
    Vector("175-chunks", 174 * CHUNK + 1,
           "bafybeiab5t5gsn3adgfpocnfyivi6ix7y22vet65gcmkw3oz5bfeft66nu", 178),
    Vector("175-full-chunks", 175 * CHUNK,
           "bafybeie377ty4ba64hri7adg6pmoeukbdzpavctfqzramwwjpyisqmjlay", 178),
]
# fmt: on

SMALL_VECTORS = [v for v in VECTORS if v.size <= 5 * 1024 * 1024]
BIG_VECTORS = [v for v in VECTORS if v.size > 5 * 1024 * 1024]
