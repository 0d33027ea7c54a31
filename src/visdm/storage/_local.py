"""The embedded default store: a blockstore in one directory, with Kubo's CIDs.

Design section 2 runs the whole marketplace on one machine without an IPFS daemon, yet the CIDs
it records on chain must be the ones IPFS would give, so that the same content can later be
served by any Kubo node. So this store does not hash whole files: it builds the same UnixFS DAG
as ``ipfs add --cid-version=1`` (see :mod:`._dag`) and keeps every block, one file per block.

Layout under the directory given to :class:`LocalStore`::

    blocks/<2 chars>/<cid>   one file per block, named by its CIDv1 (sharded on the next-to-last
                             two characters, like Kubo's flatfs)
    pins/<cid>               an empty file per pinned root
    tmp/                     blocks being written; renamed into blocks/ once complete
    lock                     flock(2): put/pin share it, gc takes it alone

Guarantees: blocks are written to ``tmp/`` and renamed into place only once on disk, so a crash
never leaves a half-written block under ``blocks/`` (only stray temp files, which
:meth:`LocalStore.gc` removes). Writes go in **batches** — one ``put`` or ``put_file``, or every
put inside :meth:`LocalStore.batch` — that reach the disk with one sync for the batch's data
and one for its renames, whatever the number of blocks (a file of 4,000 blocks used to cost
4,000 fsyncs; a batch of one block still costs one fsync). Within a batch every root block
is renamed after every other block, and nothing is renamed before the data is synced, so an
interrupted batch leaves no object half visible: an object is there, whole, or absent. Every
read is checked against the CID, block by block. Putting the same bytes again rewrites any
block that fails its hash, so a corrupt store heals by re-adding the original. POSIX only
(flock); the batch sync is Linux's ``syncfs(2)``, or ``sync(2)`` where there is none.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from visdm.errors import BlobNotFoundError, InvalidCidError, StorageError
from visdm.types import Cid

from ._base import ContentStore, too_large
from ._cid import CODEC_RAW, DecodedCid, decode_cid
from ._dag import DagBuilder, decode_pbnode, iter_file, verify_block

__all__ = ["GcReport", "LocalStore"]

_READ_PIECE = 1 << 20


def _libc_syncfs() -> object | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    return getattr(libc, "syncfs", None)


_SYNCFS = _libc_syncfs()


def _sync_filesystem(folder: Path) -> None:
    """Flush every dirty page of the file system holding ``folder``: one call for a batch."""
    if _SYNCFS is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:  # type: ignore[operator]
            err = ctypes.get_errno()
            raise StorageError(
                f"cannot sync the local store at {folder}: {os.strerror(err)}; "
                "check the disk, then put the content again"
            )
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Batch:
    """Blocks written to ``tmp/`` and not yet renamed into place."""

    #: final path -> temp file, in write order (children before the roots that name them)
    blocks: dict[Path, str] = field(default_factory=dict)
    roots: set[Path] = field(default_factory=set)
    pins: list[DecodedCid] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GcReport:
    """What :meth:`LocalStore.gc` did."""

    removed_blocks: int
    removed_bytes: int
    kept_blocks: int


class LocalStore(ContentStore):
    """A content store in ``root`` (created if missing) whose CIDs equal Kubo's."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._local = threading.local()  # each thread's open batch
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._tmp = self.root / "tmp"
        try:
            for folder in (self._blocks, self._pins, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the local store at {self.root}: {exc.strerror or exc}; "
                "choose a writable directory"
            ) from exc

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # --- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make every put inside one batch: synced once and published together on leaving.

        The CIDs are returned at once, but the objects appear (whole) only when the block
        ends; an exception inside it publishes none of them. A batch inside a batch joins it.
        """
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        batch = _Batch()
        self._local.batch = batch
        try:
            with self._locked(exclusive=False):
                try:
                    yield
                    self._publish(batch)
                finally:
                    for tmp_name in batch.blocks.values():
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(tmp_name)
        finally:
            self._local.batch = None

    def put(self, data: bytes, *, pin: bool = False) -> Cid:
        with self.batch():
            builder = DagBuilder(self._write_block)
            builder.write(bytes(data))
            return self._finish(builder, pin=pin)

    def put_file(self, path: str | os.PathLike[str], *, pin: bool = False) -> Cid:
        """Store a file chunk by chunk: memory stays at one chunk whatever the file's size."""
        with self.batch(), Path(path).open("rb") as handle:
            builder = DagBuilder(self._write_block)
            while piece := handle.read(_READ_PIECE):
                builder.write(piece)
            return self._finish(builder, pin=pin)

    def _finish(self, builder: DagBuilder, *, pin: bool) -> Cid:
        root = builder.finish()
        batch: _Batch = self._local.batch
        batch.roots.add(self._block_path(root))
        if pin:
            batch.pins.append(root)
        return root.to_cid()

    def _write_block(self, cid: DecodedCid, block: bytes) -> None:
        path = self._block_path(cid)
        batch: _Batch = self._local.batch
        if path in batch.blocks:
            return  # written earlier in this batch (blocks are shared between files)
        with contextlib.suppress(FileNotFoundError):
            if hashlib.sha256(path.read_bytes()).digest() == cid.digest:
                return  # already stored intact
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix=".block-")
        batch.blocks[path] = tmp_name
        with os.fdopen(fd, "wb") as handle:
            handle.write(block)

    def _publish(self, batch: _Batch) -> None:
        """Sync the batch's data, rename its blocks into place (roots last), sync the renames,
        then write its pins."""
        if len(batch.blocks) == 1:  # one block: its own fsync is the cheapest sync
            (tmp_name,) = batch.blocks.values()
            fd = os.open(tmp_name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif batch.blocks:
            _sync_filesystem(self._tmp)
        inner = [p for p in batch.blocks if p not in batch.roots]
        roots = [p for p in batch.blocks if p in batch.roots]
        for path in inner + roots:
            path.parent.mkdir(exist_ok=True)
            os.replace(batch.blocks[path], path)
        if len(batch.blocks) > 1:
            _sync_filesystem(self._blocks)
        batch.blocks.clear()
        for root in batch.pins:
            self._write_pin(root)

    def _write_pin(self, root: DecodedCid) -> None:
        # An empty marker: creating it is atomic, and concurrent pins of one CID agree.
        (self._pins / root.to_cid()).touch()

    # --- reading ------------------------------------------------------------------------------
    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        root = decode_cid(cid)
        if not self._block_path(root).is_file():
            raise BlobNotFoundError(
                f"no content under {root.to_cid()} in the local store {self.root}"
            )
        where = f"the local store {self.root}"
        chunks, size = [], 0
        for chunk in iter_file(root, self._load, where=where):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise too_large(root.to_cid(), max_bytes, where)
            chunks.append(chunk)
        return b"".join(chunks)

    def has(self, cid: str) -> bool:
        """Whether every block of ``cid``'s DAG is here (internal nodes are read and verified)."""
        return self._first_missing(decode_cid(cid)) is None

    def _load(self, cid: DecodedCid) -> bytes:
        try:
            return self._block_path(cid).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(
                f"block {cid.to_cid()} is missing from the local store {self.root}: the DAG is "
                "incomplete; put the original bytes again to restore it"
            ) from None

    def _first_missing(self, root: DecodedCid) -> DecodedCid | None:
        stack = [root]
        while stack:
            cid = stack.pop()
            path = self._block_path(cid)
            if cid.codec == CODEC_RAW:
                if not path.is_file():
                    return cid
                continue
            try:
                block = path.read_bytes()
            except FileNotFoundError:
                return cid
            verify_block(cid, block, where=f"the local store {self.root}")
            try:
                links, _data = decode_pbnode(block)
            except ValueError as exc:
                raise StorageError(f"block {cid.to_cid()} is not a dag-pb node: {exc}") from None
            stack.extend(child for child, _tsize in reversed(links))
        return None

    def _block_path(self, cid: DecodedCid) -> Path:
        name = cid.to_cid()
        return self._blocks / name[-3:-1] / name

    # --- pins and garbage collection ----------------------------------------------------------
    def pin(self, cid: str) -> None:
        root = decode_cid(cid)
        with self._locked(exclusive=False):
            missing = self._first_missing(root)
            if missing is not None:
                which = "it is" if missing == root else f"its block {missing.to_cid()} is"
                raise BlobNotFoundError(
                    f"cannot pin {root.to_cid()}: {which} not in the local store {self.root}; "
                    "put the content first"
                )
            self._write_pin(root)

    def unpin(self, cid: str) -> None:
        root = decode_cid(cid)
        try:
            (self._pins / root.to_cid()).unlink()
        except FileNotFoundError:
            raise BlobNotFoundError(
                f"cannot unpin {root.to_cid()}: it is not pinned in the local store {self.root} "
                "(see LocalStore.pins())"
            ) from None

    def is_pinned(self, cid: str) -> bool:
        return (self._pins / decode_cid(cid).to_cid()).is_file()

    def pins(self) -> list[Cid]:
        """Every pinned root, sorted."""
        return sorted(cid.to_cid() for cid in self._pinned_roots())

    def gc(self) -> GcReport:
        """Delete every block not reachable from a pin, and stray temp files from crashes.

        Runs under the store's exclusive lock, so no ``put`` or ``pin`` interleaves with it. If a
        pinned DAG is incomplete or corrupt, nothing is deleted and the error is raised.
        """
        with self._locked(exclusive=True):
            keep: set[str] = set()
            for root in self._pinned_roots():
                keep.update(self._reachable(root))
            removed = removed_bytes = kept = 0
            for shard in list(self._blocks.iterdir()):
                if not shard.is_dir():
                    continue
                for block in list(shard.iterdir()):
                    if block.name in keep:
                        kept += 1
                        continue
                    removed_bytes += block.stat().st_size
                    block.unlink()
                    removed += 1
            for stray in list(self._tmp.iterdir()):
                stray.unlink()
        return GcReport(removed_blocks=removed, removed_bytes=removed_bytes, kept_blocks=kept)

    def _pinned_roots(self) -> Iterator[DecodedCid]:
        for marker in self._pins.iterdir():
            with contextlib.suppress(InvalidCidError):  # not ours: ignore, never delete
                yield decode_cid(marker.name)

    def _reachable(self, root: DecodedCid) -> Iterator[str]:
        stack = [root]
        while stack:
            cid = stack.pop()
            yield cid.to_cid()
            if cid.codec == CODEC_RAW:
                continue
            block = self._load(cid)
            verify_block(cid, block, where=f"the local store {self.root}")
            try:
                links, _data = decode_pbnode(block)
            except ValueError as exc:
                raise StorageError(f"block {cid.to_cid()} is not a dag-pb node: {exc}") from None
            stack.extend(child for child, _tsize in links)

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        with (self.root / "lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
