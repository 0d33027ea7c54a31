"""The UnixFS file DAG, built exactly as Kubo builds it, and read back block by block.

Design section 2 promises that the local store's CIDs are *identical* to what
``ipfs add --cid-version=1`` prints, so that a blob stored locally can later be served from any
IPFS node under the same CID (and the same sample id). Kubo's defaults for that command, which
this module reproduces (boxo ``importer/balanced`` and ``importer/helpers``):

* chunker ``size-262144``: fixed 256 KiB chunks, the last one shorter;
* raw leaves (implied by CIDv1): each chunk is a ``raw`` block, CID codec 0x55;
* a file of one chunk (or none) *is* that raw block — ``bafkrei…``;
* otherwise a balanced tree of ``dag-pb`` nodes with at most 174 links each, filled left to
  right, each node a PBNode whose links carry the child's CID, ``Name ""`` and ``Tsize`` (the
  child's block plus everything below it), and whose Data is a UnixFS ``Data`` message with
  ``Type=File``, ``filesize`` and one ``blocksizes`` entry per child — ``bafybei…``;
* sha2-256 everywhere.

Serialization follows the canonical dag-pb form that go-codec-dagpb and @ipld/dag-pb emit: Links
(field 2) *before* Data (field 1); within a link Hash, Name, Tsize; within UnixFS Data the fields
Type, (Data absent), filesize, blocksizes in that order.

:class:`DagBuilder` takes the bytes in any pieces and hands every finished block to a sink, so a
multi-GiB file never has to be in memory. :func:`iter_file` walks a DAG and yields the file's
bytes, checking each block against the CID it was linked under before using it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from visdm.errors import CidMismatchError, StorageError
from visdm.types import Cid

from ._cid import CODEC_DAG_PB, CODEC_RAW, DecodedCid, encode_varint, read_varint

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "BlockSink",
    "DagBuilder",
    "PbLink",
    "compute_cid",
    "decode_pbnode",
    "decode_unixfs_file",
    "encode_pbnode",
    "encode_unixfs_file",
    "iter_file",
    "verify_block",
]

#: Kubo's default chunk size (``--chunker=size-262144``)
CHUNK_SIZE = 262_144
#: Kubo's default maximum number of links per node in the balanced layout
MAX_LINKS = 174

_UNIXFS_RAW = 0
_UNIXFS_FILE = 2
_WIRE_VARINT = 0
_WIRE_LEN = 2

#: receives (cid, block bytes) for every block the builder finishes
BlockSink = Callable[[DecodedCid, bytes], None]


@dataclass(frozen=True, slots=True)
class PbLink:
    """One dag-pb link: the child's CID, its cumulative DAG size and its file bytes."""

    cid: DecodedCid
    tsize: int
    filesize: int


# --- protobuf, the two messages we need -------------------------------------------------------
def _key(field: int, wire: int) -> bytes:
    return encode_varint(field << 3 | wire)


def _len_field(field: int, payload: bytes) -> bytes:
    return _key(field, _WIRE_LEN) + encode_varint(len(payload)) + payload


def _varint_field(field: int, value: int) -> bytes:
    return _key(field, _WIRE_VARINT) + encode_varint(value)


def encode_unixfs_file(filesize: int, blocksizes: Iterable[int]) -> bytes:
    """UnixFS ``Data`` of an internal file node: Type=File, filesize, blocksizes."""
    out = bytearray(_varint_field(1, _UNIXFS_FILE))
    out += _varint_field(3, filesize)
    for size in blocksizes:
        out += _varint_field(4, size)
    return bytes(out)


def encode_pbnode(links: Iterable[PbLink], data: bytes) -> bytes:
    """A canonical dag-pb PBNode: every link (Hash, Name "", Tsize), then Data."""
    out = bytearray()
    for link in links:
        body = (
            _len_field(1, link.cid.to_bytes()) + _len_field(2, b"") + _varint_field(3, link.tsize)
        )
        out += _len_field(2, body)
    out += _len_field(1, data)
    return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a protobuf message; only varint/len wires."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == _WIRE_VARINT:
            value, pos = read_varint(buf, pos)
            yield field, wire, value
        elif wire == _WIRE_LEN:
            length, pos = read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("length-delimited field runs past the end")
            yield field, wire, buf[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def decode_pbnode(block: bytes) -> tuple[list[tuple[DecodedCid, int]], bytes]:
    """Links (CID, Tsize) and Data of a dag-pb block; ``ValueError`` if malformed."""
    links: list[tuple[DecodedCid, int]] = []
    data = b""
    for field, wire, value in _fields(block):
        if field == 2 and wire == _WIRE_LEN and isinstance(value, bytes):
            links.append(_decode_link(value))
        elif field == 1 and wire == _WIRE_LEN and isinstance(value, bytes):
            data = value
        else:
            raise ValueError(f"unexpected PBNode field {field} (wire type {wire})")
    return links, data


def _decode_link(buf: bytes) -> tuple[DecodedCid, int]:
    cid: DecodedCid | None = None
    tsize = 0
    for field, _wire, value in _fields(buf):
        if field == 1 and isinstance(value, bytes):
            cid = _cid_from_bytes(value)
        elif field == 3 and isinstance(value, int):
            tsize = value
    if cid is None:
        raise ValueError("a PBLink without a Hash")
    return cid, tsize


def _cid_from_bytes(raw: bytes) -> DecodedCid:
    if len(raw) == 34 and raw[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
        return DecodedCid(1, CODEC_DAG_PB, raw[2:])
    version, pos = read_varint(raw, 0)
    codec, pos = read_varint(raw, pos)
    if version != 1 or codec not in (CODEC_RAW, CODEC_DAG_PB) or raw[pos : pos + 2] != b"\x12\x20":
        raise ValueError("a link to a block that is not raw/dag-pb sha2-256")
    digest = raw[pos + 2 :]
    if len(digest) != 32:
        raise ValueError("a link with a truncated digest")
    return DecodedCid(1, codec, digest)


def decode_unixfs_file(data: bytes) -> tuple[bytes, int | None, list[int]]:
    """Inline data, filesize and blocksizes of a UnixFS File/Raw node; ``ValueError`` otherwise."""
    kind: int | None = None
    inline = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for field, wire, value in _fields(data):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 2 and isinstance(value, bytes):
            inline = value
        elif field == 3 and isinstance(value, int):
            filesize = value
        elif field == 4 and isinstance(value, int):
            blocksizes.append(value)
        elif field == 4 and isinstance(value, bytes):  # tolerate packed encoding
            pos = 0
            while pos < len(value):
                size, pos = read_varint(value, pos)
                blocksizes.append(size)
        del wire
    if kind not in (_UNIXFS_FILE, _UNIXFS_RAW):
        raise ValueError(f"UnixFS node of type {kind} is not a file")
    return inline, filesize, blocksizes


# --- building -----------------------------------------------------------------------------------
class DagBuilder:
    """Chunk a byte stream and build Kubo's balanced DAG over it, block by block.

    Feed bytes with :meth:`write` in pieces of any size, then call :meth:`finish` for the root
    CID. Every block goes to ``sink`` as soon as it is final (leaves first, each parent after its
    children), so a store that writes them in order never holds a parent without its children.
    Memory stays at one chunk plus at most 174 links per tree level.
    """

    def __init__(self, sink: BlockSink | None = None) -> None:
        self._sink = sink
        self._buffer = bytearray()
        # _levels[0] holds leaves not yet under a parent, _levels[k] nodes of height k
        self._levels: list[list[PbLink]] = [[]]
        self._finished = False

    def write(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError("DagBuilder.write after finish")
        self._buffer += data
        if len(self._buffer) <= CHUNK_SIZE:
            return
        # keep the last (possibly partial) chunk buffered: only finish() knows it is the last
        whole = (len(self._buffer) - 1) // CHUNK_SIZE * CHUNK_SIZE
        view = memoryview(self._buffer)
        try:
            for start in range(0, whole, CHUNK_SIZE):
                self._add_leaf(bytes(view[start : start + CHUNK_SIZE]))
        finally:
            view.release()
        del self._buffer[:whole]

    def finish(self) -> DecodedCid:
        """Emit the last leaf and every pending parent; return the root's CID."""
        if self._finished:
            raise RuntimeError("DagBuilder.finish called twice")
        self._finished = True
        if self._buffer or not self._levels[0]:
            # the last chunk; an empty input is one empty raw leaf, as in boxo's balanced.Layout
            self._add_leaf(bytes(self._buffer))
            self._buffer.clear()
        height = 0
        while True:
            pending = self._levels[height]
            if height + 1 == len(self._levels) and len(pending) == 1:
                return pending[0].cid  # the only node left at the top is the root
            self._push(height + 1, self._make_node(pending))
            self._levels[height] = []
            height += 1

    def _add_leaf(self, chunk: bytes) -> None:
        cid = DecodedCid(1, CODEC_RAW, hashlib.sha256(chunk).digest())
        if self._sink is not None:
            self._sink(cid, chunk)
        self._push(0, PbLink(cid, len(chunk), len(chunk)))

    def _push(self, height: int, link: PbLink) -> None:
        if height == len(self._levels):
            self._levels.append([])
        level = self._levels[height]
        if len(level) == MAX_LINKS:
            # a full node and more to come: close it, and start its right sibling
            self._push(height + 1, self._make_node(level))
            level = self._levels[height] = []
        level.append(link)

    def _make_node(self, children: list[PbLink]) -> PbLink:
        filesize = sum(child.filesize for child in children)
        data = encode_unixfs_file(filesize, (child.filesize for child in children))
        block = encode_pbnode(children, data)
        cid = DecodedCid(1, CODEC_DAG_PB, hashlib.sha256(block).digest())
        if self._sink is not None:
            self._sink(cid, block)
        return PbLink(cid, len(block) + sum(child.tsize for child in children), filesize)


def compute_cid(data: bytes | Iterable[bytes]) -> Cid:
    """The CID ``ipfs add --cid-version=1`` gives ``data`` (bytes, or an iterable of pieces)."""
    builder = DagBuilder()
    if isinstance(data, bytes | bytearray | memoryview):
        builder.write(bytes(data))
    else:
        for piece in data:
            builder.write(piece)
    return builder.finish().to_cid()


# --- reading ------------------------------------------------------------------------------------
def verify_block(cid: DecodedCid, block: bytes, *, where: str) -> None:
    """Raise :class:`CidMismatchError` unless ``block`` hashes to ``cid``'s digest."""
    if hashlib.sha256(block).digest() != cid.digest:
        raise CidMismatchError(
            f"block {cid.to_cid()} from {where} does not hash to its CID (got sha2-256 "
            f"{hashlib.sha256(block).hexdigest()}): the stored copy is corrupt or was altered; "
            "remove it and put the original bytes again"
        )


def iter_file(
    root: DecodedCid, load: Callable[[DecodedCid], bytes], *, where: str
) -> Iterator[bytes]:
    """Yield the bytes of the file whose DAG is rooted at ``root``, verifying every block.

    ``load`` returns a block's bytes (or raises ``BlobNotFoundError``). A block that does not
    hash to its CID raises :class:`CidMismatchError`; a verified block that is not a UnixFS file
    node, or whose sizes disagree with its children, raises :class:`StorageError`.
    """
    yield from _iter_node(root, load, where=where)


def _iter_node(
    cid: DecodedCid, load: Callable[[DecodedCid], bytes], *, where: str
) -> Iterator[bytes]:
    block = load(cid)
    verify_block(cid, block, where=where)
    if cid.codec == CODEC_RAW:
        yield block
        return
    try:
        links, data = decode_pbnode(block)
        inline, filesize, blocksizes = decode_unixfs_file(data)
    except ValueError as exc:
        raise StorageError(
            f"block {cid.to_cid()} from {where} is not a UnixFS file node ({exc}); "
            "ViSDM stores only files added with Kubo's defaults"
        ) from None
    if len(blocksizes) != len(links):
        raise StorageError(
            f"block {cid.to_cid()} from {where} lists {len(blocksizes)} block sizes for "
            f"{len(links)} links: malformed UnixFS file node"
        )
    if inline:
        yield inline
    total = len(inline)
    for (child, _tsize), size in zip(links, blocksizes, strict=True):
        got = 0
        for piece in _iter_node(child, load, where=where):
            got += len(piece)
            yield piece
        if got != size:
            raise StorageError(
                f"block {child.to_cid()} under {cid.to_cid()} from {where} holds {got} bytes, "
                f"its parent says {size}: malformed UnixFS file"
            )
        total += got
    if filesize is not None and total != filesize:
        raise StorageError(
            f"block {cid.to_cid()} from {where} says filesize {filesize} but its children hold "
            f"{total} bytes: malformed UnixFS file"
        )
