"""The compute node's training rounds (design 3.4 steps 3–5): from ``TrainingStarted`` to
``submitResult``.

For every ``TrainingStarted`` of a proposal that names this node, the node journals a job
(:mod:`._jobs`) and then, one job at a time:

1. fetches the proposal document and checks it against the chain (consumer's signature,
   selection root recomputed from the public manifests, spec and validation-set hashes);
2. decrypts the selected samples of the assets still active (withdrawn assets are excluded) and
   the consumer's validation set into a private RAM-backed directory (``/dev/shm``, mode 0700,
   removed afterwards: plaintext never reaches a disk);
3. runs ``visdm.training:run_job`` in the bubblewrap sandbox: design check, deterministic
   training (Opacus DP-SGD when asked), accuracy on the validation set, and — inside the
   sandbox too — copy-robust KNN-Shapley values on the model's embeddings;
4. WTP met: seals the model to the consumer's X25519 key with the node's EIP-712 delivery
   signature, turns the provider values into exact payouts and their Merkle root, publishes the
   per-sample scores and a result document; WTP missed: publishes a result without model;
5. journals exactly what it will submit, then sends ``submitResult`` — once: a restart first
   asks the chain whether the result is already there.

This process never imports torch: training and valuation happen in the sandboxed worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import AssetStatus, ProposalRecord, ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.errors import (
    ContractRevertError,
    CryptoError,
    InvalidInputError,
    SandboxUnavailableError,
    StorageError,
    VisdmError,
)
from visdm.ingest import decode_image, decrypt_sample
from visdm.proposals import (
    CheckedProposal,
    image_to_array,
    load_checked_proposal,
    open_validation_set,
    pack_arrays,
)
from visdm.storage import ContentStore
from visdm.valuation import compute_payout

from ._jobs import Job, JobJournal
from .delivery import seal_model
from .sandbox import ProgressEvent, SandboxJob, SandboxLimits, run_in_sandbox

__all__ = ["RESULT_KIND", "JobFailedError", "TrainingConfig", "TrainingWorker"]

log = logging.getLogger("visdm.node.training")

RESULT_KIND = "visdm-training-result"
_ENTRY_POINT = "visdm.training:run_job"
_TERMINAL_ON_CHAIN = (ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED)
_PROGRESS_EVERY_S = 0.5


class JobFailedError(VisdmError):
    """A training job that cannot succeed as proposed (the consumer reclaims after the deadline)."""


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """How the node trains and what it charges.

    ``limits`` are :class:`visdm.training.NodeLimits` fields (kept as a mapping so that this
    process does not import torch); ``price_per_gflop`` is in the payment token's smallest unit.
    """

    workdir: Path
    limits: Mapping[str, Any] = field(default_factory=dict)
    price_per_gflop: int = 10**12
    max_duration_s: int = 3600
    quote_validity_s: int = 900
    sandbox: SandboxLimits = field(
        default_factory=lambda: SandboxLimits(memory_bytes=8 << 30, cpu_s=4 * 3600, wall_s=3000.0)
    )
    allow_unsandboxed: bool = False
    bwrap: str = "bwrap"
    valuation_k: int = 5
    # copies: a pHash link counts when the embeddings agree (cosine >= confirm), and embeddings
    # alone link only near-identical samples (see visdm.valuation._clusters for the measurements)
    cosine_threshold: float | None = 0.995
    confirm_threshold: float | None = 0.99
    python: str = sys.executable


@contextlib.contextmanager
def _private_dir(prefix: str) -> Iterator[Path]:
    """A 0700 directory in RAM when the machine has ``/dev/shm``; always removed."""
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp below it, not a fixed name
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    if base is None:
        log.warning("no writable /dev/shm: decrypted job input goes to the temp dir")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class TrainingWorker:
    """Follows ``TrainingStarted`` for this node and runs each job to ``submitResult``."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: TrainingConfig,
    ) -> None:
        self.client = client
        self.deployment = deployment
        self.market = deployment.training_market(client)
        self.assets = deployment.asset_registry(client)
        self.registry = deployment.stakeholder_registry(client)
        self.store = store
        self.account = account
        self.config = config
        config.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config.workdir.chmod(0o700)
        self.journal = JobJournal(config.workdir / "jobs.sqlite3")
        self.start_block = deployment.contracts["TrainingMarket"].block_number

    def close(self) -> None:
        self.journal.close()

    # --- following ------------------------------------------------------------------------
    def follow(self, *, confirmations: int = 0, max_blocks: int = 2_000) -> int:
        """Journal every new ``TrainingStarted`` for this node; returns how many were new."""
        head = int(self.client.rpc(lambda: self.client.w3.eth.block_number)) - confirmations
        cursor = self.journal.cursor()
        start = self.start_block if cursor is None else cursor + 1
        new = 0
        while start <= head:
            end = min(head, start + max_blocks - 1)
            events = self.market.logs("TrainingStarted", from_block=start, to_block=end)
            with self.journal.transaction():
                for event in events:
                    pid = int(event["args"]["proposalId"])
                    if self.market.proposal(pid).node != self.account.address:
                        continue
                    if self.journal.enqueue(pid, int(event["args"]["deadline"])):
                        new += 1
                        log.info("proposal %d: training job queued", pid)
                self.journal.set_cursor(end)
            start = end + 1
        return new

    def poll(self, *, confirmations: int = 0) -> int:
        """Follow the chain, then run every pending job; returns how many jobs were handled."""
        self.follow(confirmations=confirmations)
        handled = 0
        for job in self.journal.pending():
            self.process(job.proposal_id)
            handled += 1
        return handled

    # --- one job --------------------------------------------------------------------------
    def process(self, proposal_id: int) -> Job:
        """Run (or resume) one job until it reaches a final state; returns the journal row."""
        job = self.journal.get(proposal_id)
        if job is None:
            raise InvalidInputError(f"proposal {proposal_id} has no training job on this node")
        record = self.market.proposal(proposal_id)
        if self._settled_on_chain(proposal_id, record):
            return self._job(proposal_id)
        if job.submission is None:
            self._update(proposal_id, state="preparing", attempts=job.attempts + 1, progress=0.0)
            try:
                submission = self._run(proposal_id, record)
            except SandboxUnavailableError as exc:
                # the node's fault, not the job's: keep it queued and say why, loudly
                self._update(proposal_id, state="queued", message=str(exc))
                raise
            except JobFailedError as exc:
                log.error("proposal %d: job failed: %s", proposal_id, exc)
                self._update(proposal_id, state="failed", message=str(exc))
                return self._job(proposal_id)
            # journaled before the transaction: a crash from here on re-sends this, never retrains
            self._update(proposal_id, state="submitting", submission=submission, progress=1.0)
        return self._submit(proposal_id)

    def _settled_on_chain(self, proposal_id: int, record: ProposalRecord) -> bool:
        """Bring the journal in line with a chain that has moved on without us."""
        if record.status in _TERMINAL_ON_CHAIN:
            events = self.market.logs("ResultSubmitted", where={"proposalId": proposal_id})
            tx = events[0]["transactionHash"].to_0x_hex() if events else None
            self._update(proposal_id, state="submitted", tx_hash=tx, message="result on chain")
            return True
        if record.status == ProposalStatus.CANCELLED:
            self._update(proposal_id, state="cancelled", message="the consumer reclaimed")
            return True
        if record.status != ProposalStatus.TRAINING:
            self._update(proposal_id, state="failed", message=f"proposal is {record.status.name}")
            return True
        if self.client.latest_timestamp() > record.deadline:
            self._update(
                proposal_id,
                state="expired",
                message=f"deadline {record.deadline} passed: the consumer may reclaim",
            )
            return True
        return False

    def _submit(self, proposal_id: int) -> Job:
        job = self._job(proposal_id)
        sub = job.submission or {}
        try:
            self.client.fund_from_dev_faucet(self.account.address)
            tx = self.market.submit_result(
                self.account.local_account,
                proposal_id,
                accuracy_bps=int(sub["accuracyBps"]),
                model_hash=bytes.fromhex(sub["modelHash"][2:]),
                payout_root=bytes.fromhex(sub["payoutRoot"][2:]),
                scores_hash=bytes.fromhex(sub["scoresHash"][2:]),
                model_cid=str(sub["resultCid"]),
            )
        except ContractRevertError as exc:
            record = self.market.proposal(proposal_id)
            if not self._settled_on_chain(proposal_id, record):
                self._update(proposal_id, state="failed", message=f"submitResult reverted: {exc}")
            return self._job(proposal_id)
        self._update(proposal_id, state="submitted", tx_hash=tx.tx_hash, message="submitted")
        log.info("proposal %d: result submitted in %s", proposal_id, tx.tx_hash)
        return self._job(proposal_id)

    def _job(self, proposal_id: int) -> Job:
        job = self.journal.get(proposal_id)
        assert job is not None  # process() checked it exists
        return job

    def _update(self, proposal_id: int, **fields: Any) -> None:
        with self.journal.transaction():
            self.journal.update(proposal_id, **fields)

    # --- the work -------------------------------------------------------------------------
    def _run(self, proposal_id: int, record: ProposalRecord) -> dict[str, Any]:
        try:
            checked = load_checked_proposal(
                self.market, self.deployment, self.client, self.store, proposal_id
            )
        except VisdmError as exc:
            raise JobFailedError(f"proposal document rejected: {exc}") from None
        spec = json.loads(checked.document.model_spec_json)
        out_dir = self.config.workdir / "jobs" / str(proposal_id)
        shutil.rmtree(out_dir, ignore_errors=True)  # a restarted job starts clean
        out_dir.mkdir(parents=True, mode=0o700)
        with _private_dir(f"visdm-job-{proposal_id}-") as input_dir:
            counts = self._prepare_input(checked, spec, input_dir)
            self._update(
                proposal_id,
                state="training",
                message=f"{counts['used']} samples decrypted, {counts['excluded']} excluded",
            )
            result = run_in_sandbox(
                SandboxJob(
                    job_id=f"proposal-{proposal_id}",
                    entry_point=_ENTRY_POINT,
                    input_dir=input_dir,
                    output_dir=out_dir,
                    limits=self.config.sandbox,
                    params={
                        "spec": spec,
                        "limits": dict(self.config.limits),
                        "valuation": {
                            "k": self.config.valuation_k,
                            "cosine_threshold": self.config.cosine_threshold,
                            "confirm_threshold": self.config.confirm_threshold,
                        },
                    },
                ),
                allowed_entry_points={_ENTRY_POINT},
                python=self.config.python,
                bwrap=self.config.bwrap,
                allow_unsandboxed=self.config.allow_unsandboxed,
                on_progress=self._progress_reporter(proposal_id),
            )
        if not result.ok or result.return_value is None:
            raise JobFailedError(
                f"training {result.status.value}: {result.error or 'no result'}"
                + (f"\n{result.log_tail[-2000:]}" if result.log_tail else "")
            )
        self._update(proposal_id, state="valuing", result=dict(result.return_value))
        return self._publish(proposal_id, record, checked, out_dir, result.return_value, counts)

    def _progress_reporter(self, proposal_id: int) -> Callable[[ProgressEvent], None]:
        last = [0.0]

        def report(event: ProgressEvent) -> None:
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY_S or event.fraction in (0.0, 1.0):
                last[0] = now
                self._update(proposal_id, progress=event.fraction, message=event.message)

        return report

    def _prepare_input(
        self, checked: CheckedProposal, spec: Mapping[str, Any], input_dir: Path
    ) -> dict[str, int]:
        doc = checked.document
        class_of = {name: i for i, name in enumerate(doc.classes)}
        keys: dict[int, bytes | None] = {}
        for asset_id, public in checked.public.items():
            if self.assets.asset(asset_id).status != AssetStatus.ACTIVE:
                keys[asset_id] = None  # withdrawn (or never attested) since the proposal
                continue
            try:
                wrapped = public.manifest.key_for(self.account.address).wrapped
                keys[asset_id] = self.account.unwrap_key(wrapped)
            except (VisdmError, CryptoError):
                keys[asset_id] = None
        images, labels, ids, providers, ranks = [], [], [], [], []
        excluded = 0
        for sample in checked.samples:
            key = keys.get(sample.asset_id)
            if key is None or sample.label not in class_of:
                excluded += 1
                continue
            try:
                decoded = decode_image(
                    decrypt_sample(self.store, sample.cid, index=sample.index, data_key=key),
                    name=f"asset {sample.asset_id} sample {sample.index}",
                )
            except (StorageError, CryptoError, InvalidInputError) as exc:
                log.warning("excluded: %s", exc)
                excluded += 1
                continue
            images.append(image_to_array(decoded.image, spec["input_shape"]))
            labels.append(class_of[sample.label])
            ids.append("0x" + sample.sample_id.hex())
            providers.append(str(sample.owner))
            ranks.append((sample.asset_id << 32) | sample.index)  # registration order
        if not images:
            raise JobFailedError(
                "no selected sample could be used (withdrawn, unreadable or unlabelled)"
            )
        (input_dir / "train.npz").write_bytes(
            pack_arrays(np.stack(images), np.asarray(labels, dtype=np.int64))
        )
        try:
            sealed = self.store.get(doc.validation.cid)
            data_key = self.account.unwrap_key(doc.validation.wrapped_key)
            archive = open_validation_set(sealed, data_key, doc.validation.plaintext_hash)
        except VisdmError as exc:
            raise JobFailedError(f"the validation set cannot be opened: {exc}") from None
        (input_dir / "validation.npz").write_bytes(archive)
        links = [
            (link["sampleId"], link["otherId"])
            for public in checked.public.values()
            if public.metadata is not None
            for link in public.metadata.get("links", [])
        ]
        (input_dir / "samples.json").write_text(
            json.dumps({"sample_ids": ids, "providers": providers, "rank": ranks, "links": links})
        )
        return {"used": len(images), "excluded": excluded}

    def _publish(  # noqa: PLR0917 - one private call site
        self,
        proposal_id: int,
        record: ProposalRecord,
        checked: CheckedProposal,
        out_dir: Path,
        outcome: Mapping[str, Any],
        counts: Mapping[str, int],
    ) -> dict[str, Any]:
        accuracy = int(outcome["accuracy_bps"])
        met = accuracy >= record.wtp_bps
        result_doc: dict[str, Any] = {
            "version": 1,
            "kind": RESULT_KIND,
            "proposalId": proposal_id,
            "node": self.account.address,
            "accuracyBps": accuracy,
            "wtpBps": record.wtp_bps,
            "wtpMet": met,
            "epsilonSpent": outcome.get("epsilon_spent"),
            "specHash": outcome.get("spec_hash"),
            "trainSamples": counts["used"],
            "excludedSamples": counts["excluded"],
            "model": None,
            "scores": None,
            "payouts": None,
        }
        zero = "0x" + bytes(32).hex()
        submission = {"accuracyBps": accuracy, "modelHash": zero, "payoutRoot": zero}
        submission["scoresHash"] = zero
        if met:
            model = (out_dir / "model.safetensors").read_bytes()
            if "0x" + keccak(model).hex() != outcome.get("model_hash"):
                raise JobFailedError("the model file differs from the hash the job reported")
            consumer_key = self.registry.stakeholder(checked.document.consumer).encryption_key
            sealed = seal_model(
                model,
                proposal_id=proposal_id,
                consumer_key=consumer_key,
                node=self.account,
                chain_id=self.client.chain_id,
                market=self.market.address,
            )
            model_cid = self.store.put(sealed.envelope, pin=True)
            valuation = json.loads((out_dir / "valuation.json").read_bytes())
            payout = compute_payout(
                record.price,
                valuation["providerValues"],
                sample_counts={k: int(v) for k, v in valuation["sampleCounts"].items()},
            )
            where = {"0x" + s.sample_id.hex(): (s.asset_id, s.index) for s in checked.samples}
            rows = [
                {**row, "asset_id": where[row["sample_id"]][0], "index": where[row["sample_id"]][1]}
                for row in valuation["samples"]
            ]
            scores = json.dumps(
                {"version": 1, "proposalId": proposal_id, "samples": rows}, sort_keys=True
            ).encode()
            scores_cid = self.store.put(scores, pin=True)
            result_doc["model"] = {"cid": model_cid, "modelHash": "0x" + sealed.model_hash.hex()}
            result_doc["scores"] = {"cid": scores_cid, "hash": "0x" + keccak(scores).hex()}
            result_doc["payouts"] = {
                "root": "0x" + payout.root.hex(),
                "basis": payout.basis,
                "amounts": {a: str(v) for a, v in payout.amounts.items()},
                "tree": payout.tree.dump() if payout.tree is not None else None,
            }
            submission.update(
                modelHash="0x" + sealed.model_hash.hex(),
                payoutRoot="0x" + payout.root.hex(),
                scoresHash="0x" + keccak(scores).hex(),
            )
        result_cid = self.store.put(json.dumps(result_doc, sort_keys=True).encode(), pin=True)
        submission["resultCid"] = result_cid
        log.info(
            "proposal %d: accuracy %.2f%% (WTP %.2f%%), %s; result %s",
            proposal_id,
            accuracy / 100,
            record.wtp_bps / 100,
            "met" if met else "missed",
            result_cid,
        )
        return submission
