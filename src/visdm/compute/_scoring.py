"""The compute node's scoring rounds: claim a batch when idle, score it, publish, be paid.

With ``visdm node serve --score`` a node that has no training job waiting asks the pool for a
batch (:func:`visdm.scoring.claim`: assets with the fewest paid rounds that it holds a key for,
in its region, not its own, whose licence admits the pool) and then, one batch at a time:

1. fetches the reference the batch was claimed with and checks the document and its two
   archives against the hash the pool committed;
2. decrypts the accepted samples of each batch asset into a private RAM-backed directory,
   unparsed — the same keys, licence and withdrawal checks as a training round: an asset
   withdrawn since the claim, whose licence no longer admits the pool, or whose key this node
   cannot unwrap is left out (the node is paid only for samples it scored);
3. runs ``visdm.scoring._job:run_scoring_job`` in the sandbox with a fresh 256-bit seed, kept
   in the journal for verifiers and never published;
4. stores and pins the scores document (:func:`visdm.scoring.build_scores_document`) and
   journals exactly what it will commit, then sends ``publishScores`` — once: a restart first
   asks the chain whether the batch is already published.

A batch that cannot be scored at all is released on chain at once, so that its assets and its
reserve are free again. This process never imports torch and never parses an image.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import AssetStatus
from visdm.chain.deployment import Deployment
from visdm.errors import (
    ContractRevertError,
    CryptoError,
    StorageError,
    StorageUnavailableError,
    VisdmError,
)
from visdm.ingest import decrypt_sample
from visdm.jsonsafe import load_untrusted_object, read_untrusted_file
from visdm.metadata import selection_links
from visdm.proposals import PublicAsset, accepted_indexes, licence_refusal, load_public_asset
from visdm.scoring import (
    BatchRecord,
    BatchScore,
    BatchStatus,
    ScoreCommitment,
    ScoringReference,
    build_scores_document,
    claim,
    current_reference,
    fetch_blob,
    pool,
)
from visdm.storage import ContentStore

from ._sqlite import DurableSqlite
from ._training import _private_dir, _sweep_private_dirs, private_prefix
from .sandbox import SandboxJob, SandboxLimits, SandboxStatus, run_in_sandbox

__all__ = ["ScoringConfig", "ScoringJournal", "ScoringWorker"]

log = logging.getLogger("visdm.node.scoring")

ENTRY_POINT = "visdm.scoring._job:run_scoring_job"
_SEED_BYTES = 32
_MAX_SCORES_FILE = 1 << 28

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,          -- scoring | publishing | published | released | lapsed
    attempts INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    submission TEXT,              -- JSON: exactly what publishScores will carry
    tx_hash TEXT,
    seed BLOB                     -- the latest attempt's seed: for verifiers, never published
);
CREATE TABLE IF NOT EXISTS scoring_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1), block INTEGER NOT NULL
);
"""


class ScoringJournal(DurableSqlite):
    """The node's scoring batches: state, attempts, the submission and the secret seed."""

    SCHEMA = _SCHEMA
    CURSOR_TABLE = "scoring_cursor"

    def row(self, batch_id: int) -> dict[str, Any] | None:
        found = self._db.execute(
            "SELECT state, attempts, message, submission, tx_hash FROM batches WHERE batch_id = ?",
            (batch_id,),
        ).fetchone()
        if found is None:
            return None
        state, attempts, message, submission, tx_hash = found
        return {
            "batchId": batch_id,
            "state": str(state),
            "attempts": int(attempts),
            "message": str(message),
            "submission": None if submission is None else json.loads(submission),
            "txHash": tx_hash,
        }

    def rows(self) -> list[dict[str, Any]]:
        ids = [int(r[0]) for r in self._db.execute("SELECT batch_id FROM batches ORDER BY 1")]
        return [r for r in (self.row(i) for i in ids) if r is not None]

    def put(self, batch_id: int, **fields: Any) -> None:
        """Create the batch's row if needed and set ``fields`` (``submission`` takes a dict)."""
        self._db.execute(
            "INSERT OR IGNORE INTO batches (batch_id, state) VALUES (?, 'scoring')", (batch_id,)
        )
        allowed = {"state", "attempts", "message", "submission", "tx_hash", "seed"}
        if set(fields) - allowed:
            raise ValueError(f"unknown batch fields: {sorted(set(fields) - allowed)}")
        for key, value in fields.items():
            stored = json.dumps(value, sort_keys=True) if key == "submission" else value
            self._db.execute(
                f"UPDATE batches SET {key} = ? WHERE batch_id = ?",  # noqa: S608 - allow-listed
                (stored, batch_id),
            )

    def seed(self, batch_id: int) -> bytes | None:
        """The seed of the batch's latest attempt, for a verifier re-executing it."""
        found = self._db.execute(
            "SELECT seed FROM batches WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        return None if found is None or found[0] is None else bytes(found[0])


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """How the node scores: its sandbox, its own cap on a batch, and attempts per batch."""

    workdir: Path
    limits: Mapping[str, Any] = field(default_factory=dict)
    sandbox: SandboxLimits = field(
        default_factory=lambda: SandboxLimits(memory_bytes=8 << 30, cpu_s=2 * 3600, wall_s=1800.0)
    )
    allow_unsandboxed: bool = False
    bwrap: str = "bwrap"
    python: str = sys.executable
    #: most samples this node takes in one batch (the pool's own limit applies too)
    max_batch_samples: int | None = None
    max_attempts: int = 2


class _UnscorableError(VisdmError):
    """A batch this node cannot score at all: it is released."""


class ScoringWorker:
    """Claims scoring batches for this node when idle and scores them to ``publishScores``."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: ScoringConfig,
    ) -> None:
        self.client = client
        self.deployment = deployment
        self.pool = pool(client, deployment)
        self.assets = deployment.asset_registry(client)
        self.store = store
        self.account = account
        self.config = config
        config.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.journal = ScoringJournal(config.workdir / "scoring.sqlite3")
        self._shm_prefix = private_prefix("score", account.address, config.workdir)
        _sweep_private_dirs(self._shm_prefix)

    def close(self) -> None:
        self.journal.close()

    def poll(self, *, idle: bool = True) -> int:
        """Score this node's open batch, or claim one when ``idle`` and the pool has work;
        returns how many batches were handled (0 or 1)."""
        open_batch = self.pool.open_batch_of(self.account.address)
        if open_batch is None:
            if not idle or self.pool.reference_hash() is None:
                return 0
            receipt = claim(
                self.client,
                self.deployment,
                self.store,
                self.account.local_account,
                max_samples=self.config.max_batch_samples,
            )
            if receipt is None:
                return 0
            log.info("batch %d claimed: %d samples", receipt.batch_id, receipt.samples)
            open_batch = receipt.batch_id
        self.process(open_batch)
        return 1

    def process(self, batch_id: int) -> dict[str, Any]:
        """Score (or resume) one batch of this node; returns its journal row."""
        record = self.pool.batch(batch_id)
        if str(record.node) != self.account.address:
            raise _UnscorableError(f"batch {batch_id} belongs to {record.node}, not this node")
        row = self.journal.row(batch_id) or {"submission": None, "attempts": 0}
        if self._settled(batch_id, record):
            return self._row(batch_id)
        if row["submission"] is None:
            attempt = int(row["attempts"]) + 1
            with self.journal.transaction():
                self.journal.put(batch_id, state="scoring", attempts=attempt)
            try:
                submission = self._score(batch_id, record)
            except _UnscorableError as exc:
                return self._release(batch_id, str(exc))
            except StorageUnavailableError:
                raise  # the node's outage, not the batch's: try again next poll
            except (VisdmError, KeyError, TypeError, ValueError) as exc:
                if attempt >= self.config.max_attempts:
                    return self._release(batch_id, f"{attempt} attempts failed: {exc}")
                with self.journal.transaction():
                    self.journal.put(batch_id, message=f"attempt {attempt} failed: {exc}")
                return self._row(batch_id)
            with self.journal.transaction():
                self.journal.put(batch_id, state="publishing", submission=submission)
        return self._publish(batch_id)

    # --- chain ------------------------------------------------------------------------------
    def _settled(self, batch_id: int, record: BatchRecord) -> bool:
        ended = {
            BatchStatus.PUBLISHED: "published",
            BatchStatus.RELEASED: "released",
            BatchStatus.LAPSED: "lapsed",
        }
        if record.status in ended:
            with self.journal.transaction():
                self.journal.put(batch_id, state=ended[record.status])
            return True
        if self.client.latest_timestamp() > record.deadline:
            with self.journal.transaction():
                self.journal.put(batch_id, state="lapsed", message="the deadline passed")
            return True
        return False

    def _publish(self, batch_id: int) -> dict[str, Any]:
        sub = (self.journal.row(batch_id) or {})["submission"]
        try:
            self.client.fund_from_dev_faucet(self.account.address)
            tx = self.pool.publish_scores(
                self.account.local_account,
                batch_id,
                [int(a) for a in sub["assetIds"]],
                ScoreCommitment(
                    scored=int(sub["scored"]),
                    scores_hash=bytes.fromhex(sub["scoresHash"][2:]),
                    seed_hash=bytes.fromhex(sub["seedHash"][2:]),
                    scores_cid=str(sub["scoresCid"]),
                ),
            )
        except ContractRevertError as exc:
            if not self._settled(batch_id, self.pool.batch(batch_id)):
                with self.journal.transaction():
                    self.journal.put(batch_id, message=f"publishScores reverted, will retry: {exc}")
            return self._row(batch_id)
        with self.journal.transaction():
            self.journal.put(batch_id, state="published", tx_hash=tx.tx_hash, message="published")
        log.info(
            "batch %d: %d samples scored, published in %s", batch_id, sub["scored"], tx.tx_hash
        )
        return self._row(batch_id)

    def _release(self, batch_id: int, why: str) -> dict[str, Any]:
        log.warning("batch %d: releasing: %s", batch_id, why)
        try:
            self.client.fund_from_dev_faucet(self.account.address)
            assets = self.pool.batch_assets(batch_id)
            tx = self.pool.release_batch(self.account.local_account, batch_id, assets)
        except ContractRevertError as exc:
            self._settled(batch_id, self.pool.batch(batch_id))
            with self.journal.transaction():
                self.journal.put(batch_id, message=f"{why}; release refused: {exc}")
            return self._row(batch_id)
        with self.journal.transaction():
            self.journal.put(batch_id, state="released", tx_hash=tx.tx_hash, message=why[:240])
        return self._row(batch_id)

    def _row(self, batch_id: int) -> dict[str, Any]:
        return self.journal.row(batch_id) or {"batchId": batch_id, "state": "unknown"}

    # --- the work ---------------------------------------------------------------------------
    def _score(self, batch_id: int, record: BatchRecord) -> dict[str, Any]:
        reference = current_reference(
            self.client, self.deployment, self.store, record.reference_hash
        )
        asset_ids = self.pool.batch_assets(batch_id)
        out_dir = self.config.workdir / "scoring" / str(batch_id)
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, mode=0o700)
        seed = secrets.token_bytes(_SEED_BYTES)
        with self.journal.transaction():
            self.journal.put(batch_id, seed=seed)
        with _private_dir(f"{self._shm_prefix}{batch_id}-") as input_dir:
            counts = self._prepare_input(reference, asset_ids, input_dir)
            left = record.deadline - self.client.latest_timestamp() - 30
            if left < 30:
                raise _UnscorableError(
                    f"only {max(left, 0)} s are left before the batch's deadline"
                )
            limits = self.config.sandbox.model_copy(
                update={"wall_s": min(self.config.sandbox.wall_s, float(left))}
            )
            result = run_in_sandbox(
                SandboxJob(
                    job_id=f"scoring-{batch_id}",
                    entry_point=ENTRY_POINT,
                    input_dir=input_dir,
                    output_dir=out_dir,
                    limits=limits,
                    params={
                        "spec": dict(reference.spec),
                        "limits": dict(self.config.limits),
                        "seed": seed.hex(),
                        "valuation": dict(reference.valuation),
                    },
                ),
                allowed_entry_points={ENTRY_POINT},
                python=self.config.python,
                bwrap=self.config.bwrap,
                allow_unsandboxed=self.config.allow_unsandboxed,
            )
        if result.status is SandboxStatus.INPUT_REJECTED:
            raise _UnscorableError(f"the reference cannot be used: {result.error}")
        if not result.ok or result.return_value is None:
            raise _AttemptError(f"scoring {result.status.value}: {result.error or 'no result'}")
        try:
            return self._document(batch_id, record, asset_ids, out_dir, result.return_value, counts)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    def _document(  # noqa: PLR0917 - one private call site
        self,
        batch_id: int,
        record: BatchRecord,
        asset_ids: tuple[int, ...],
        out_dir: Path,
        outcome: Mapping[str, Any],
        counts: Mapping[str, Any],
    ) -> dict[str, Any]:
        what, hint = "the scoring job's scores.json", "the sandboxed job wrote a broken file"
        path = out_dir / "scores.json"
        written = load_untrusted_object(
            read_untrusted_file(path, what=what, max_bytes=_MAX_SCORES_FILE, hint=hint),
            what=what,
            max_bytes=_MAX_SCORES_FILE,
            hint=hint,
        )
        where: dict[str, tuple[int, int]] = counts["where"]
        rows = []
        for item in written["samples"]:
            asset_id, index = where[str(item["sample_id"])]
            evidence = item.get("evidence") or {}
            se = evidence.get("value_se") if isinstance(evidence, dict) else None
            rows.append(
                BatchScore(
                    asset_id,
                    index,
                    str(item["sample_id"]),
                    float(item["value"]),
                    None if se is None else float(se),
                    tuple(item.get("flags") or ()),
                )
            )
        if not rows:
            raise _UnscorableError("no sample of the batch could be scored")
        raw = build_scores_document(
            batch_id=batch_id,
            node=self.account.address,
            reference_hash=record.reference_hash,
            outcome=outcome,
            rows=rows,
            details={
                "validation": outcome.get("validation"),
                "anchors": outcome.get("anchors"),
                "leftOut": [
                    {"assetId": a, "reason": r} for a, r in sorted(counts["leftOut"].items())
                ],
                "excluded": counts["excluded"],
                "unreadable": outcome.get("unreadable_assets") or [],
            },
        )
        cid = self.store.put(raw, pin=True)
        return {
            "assetIds": list(asset_ids),
            "scored": len(rows),
            "scoresHash": "0x" + keccak(raw).hex(),
            "seedHash": str(outcome["seed_hash"]),
            "scoresCid": cid,
        }

    def _prepare_input(
        self, reference: ScoringReference, asset_ids: tuple[int, ...], input_dir: Path
    ) -> dict[str, Any]:
        """Write the job's input: the reference's archives, checked against their hashes, and
        the batch's decrypted samples with their description. Returns where each sample id
        sits (asset, index), the assets left out and why, and samples excluded per reason."""
        (input_dir / "validation.npz").write_bytes(fetch_blob(self.store, reference.validation))
        (input_dir / "anchors.npz").write_bytes(fetch_blob(self.store, reference.anchors))
        (train_dir := input_dir / "train").mkdir(mode=0o700)
        class_of = {name: i for i, name in enumerate(reference.classes)}
        described: dict[str, list[Any]] = {
            k: [] for k in ("files", "labels", "sample_ids", "providers", "asset_ids", "rank")
        }
        where: dict[str, tuple[int, int]] = {}
        left_out: dict[int, str] = {}
        excluded: dict[str, int] = {}
        documents: list[Mapping[str, Any]] = []
        now = self.client.latest_timestamp()
        for asset_id in asset_ids:
            usable = self._asset_key(asset_id, now)
            if isinstance(usable, str):
                left_out[asset_id] = usable
                continue
            public, key = usable
            accepted = set(accepted_indexes(public))
            for sample in public.manifest.samples:
                if sample.index not in accepted:
                    continue
                if sample.label not in class_of:
                    excluded["unlabelled"] = excluded.get("unlabelled", 0) + 1
                    continue
                try:
                    plaintext = decrypt_sample(
                        self.store, sample.cid, index=sample.index, data_key=key
                    )
                except StorageUnavailableError:
                    raise
                except (StorageError, CryptoError, VisdmError):
                    excluded["undecryptable"] = excluded.get("undecryptable", 0) + 1
                    continue
                sid = "0x" + bytes(sample.sample_id).hex()
                name = f"{len(described['files']):06d}"
                (train_dir / name).write_bytes(plaintext)
                described["files"].append(name)
                described["labels"].append(class_of[sample.label])
                described["sample_ids"].append(sid)
                described["providers"].append(str(public.record.owner))
                described["asset_ids"].append(asset_id)
                described["rank"].append((asset_id << 32) | sample.index)
                where[sid] = (asset_id, sample.index)
            if public.metadata is not None:
                documents.append(public.metadata)
        for asset_id, why in left_out.items():
            log.warning("batch: asset %d left out: %s", asset_id, why)
        if not described["files"]:
            raise _UnscorableError(
                "no sample of the batch can be used: "
                + ("; ".join(f"asset {a}: {w}" for a, w in sorted(left_out.items())) or "none")
            )
        # duplicate links, plus each published cluster's (copies past a node's bound on links)
        links = selection_links(documents, selected=set(described["sample_ids"]))
        (input_dir / "samples.json").write_text(json.dumps({**described, "links": links}))
        return {"where": where, "leftOut": left_out, "excluded": excluded}

    def _asset_key(self, asset_id: int, now: int) -> tuple[PublicAsset, bytes] | str:
        """The asset and its data key, or why this batch cannot use it: as a training round,
        a withdrawn asset, a licence that does not admit the pool, or no key for this node."""
        try:
            public = load_public_asset(
                self.assets, self.store, asset_id, chain_id=self.client.chain_id
            )
        except StorageUnavailableError:
            raise
        except VisdmError as exc:
            return f"its documents cannot be read: {exc}"
        if public.record.status != AssetStatus.ACTIVE:
            return "it was withdrawn after the batch was claimed"
        refusal = licence_refusal(public, self.pool.address, now)
        if refusal is not None:
            return refusal
        try:
            return public, self.account.unwrap_key(
                public.manifest.key_for(self.account.address).wrapped
            )
        except (VisdmError, CryptoError):
            return "no data key was wrapped for this node"


class _AttemptError(VisdmError):
    """A sandboxed run that ended without a result; it may be retried."""
