"""Content-addressed storage for ViSDM: blobs in, CIDs out, verified bytes back.

Encrypted samples, manifests, metadata and models are stored by content and referred to by
CID everywhere else; a sample's id is its ciphertext CID's digest (design 3.2). Three backends
implement one interface, :class:`ContentStore`:

* :class:`LocalStore` — the embedded default: a blockstore in a directory, with CIDs identical
  to ``ipfs add --cid-version=1`` (Kubo's chunking, raw leaves, balanced DAG), pins and ``gc``;
* :class:`KuboStore` — an IPFS node through the Kubo HTTP RPC API;
* :class:`MemoryStore` — an in-memory fake for other packages' unit tests.

Every backend verifies what it returns against the CID. Errors are the storage branch of
:mod:`visdm.errors`: ``InvalidCidError`` (malformed CID string), ``BlobNotFoundError`` (unknown
CID, or unpinning what is not pinned), ``CidMismatchError`` (bytes that do not hash to their
CID) and ``StorageUnavailableError`` (backend unreachable or not answering).

:func:`compute_cid` gives the CID of bytes without storing them; :func:`parse_cid` validates
and canonicalises a CID string; :func:`cid_digest` extracts its 32-byte sha2-256 digest.
"""

from ._base import ContentStore
from ._cid import cid_digest, parse_cid
from ._dag import CHUNK_SIZE, MAX_LINKS, compute_cid
from ._kubo import KuboStore
from ._local import GcReport, LocalStore
from ._memory import MemoryStore

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "ContentStore",
    "GcReport",
    "KuboStore",
    "LocalStore",
    "MemoryStore",
    "cid_digest",
    "compute_cid",
    "parse_cid",
]
