"""``visdm node serve``'s training worker proves its accuracy claim by itself: a real round
(real assets, the real sandbox) under a court that names a ``ZkAccuracyCheck`` of k = 4. The
worker trains, submits, builds the circuit and proves the drawn samples in its sandbox, and
sends the chain's steps itself; after the window ``release`` pays it. The node process never
decodes an image or an archive while it does."""

from __future__ import annotations

import json
import logging
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.integration.compute.roundkit import VAL_X, VAL_Y
from tests.integration.verify.conftest import BOND, WINDOW, Checked
from tests.integration.verify.zkkit import K, Kit
from visdm.chain.contracts import ProposalStatus
from visdm.cli import main
from visdm.compute import _proving
from visdm.proposals import pack_arrays
from visdm.verify import Verdict, prove_result
from visdm.verify._zk_chain import ZkAccuracyCheckClient, deploy_zk_check

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: the tests' circuit size: ``mlp`` [4] on 8×8 (the Fashion-MNIST images scaled down)
SPEC = {
    "architecture": "mlp",
    "input_shape": [1, 8, 8],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 16,
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "hidden": [4],
}


def small_validation(start: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """``n`` validation images from ``start`` at the spec's 8×8, as the job scales training
    images."""
    images = [
        np.asarray(Image.fromarray(x).resize((8, 8), Image.Resampling.BILINEAR))
        for x in VAL_X[start : start + n]
    ]
    return np.stack(images).astype(np.uint8), VAL_Y[start : start + n]


def name_check(vr: Checked, kit: Kit) -> ZkAccuracyCheckClient:
    """Governance deploys a check of k = 4 bound to the market and names it on the court."""
    rnd = vr.rnd
    deployed = deploy_zk_check(
        rnd.chain, vr.governance, kit.circuit, samples=K, market=rnd.market.address
    )
    vr.court.set_zk_check(vr.governance, deployed.check)
    return ZkAccuracyCheckClient(rnd.chain, deployed.check)


def reuse_srs(vr: Checked, kit: Kit) -> None:
    """The node's SRS cache starts with the tests' (a size's SRS is made once)."""
    cache = vr.rnd.settings.node_dir / "zk" / "srs"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kit.circuit.srs_path, cache / kit.circuit.srs_path.name)


@pytest.mark.attack
def test_the_node_worker_proves_its_result_in_its_sandbox_and_release_pays(
    vr: Checked,
    kit: Kit,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    rnd, court = vr.rnd, vr.court
    check = name_check(vr, kit)
    reuse_srs(vr, kit)
    pid = rnd.propose(wtp_bps=100, spec=SPEC, validation=small_validation())
    rnd.approve(pid)
    cost = rnd.start(pid)
    assert court.proof_of(pid).required

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the node process parsed untrusted bytes")

    # decoding happens in the sandbox only: every decoder of the node process is broken
    monkeypatch.setattr(Image, "open", refuse)
    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(zipfile, "ZipFile", refuse)
    worker = rnd.trainer()
    started = time.perf_counter()
    try:
        with caplog.at_level(logging.INFO, logger="visdm.node.zk"):
            assert worker.poll() == 1
        job = worker.journal.get(pid)
        assert job is not None and job.state == "submitted", job
    finally:
        worker.close()
    elapsed = time.perf_counter() - started
    monkeypatch.undo()
    claim = check.claim(pid)
    record = rnd.market.proposal(pid)
    assert claim.status == "accepted", claim
    assert (claim.model_hash, claim.accuracy_bps) == (record.model_hash, record.accuracy_bps)
    assert claim.sample_count == 60
    assert court.proof_of(pid).blocks_release() is None
    # the kept model and the circuit's files are gone once the claim is settled
    assert not (rnd.settings.node_dir / "zk" / "jobs" / str(pid)).exists()
    (line,) = [m for r in caplog.records if "accuracy claim accepted" in (m := r.getMessage())]
    # ``visdm status`` shows the claim beside the court's window
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--home", str(rnd.settings.home), "--rpc-url", str(rnd.settings.rpc_url),
              "status", str(pid), "--json"])  # fmt: skip
    printed = capsys.readouterr()
    assert done.value.code in (0, None), printed.err
    shown = json.loads(printed.out)["court"]["accuracyClaim"]
    assert (shown["state"], shown["correct"]) == ("accepted", claim.correct)
    # the in-process path (the demo's) finds the claim settled and returns it as it stands
    run = prove_result(
        rnd.chain, rnd.market, court, rnd.store, rnd.accounts["node"].local_account,
        proposal_id=pid, model=None, input_shape=(1, 8, 8), num_classes=10,
        val_x=small_validation()[0], val_y=small_validation()[1],
        workdir=tmp_path / "unused", srs_dir=tmp_path / "unused",
    )  # fmt: skip
    assert (run.status, run.correct, run.circuit_cid) == (
        "accepted",
        claim.correct,
        check.circuit_cid(pid),
    )
    assert run.logrows == json.loads(rnd.store.get(run.circuit_cid))["run_args"]["logrows"] > 0
    assert not (tmp_path / "unused").exists()  # nothing was built
    # a verifier holding the validation key finds the claim over the consumer's set: no challenge
    checker = vr.verify_worker(vr.checker, share=0.0)
    try:
        assert checker.poll() == 0
    finally:
        checker.close()
    assert court.challenge_of(pid).challenger is None
    # after the window, anyone's release pays the node its training cost and unlocks its bond
    rnd.chain.advance_time(WINDOW + 1)
    credit = rnd.market.credit_of(rnd.accounts["node"].address)
    court.release(rnd.accounts["stranger"].local_account, pid)
    record = rnd.market.proposal(pid)
    assert record.status is ProposalStatus.COMPLETED and record.deadline == 0
    assert rnd.market.credit_of(rnd.accounts["node"].address) == credit + cost
    assert court.stake_of(rnd.accounts["node"].address)[1] == 0
    print(f"train, submit and prove: {elapsed:.1f} s; {line}")  # the figure docs report


@pytest.mark.attack
def test_a_claim_over_other_inputs_than_the_validation_set_is_challenged_and_overturned(
    vr: Checked, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node trains and reports honestly, then commits and proves its claim over images of
    its own choosing. The proof alone accepts it (defence off: nothing on chain ties the root to
    the consumer's archive); a verifier holding the validation key recomputes the root,
    challenges, and the committee member, holding the same secrets, votes it overturned."""
    rnd, court = vr.rnd, vr.court
    node, consumer = rnd.accounts["node"], rnd.accounts["consumer"].address
    check = name_check(vr, kit)
    reuse_srs(vr, kit)
    pid = rnd.propose(wtp_bps=100, spec=SPEC, validation=small_validation())
    rnd.approve(pid)
    rnd.start(pid)
    chosen = pack_arrays(*small_validation(start=200))  # not the consumer's images
    honest = _proving.SandboxedProver.__init__

    def other_inputs(self: _proving.SandboxedProver, *args: object) -> None:
        worker, pid_, spec, _, *rest = args
        honest(self, worker, pid_, spec, chosen, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(_proving.SandboxedProver, "__init__", other_inputs)
    worker = rnd.trainer()
    try:
        assert worker.poll() == 1
    finally:
        worker.close()
    record = rnd.market.proposal(pid)
    # c_min is 0 at this accuracy for k = 4: any valid proof is accepted, whatever its inputs
    assert check.min_correct(K, record.accuracy_bps) == 0
    assert check.claim(pid).status == "accepted"
    before = rnd.market.credit_of(consumer)
    checker = vr.verify_worker(vr.checker, share=0.0)
    member = vr.verify_worker(vr.member, share=0.0)
    try:
        assert checker.poll() == 1
        caught = checker.journal.get(pid)
        assert caught is not None and caught.verdict is Verdict.CHALLENGE
        assert caught.differences == ("sampleRoot",)
        assert court.challenge_of(pid).committee == (vr.member.address,)
        # drawn, the member re-executes (the result itself is right), checks the root, votes
        assert member.poll() == 2
        assert member.journal.get(pid).differences == ("sampleRoot",)  # type: ignore[union-attr]
    finally:
        checker.close()
        member.close()
    assert court.challenge_of(pid).overturned == 1
    assert rnd.market.proposal(pid).status is ProposalStatus.CANCELLED
    assert rnd.market.credit_of(consumer) == before + record.price + record.training_cost
    assert court.stake_of(node.address) == (BOND, 0)
