"""The compute node's durable state: where it stopped reading the chain, what it did with each
asset, and the pHashes of every active sample in the marketplace.

One SQLite file in the node's private directory. Each block range is applied in one transaction
together with the cursor, so a crash either keeps a range whole or forgets it whole, and a
restart resumes exactly where the last committed range ended. The newest block the node saw
(number and hash) tells it when the chain has lost blocks since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._sqlite import DurableSqlite

__all__ = ["AssetOutcome", "NodeState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 1), block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    asset_id INTEGER PRIMARY KEY,
    outcome TEXT NOT NULL,          -- attested | attested-elsewhere | skipped | rejected
    detail TEXT NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 0,
    excluded INTEGER NOT NULL DEFAULT 0,
    metadata_cid TEXT
);
CREATE TABLE IF NOT EXISTS samples (
    sample_id BLOB PRIMARY KEY,
    asset_id INTEGER NOT NULL,
    phash INTEGER NOT NULL,         -- signed 64-bit (SQLite integers are signed)
    position INTEGER NOT NULL,      -- order of arrival in the marketplace
    active INTEGER NOT NULL DEFAULT 1,
    cluster BLOB                    -- its near-duplicate cluster (first sample); NULL: itself
);
CREATE INDEX IF NOT EXISTS samples_by_asset ON samples (asset_id);
CREATE TABLE IF NOT EXISTS seen (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block INTEGER NOT NULL,         -- the newest block the node saw
    hash BLOB NOT NULL              -- and its hash: a chain that lost it no longer has this
);
"""


@dataclass(frozen=True, slots=True)
class AssetOutcome:
    """What the node did with one asset."""

    asset_id: int
    outcome: str
    detail: str
    accepted: int = 0
    excluded: int = 0
    metadata_cid: str | None = None


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class NodeState(DurableSqlite):
    """The node's SQLite state (not thread-safe: one follower owns it)."""

    SCHEMA = _SCHEMA
    CURSOR_TABLE = "cursor"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        super().__init__(path, read_only=read_only)
        columns = {str(r[1]) for r in self._db.execute("PRAGMA table_info(samples)")}
        if not read_only and "cluster" not in columns:  # a state written before clusters
            self._db.execute("ALTER TABLE samples ADD COLUMN cluster BLOB")

    # --- the newest block seen -------------------------------------------------------------
    def seen(self) -> tuple[int, bytes] | None:
        row = self._db.execute("SELECT block, hash FROM seen WHERE id = 1").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def set_seen(self, block: int, block_hash: bytes) -> None:
        self._db.execute(
            "INSERT INTO seen (id, block, hash) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET block = excluded.block, hash = excluded.hash",
            (block, block_hash),
        )

    # --- assets ---------------------------------------------------------------------------
    def outcome(self, asset_id: int) -> AssetOutcome | None:
        row = self._db.execute(
            "SELECT asset_id, outcome, detail, accepted, excluded, metadata_cid FROM assets "
            "WHERE asset_id = ?",
            (asset_id,),
        ).fetchone()
        return None if row is None else AssetOutcome(*row)

    def record(self, outcome: AssetOutcome) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO assets VALUES (?, ?, ?, ?, ?, ?)",
            (
                outcome.asset_id,
                outcome.outcome,
                outcome.detail,
                outcome.accepted,
                outcome.excluded,
                outcome.metadata_cid,
            ),
        )

    def outcomes(self) -> list[AssetOutcome]:
        rows = self._db.execute(
            "SELECT asset_id, outcome, detail, accepted, excluded, metadata_cid FROM assets "
            "ORDER BY asset_id"
        ).fetchall()
        return [AssetOutcome(*row) for row in rows]

    # --- the marketplace's active samples -----------------------------------------------------
    def add_samples(
        self,
        asset_id: int,
        samples: list[tuple[bytes, int]],
        clusters: Sequence[bytes | None] | None = None,
    ) -> None:
        """Record ``(sample id, pHash)`` pairs of a newly active asset, in arrival order, with
        each one's cluster (``None``: the sample is its own)."""
        start = int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        roots = list(clusters) if clusters is not None else [None] * len(samples)
        self._db.executemany(
            "INSERT INTO samples (sample_id, asset_id, phash, position, cluster) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (sid, asset_id, _signed(h), start + i, None if root == sid else root)
                for i, ((sid, h), root) in enumerate(zip(samples, roots, strict=True))
            ],
        )

    def deactivate_asset(self, asset_id: int) -> list[bytes]:
        """Mark a withdrawn asset's samples inactive; returns their ids."""
        ids = [
            bytes(r[0])
            for r in self._db.execute(
                "SELECT sample_id FROM samples WHERE asset_id = ? AND active = 1", (asset_id,)
            )
        ]
        self._db.execute("UPDATE samples SET active = 0 WHERE asset_id = ?", (asset_id,))
        return ids

    def forget_samples(self, asset_id: int) -> list[bytes]:
        """Delete an asset's samples (its attestation is to be made again); returns their ids."""
        ids = [
            bytes(r[0])
            for r in self._db.execute(
                "SELECT sample_id FROM samples WHERE asset_id = ?", (asset_id,)
            )
        ]
        self._db.execute("DELETE FROM samples WHERE asset_id = ?", (asset_id,))
        return ids

    def active_samples(self) -> list[tuple[bytes, int, bytes]]:
        """Every active ``(sample id, pHash, cluster)`` in arrival order (to rebuild the
        index)."""
        rows = self._db.execute(
            "SELECT sample_id, phash, cluster FROM samples WHERE active = 1 ORDER BY position"
        ).fetchall()
        return [
            (bytes(r[0]), _unsigned(int(r[1])), bytes(r[0] if r[2] is None else r[2])) for r in rows
        ]
