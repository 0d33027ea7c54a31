"""The full demo's zero-knowledge round: a result counts only once its accuracy proof does.

After the cheating round the market has a court. Governance deploys ezkl's reusable verifier
and a ``ZkAccuracyCheck`` for k = 8 samples bound to the market, and names it on the court;
``bob`` proposes a round of ``mlp`` [8] (the demo's main model, ``scatter_linear``,
cannot be compiled into a circuit at all: its Fourier transforms do not export, see
docs/verification.md); ``node1`` trains it, posts the result, then builds the circuit of the
model it trained, commits the claim with the result's model hash and accuracy, proves the
samples the chain drew and sends the proof; after the window ``bob`` releases the result
through the court, which accepts it because the claim was accepted.

Only in the full demo: the circuit's setup and the proof take minutes on two shared cores.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from visdm import session
from visdm.chain.contracts import ProposalRecord
from visdm.compute import TrainingConfig, TrainingWorker
from visdm.errors import VisdmError
from visdm.market import workflow
from visdm.proposals import SelectedAsset

from ._cast import class_names, demo_spec, validation_arrays
from ._settle import tokens
from ._stage import TOKEN, Collect, Stage

__all__ = ["ZkRound"]

log = logging.getLogger("visdm.demo")

#: samples each claim proves: the size this machine proves in about 20 s (docs/verification.md)
_K = 8
_HIDDEN = [8]
_VOTING_S = 3600
_WTP_BPS = 100  # any trained model meets it: the round is about the proof


class _KeepingTrainingWorker(TrainingWorker):
    """The honest node, keeping the model file it trained for the proof that follows (the
    node deletes a job's outputs once its result is stored)."""

    kept: Path

    def _run(self, proposal_id: int, record: ProposalRecord) -> dict[str, Any]:
        submission = super()._run(proposal_id, record)
        model = self._out_dir(proposal_id) / "model.safetensors"
        if model.exists():
            self.kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model, self.kept)
        return submission


class ZkRound:
    """A round whose accuracy is proven on chain before the court releases it."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.workdir = stage.settings.node_dir / "zk" / "demo"

    def play(self, selection: list[SelectedAsset]) -> None:
        # ezkl warns of its low scales and experimental verifier on every circuit: kept out of
        # the demo's output like the node's own warnings
        ezkl = logging.getLogger("ezkl")
        propagate, ezkl.propagate = ezkl.propagate, False
        try:
            with Collect(logging.WARNING).on(ezkl):
                self._check()
                pid = self._round(selection)
                self._prove(pid)
                self._release(pid)
        finally:
            ezkl.propagate = propagate

    def _spec(self) -> dict[str, Any]:
        return {**demo_spec(self.stage.config), "hidden": _HIDDEN}

    def _check(self) -> None:
        from visdm.training import build_model, parse_model_spec
        from visdm.verify import ZkCircuit, deploy_zk_check
        from visdm.verify._zk import node_srs_dir

        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        admin = stage.people["admin"].local_account
        court = conn.deployment.result_court(conn.client)
        market = conn.deployment.training_market(conn.client)
        with stage.step("zk check") as info:
            # the reusable verifier's source is the same for every circuit: a tiny one gives it
            tiny = {**self._spec(), "input_shape": [1, 8, 8], "num_classes": 2, "hidden": [2]}
            tiny.pop("dp", None)
            circuit = ZkCircuit.build(
                build_model(parse_model_spec(tiny)).eval(),
                input_shape=(1, 8, 8),
                num_classes=2,
                k=1,
                workdir=self.workdir / "verifier",
                srs_dir=node_srs_dir(stage.settings.node_dir),
            )
            deployed = deploy_zk_check(
                conn.client, admin, circuit, samples=_K, market=str(market.address)
            )
            tx = court.set_zk_check(admin, deployed.check)
            info["gas"] = sum(deployed.gas.values()) + tx.gas_used
            info["detail"] = (
                f"governance deploys ezkl's reusable verifier ({deployed.verifier_code_bytes:,} "
                f"bytes) and an accuracy check of k = {_K} drawn samples bound to the market, "
                "and names it on the court: results of jobs started from now on count only "
                "with an accepted proof"
            )

    def _round(self, selection: list[SelectedAsset]) -> int:
        stage = self.stage
        bob = stage.people["bob"]
        config = stage.config
        conn = session.connect_deployed(stage.settings)
        court = conn.deployment.result_court(conn.client)
        with stage.step("proven round") as info:
            node1 = stage.people["node1"].local_account
            bond = court.parameters().bond
            gas = 0
            if court.free_stake(node1.address) < bond:  # the cheating round cost it a bond
                token = conn.deployment.payment_token(conn.client)
                token.faucet(node1, bond)
                gas += token.approve(node1, court.address, bond).gas_used
                gas += court.deposit(node1, bond).gas_used
            created = workflow.propose(
                stage.as_("bob"),
                bob,
                selection=selection,
                model_spec=self._spec(),
                validation=validation_arrays(config),
                classes=class_names(),
                offer=config.offer_tokens * TOKEN,
                wtp_bps=_WTP_BPS,
                node=stage.people["node1"].address,
                voting_period_s=_VOTING_S,
                min_share_bps=config.min_share_bps,
            )
            pid = created.proposal_id
            gas += sum(t.gas_used for t in created.transactions)
            _, started = stage.approve_and_start(pid, _VOTING_S)
            info["gas"] = gas + started
            info["detail"] = (
                f"proposal {pid}: bob asks for mlp {_HIDDEN} on node1; every owner "
                f"accepts {config.offer_tokens} tokens; the court records the check for the job"
            )
        return pid

    def _prove(self, pid: int) -> None:
        from visdm.training import load_model
        from visdm.verify import prove_result
        from visdm.verify._zk import node_srs_dir

        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        store = session.open_store(stage.settings)
        market = conn.deployment.training_market(conn.client)
        court = conn.deployment.result_court(conn.client)
        with stage.step("node proves") as info:
            worker = _KeepingTrainingWorker(
                conn.client,
                conn.deployment,
                store,
                stage.people["node1"],
                TrainingConfig(workdir=stage.settings.node_dir, price_per_gflop=10**15),
            )
            worker.kept = self.workdir / f"model-{pid}.safetensors"
            try:
                with Collect(logging.WARNING).on(logging.getLogger("visdm")):
                    worker.poll()
                job = worker.journal.get(pid)
                if job is None or job.state != "submitted":
                    raise VisdmError(f"node1 did not post proposal {pid}'s result: {job}")
            finally:
                worker.close()
            started = time.perf_counter()
            val_x, val_y = validation_arrays(stage.config)
            run = prove_result(
                conn.client,
                market,
                court,
                store,
                stage.people["node1"].local_account,
                proposal_id=pid,
                model=load_model(worker.kept, self._spec()).eval(),
                input_shape=(1, 28, 28),
                num_classes=10,
                val_x=np.asarray(val_x),
                val_y=val_y,
                workdir=self.workdir / f"circuit-{pid}",
                srs_dir=node_srs_dir(stage.settings.node_dir),
            )
            seconds = time.perf_counter() - started
            record = market.proposal(pid)
            info["gas"] = sum(run.gas.values())
            # node1's worker proves right after its submitResult (in its sandbox); the library
            # call then only reads the claim back, or proves it when the worker could not
            how = "its worker" if seconds < 5 else "the node's library call"
            info["detail"] = (
                f"node1 trains and posts {record.accuracy_bps / 100:.1f} % accuracy; {how} "
                f"builds its model's circuit (2^{run.logrows} rows), commits the claim, proves "
                f"the {_K} validation samples the chain drew ({run.correct} classified as "
                f"labelled) and sends the proof: claim {run.status}"
            )
            if run.status != "accepted":
                raise VisdmError(f"node1's accuracy proof for proposal {pid} was {run.status}")

    def _release(self, pid: int) -> None:
        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        market = conn.deployment.training_market(conn.client)
        with stage.step("proof counts") as info:
            window = market.proposal(pid).deadline - conn.client.latest_timestamp()
            conn.client.advance_time(max(window, 0) + 1)
            credit = market.credit_of(stage.people["node1"].address)
            tx = workflow.release(stage.as_("bob"), stage.people["bob"], pid)
            record = market.proposal(pid)
            paid = market.credit_of(stage.people["node1"].address) - credit
            info["gas"] = tx.gas_used
            info["detail"] = (
                f"after the window bob releases proposal {pid} through the court, which "
                f"accepts it because the claim was: claims open ({tokens(record.unclaimed)} "
                f"tokens), node1 is credited {paid / TOKEN:.6f} tokens of training cost. The "
                "demo's scatter_linear rounds are not proven: their FFTs do not compile"
            )
