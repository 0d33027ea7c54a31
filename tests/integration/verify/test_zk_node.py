"""``visdm node serve``'s training worker proves its accuracy claim by itself: a real round
(real assets, the real sandbox) under a court that names a ``ZkAccuracyCheck`` of k = 4. The
worker trains, submits, builds the circuit and proves the drawn samples in its sandbox, and
sends the chain's steps itself; after the window ``release`` pays it. The node process never
decodes an image or an archive while it does."""

from __future__ import annotations

import logging
import shutil
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.integration.compute.roundkit import VAL_X, VAL_Y
from tests.integration.verify.conftest import WINDOW, Checked
from tests.integration.verify.zkkit import K, Kit
from visdm.chain.contracts import ProposalStatus
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


def small_validation(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` validation images at the spec's 8×8, as the job scales training images."""
    images = [
        np.asarray(Image.fromarray(x).resize((8, 8), Image.Resampling.BILINEAR)) for x in VAL_X[:n]
    ]
    return np.stack(images).astype(np.uint8), VAL_Y[:n]


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
    vr: Checked, kit: Kit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
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
    print(f"train, submit and prove: {elapsed:.1f} s; {line}")
    # after the window, anyone's release pays the node its training cost and unlocks its bond
    rnd.chain.advance_time(WINDOW + 1)
    credit = rnd.market.credit_of(rnd.accounts["node"].address)
    court.release(rnd.accounts["stranger"].local_account, pid)
    record = rnd.market.proposal(pid)
    assert record.status is ProposalStatus.COMPLETED and record.deadline == 0
    assert rnd.market.credit_of(rnd.accounts["node"].address) == credit + cost
    assert court.stake_of(rnd.accounts["node"].address)[1] == 0
