"""The indexer: follow the chain into the index tables, resuming from a durable cursor.

It copies the compute node's follower (:class:`visdm.compute.AssetWorker`): read the confirmed
head (``head − confirmations``), walk block ranges of at most ``max_blocks_per_poll`` from the
block after the cursor, and apply each range **in one transaction together with the new
cursor**. A crash or a kill therefore keeps a range whole or forgets it whole, and the next run
starts exactly after the last committed range; since every write is idempotent
(:mod:`._apply`), even replaying committed blocks changes nothing.

Two more guards make the cursor trustworthy:

* the index remembers the chain id, the contract addresses and the hash of the cursor block.
  An index pointed at another chain or deployment is refused, and a cursor block whose hash
  changed (the chain reorganised deeper than the confirmations waited for) stops the sync with
  an error asking for a rebuild instead of silently mixing two histories;
* writers are serialised (``BEGIN IMMEDIATE`` / an advisory lock), and each range re-reads the
  cursor inside its transaction: two syncs running at once never apply a range twice.

Near-duplicate clusters (connected components of the link graph over the samples of assets not
withdrawn) and link counts are brought up to date at the end of any range that added samples
or withdrew an asset, inside the same transaction: by the samples the range touched when it
only added (components only merge), in full after a withdrawal (:mod:`._clusters`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from visdm.errors import ChainError, ConfigError, IndexDatabaseError
from visdm.storage import ContentStore

from ._apply import EventApplier
from ._clusters import after_metadata, after_withdrawal, rebuild_clusters, recount_all_links
from ._db import Database
from ._events import EventSource
from ._schema import SCHEMA_VERSION, create_schema, drop_schema

__all__ = ["IndexConfig", "Indexer", "SyncReport", "index_identity"]

log = logging.getLogger("visdm.index")


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """How the indexer follows the chain."""

    #: blocks to wait below the head before a block is indexed (reorganisation safety)
    confirmations: int = 0
    #: most blocks read (and committed) per range
    max_blocks_per_poll: int = 2_000

    def __post_init__(self) -> None:
        if not isinstance(self.confirmations, int) or self.confirmations < 0:
            raise ConfigError(
                f"confirmations must be a whole number ≥ 0, got {self.confirmations!r}"
            )
        if not isinstance(self.max_blocks_per_poll, int) or self.max_blocks_per_poll < 1:
            raise ConfigError(
                f"max_blocks_per_poll must be a whole number ≥ 1, got {self.max_blocks_per_poll!r}"
            )


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did."""

    url: str
    chain_id: int
    head: int
    confirmations: int
    #: the last block indexed before and after this sync (``None``: nothing indexed yet)
    cursor_before: int | None
    cursor: int | None
    events: int
    retried_documents: int
    assets: int
    samples: int
    proposals: int
    scored_samples: int
    #: documents that could not be used: ``{"missing": n, "rejected": n}``
    documents: dict[str, int]


def index_identity(chain_id: int, contracts: dict[str, str], start_block: int) -> dict[str, str]:
    """The facts that bind an index to one chain and one deployment."""
    return {
        "chain_id": str(chain_id),
        "contracts": json.dumps(dict(sorted(contracts.items())), separators=(",", ":")),
        "start_block": str(start_block),
    }


def read_meta(db: Database) -> dict[str, str]:
    """The ``index_meta`` table as a dict (empty when the index does not exist yet)."""
    if "index_meta" not in db.tables():
        return {}
    return {str(k): str(v) for k, v in db.query("SELECT key, value FROM index_meta")}


def _put_meta(db: Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO index_meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def refresh_statistics(db: Database) -> None:
    """Give the query planner fresh statistics after a sync that changed something.

    PostgreSQL: every time (on tables that just grew, its guesses turned an indexed duplicate
    count into seconds of scans). SQLite: when the samples grew by a tenth since the last
    time, since a full ``ANALYZE`` reads every index (2 s at 1M samples) and SQLite's sampled
    one misleads it. Without statistics SQLite answers a page of a common label by sorting
    every match (0.4 s at 1M samples); with them, by reading samples in order until the page
    is full (2 ms).
    """
    if db.backend == "postgresql":
        db.execute("ANALYZE")
        return
    samples = int(db.scalar("SELECT COUNT(*) FROM samples") or 0)
    if samples > 0 and samples * 10 >= analysed_samples(db) * 11:
        db.execute("ANALYZE")


def analysed_samples(db: Database) -> int:
    """How many samples SQLite's statistics were gathered over (-1: never): the first figure
    of a samples index's ``sqlite_stat1`` row is the table's rows at that time. Kept by SQLite
    itself, so that no index content depends on when statistics ran."""
    if not db.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"):
        return -1
    stat = db.scalar("SELECT stat FROM sqlite_stat1 WHERE tbl = 'samples' LIMIT 1")
    return int(str(stat).split()[0]) if stat else -1


def check_schema_version(db: Database, meta: dict[str, str]) -> None:
    """Refuse an index written by another schema version."""
    version = meta.get("schema_version")
    if version is not None and version != str(SCHEMA_VERSION):
        raise IndexDatabaseError(
            f"the index at {db.url.redacted} has schema version {version}, this ViSDM uses "
            f"{SCHEMA_VERSION}: rebuild it with `visdm market sync --rebuild`"
        )


class Indexer:
    """Follows the marketplace contracts into the index database."""

    def __init__(
        self,
        db: Database,
        source: EventSource,
        store: ContentStore | None,
        *,
        chain_id: int,
        contracts: dict[str, str],
        start_block: int,
        config: IndexConfig | None = None,
        rebuild: bool = False,
    ) -> None:
        self.db = db
        self.source = source
        self.config = config or IndexConfig()
        self.chain_id = chain_id
        self.start_block = start_block
        self.identity = index_identity(chain_id, contracts, start_block)
        self.applier = EventApplier(
            db,
            store,
            chain_id=chain_id,
            asset_registry=contracts["AssetRegistry"],
            market=contracts.get("TrainingMarket", ""),
            exclusions=self._excluded_positions,
        )
        with db.transaction():
            if rebuild:
                drop_schema(db)
            meta = read_meta(db)
            check_schema_version(db, meta)
            self._check_identity(meta)
            create_schema(db)
            if not meta:
                _put_meta(db, "schema_version", str(SCHEMA_VERSION))
                for key, value in self.identity.items():
                    _put_meta(db, key, value)

    def _excluded_positions(self, proposal_id: int) -> set[int]:
        # through self.source at call time: the source may be swapped after construction
        return self.source.excluded_positions(proposal_id)

    def _check_identity(self, meta: dict[str, str]) -> None:
        if not meta:
            return
        for key, wanted in self.identity.items():
            found = meta.get(key)
            if found != wanted:
                raise ConfigError(
                    f"the index at {self.db.url.redacted} follows another chain or deployment "
                    f"({key} is {found}, this deployment's is {wanted}): choose another "
                    "--index-url, or rebuild this one with `visdm market sync --rebuild`"
                )

    # --- cursor -----------------------------------------------------------------------------
    def cursor(self) -> int | None:
        """The last block fully indexed, or ``None`` before the first range."""
        value = self.db.scalar("SELECT value FROM index_meta WHERE key = 'cursor'")
        return None if value is None else int(value)

    def _check_no_reorg(self, cursor: int) -> None:
        stored = self.db.scalar("SELECT value FROM index_meta WHERE key = 'cursor_hash'")
        if stored is None:
            return
        current = self.source.block_hash(cursor)
        if current != stored:
            raise ChainError(
                f"block {cursor}, the last one indexed in {self.db.url.redacted}, now has hash "
                f"{current} instead of {stored}: the chain was reorganised (or reset) below the "
                "index. Rebuild it with `visdm market sync --rebuild`, and wait for more "
                "confirmations (--confirmations) on a chain that reorganises"
            )

    # --- following --------------------------------------------------------------------------
    def sync(self, *, on_progress: Callable[[int, int], None] | None = None) -> SyncReport:
        """Index everything up to the confirmed head; returns what was done.

        ``on_progress(block, target)`` is called after each committed range.
        """
        head = self.source.head()
        target = head - self.config.confirmations
        before = self.cursor()
        if before is not None:
            self._check_no_reorg(before)
        with self.db.transaction():
            self._forget_changes()
            retried = self.applier.retry_missing()
            self._refresh_clusters()
        events = 0
        cursor = before
        start = self.start_block if cursor is None else cursor + 1
        while start <= target:
            end = min(target, start + self.config.max_blocks_per_poll - 1)
            found = self.source.events(start, end)
            end_hash = self.source.block_hash(end)
            with self.db.transaction():
                if self.cursor() != cursor:  # another sync committed this range meanwhile
                    cursor = self.cursor()
                    start = self.start_block if cursor is None else cursor + 1
                    continue
                self._forget_changes()
                for event in found:
                    self.applier.apply(event)
                self._refresh_clusters()
                _put_meta(self.db, "cursor", str(end))
                _put_meta(self.db, "cursor_hash", end_hash)
            events += len(found)
            cursor, start = end, end + 1
            if on_progress is not None:
                on_progress(end, target)
        if events:
            refresh_statistics(self.db)
        return self._report(head, before, events, retried)

    def _forget_changes(self) -> None:
        """Start a transaction with no pending cluster work (a failed one left its own)."""
        self.applier.indexed_assets.clear()
        self.applier.withdrawn_assets.clear()

    def _refresh_clusters(self) -> None:
        if not self.applier.clusters_stale:
            return
        indexed, withdrawn = self.applier.indexed_assets, self.applier.withdrawn_assets
        if indexed:
            after_metadata(self.db, indexed)
        if withdrawn:
            after_withdrawal(self.db, withdrawn)
        if not indexed and not withdrawn:
            refresh_clusters(self.db)
        self._forget_changes()
        self.applier.clusters_stale = False

    def _report(self, head: int, before: int | None, events: int, retried: int) -> SyncReport:
        def count(sql: str, *params: str) -> int:
            return int(self.db.scalar(sql, params) or 0)

        documents = {
            status: count(
                "SELECT (SELECT COUNT(*) FROM assets WHERE manifest_status = ?) + "
                "(SELECT COUNT(*) FROM assets WHERE metadata_status = ?) + "
                "(SELECT COUNT(*) FROM proposals WHERE document_status = ?) + "
                "(SELECT COUNT(*) FROM results WHERE status = ?) + "
                "(SELECT COUNT(*) FROM results WHERE scores_status = ?)",
                *[status] * 5,
            )
            for status in ("missing", "rejected")
        }
        return SyncReport(
            url=self.db.url.redacted,
            chain_id=self.chain_id,
            head=head,
            confirmations=self.config.confirmations,
            cursor_before=before,
            cursor=self.cursor(),
            events=events,
            retried_documents=retried,
            assets=count("SELECT COUNT(*) FROM assets"),
            samples=count("SELECT COUNT(*) FROM samples"),
            proposals=count("SELECT COUNT(*) FROM proposals"),
            scored_samples=count("SELECT COUNT(*) FROM sample_scores"),
            documents=documents,
        )


def refresh_clusters(db: Database) -> int:
    """Recount every sample's links and recompute every near-duplicate cluster; returns how
    many cluster rows changed (see :func:`._clusters.rebuild_clusters`)."""
    recount_all_links(db)
    return rebuild_clusters(db)
