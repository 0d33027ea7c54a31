"""The training node proves its accuracy claim (docs/verification.md, *The node proves*).

When the market's court recorded a ``ZkAccuracyCheck`` for a job at its start
(``ResultCourt.proofOf``), the court releases the job's WTP-met result only once a claim of it
is accepted, and anyone overturns it after the window otherwise (the node's bond goes to the
consumer). :class:`ResultProver` is the node's part:

1. before the job's output directory is removed, :meth:`ResultProver.keep` moves the trained
   model file to ``<workdir>/zk/jobs/<proposal>/`` for a job that will need a proof (a job
   without a check, or a missed WTP, keeps nothing and behaves as before);
2. after ``submitResult``, :meth:`ResultProver.prove` runs :func:`visdm.verify.prove_claim`
   with a :class:`SandboxedProver`: the circuit's build and the proof of the drawn samples
   run in the sandbox (``visdm.verify._zk_job``), over the model file and the consumer's
   validation archive decrypted into a private RAM directory, as for training; the node
   process stores the circuit's settings file, registers the vka, commits, waits for the draw
   and sends the proof. It never decodes an image or an archive;
3. a failure is one logged line and the node carries on; a kept model left by a node that
   stopped in between is proven on the next poll (:meth:`ResultProver.sweep`), resuming a
   claim committed but not proven yet with the circuit it left on disk.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visdm.chain.contracts import ResultCourt
from visdm.errors import (
    ChainError,
    InvalidModelSpecError,
    SandboxUnavailableError,
    StorageUnavailableError,
    VisdmError,
    ZkBackendError,
    ZkInputError,
)
from visdm.jsonsafe import load_untrusted_json, load_untrusted_object, read_untrusted_file
from visdm.merkle import PositionalMerkleTree
from visdm.proposals import load_checked_proposal
from visdm.training._spec import MAX_SPEC_BYTES
from visdm.verify._zk import ZkCircuit, ZkProof
from visdm.verify._zk_prove import ZkProofRun, prove_claim
from visdm.verify._zk_rule import SAMPLE_LEAF_ENCODING

from ._private import private_dir
from .sandbox import SandboxJob, SandboxResult, run_in_sandbox

if TYPE_CHECKING:
    from ._training import TrainingWorker

__all__ = ["ResultProver", "SandboxedProver"]

log = logging.getLogger("visdm.node.zk")

_BUILD = "visdm.verify._zk_job:build_claim_circuit"
_PROVE = "visdm.verify._zk_job:prove_drawn_samples"
_MODEL = "model.safetensors"
_ZERO = "0x" + "00" * 32
#: the circuit's files the sandbox writes: the proving key alone is 2.5 GiB at 2^18 rows and
#: doubles per power of two (docs/verification.md), past the training job's output limit
_MAX_CIRCUIT_BYTES = 32 << 30
#: claim.json: a 66-character hash and a label per validation sample
_MAX_CLAIM_BYTES = 1 << 28
#: (node directory, proposal) of the proofs under way in this process: a pool's job thread
#: and the node's sweep never prove the same result at once
_UNDER_WAY: set[tuple[str, int]] = set()
_UNDER_WAY_LOCK = threading.Lock()
#: the node's own machinery away: the kept model waits for the next poll
_OUTAGES = (ChainError, StorageUnavailableError, SandboxUnavailableError)


class SandboxedProver:
    """A :class:`~visdm.verify.ClaimProver` whose plaintext half runs in the node's sandbox.

    ``validation`` is the consumer's archive as decrypted (never parsed here), written into a
    private RAM directory for each sandboxed step; ``circuit_dir`` keeps the circuit's files
    between the build and the proof (and across a restart)."""

    def __init__(  # noqa: PLR0917 - one call site
        self,
        worker: TrainingWorker,
        proposal_id: int,
        spec: Mapping[str, Any],
        validation: bytes,
        model_path: Path,
        circuit_dir: Path,
        srs_dir: Path,
    ) -> None:
        self.worker = worker
        self.proposal_id = proposal_id
        self.spec = dict(spec)
        self.validation = validation
        self.model_path = model_path
        self.circuit_dir = circuit_dir
        self.srs_dir = srs_dir
        self.seconds: dict[str, float] = {}

    def build(self, k: int) -> tuple[ZkCircuit, PositionalMerkleTree]:
        shutil.rmtree(self.circuit_dir, ignore_errors=True)
        self.circuit_dir.mkdir(parents=True, mode=0o700)
        # a size's SRS is made once (gen_srs takes minutes at 2^17 rows and more)
        for srs in sorted(self.srs_dir.glob("kzg*.srs")):
            shutil.copyfile(srs, self.circuit_dir / srs.name)
        self._run(_BUILD, {"k": k}, with_model=True)
        circuit, tree = self._read_claim(k)
        self.srs_dir.mkdir(parents=True, exist_ok=True)
        cached = self.srs_dir / circuit.srs_path.name
        if not cached.exists():
            partial = cached.with_suffix(".partial")
            shutil.copyfile(circuit.srs_path, partial)
            partial.replace(cached)
        return circuit, tree

    def resume(self, k: int) -> tuple[ZkCircuit, PositionalMerkleTree] | None:
        try:
            return self._read_claim(k)
        except VisdmError:
            return None

    def prove(self, circuit: ZkCircuit, indices: Sequence[int]) -> ZkProof:
        shape = {
            "k": circuit.k,
            "logrows": circuit.logrows,
            "settings": circuit.settings.describe(),
            "indices": [int(i) for i in indices],
        }
        self._run(_PROVE, shape, with_model=False)
        return circuit.load_proof(self.circuit_dir / "proof.json")

    def _run(self, entry: str, params: dict[str, Any], *, with_model: bool) -> SandboxResult:
        worker = self.worker
        prefix = f"{worker._shm_prefix}zk{self.proposal_id}-"  # swept like the training's
        with private_dir(prefix) as input_dir:
            (input_dir / "validation.npz").write_bytes(self.validation)
            if with_model:
                shutil.copyfile(self.model_path, input_dir / _MODEL)
            result = run_in_sandbox(
                SandboxJob(
                    job_id=f"proof-{self.proposal_id}",
                    entry_point=entry,
                    input_dir=input_dir,
                    output_dir=self.circuit_dir,
                    limits=worker.config.sandbox.model_copy(
                        update={
                            "max_output_bytes": max(
                                worker.config.sandbox.max_output_bytes, _MAX_CIRCUIT_BYTES
                            )
                        }
                    ),
                    params={"spec": self.spec, **params},
                ),
                allowed_entry_points={entry},
                python=worker.config.python,
                bwrap=worker.config.bwrap,
                allow_unsandboxed=worker.config.allow_unsandboxed,
                cancel=worker.cancel,
            )
        self.seconds[entry.rsplit(":", 1)[1]] = result.wall_s
        if not result.ok:
            # the sandbox's words, for the node's log only
            why = (result.error or "no result").replace("\n", " ")[:300]
            raise ZkBackendError(f"the sandboxed {entry.rsplit(':', 1)[1]} {result.status}: {why}")
        return result

    def _read_claim(self, k: int) -> tuple[ZkCircuit, PositionalMerkleTree]:
        """The circuit and sample tree the sandboxed build described in ``claim.json``: the
        job wrote it from the consumer's images, so it is read as untrusted input."""
        path = self.circuit_dir / "claim.json"
        what, hint = "the proving job's claim.json", "the sandboxed circuit build wrote it"
        raw = read_untrusted_file(
            path, what=what, max_bytes=_MAX_CLAIM_BYTES, error=ZkInputError, hint=hint
        )
        doc = load_untrusted_object(
            raw, what=what, max_bytes=_MAX_CLAIM_BYTES, error=ZkInputError, hint=hint
        )
        from visdm.verify._zk_job import settings_from

        channels, height, width = (int(v) for v in self.spec["input_shape"])
        classes = int(self.spec["num_classes"])
        try:
            logrows, leaves = int(doc["logrows"]), doc["leaves"]
            values = [
                (i, bytes.fromhex(str(h).removeprefix("0x")), int(y))
                for i, (h, y) in enumerate(leaves)
            ]
            settings = settings_from(doc["settings"])
            shape_ok = (int(doc["k"]), int(doc["features"]), int(doc["classes"])) == (
                k,
                channels * height * width,
                classes,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ZkInputError(f"{what} is unusable ({exc!r:.100}): {hint}") from None
        bad = not shape_ok or not 10 <= logrows <= 26 or not values
        if bad or any(len(h) != 32 or not 0 <= y < classes for _, h, y in values):
            raise ZkInputError(f"{what} describes another circuit or broken leaves: {hint}")
        circuit = ZkCircuit(
            self.circuit_dir,
            self.circuit_dir / f"kzg{logrows}.srs",
            k,
            channels * height * width,
            classes,
            logrows,
            settings,
        )
        return circuit, PositionalMerkleTree(values, SAMPLE_LEAF_ENCODING)


class ResultProver:
    """The node's accuracy proofs: keeps a job's model for its proof, proves after
    ``submitResult``, and proves what a stopped node left (see the module's docstring)."""

    def __init__(self, worker: TrainingWorker) -> None:
        self.worker = worker
        self.root = worker.config.workdir / "zk"

    def _dir(self, proposal_id: int) -> Path:
        return self.root / "jobs" / str(proposal_id)

    def _court(self) -> ResultCourt | None:
        court = self.worker.market.parameters().court
        return ResultCourt(self.worker.client, court) if court else None

    def keep(self, proposal_id: int, out_dir: Path, submission: Mapping[str, Any] | None) -> bool:
        """Move the trained model out of ``out_dir`` when the court will wait for a proof of
        this result (a WTP-met result of a job started under a check)."""
        model = out_dir / _MODEL
        delivered = submission is not None and submission.get("modelHash", _ZERO) != _ZERO
        if not delivered or not model.is_file():
            return False  # no model delivered: a missed WTP needs no proof
        court = self._court()
        if court is None or court.proof_of(proposal_id).check is None:
            return False
        kept = self._dir(proposal_id)
        kept.mkdir(parents=True, exist_ok=True, mode=0o700)
        model.replace(kept / _MODEL)
        return True

    def sweep(self) -> int:
        """Prove every kept model's result (a node stopped between its result and its proof);
        returns how many were tried."""
        jobs = self.root / "jobs"
        pids = (
            sorted(int(p.name) for p in jobs.iterdir() if p.name.isdigit()) if jobs.is_dir() else []
        )
        for pid in pids:
            self.prove(pid)
        return len(pids)

    def prove(self, proposal_id: int) -> ZkProofRun | None:
        """Prove ``proposal_id``'s claim if its model was kept for it; every failure is one
        logged line (the court overturns the result after the window without a proof)."""
        kept = self._dir(proposal_id)
        key = (str(self.root), proposal_id)
        with _UNDER_WAY_LOCK:
            if key in _UNDER_WAY or not (kept / _MODEL).is_file():
                return None
            _UNDER_WAY.add(key)
        started = time.perf_counter()
        try:
            run = self._prove(proposal_id, kept)
        except _OUTAGES as exc:
            log.warning(
                "proposal %d: the accuracy proof waits for the next poll: %s", proposal_id, exc
            )
            return None
        except Exception as exc:  # a bug too: the node carries on with its other work
            why = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            log.error(
                "proposal %d: the accuracy proof failed (%s); without an accepted proof anyone "
                "overturns the result after its window and the node's bond goes to the consumer",
                proposal_id,
                why,
            )
            shutil.rmtree(kept, ignore_errors=True)
            return None
        finally:
            with _UNDER_WAY_LOCK:
                _UNDER_WAY.discard(key)
        shutil.rmtree(kept, ignore_errors=True)
        log.info(
            "proposal %d: accuracy claim %s in %.1f s (sandboxed circuit %.1f s, proof %.1f s)",
            proposal_id,
            run.status,
            time.perf_counter() - started,
            run.seconds.get("build_claim_circuit", 0.0),
            run.seconds.get("prove_drawn_samples", 0.0),
        )
        return run

    def _prove(self, proposal_id: int, kept: Path) -> ZkProofRun:
        worker = self.worker
        court = self._court()
        if court is None:
            raise ZkInputError("the market has no court any more: no proof is waited for")
        checked = load_checked_proposal(
            worker.market, worker.deployment, worker.client, worker.store, proposal_id
        )
        spec = load_untrusted_json(
            checked.document.model_spec_json,
            what="the proposal's model spec",
            max_bytes=MAX_SPEC_BYTES,
            error=InvalidModelSpecError,
            hint="the consumer's document is at fault",
        )
        if not isinstance(spec, dict):
            raise InvalidModelSpecError("the proposal's model spec is not an object")
        prover = SandboxedProver(
            worker,
            proposal_id,
            spec,
            worker._validation_archive(checked.document),
            kept / _MODEL,
            kept / "circuit",
            self.root / "srs",
        )
        worker.client.fund_from_dev_faucet(worker.account.address)
        run = prove_claim(
            worker.client,
            worker.market,
            court,
            worker.store,
            worker.account.local_account,
            proposal_id=proposal_id,
            prover=prover,
        )
        run.seconds.update(prover.seconds)
        return run
