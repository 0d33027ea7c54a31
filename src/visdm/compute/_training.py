"""The compute node's training rounds (design 3.4 steps 3–5): from ``TrainingStarted`` to
``submitResult``.

For every ``TrainingStarted`` of a proposal that names this node, the node journals a job
(:mod:`._jobs`) and then — one job at a time, or, with a resource budget
(:attr:`TrainingConfig.budget`), several at once in threads of their own (:mod:`._pool`) —
for each job:

1. fetches the proposal document and checks it against the chain (consumer's signature,
   selection root recomputed from the public manifests, spec and validation-set hashes);
2. decrypts the selected samples of the assets still active (withdrawn assets are excluded) and
   the consumer's validation set into a private RAM-backed directory (``/dev/shm``, mode 0700,
   removed afterwards: plaintext never reaches a disk), unparsed: it only decrypts and hashes;
3. runs ``visdm.training:run_job`` in the bubblewrap sandbox with a fresh 256-bit seed (sealed
   only to the nodes that may verify the result, never published): bounded decoding, the
   validation set's screen, training, accuracy and copy-robust KNN-Shapley values. Input the
   sandbox refuses is the consumer's fault (a result that misses the WTP); a crash, a limit or
   a node killed mid-run is retried up to ``max_attempts`` times, then the job is abandoned on
   chain (a full refund);
4. WTP met: seals the model to the consumer's X25519 key with the node's EIP-712 delivery
   signature, turns the provider values into exact payouts and their Merkle root, publishes the
   per-sample scores and a result document; WTP missed: publishes a result without model;
5. journals exactly what it will submit, then sends ``submitResult`` — once: a restart first
   asks the chain whether the result is already there;
6. when the court recorded an accuracy check for the job, proves the WTP-met result's claim
   (:mod:`._proving`: the circuit and the proof in the sandbox, the chain steps here).

This process never imports torch and never parses an image or an archive: decoding,
training and valuation happen in the sandboxed worker.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import AssetStatus, ProposalRecord, ProposalStatus, ResultCommitment
from visdm.chain.deployment import Deployment
from visdm.errors import (
    ChainError,
    ChainNotRunningError,
    ChainTimeoutError,
    ContractRevertError,
    CryptoError,
    InvalidInputError,
    InvalidModelSpecError,
    SandboxUnavailableError,
    StorageError,
    StorageUnavailableError,
    VisdmError,
)
from visdm.ingest import decrypt_sample
from visdm.jsonsafe import load_untrusted_json
from visdm.metadata import VALIDATION_SCREEN_RADIUS, selection_links
from visdm.proposals import (
    CheckedProposal,
    PublicAsset,
    TrainingProposal,
    load_checked_proposal,
    open_validation_set,
)
from visdm.storage import ContentStore
from visdm.training._card import ExcludedSamples, LeftOutAsset
from visdm.training._spec import MAX_SPEC_BYTES
from visdm.verify import JobSecrets

from ._budget import NodeBudget
from ._jobs import Job, JobJournal
from ._keys import NO_KEY_OPENS, NO_KEY_WRAPPED, asset_keys
from ._pool import TrainingPool
from ._private import private_dir, private_prefix, sweep_private_dirs
from ._proving import ResultProver
from ._results import RESULT_KIND, ConsumerFaultError, JobFailedError, ResultPublisher
from .sandbox import (
    ProgressEvent,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    SandboxStatus,
    run_in_sandbox,
)

__all__ = [
    "NO_KEY_OPENS",
    "NO_KEY_WRAPPED",
    "RESULT_KIND",
    "ConsumerFaultError",
    "JobFailedError",
    "TrainingConfig",
    "TrainingWorker",
    "private_prefix",
]

log = logging.getLogger("visdm.node.training")

_ENTRY_POINT = "visdm.training:run_job"
# the scoring worker's names for these
_private_dir = private_dir
_sweep_private_dirs = sweep_private_dirs
# samples.json's per-sample lists (visdm.training._job reads them; it imports torch)
_DESCRIBED = ("files", "labels", "sample_ids", "providers", "asset_ids", "rank")
_TERMINAL_ON_CHAIN = (ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED)
_PROGRESS_EVERY_S = 0.5


#: failures of the node's own machinery: the job waits in the queue until they are fixed
_OUTAGES = (ChainError, StorageUnavailableError, SandboxUnavailableError)
#: seconds kept free after training to post the result before the deadline
_SUBMIT_MARGIN_S = 60
_MIN_TRAINING_S = 30
#: the sealed validation set: the archive limit plus the AEAD's nonce and tag
_MAX_VALIDATION_BYTES = (1 << 30) + 1024
#: the job seed's length: 256 bits from the OS CSPRNG (design section 7)
_SEED_BYTES = 32


class _AttemptFailedError(JobFailedError):
    """A sandboxed run ended without a result, not for its input's sake: it may be retried."""

    def __init__(self, result: SandboxResult) -> None:
        self.status = result.status
        tail = f"\n{result.log_tail[-2000:]}" if result.log_tail else ""
        super().__init__(f"training {result.status.value}: {result.error or 'no result'}{tail}")


class _StoppedError(VisdmError):
    """The node stopped the job's sandbox because it is shutting down: nobody's fault."""


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """How the node trains and what it charges.

    ``limits`` are :class:`visdm.training.NodeLimits` fields (kept as a mapping so that this
    process does not import torch); ``price_per_gflop`` is in the payment token's smallest unit.
    With a ``budget``, :meth:`TrainingWorker.poll` runs jobs concurrently within it, each
    sandbox limited to its grant (``sandbox``'s memory and threads are then the grant's).
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
    # copies: a pHash link counts when one sample is the other's clear nearest neighbour in the
    # trained model's embedding space (ratio test); see visdm.valuation._clusters and the
    # valuation benchmark for why absolute cosine thresholds are not used
    cosine_threshold: float | None = None
    confirm_threshold: float | None = None
    confirm_ratio: float | None = 0.3
    center_embeddings: bool = False
    python: str = sys.executable
    #: sandboxed runs a job gets (a crash, a limit, a node restart each use one) before the
    #: node abandons it on chain; the radius of visdm.metadata.screen_validation_set
    max_attempts: int = 3
    screen_radius: int = VALIDATION_SCREEN_RADIUS
    budget: NodeBudget | None = None


def _gave_up(attempts: int, how: str) -> str:
    return f"training did not complete in {attempts} attempts (last: {how})"


class TrainingWorker:
    """Follows ``TrainingStarted`` for this node and runs each job to ``submitResult``."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: TrainingConfig,
        *,
        opener: Callable[[], tuple[ChainClient, ContentStore]] | None = None,
        sweep: bool = True,
    ) -> None:
        """``opener`` gives each concurrent job its own chain client and store (by default a
        client for the same endpoint, and this store); ``sweep=False`` for a job's own worker,
        which must leave the running jobs' RAM directories alone."""
        self.client = client
        self.deployment = deployment
        self.market = deployment.training_market(client)
        self.assets = deployment.asset_registry(client)
        self.registry = deployment.stakeholder_registry(client)
        self.store = store
        self.account = account
        self.results = ResultPublisher(client, self.market, self.registry, store, account)
        self.config = config
        config.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config.workdir.chmod(0o700)
        self.journal = JobJournal(config.workdir / "jobs.sqlite3")
        self.start_block = deployment.contracts["TrainingMarket"].block_number
        self._shm_prefix = private_prefix("job", account.address, config.workdir)
        if sweep:
            _sweep_private_dirs(self._shm_prefix)
        self.opener = opener
        #: set when the node stops: the running sandbox is killed, the job queued again
        self.cancel: threading.Event | None = None
        self.proofs = ResultProver(self)
        self.pool: TrainingPool | None = None
        if config.budget is not None:
            self.pool = TrainingPool(self, config.budget)

    def limits(self) -> dict[str, Any]:
        """The node's training limits, with the market's minimum expected batch size: a
        governance parameter nodes enforce because the chain never sees the spec."""
        market_min = self.market.parameters().min_batch_size
        own = int(self.config.limits.get("min_batch_size", 1))
        return {**self.config.limits, "min_batch_size": max(own, market_min)}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        self.journal.close()

    def refuse_over_budget(self, proposal_id: int, why: str) -> Job:
        """Abandon on chain a job that can never run within the budget (quoted under a larger
        one): its consumer is refunded at once."""
        if self._settled_on_chain(proposal_id, self.market.proposal(proposal_id)):
            return self._job(proposal_id)
        return self._abandon(proposal_id, why)

    # --- following ------------------------------------------------------------------------
    def follow(self, *, confirmations: int = 0, max_blocks: int = 2_000) -> int:
        """Journal every new ``TrainingStarted`` for this node; returns how many were new."""
        head = int(self.client.rpc(lambda: self.client.w3.eth.block_number)) - confirmations
        new = 0
        for start, end in self.journal.ranges(self.start_block, head, max_blocks):
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
        return new

    def poll(
        self,
        *,
        confirmations: int = 0,
        should_stop: Callable[[], bool] | None = None,
        wait: bool = True,
    ) -> int:
        """Follow the chain, then run every pending job (checking ``should_stop`` between jobs);
        returns how many jobs were handled. A job's own failure never stops the others; an
        outage (chain, storage, sandbox) propagates after the job is put back in the queue.

        With a budget, jobs run concurrently: ``wait=False`` starts those that fit and returns
        how many started (the node's loop calls it again); ``wait=True`` runs them all, within
        the budget, before it returns."""
        self.follow(confirmations=confirmations)
        self.proofs.sweep()  # results a stopped node posted but did not prove
        if self.pool is not None:
            return self.pool.poll(should_stop=should_stop, wait=wait)
        handled = 0
        for job in self.journal.pending():
            if should_stop is not None and should_stop():
                break
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
            if job.attempts >= self.config.max_attempts:
                # the last attempt never came back (the node was killed while it ran)
                return self._abandon(
                    proposal_id, _gave_up(job.attempts, "the node stopped during training")
                )
            attempt = job.attempts + 1
            # committed before the run, so that a node killed during it still counts it
            self._update(proposal_id, state="preparing", attempts=attempt, progress=0.0)
            try:
                submission = self._run(proposal_id, record)
            except _OUTAGES as exc:
                # the node's or its services' fault, not the job's: queue it again (not counted
                # as an attempt), say why
                self._update(
                    proposal_id, state="queued", attempts=job.attempts, message=f"waiting: {exc}"
                )
                raise
            except _StoppedError:
                # the node is stopping: the attempt is not the job's, it runs again later
                self._update(
                    proposal_id,
                    state="queued",
                    attempts=job.attempts,
                    message="the node stopped during training: it runs again when it is back",
                )
                return self._job(proposal_id)
            except _AttemptFailedError as exc:
                return self._retry_or_abandon(proposal_id, attempt, exc, exc.status.value)
            except ConsumerFaultError as exc:
                # the consumer's own input cannot be used: post a result that misses the WTP,
                # so the data price is refunded and the node is paid for its work
                log.warning("proposal %d: the consumer's input is unusable: %s", proposal_id, exc)
                submission = self.results.fault(proposal_id, record, str(exc))
            except JobFailedError as exc:
                # a dead end: give the consumer everything back now, not at the deadline
                log.error("proposal %d: job failed: %s", proposal_id, exc)
                return self._abandon(proposal_id, f"the job cannot run: {exc}")
            except Exception as exc:
                # a bug or an input nobody foresaw must not block the queue behind this job
                log.exception("proposal %d: job failed unexpectedly", proposal_id)
                return self._retry_or_abandon(proposal_id, attempt, exc, type(exc).__name__)
            # journaled before the transaction: a crash from here on re-sends this, never retrains
            self._update(proposal_id, state="submitting", submission=submission, progress=1.0)
        # a court waiting for the proof keeps the model, also for a result journaled before a crash
        self.proofs.keep(proposal_id, self._out_dir(proposal_id), self._job(proposal_id).submission)
        shutil.rmtree(self._out_dir(proposal_id), ignore_errors=True)
        job = self._submit(proposal_id)
        if job.state == "submitted":
            self.proofs.prove(proposal_id)  # only when a check waits for it (model kept)
        return job

    def _retry_or_abandon(self, proposal_id: int, attempt: int, exc: Exception, how: str) -> Job:
        """Queue the job for another attempt, or give it up after the last one."""
        log.error("proposal %d: attempt %d failed: %s", proposal_id, attempt, exc)
        if attempt >= self.config.max_attempts:
            return self._abandon(proposal_id, _gave_up(attempt, how))
        self._update(
            proposal_id,
            state="queued",
            message=f"attempt {attempt} of {self.config.max_attempts} failed, will retry: {exc}",
        )
        return self._job(proposal_id)

    def _abandon(self, proposal_id: int, why: str) -> Job:
        """Give the job up on chain: the consumer is credited everything at once, not after the
        deadline. ``why`` is the node's own words, never text from inside the sandbox."""
        reason = why[:240]
        try:
            self.client.fund_from_dev_faucet(self.account.address)
            tx = self.market.abandon_training(self.account.local_account, proposal_id, reason)
        except ContractRevertError as exc:
            if not self._settled_on_chain(proposal_id, self.market.proposal(proposal_id)):
                self._update(proposal_id, message=f"abandonTraining reverted, will retry: {exc}")
            return self._job(proposal_id)
        self._update(proposal_id, state="abandoned", tx_hash=tx.tx_hash, message=reason)
        log.warning("proposal %d: abandoned in %s: %s", proposal_id, tx.tx_hash, reason)
        return self._job(proposal_id)

    def _out_dir(self, proposal_id: int) -> Path:
        return self.config.workdir / "jobs" / str(proposal_id)

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
                ResultCommitment(
                    accuracy_bps=int(sub["accuracyBps"]),
                    consumer_fault=bool(sub.get("consumerFault", False)),
                    model_hash=bytes.fromhex(sub["modelHash"][2:]),
                    payout_root=bytes.fromhex(sub["payoutRoot"][2:]),
                    scores_hash=bytes.fromhex(sub["scoresHash"][2:]),
                    seed_hash=bytes.fromhex(sub.get("seedHash", "0x" + "00" * 32)[2:]),
                    result_cid=str(sub["resultCid"]),
                ),
            )
        except ContractRevertError as exc:
            record = self.market.proposal(proposal_id)
            if not self._settled_on_chain(proposal_id, record):
                # e.g. the node is suspended for now: keep the result and try again next poll
                self._update(proposal_id, message=f"submitResult reverted, will retry: {exc}")
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
        except (ChainNotRunningError, ChainTimeoutError, StorageUnavailableError):
            raise  # the chain or the store away: queued again, not an attempt spent
        except VisdmError as exc:
            raise JobFailedError(f"proposal document rejected: {exc}") from None
        try:  # the consumer wrote the spec: the guard of quote time, should this node not quote
            spec = load_untrusted_json(
                checked.document.model_spec_json,
                what="the proposal's model spec",
                max_bytes=MAX_SPEC_BYTES,
                error=InvalidModelSpecError,
                hint="the consumer's document is at fault",
            )
        except InvalidModelSpecError as exc:
            raise ConsumerFaultError(str(exc)) from None
        # the sandbox must end before the chain's deadline, or the result could not be posted
        left = record.deadline - self.client.latest_timestamp() - _SUBMIT_MARGIN_S
        if left < _MIN_TRAINING_S:
            raise JobFailedError(
                f"only {max(left, 0)} s are left before the deadline {record.deadline}: too "
                "little to train and submit; the consumer may reclaim after it"
            )
        limits = self.config.sandbox.model_copy(
            update={"wall_s": min(self.config.sandbox.wall_s, float(left))}
        )
        out_dir = self._out_dir(proposal_id)
        shutil.rmtree(out_dir, ignore_errors=True)  # a restarted job starts clean
        out_dir.mkdir(parents=True, mode=0o700)
        # the job's randomness: the consumer never learns it, verifiers get it sealed
        seed = secrets.token_bytes(_SEED_BYTES)
        with self.journal.transaction():
            self.journal.set_seed(proposal_id, seed)
        outcome, counts = self.execute(proposal_id, checked, spec, seed, limits, out_dir)
        self._update(proposal_id, state="valuing", result=dict(outcome))
        job_secrets = JobSecrets(
            seed=seed,
            validation_key=self._validation_key(checked.document),
            asset_keys=counts.pop("dataKeys"),
        )
        return self.results.publish(
            proposal_id, record, checked, out_dir, outcome, counts, job_secrets=job_secrets
        )

    def execute(  # noqa: PLR0917 - the node's and a verifier's one call each
        self,
        proposal_id: int,
        checked: CheckedProposal,
        spec: Mapping[str, Any],
        seed: bytes,
        limits: SandboxLimits,
        out_dir: Path,
    ) -> tuple[Mapping[str, Any], dict[str, Any]]:
        """Decrypt the job's input into RAM and run it in the sandbox with ``seed``; returns
        the job's return value and the counts (:meth:`_prepare_input`). A verifier
        re-executing the job calls this with the seed sealed to it."""
        with _private_dir(f"{self._shm_prefix}{proposal_id}-") as input_dir:
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
                    limits=limits,
                    params={
                        "spec": spec,
                        "limits": self.limits(),
                        "seed": seed.hex(),
                        "screen": {"radius": self.config.screen_radius},
                        "valuation": {
                            "k": self.config.valuation_k,
                            "cosine_threshold": self.config.cosine_threshold,
                            "confirm_threshold": self.config.confirm_threshold,
                            "center": self.config.center_embeddings,
                            "confirm_ratio": self.config.confirm_ratio,
                        },
                    },
                ),
                allowed_entry_points={_ENTRY_POINT},
                python=self.config.python,
                bwrap=self.config.bwrap,
                allow_unsandboxed=self.config.allow_unsandboxed,
                on_progress=self._progress_reporter(proposal_id),
                cancel=self.cancel,
            )
        if result.status is SandboxStatus.CANCELLED:
            raise _StoppedError(result.error or "the node stopped the job")
        if result.status is SandboxStatus.INPUT_REJECTED:
            raise ConsumerFaultError(result.error or "the sandbox refused the consumer's input")
        if not result.ok or result.return_value is None:
            raise _AttemptFailedError(result)
        outcome = result.return_value
        # images the sandbox could not decode are excluded like those the node could not decrypt
        counts = {
            **counts,
            "used": int(str(outcome["train_samples"])),
            "excluded": counts["excluded"] + int(str(outcome.get("unreadable", 0))),
        }
        return outcome, counts

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
    ) -> dict[str, Any]:
        """Write ``run_job``'s input, unparsed: ``train/`` (each usable sample's plaintext image
        bytes), ``samples.json`` (ids, class indexes, providers, assets, registration rank,
        duplicate links) and ``validation.npz`` (the consumer's archive as decrypted). Returns
        the counts (``used``, ``excluded``, ``leftOut``: asset → why) and, for the model card,
        ``cardLeftOut`` (whole assets), ``cardExcluded`` (single samples) and ``decrypted``
        (asset → (owner, samples written))."""
        doc = checked.document
        if len(doc.classes) != int(spec["num_classes"]):
            raise ConsumerFaultError(
                f"the proposal names {len(doc.classes)} classes, the spec {spec['num_classes']}"
            )
        (input_dir / "validation.npz").write_bytes(self._validation_archive(doc))
        (train_dir := input_dir / "train").mkdir(mode=0o700)
        keys, reasons, refused_by_terms = self._asset_keys(checked, spec)
        left_out = {a: why for a, (_, why) in reasons.items()}
        class_of = {name: i for i, name in enumerate(doc.classes)}
        described: dict[str, list[Any]] = {k: [] for k in _DESCRIBED}
        excluded = 0
        selected: dict[int, int] = {}
        dropped: dict[tuple[int, str], int] = {}
        decrypted: dict[int, tuple[str, int]] = {}
        for sample in checked.samples:
            selected[sample.asset_id] = selected.get(sample.asset_id, 0) + 1
            key = keys.get(sample.asset_id)
            if key is None or sample.label not in class_of:
                excluded += 1
                if key is not None:
                    dropped[sample.asset_id, "unlabelled"] = (
                        dropped.get((sample.asset_id, "unlabelled"), 0) + 1
                    )
                continue
            try:
                plaintext = decrypt_sample(self.store, sample.cid, index=sample.index, data_key=key)
            except StorageUnavailableError:
                raise
            except (StorageError, CryptoError, InvalidInputError) as exc:
                log.warning("excluded asset %d sample %d: %s", sample.asset_id, sample.index, exc)
                excluded += 1
                dropped[sample.asset_id, "undecryptable"] = (
                    dropped.get((sample.asset_id, "undecryptable"), 0) + 1
                )
                continue
            owner, written = decrypted.get(sample.asset_id, (str(sample.owner), 0))
            decrypted[sample.asset_id] = (owner, written + 1)
            name = f"{len(described['files']):06d}"
            (train_dir / name).write_bytes(plaintext)
            described["files"].append(name)
            described["labels"].append(class_of[sample.label])
            described["sample_ids"].append("0x" + sample.sample_id.hex())
            described["providers"].append(str(sample.owner))
            described["asset_ids"].append(sample.asset_id)
            described["rank"].append((sample.asset_id << 32) | sample.index)  # registration order
        if not described["files"]:
            if left_out and set(left_out) <= refused_by_terms:
                raise ConsumerFaultError(
                    "no selected asset allows this proposal: "
                    + "; ".join(f"asset {a}: {why}" for a, why in sorted(left_out.items()))
                )
            raise JobFailedError(
                "no selected sample could be used (left the round, withdrawn, undecryptable or "
                "unlabelled)"
            )
        # duplicate links, plus each published cluster's: copies past a node's bound on
        # links are still one player in valuation
        links = selection_links(
            [p.metadata for p in checked.public.values() if p.metadata is not None],
            selected=set(described["sample_ids"]),
        )
        (input_dir / "samples.json").write_text(json.dumps({**described, "links": links}))
        return {
            "used": len(described["files"]),
            "excluded": excluded,
            "leftOut": left_out,
            "cardLeftOut": [
                LeftOutAsset(a, code, why, selected.get(a, 0))
                for a, (code, why) in sorted(reasons.items())
            ],
            "cardExcluded": [ExcludedSamples(a, why, n) for (a, why), n in sorted(dropped.items())],
            "decrypted": decrypted,
            "dataKeys": keys,  # sealed to verifiers, never journaled
        }

    def _asset_keys(
        self, checked: CheckedProposal, spec: Mapping[str, Any]
    ) -> tuple[dict[int, bytes], dict[int, tuple[str, str]], set[int]]:
        """The data key of each asset this round may use, why each other one is left out, and
        which of those the proposal's own terms shut out (:func:`._keys.asset_keys`)."""
        return asset_keys(self, checked, spec)

    # --- keys: the node's own; a verifier re-executing the job overrides these -------------
    def _data_key(self, asset_id: int, public: PublicAsset) -> bytes:
        """The data key of a selected asset, as wrapped for this node."""
        return self.account.unwrap_key(public.manifest.key_for(self.account.address).wrapped)

    def _validation_key(self, doc: TrainingProposal) -> bytes:
        """The data key of the consumer's validation set, as wrapped for this node."""
        return self.account.unwrap_key(doc.validation.wrapped_key)

    def _withdrawn(self, proposal_id: int, asset_id: int) -> bool:
        return self.assets.asset(asset_id).status != AssetStatus.ACTIVE

    def _licence_time(self, proposal_id: int) -> int:  # a verifier judges at the result's time
        return self.client.latest_timestamp()

    def _validation_archive(self, doc: TrainingProposal) -> bytes:
        """The consumer's validation archive, decrypted and checked against the hash on chain
        — and not opened: the sandboxed job reads it."""
        try:
            sealed = self.store.get(doc.validation.cid, max_bytes=_MAX_VALIDATION_BYTES)
        except StorageUnavailableError:
            raise
        except VisdmError as exc:
            raise ConsumerFaultError(f"the validation set cannot be fetched: {exc}") from None
        try:
            data_key = self._validation_key(doc)
            return open_validation_set(
                sealed, data_key, doc.validation.plaintext_hash, aad=doc.validation_aad
            )
        except VisdmError as exc:
            raise ConsumerFaultError(f"the validation set cannot be used: {exc}") from None
