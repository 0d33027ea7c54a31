"""What this data directory has registered: the SHA-256 of every file of every asset it added.

The chain cannot tell that two assets hold the same images — sample ids are digests of
ciphertexts under fresh keys — so ``visdm asset add`` keeps its own record, one SQLite file
under the data directory, keyed by chain id and AssetRegistry address (a fresh chain starts
a fresh record). An entry is written *before* the ``registerAsset`` transaction is sent,
holding the manifest hash but no asset id yet, and settled with the id once the transaction
is mined. An entry left unsettled (the run was interrupted while registering) is resolved
later from the owner's ``AssetRegistered`` events by its manifest hash, so a registration
whose outcome the user never saw is still found.

A re-add from another data directory is not seen here; the compute node's near-duplicate
links and the copy-collapsing valuation still keep copies from earning twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from visdm.errors import ConfigError

__all__ = ["AssetLedger", "LedgerEntry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    chain_id INTEGER NOT NULL,
    registry TEXT NOT NULL,
    owner TEXT NOT NULL,
    manifest_hash BLOB NOT NULL,
    asset_id INTEGER,               -- NULL until the registration is known to be mined
    directory TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    entry INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    sha256 BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_digest ON files (sha256);
CREATE INDEX IF NOT EXISTS files_by_entry ON files (entry);
"""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An asset this data directory registered (or began to), and how many of the files
    asked about it holds."""

    entry: int
    asset_id: int | None
    manifest_hash: bytes
    directory: str
    shared: int


class AssetLedger:
    """The record at ``path``; ``read_only`` never creates or changes it (for ``--check``)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        try:
            if read_only:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            self._db.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the record of added assets {path}: {exc}; check the data "
                "directory (--home) is writable, or move the file away to start a new record"
            ) from None

    @classmethod
    def existing(cls, path: Path) -> AssetLedger | None:
        """The record at ``path`` opened read-only, or ``None`` when there is none yet."""
        return cls(path, read_only=True) if path.is_file() else None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def overlapping(
        self, *, chain_id: int, registry: str, owner: str, digests: Collection[bytes]
    ) -> list[LedgerEntry]:
        """Entries of ``owner`` on this chain holding any of ``digests``, most shared first."""
        shared: dict[int, int] = {}
        for entry, _digest in self._matches(chain_id, registry, owner, digests):
            shared[entry] = shared.get(entry, 0) + 1
        found = []
        for entry, count in shared.items():
            asset_id, manifest_hash, directory = self._db.execute(
                "SELECT asset_id, manifest_hash, directory FROM entries WHERE id = ?", (entry,)
            ).fetchone()
            found.append(LedgerEntry(entry, asset_id, bytes(manifest_hash), directory, count))
        return sorted(found, key=lambda e: (-e.shared, e.entry))

    def holding(self, entries: Collection[int], digests: Collection[bytes]) -> set[bytes]:
        """Which of ``digests`` any of ``entries`` holds."""
        held: set[bytes] = set()
        wanted = list(set(digests))
        for chunk in _chunks(wanted):
            rows = self._db.execute(
                f"SELECT DISTINCT entry, sha256 FROM files WHERE sha256 IN ({_marks(chunk)})",  # noqa: S608
                chunk,
            ).fetchall()
            held.update(bytes(d) for e, d in rows if int(e) in entries)
        return held

    def _matches(
        self, chain_id: int, registry: str, owner: str, digests: Collection[bytes]
    ) -> Iterator[tuple[int, bytes]]:
        """Distinct ``(entry, digest)`` pairs of ``owner``'s entries on this chain."""
        for chunk in _chunks(list(set(digests))):
            query = (  # only placeholders are formatted in
                "SELECT DISTINCT f.entry, f.sha256 FROM files f JOIN entries e ON e.id = f.entry "  # noqa: S608
                f"WHERE f.sha256 IN ({_marks(chunk)}) AND e.chain_id = ? AND e.registry = ? "
                "AND e.owner = ?"
            )
            for entry, digest in self._db.execute(query, (*chunk, chain_id, registry, owner)):
                yield int(entry), bytes(digest)

    def begin(
        self,
        *,
        chain_id: int,
        registry: str,
        owner: str,
        manifest_hash: bytes,
        directory: str,
        digests: Collection[bytes],
    ) -> int:
        """Record a registration about to be sent; returns the entry to settle or forget."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO entries (chain_id, registry, owner, manifest_hash, directory) "
                "VALUES (?, ?, ?, ?, ?)",
                (chain_id, registry, owner, manifest_hash, directory),
            )
            entry = int(cursor.lastrowid or 0)
            self._db.executemany(
                "INSERT INTO files (entry, sha256) VALUES (?, ?)", [(entry, d) for d in digests]
            )
        return entry

    def settle(self, entry: int, asset_id: int) -> None:
        """The registration of ``entry`` was mined as ``asset_id``."""
        self._db.execute("UPDATE entries SET asset_id = ? WHERE id = ?", (asset_id, entry))

    def forget(self, entry: int) -> None:
        """``entry`` was never registered, or its asset is gone (withdrawn, or another chain)."""
        with self._transaction():
            self._db.execute("DELETE FROM files WHERE entry = ?", (entry,))
            self._db.execute("DELETE FROM entries WHERE id = ?", (entry,))


def _chunks(items: list[bytes]) -> Iterator[list[bytes]]:
    # SQLite bounds the variables of one statement (999 in older builds)
    for start in range(0, len(items), 500):
        yield items[start : start + 500]


def _marks(chunk: list[bytes]) -> str:
    return ",".join("?" * len(chunk))
