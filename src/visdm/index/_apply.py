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

from ._db import Database
from ._documents import (
    KNOWN_FLAGS,
    DocumentError,
    parse_metadata,
    parse_result,
    parse_scores,
)
from ._events import ChainEvent

__all__ = ["EventApplier"]

log = logging.getLogger("visdm.index")

_ZERO_ADDRESS = "0x" + "00" * 20
#: a document larger than this is recorded as rejected, unread (metadata: ~1 KiB per sample)
MAX_DOCUMENT_BYTES = 1 << 30
#: ``TrainingMarket.Status`` names by value, as :class:`visdm.chain.contracts.ProposalStatus`
#: spells them (kept here so that reading the index never imports web3)
PROPOSAL_STATUSES = (
    "none",
    "voting",
    "approved",
    "countered",
    "failed",
    "rejected",
    "training",
    "completed",
    "wtp_missed",
    "cancelled",
)
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


class _UnavailableError(Exception):
    """A document could not be fetched now (not in the store, or the store is down)."""


class EventApplier:
    """Applies events to the index tables; call inside a write transaction."""

    def __init__(
        self, db: Database, store: ContentStore | None, *, chain_id: int, asset_registry: str
    ) -> None:
        self.db = db
        self.store = store
        self.chain_id = chain_id
        self.asset_registry = asset_registry
        #: set when samples, links or asset statuses changed: near-duplicate clusters are stale
        self.clusters_stale = False
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
            ("TrainingMarket", "ProposalCreated"): self._proposal_created,
            ("TrainingMarket", "VoteCast"): self._vote_cast,
            ("TrainingMarket", "ProposalTallied"): self._proposal_tallied,
            ("TrainingMarket", "CounterAccepted"): self._counter_accepted,
            ("TrainingMarket", "TrainingStarted"): self._training_started,
            ("TrainingMarket", "ResultSubmitted"): self._result_submitted,
            ("TrainingMarket", "Claimed"): self._claimed,
            ("TrainingMarket", "Reclaimed"): self._reclaimed,
            ("TrainingMarket", "DelegateChanged"): self._delegate_changed,
        }

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
        """The bytes under ``cid``; :class:`_UnavailableError` to retry later, or
        :class:`DocumentError` when the CID itself is unusable or its content is corrupt."""
        if self.store is None:
            raise _UnavailableError("no content store is configured")
        try:
            return self.store.get(cid, max_bytes=MAX_DOCUMENT_BYTES)
        except (BlobNotFoundError, StorageUnavailableError) as exc:
            raise _UnavailableError(str(exc)) from None
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
        except _UnavailableError as exc:
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
            raise DocumentError(f"manifest does not verify: {exc}") from None
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
        except _UnavailableError as exc:
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

    # --- TrainingMarket ---------------------------------------------------------------------
    def _proposal_created(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO proposals (proposal_id, consumer, node, status, offer, price, wtp_bps, "
            "voting_deadline, total_weight, assets_hash, selection_root, model_spec_hash, "
            "validation_set_hash, proposal_cid, created_block) VALUES (?, ?, ?, 'voting', ?, ?, "
            "?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (proposal_id) DO NOTHING",
            (
                int(a["proposalId"]),
                a["consumer"],
                a["node"],
                str(a["offer"]),
                str(a["offer"]),
                int(a["wtpBps"]),
                int(a["votingDeadline"]),
                int(a["totalWeight"]),
                _hex(a["assetsHash"]),
                _hex(a["selectionRoot"]),
                _hex(a["modelSpecHash"]),
                _hex(a["validationSetHash"]),
                str(a["proposalCid"]),
                e.block_number,
            ),
        )

    def _vote_cast(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO votes (proposal_id, voter, ask, block_number) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (proposal_id, voter) DO UPDATE SET ask = excluded.ask, "
            "block_number = excluded.block_number",
            (int(a["proposalId"]), a["voter"], str(a["ask"]), e.block_number),
        )

    def _proposal_tallied(self, e: ChainEvent) -> None:
        a = e.args
        outcome = PROPOSAL_STATUSES[int(a["outcome"])]
        refunded = outcome in ("failed", "rejected")
        self.db.execute(
            "UPDATE proposals SET status = ?, clearing_price = ?, participating_weight = ?, "
            "tallier = ?, tallied_block = ?, price = CASE WHEN ? = 1 THEN '0' ELSE price END "
            "WHERE proposal_id = ?",
            (
                outcome,
                str(a["clearingPrice"]),
                int(a["participatingWeight"]),
                a["tallier"],
                e.block_number,
                int(refunded),
                int(a["proposalId"]),
            ),
        )

    def _counter_accepted(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE proposals SET status = 'approved', price = ? WHERE proposal_id = ?",
            (str(e.args["price"]), int(e.args["proposalId"])),
        )

    def _training_started(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "UPDATE proposals SET status = 'training', training_cost = ?, training_deadline = ? "
            "WHERE proposal_id = ?",
            (str(a["trainingCost"]), int(a["deadline"]), int(a["proposalId"])),
        )

    def _result_submitted(self, e: ChainEvent) -> None:
        a = e.args
        pid, met = int(a["proposalId"]), bool(a["wtpMet"])
        self.db.execute(
            "UPDATE proposals SET status = ?, accuracy_bps = ?, wtp_met = ?, model_hash = ?, "
            "payout_root = ?, scores_hash = ?, model_cid = ?, result_block = ?, "
            "price = CASE WHEN ? = 1 THEN price ELSE '0' END WHERE proposal_id = ?",
            (
                "completed" if met else "wtp_missed",
                int(a["accuracyBps"]),
                int(met),
                _hex(a["modelHash"]),
                _hex(a["payoutRoot"]),
                _hex(a["scoresHash"]),
                str(a["modelCid"]),
                e.block_number,
                int(met),
                pid,
            ),
        )
        self.db.execute(
            "INSERT INTO results (proposal_id, document_cid, status, detail, scores_status, "
            "scores_detail) VALUES (?, ?, 'pending', '', 'pending', '') "
            "ON CONFLICT (proposal_id) DO NOTHING",
            (pid, str(a["modelCid"])),
        )
        self.index_result(pid)

    def index_result(self, proposal_id: int) -> None:
        """Fetch and check the result document, its payouts and its scores (if not done)."""
        row = self.db.query(
            "SELECT r.document_cid, r.status, r.scores_status, r.scores_cid, p.accuracy_bps, "
            "p.wtp_met, p.model_hash, p.payout_root, p.scores_hash, p.node FROM results r "
            "JOIN proposals p ON p.proposal_id = r.proposal_id WHERE r.proposal_id = ?",
            (proposal_id,),
        )
        if not row:
            return
        (cid, status, scores_status, scores_cid, accuracy, met) = row[0][:6]
        (model, root, scores_hash, node) = row[0][6:]
        if status in ("pending", "missing"):
            try:
                doc = parse_result(
                    self._fetch(cid),
                    proposal_id=proposal_id,
                    accuracy_bps=int(accuracy),
                    wtp_met=bool(met),
                    model_hash=bytes.fromhex(model[2:]),
                    payout_root=bytes.fromhex(root[2:]),
                    node=node,
                )
            except _UnavailableError as exc:
                self._result_status(proposal_id, "missing", str(exc))
                return
            except DocumentError as exc:
                log.warning("proposal %d: result document rejected: %s", proposal_id, exc)
                self._result_status(proposal_id, "rejected", str(exc), scores="none")
                return
            self.db.executemany(
                "INSERT INTO payouts (proposal_id, leaf_index, account, amount) VALUES "
                "(?, ?, ?, ?) ON CONFLICT (proposal_id, leaf_index) DO NOTHING",
                [(proposal_id, i, acct, str(amount)) for i, acct, amount in doc.payouts],
            )
            self.db.execute(
                "UPDATE results SET status = 'indexed', detail = '', epsilon_spent = ?, "
                "model_cid = ?, scores_cid = ?, scores_status = ? WHERE proposal_id = ?",
                (
                    doc.epsilon_spent,
                    doc.model_cid,
                    doc.scores_cid,
                    "pending" if doc.scores_cid else "none",
                    proposal_id,
                ),
            )
            scores_cid, scores_status = doc.scores_cid, "pending" if doc.scores_cid else "none"
        if scores_status in ("pending", "missing") and scores_cid:
            self._index_scores(proposal_id, scores_cid, bytes.fromhex(scores_hash[2:]))

    def _index_scores(self, proposal_id: int, cid: str, scores_hash: bytes) -> None:
        try:
            rows = parse_scores(self._fetch(cid), proposal_id=proposal_id, scores_hash=scores_hash)
        except _UnavailableError as exc:
            self._scores_status(proposal_id, "missing", str(exc))
            return
        except DocumentError as exc:
            log.warning("proposal %d: scores rejected: %s", proposal_id, exc)
            self._scores_status(proposal_id, "rejected", str(exc))
            return
        self.db.executemany(
            "INSERT INTO sample_scores (proposal_id, asset_id, sample_index, sample_id, "
            "provider, value, cluster_founder, cluster_size, flags, flag_noisy, flag_copied, "
            "flag_duplicate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (proposal_id, asset_id, sample_index) DO NOTHING",
            [
                (
                    proposal_id,
                    r.asset_id,
                    r.index,
                    r.sample_id,
                    r.provider,
                    r.value,
                    r.cluster_founder,
                    r.cluster_size,
                    ",".join(r.flags),
                    *(int(flag in r.flags) for flag in KNOWN_FLAGS),
                )
                for r in rows
            ],
        )
        self.db.execute(
            "UPDATE results SET scores_status = 'indexed', scores_detail = '', "
            "scored_samples = ? WHERE proposal_id = ?",
            (len(rows), proposal_id),
        )

    def _result_status(
        self, proposal_id: int, status: str, detail: str, *, scores: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE results SET status = ?, detail = ? WHERE proposal_id = ?",
            (status, detail, proposal_id),
        )
        if scores is not None:
            self._scores_status(proposal_id, scores, "")

    def _scores_status(self, proposal_id: int, status: str, detail: str) -> None:
        self.db.execute(
            "UPDATE results SET scores_status = ?, scores_detail = ? WHERE proposal_id = ?",
            (status, detail, proposal_id),
        )

    def _claimed(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO claims (proposal_id, leaf_index, account, amount, block_number) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (proposal_id, leaf_index) DO NOTHING",
            (int(a["proposalId"]), int(a["index"]), a["account"], str(a["amount"]), e.block_number),
        )

    def _reclaimed(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE proposals SET status = 'cancelled', price = '0', reclaimed = ? "
            "WHERE proposal_id = ?",
            (str(e.args["amount"]), int(e.args["proposalId"])),
        )

    def _delegate_changed(self, e: ChainEvent) -> None:
        a = e.args
        previous = None if a["previousDelegate"] == _ZERO_ADDRESS else a["previousDelegate"]
        delegate = None if a["delegatee"] == _ZERO_ADDRESS else a["delegatee"]
        self.db.execute(
            "INSERT INTO delegations (delegator, delegate, block_number) VALUES (?, ?, ?) "
            "ON CONFLICT (delegator) DO UPDATE SET delegate = excluded.delegate, "
            "block_number = excluded.block_number",
            (a["delegator"], delegate, e.block_number),
        )
        self.db.execute(
            "INSERT INTO delegation_changes (block_number, log_index, delegator, "
            "previous_delegate, delegate) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (block_number, log_index) DO NOTHING",
            (e.block_number, e.log_index, a["delegator"], previous, delegate),
        )

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
        for (pid,) in self.db.query(
            "SELECT proposal_id FROM results WHERE status = 'missing' OR scores_status = "
            "'missing' ORDER BY proposal_id"
        ):
            self.index_result(int(pid))
            tried += 1
        return tried
