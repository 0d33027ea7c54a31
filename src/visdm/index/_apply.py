"""Turning one chain event into rows: the indexer's write path.

Each handler is an idempotent function of the event and the rows it finds: facts an event
creates (a registration, a proposal, a vote, a claim) are inserted with ``ON CONFLICT DO
NOTHING`` or replaced by the same values, and state changes (a status, a delegate) are set to
what the event says. Replaying any suffix of the event history in chain order therefore ends in
the same tables, which is what lets a crashed sync simply run again.

Documents are fetched while their event is applied, inside the same transaction: a document
that is missing from the store (or a store that does not answer) is recorded as ``missing`` and
fetched again by later syncs (:meth:`EventApplier.retry_missing`); one that fails a check is
``rejected`` with the reason. Neither stops the indexer.

This module follows the stakeholder and asset registries and dispatches ``TrainingMarket``
events to :class:`~._apply_market.MarketApplier`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from visdm.errors import (
    BlobNotFoundError,
    StorageError,
    StorageUnavailableError,
    VisdmError,
)
from visdm.storage import ContentStore

from ._apply_market import PROPOSAL_STATUSES, MarketApplier
from ._db import Database
from ._documents import DocumentError, DocumentUnavailableError, one_line, parse_metadata
from ._events import ChainEvent
from ._scoring import ScoringApplier

__all__ = ["PROPOSAL_STATUSES", "EventApplier"]

log = logging.getLogger("visdm.index")

#: a document larger than this is recorded as rejected, unread (metadata: ~1 KiB per sample)
MAX_DOCUMENT_BYTES = 1 << 30
#: JSON cannot carry integers above 2**53 to every reader: larger ones are written as strings
_JSON_SAFE_INT = 2**53


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) >= _JSON_SAFE_INT:
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class EventApplier:
    """Applies events to the index tables; call inside a write transaction."""

    def __init__(
        self,
        db: Database,
        store: ContentStore | None,
        *,
        chain_id: int,
        asset_registry: str,
        market: str,
        exclusions: Callable[[int], set[int]],
    ) -> None:
        self.db = db
        self.store = store
        self.chain_id = chain_id
        self.asset_registry = asset_registry
        #: set when samples, links or asset statuses changed: near-duplicate clusters are stale
        self.clusters_stale = False
        #: assets whose metadata, and assets whose withdrawal, this transaction indexed
        self.indexed_assets: list[int] = []
        self.withdrawn_assets: list[int] = []
        self.market = MarketApplier(
            db, self._fetch, chain_id=chain_id, market=market, exclusions=exclusions
        )
        self._handlers: dict[tuple[str, str], Callable[[ChainEvent], None]] = {
            ("StakeholderRegistry", "StakeholderRegistered"): self._registered,
            ("StakeholderRegistry", "StakeholderRolesChanged"): self._roles_changed,
            ("StakeholderRegistry", "StakeholderKeyRotated"): self._key_rotated,
            ("StakeholderRegistry", "RegionAdded"): self._region_added,
            ("StakeholderRegistry", "NodeAdmitted"): self._node_admitted,
            ("StakeholderRegistry", "NodeSuspended"): self._node_suspended,
            ("StakeholderRegistry", "NodeReinstated"): self._node_reinstated,
            ("AssetRegistry", "AssetRegistered"): self._asset_registered,
            ("AssetRegistry", "MetadataAttested"): self._metadata_attested,
            ("AssetRegistry", "AssetWithdrawn"): self._asset_withdrawn,
            **{("TrainingMarket", name): h for name, h in self.market.handlers().items()},
        }
        self.scoring = ScoringApplier(db, self._fetch)
        self._handlers.update(self.scoring.handlers())

    def apply(self, event: ChainEvent) -> None:
        """Record ``event`` and update the tables it concerns."""
        args = json.dumps(_jsonable(dict(event.args)), sort_keys=True, separators=(",", ":"))
        self.db.execute(
            "INSERT INTO chain_events (block_number, log_index, tx_hash, contract, name, args) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (block_number, log_index) DO NOTHING",
            (event.block_number, event.log_index, event.tx_hash, event.contract, event.name, args),
        )
        handler = self._handlers.get((event.contract, event.name))
        if handler is not None:
            handler(event)

    # --- documents ------------------------------------------------------------------------
    def _fetch(self, cid: str) -> bytes:
        """The bytes under ``cid``; :class:`DocumentUnavailableError` to retry later, or
        :class:`DocumentError` when the CID itself is unusable or its content is corrupt."""
        if self.store is None:
            raise DocumentUnavailableError("no content store is configured")
        try:
            return self.store.get(cid, max_bytes=MAX_DOCUMENT_BYTES)
        except (BlobNotFoundError, StorageUnavailableError) as exc:
            raise DocumentUnavailableError(str(exc)) from None
        except StorageError as exc:  # a malformed CID, or bytes that do not match it
            raise DocumentError(f"cannot read {cid!r}: {exc}") from None

    # --- StakeholderRegistry ----------------------------------------------------------------
    def _registered(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO stakeholders (address, roles, encryption_key, registered_block, "
            "updated_block) VALUES (?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET "
            "roles = excluded.roles, encryption_key = excluded.encryption_key, "
            "updated_block = excluded.updated_block",
            (
                a["account"],
                int(a["roles"]),
                _hex(a["encryptionKey"]),
                e.block_number,
                e.block_number,
            ),
        )

    def _roles_changed(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE stakeholders SET roles = ?, updated_block = ? WHERE address = ?",
            (int(e.args["roles"]), e.block_number, e.args["account"]),
        )

    def _key_rotated(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE stakeholders SET encryption_key = ?, updated_block = ? WHERE address = ?",
            (_hex(e.args["encryptionKey"]), e.block_number, e.args["account"]),
        )

    def _region_added(self, e: ChainEvent) -> None:
        name = bytes(e.args["name"]).rstrip(b"\0").decode("utf-8", errors="replace")
        self.db.execute(
            "INSERT INTO regions (region, name) VALUES (?, ?) "
            "ON CONFLICT (region) DO UPDATE SET name = excluded.name",
            (int(e.args["region"]), name),
        )

    def _node_admitted(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO compute_nodes (address, signer, region, encryption_key, endpoint, "
            "suspended, admitted_block) VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT (address) DO "
            "UPDATE SET signer = excluded.signer, region = excluded.region, encryption_key = "
            "excluded.encryption_key, endpoint = excluded.endpoint",
            (
                a["node"],
                a["signer"],
                int(a["region"]),
                _hex(a["encryptionKey"]),
                str(a["endpoint"]),
                e.block_number,
            ),
        )

    def _node_suspended(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE compute_nodes SET suspended = 1 WHERE address = ?", (e.args["node"],)
        )

    def _node_reinstated(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE compute_nodes SET suspended = 0 WHERE address = ?", (e.args["node"],)
        )

    # --- AssetRegistry ----------------------------------------------------------------------
    def _asset_registered(self, e: ChainEvent) -> None:
        a = e.args
        asset_id, mask = int(a["assetId"]), int(a["regionMask"])
        self.db.execute(
            "INSERT INTO assets (asset_id, owner, status, manifest_hash, samples_root, "
            "sample_count, region_mask, manifest_cid, registered_block, manifest_status, "
            "manifest_detail, metadata_status, metadata_detail) VALUES (?, ?, 'pending', ?, ?, "
            "?, ?, ?, ?, 'pending', '', 'pending', '') ON CONFLICT (asset_id) DO NOTHING",
            (
                asset_id,
                a["owner"],
                _hex(a["manifestHash"]),
                _hex(a["samplesRoot"]),
                int(a["sampleCount"]),
                hex(mask),
                str(a["manifestCid"]),
                e.block_number,
            ),
        )
        self.db.executemany(
            "INSERT INTO asset_regions (asset_id, region) VALUES (?, ?) "
            "ON CONFLICT (asset_id, region) DO NOTHING",
            [(asset_id, bit) for bit in range(mask.bit_length()) if mask >> bit & 1],
        )
        self.db.executemany(
            "INSERT INTO asset_key_nodes (asset_id, node) VALUES (?, ?) "
            "ON CONFLICT (asset_id, node) DO NOTHING",
            [(asset_id, str(node)) for node in a["keyNodes"]],
        )
        self.index_manifest(asset_id)

    def index_manifest(self, asset_id: int) -> None:
        """Fetch and verify the asset's manifest, and index its licence (if not done yet)."""
        row = self.db.query(
            "SELECT owner, manifest_hash, samples_root, manifest_cid, manifest_status "
            "FROM assets WHERE asset_id = ?",
            (asset_id,),
        )
        if not row or row[0][4] not in ("pending", "missing"):
            return
        owner, manifest_hash, samples_root, cid, _ = row[0]
        try:
            raw = self._fetch(cid)
            licence = self._checked_licence(raw, owner, manifest_hash, samples_root)
        except DocumentUnavailableError as exc:
            self._set_status("manifest", asset_id, "missing", str(exc))
            return
        except DocumentError as exc:
            log.warning("asset %d: manifest rejected: %s", asset_id, exc)
            self._set_status("manifest", asset_id, "rejected", str(exc))
            return
        purposes, allowed, denied, expires = licence
        self.db.executemany(
            "INSERT INTO asset_purposes (asset_id, purpose) VALUES (?, ?) "
            "ON CONFLICT (asset_id, purpose) DO NOTHING",
            [(asset_id, p) for p in purposes],
        )
        self.db.executemany(
            "INSERT INTO asset_consumers (asset_id, consumer, allowed) VALUES (?, ?, ?) "
            "ON CONFLICT (asset_id, consumer) DO NOTHING",
            [(asset_id, c, 1) for c in allowed] + [(asset_id, c, 0) for c in denied],
        )
        self.db.execute(
            "UPDATE assets SET licence_expires = ? WHERE asset_id = ?", (expires, asset_id)
        )
        self._set_status("manifest", asset_id, "indexed", "")

    def _checked_licence(
        self, raw: bytes, owner: str, manifest_hash: str, samples_root: str
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], int | None]:
        from visdm.manifest import verify_manifest

        try:
            parsed = verify_manifest(raw, chain_id=self.chain_id, registry=self.asset_registry)
        except VisdmError as exc:
            raise DocumentError(f"manifest does not verify: {one_line(exc)}") from None
        manifest = parsed.manifest
        problems = []
        if manifest.owner != owner:
            problems.append(f"it is signed by {manifest.owner}, the asset's owner is {owner}")
        if _hex(parsed.manifest_hash) != manifest_hash:
            problems.append("its hash differs from the manifest hash registered on chain")
        if _hex(manifest.samples_root) != samples_root:
            problems.append("its sample root differs from the one registered on chain")
        if problems:
            raise DocumentError("manifest disagrees with the chain: " + "; ".join(problems))
        licence = manifest.licence
        expires: datetime | None = licence.expires
        return (
            tuple(licence.purposes),
            tuple(str(c) for c in licence.allowed_consumers),
            tuple(str(c) for c in licence.denied_consumers),
            None if expires is None else int(expires.timestamp()),
        )

    def _metadata_attested(self, e: ChainEvent) -> None:
        a = e.args
        asset_id = int(a["assetId"])
        self.db.execute(
            "UPDATE assets SET attested_by = ?, metadata_hash = ?, metadata_cid = ?, "
            "accepted_count = ?, attested_block = ?, status = CASE WHEN status = 'pending' "
            "THEN 'active' ELSE status END WHERE asset_id = ?",
            (
                a["node"],
                _hex(a["metadataHash"]),
                str(a["metadataCid"]),
                int(a["acceptedCount"]),
                e.block_number,
                asset_id,
            ),
        )
        self.index_metadata(asset_id)

    def index_metadata(self, asset_id: int) -> None:
        """Fetch, verify and index the asset's metadata document (if not done yet)."""
        row = self.db.query(
            "SELECT metadata_cid, metadata_hash, manifest_hash, sample_count, accepted_count, "
            "metadata_status FROM assets WHERE asset_id = ?",
            (asset_id,),
        )
        if not row or row[0][0] is None or row[0][5] not in ("pending", "missing"):
            return
        cid, metadata_hash, manifest_hash, sample_count, accepted, _ = row[0]
        try:
            raw = self._fetch(cid)
            doc = parse_metadata(
                raw,
                metadata_hash=bytes.fromhex(metadata_hash[2:]),
                manifest_hash=bytes.fromhex(manifest_hash[2:]),
                sample_count=int(sample_count),
            )
            if len(doc.samples) != int(accepted):
                raise DocumentError(
                    f"metadata document describes {len(doc.samples)} samples, the chain "
                    f"attests {accepted}"
                )
        except DocumentUnavailableError as exc:
            self._set_status("metadata", asset_id, "missing", str(exc))
            return
        except DocumentError as exc:
            log.warning("asset %d: metadata rejected: %s", asset_id, exc)
            self._set_status("metadata", asset_id, "rejected", str(exc))
            return
        self.db.executemany(
            "INSERT INTO samples (asset_id, sample_index, sample_id, label, width, height, "
            "channels, mode, format, byte_size, phash, brightness, contrast, blur, cluster_size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
            "ON CONFLICT (asset_id, sample_index) DO NOTHING",
            [
                (
                    asset_id,
                    s.index,
                    s.sample_id,
                    s.label,
                    s.width,
                    s.height,
                    s.channels,
                    s.mode,
                    s.format,
                    s.byte_size,
                    s.phash,
                    s.brightness,
                    s.contrast,
                    s.blur,
                )
                for s in doc.samples
            ],
        )
        links = [(lk.sample_id, lk.other_id, lk.distance, asset_id) for lk in doc.links]
        links += [(lk.other_id, lk.sample_id, lk.distance, asset_id) for lk in doc.links]
        self.db.executemany(
            "INSERT INTO sample_links (sample_id, other_id, distance, asset_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (sample_id, other_id) DO NOTHING",
            links,
        )
        self.db.executemany(
            "INSERT INTO rejected_samples (asset_id, sample_index, reason) VALUES (?, ?, ?) "
            "ON CONFLICT (asset_id, sample_index) DO NOTHING",
            [(asset_id, index, reason) for index, reason in doc.rejected],
        )
        self.db.execute(
            "UPDATE assets SET duplicate_radius = ? WHERE asset_id = ?", (doc.radius, asset_id)
        )
        self._set_status("metadata", asset_id, "indexed", "")
        self.clusters_stale = True
        self.indexed_assets.append(asset_id)

    def _set_status(self, which: str, asset_id: int, status: str, detail: str) -> None:
        column = {"manifest": "manifest", "metadata": "metadata"}[which]
        self.db.execute(
            f"UPDATE assets SET {column}_status = ?, {column}_detail = ? "  # noqa: S608 - fixed names
            "WHERE asset_id = ?",
            (status, detail, asset_id),
        )

    def _asset_withdrawn(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE assets SET status = 'withdrawn', withdrawn_block = ? WHERE asset_id = ?",
            (e.block_number, int(e.args["assetId"])),
        )
        self.clusters_stale = True
        self.withdrawn_assets.append(int(e.args["assetId"]))

    # --- retries ----------------------------------------------------------------------------
    def retry_missing(self) -> int:
        """Fetch again every document recorded as ``missing``; returns how many were tried."""
        tried = 0
        for (asset_id,) in self.db.query(
            "SELECT asset_id FROM assets WHERE manifest_status = 'missing' ORDER BY asset_id"
        ):
            self.index_manifest(int(asset_id))
            tried += 1
        for (asset_id,) in self.db.query(
            "SELECT asset_id FROM assets WHERE metadata_status = 'missing' ORDER BY asset_id"
        ):
            self.index_metadata(int(asset_id))
            tried += 1
        return tried + self.market.retry_missing() + self.scoring.retry_missing()
