"""The one interface every content store implements.

ViSDM puts encrypted samples, manifests, metadata and models into storage and refers to them by
CID everywhere else (chain events, manifests, sample ids). Whether the bytes live in a local
blockstore or on an IPFS node must not matter to callers, so they program against
:class:`ContentStore`, and every backend passes the same conformance test class.

The contract, for every backend:

* ``put`` returns the CID ``ipfs add --cid-version=1`` would give the same bytes;
* ``get`` returns bytes that have been checked against the CID — never unverified bytes;
  unknown CID → ``BlobNotFoundError``, bytes that do not hash to the CID → ``CidMismatchError``;
  with ``max_bytes``, content larger than that → ``BlobTooLargeError`` after reading at most
  ``max_bytes + 1`` bytes of it (so a hostile CID cannot exhaust the reader's memory);
* every CID argument is validated first: a malformed string → ``InvalidCidError``;
* ``pin`` protects content from garbage collection, ``unpin`` of something that is not pinned
  is an error (``BlobNotFoundError``), not a silent no-op;
* a backend that cannot be reached raises ``StorageUnavailableError`` saying where and why.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from visdm.errors import BlobTooLargeError
from visdm.types import Cid

__all__ = ["ContentStore", "too_large"]


def too_large(cid: str, max_bytes: int, where: str) -> BlobTooLargeError:
    """The error for content over a caller's limit."""
    return BlobTooLargeError(
        f"{cid} in {where} is larger than the {max_bytes:,} bytes accepted here: not read"
    )


class ContentStore(ABC):
    """Content-addressed blob storage with Kubo-compatible CIDs."""

    @abstractmethod
    def put(self, data: bytes, *, pin: bool = False) -> Cid:
        """Store ``data`` and return its CID; with ``pin=True`` also pin it, in the same step."""

    def put_file(self, path: str | os.PathLike[str], *, pin: bool = False) -> Cid:
        """Store the contents of the file at ``path``; backends may stream instead of reading it."""
        return self.put(Path(path).read_bytes(), pin=pin)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the puts made inside: a backend may make them durable together, and publish
        them only at the end (:class:`~visdm.storage.LocalStore` syncs a batch once). The
        default stores each put as it comes."""
        yield

    @abstractmethod
    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes stored under ``cid``, verified against it; at most ``max_bytes``."""

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the store holds ``cid`` itself, without fetching it from elsewhere.

        :class:`~visdm.storage.LocalStore` checks every block of the DAG;
        :class:`~visdm.storage.KuboStore` can only cheaply ask the node about the root block.
        """

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Keep ``cid`` (and every block under it) through garbage collection."""

    @abstractmethod
    def unpin(self, cid: str) -> None:
        """Undo :meth:`pin`; raises ``BlobNotFoundError`` when ``cid`` is not pinned."""

    @abstractmethod
    def is_pinned(self, cid: str) -> bool:
        """Whether ``cid`` is pinned (directly, recursively) in this store."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release connections or handles; the default has none."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
