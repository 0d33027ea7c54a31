"""Training rounds end to end on anvil, with the real bubblewrap sandbox and real PyTorch:
propose → vote → tally → quote → startTraining → node trains → sealed model → payouts → claims;
the WTP-missed refund; the consumer's reclaim when a node does not finish in time; untrusted
bytes parsed only in the sandbox; a hostile validation archive as the consumer's fault; a job
that never completes abandoned after the attempt cap."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib import format as npy_format

from tests.integration.compute.roundkit import (
    MLP_SPEC,
    NAMES,
    NO_DP_LICENCE,
    PASSWORD,
    VAL_X,
    VAL_Y,
    Round,
    write_folder,
)
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.cli import main
from visdm.cli._json import scheme_problems
from visdm.compute import TrainingConfig, TrainingWorker
from visdm.compute.sandbox import SandboxLimits
from visdm.errors import ChainNotRunningError, ChainTimeoutError, InvalidInputError
from visdm.market import workflow
from visdm.training import seed_commitment, spec_hash
from visdm.training._card import read_model_card

pytestmark = pytest.mark.integration


def test_round_trains_delivers_the_model_and_pays_the_providers(
    rnd: Round, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = rnd.propose(wtp_bps=3000)
    rnd.approve(pid)
    assert rnd.market.proposal(pid).status == ProposalStatus.APPROVED
    cost = rnd.start(pid)
    assert cost > 0
    consumer = rnd.accounts["consumer"]
    worker = rnd.trainer()
    try:
        assert worker.poll() == 1
        job = worker.journal.get(pid)
        assert job is not None
        assert (job.state, job.attempts) == ("submitted", 1), job.message
        # a second poll finds nothing to do: the result is posted once
        assert worker.poll() == 0
        seed = worker.journal.seed(pid)
    finally:
        worker.close()
    # the job's seed is kept for verifiers and only its commitment is published
    assert seed is not None and len(seed) == 32
    assert seed.hex() not in json.dumps(job.to_json())
    record = rnd.market.proposal(pid)
    assert record.status == ProposalStatus.COMPLETED
    assert 3000 <= record.accuracy_bps <= 10_000
    assert len(rnd.market.logs("ResultSubmitted", where={"proposalId": pid})) == 1
    assert rnd.market.credit_of(rnd.accounts["node"].address) == cost

    result = rnd.result(pid)
    assert result["wtpMet"] is True
    assert result["trainSamples"] == 120
    assert result["seedHash"] == "0x" + seed_commitment(seed).hex()
    assert seed.hex() not in json.dumps(result)
    screen = result["validation"]
    assert screen["given"] == len(VAL_X)
    assert screen["given"] == screen["duplicates"] + screen["nearSelected"] + screen["used"]
    scores = rnd.scores(pid)["samples"]
    assert len(scores) == 120
    assert {s["asset_id"] for s in scores} == set(rnd.asset_ids)

    # the consumer decrypts the model, verified against the node's signature and the chain
    model = workflow.get_model(rnd.as_("consumer"), consumer, pid, tmp_path / "model.safetensors")
    assert model["accuracyBps"] == record.accuracy_bps
    assert model["architecture"] == "mlp"
    # nobody else can
    with pytest.raises(InvalidInputError, match="belongs to"):
        workflow.get_model(rnd.as_("stranger"), rnd.accounts["stranger"], pid, tmp_path / "x")
    # the model card reaches the consumer through model get: checked, printed, written beside
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    out = tmp_path / "cli" / "model.safetensors"
    out.parent.mkdir()
    home, url = str(rnd.settings.home), rnd.settings.rpc_url
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--home", home, "--rpc-url", url, "--account", "consumer", "model", "get", str(pid),
              "--out", str(out), "--json"])  # fmt: skip
    printed = capsys.readouterr()
    assert done.value.code in (0, None), printed.err
    got = json.loads(printed.out)
    assert scheme_problems(got) == []
    card = got["card"]
    assert got["cardPath"] == str(out.parent / "model-card.json")
    assert json.loads((out.parent / "model-card.json").read_text()) == result["modelCard"]
    assert read_model_card(result["modelCard"]).spec_hash == "0x" + spec_hash(MLP_SPEC).hex()
    assert card["architecture"] == "mlp" and card["spec"]["hidden"] == [32]
    assert (card["samples"]["selected"], card["samples"]["used"]) == (120, 120)
    assert card["samples"]["providers"] == 2 and card["samples"]["leftOut"] == []
    assert sorted(a["assetId"] for a in card["samples"]["assets"]) == sorted(rnd.asset_ids)
    assert card["accuracy"]["bps"] == record.accuracy_bps
    assert card["accuracy"]["validationSamples"] == screen["used"]
    low, high = card["accuracy"]["interval"]["lowBps"], card["accuracy"]["interval"]["highBps"]
    assert low <= record.accuracy_bps <= high
    assert card["privacy"] is None  # the assets' licences let this spec train without DP
    assert {v["name"] for v in card["versions"]} >= {"python", "torch", "numpy", "visdm"}
    assert 0 < card["wallTimeS"]["train"] <= card["wallTimeS"]["job"]

    # providers claim; the amounts add up to the price exactly, per provider and per asset
    amounts = {a: int(v) for a, v in result["payouts"]["amounts"].items()}
    assert sum(amounts.values()) == record.price
    per_asset = {int(a): int(v) for a, v in result["payouts"]["assets"].items()}
    assert sum(per_asset.values()) == record.price and set(per_asset) <= set(rnd.asset_ids)
    with pytest.raises(InvalidInputError, match="claimable until"):
        workflow.sweep_unclaimed(rnd.as_("stranger"), rnd.accounts["stranger"], pid)
    paid = 0
    for who in ("provider", "provider2"):
        before = rnd.token.balance_of(rnd.accounts[who].address)
        (receipt,) = workflow.claim(rnd.as_(who), rnd.accounts[who], [pid])
        assert receipt.note == "claimed"
        assert rnd.token.balance_of(rnd.accounts[who].address) - before == receipt.amount
        paid += receipt.amount
        (again,) = workflow.claim(rnd.as_(who), rnd.accounts[who], [pid])
        assert again.note == "already claimed"
    assert paid == record.price
    assert rnd.market.proposal(pid).unclaimed == 0
    assert rnd.market.credit_of(rnd.accounts["provider"].address) == 0  # withdrawn at once
    rnd.chain.advance_time(rnd.market.parameters().claim_period + 1)
    workflow.sweep_unclaimed(rnd.as_("stranger"), rnd.accounts["stranger"], pid)  # nothing left

    status = workflow.proposal_status(rnd.settings, pid)
    assert status["status"] == "completed"
    assert status["result"]["wtpMet"] is True
    assert status["tally"]["outcome"] == "approved"


def test_unreachable_wtp_refunds_the_data_price(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=10_000)
    rnd.approve(pid)
    cost = rnd.start(pid)
    consumer = rnd.accounts["consumer"]
    credit_before = rnd.market.credit_of(consumer.address)
    worker = rnd.trainer()
    try:
        worker.poll()
        job = worker.journal.get(pid)
        assert job is not None and job.state == "submitted", job and job.message
    finally:
        worker.close()
    record = rnd.market.proposal(pid)
    assert record.status == ProposalStatus.WTP_MISSED
    assert rnd.market.credit_of(consumer.address) - credit_before == 10**18
    assert rnd.market.credit_of(rnd.accounts["node"].address) == cost  # the node is still paid
    result = rnd.result(pid)
    assert (result["wtpMet"], result["model"], result["payouts"]) == (False, None, None)
    # no model, but the consumer still sees what was trained and how well
    assert read_model_card(result["modelCard"]).accuracy_bps == record.accuracy_bps
    amount, tx = workflow.withdraw(rnd.as_("consumer"), consumer)
    assert amount >= 10**18 and tx is not None
    with pytest.raises(InvalidInputError, match="wtp_missed: there is no model"):
        workflow.get_model(rnd.as_("consumer"), consumer, pid, Path("/nonexistent/m"))


def test_a_node_that_misses_the_deadline_lets_the_consumer_reclaim(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    cost = rnd.start(pid, max_duration_s=600)
    consumer = rnd.accounts["consumer"]
    before = rnd.token.balance_of(consumer.address)
    rnd.chain.advance_time(601)
    workflow.reclaim(rnd.as_("consumer"), consumer, pid)
    assert rnd.token.balance_of(consumer.address) - before == 10**18 + cost
    assert rnd.market.proposal(pid).status == ProposalStatus.CANCELLED
    # the node, coming back late, journals the job as cancelled and submits nothing
    worker = rnd.trainer()
    try:
        worker.poll()
        job = worker.journal.get(pid)
        assert job is not None and job.state == "cancelled"
    finally:
        worker.close()
    assert rnd.market.logs("ResultSubmitted", where={"proposalId": pid}) == []


def test_a_late_node_journals_the_job_expired_without_training(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid, max_duration_s=300)
    rnd.chain.advance_time(301)
    worker = rnd.trainer()
    try:
        worker.poll()
        job = worker.journal.get(pid)
        assert job is not None
        assert (job.state, job.attempts) == ("expired", 0)
        assert "may reclaim" in job.message
    finally:
        worker.close()
    assert rnd.market.proposal(pid).status == ProposalStatus.TRAINING


def test_withdrawn_assets_are_left_out_of_training_and_pay(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)
    from visdm.assets import withdraw_asset

    withdraw_asset(rnd.as_("provider2"), rnd.accounts["provider2"], rnd.asset_ids[1])
    worker = rnd.trainer()
    try:
        worker.poll()
    finally:
        worker.close()
    result = rnd.result(pid)
    assert (result["trainSamples"], result["excludedSamples"]) == (60, 60)
    card = read_model_card(result["modelCard"])
    assert [(a.asset_id, a.reason, a.samples) for a in card.left_out] == [
        (rnd.asset_ids[1], "withdrawn", 60)
    ]
    assert set(result["payouts"]["amounts"]) == {rnd.accounts["provider"].address}
    assert {s["asset_id"] for s in rnd.scores(pid)["samples"]} == {rnd.asset_ids[0]}


def test_without_a_sandbox_the_node_refuses_unless_told_loudly(
    rnd: Round, caplog: pytest.LogCaptureFixture
) -> None:
    from visdm.errors import SandboxUnavailableError

    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)
    worker = rnd.trainer(bwrap="/nonexistent/bwrap")
    try:
        with pytest.raises(SandboxUnavailableError, match="bwrap"):
            worker.poll()
        job = worker.journal.get(pid)
        assert job is not None
        assert job.state == "queued"
        assert "bwrap" in job.message
        assert rnd.market.logs("ResultSubmitted", where={"proposalId": pid}) == []
    finally:
        worker.close()
    # the explicit development flag runs it, and says so on the log
    worker = rnd.trainer(bwrap="/nonexistent/bwrap", allow_unsandboxed=True)
    try:
        with caplog.at_level("WARNING", logger="visdm.sandbox"):
            worker.poll()
        job = worker.journal.get(pid)
        assert job is not None and job.state == "submitted"
    finally:
        worker.close()
    assert any("sandbox" in r.getMessage().lower() for r in caplog.records)


def test_unusable_consumer_input_refunds_pays_the_node_and_does_not_block_the_queue(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import visdm.proposals._consumer as consumer_side

    good = rnd.propose(wtp_bps=1000)
    # a validation set with labels outside the classes; the consumer's own check is bypassed
    # to show what the node does when such a set reaches it anyway
    monkeypatch.setattr(consumer_side, "check_validation_set", lambda *_: None)
    bad = rnd.propose(wtp_bps=1000, validation=(VAL_X[:50], np.full(50, 42)))
    for pid in (bad, good):
        for who in ("provider", "provider2"):
            workflow.vote(rnd.as_(who), rnd.accounts[who], pid, 0)
    rnd.chain.advance_time(131)
    for pid in (bad, good):
        workflow.tally(rnd.as_("stranger"), rnd.accounts["stranger"], pid)
    cost_bad = rnd.start(bad)
    rnd.start(good)
    worker = rnd.trainer()
    try:
        assert worker.poll() == 2  # the bad job first (lower id), then the good one
    finally:
        worker.close()
    assert rnd.market.proposal(bad).status == ProposalStatus.WTP_MISSED
    assert rnd.market.proposal(bad).accuracy_bps == 0
    assert "outside the 10 classes" in rnd.result(bad)["consumerFault"]
    assert rnd.market.credit_of(rnd.accounts["consumer"].address) >= 10**18  # data price back
    assert rnd.market.proposal(good).status == ProposalStatus.COMPLETED
    assert rnd.market.credit_of(rnd.accounts["node"].address) > cost_bad  # paid for both


def test_the_consumer_is_told_before_paying_when_its_validation_set_is_unusable(
    rnd: Round,
) -> None:
    import numpy as np

    for images, labels, message in (
        (VAL_X[:20], np.full(20, 10), "outside the 10 classes"),
        (np.zeros((20, 32, 32), np.uint8), np.zeros(20, np.int64), r"needs \(28, 28\)"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            rnd.propose(wtp_bps=1000, validation=(images, labels))
    assert rnd.market.proposal_count() == 0


def test_licences_are_enforced_when_proposing_and_when_training(rnd: Round, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from visdm.assets import add_asset
    from visdm.errors import InvalidProposalError
    from visdm.manifest import Licence

    consumer = rnd.accounts["consumer"].address
    now = rnd.chain.latest_timestamp()
    denied = add_asset(
        rnd.as_("provider"),
        rnd.accounts["provider"],
        write_folder(tmp_path / "denied", list(range(200, 210))),
        licence=Licence(("training",), denied_consumers=(consumer,), dp_required=False),
    )
    expiring = add_asset(
        rnd.as_("provider2"),
        rnd.accounts["provider2"],
        write_folder(tmp_path / "expiring", list(range(210, 230))),
        licence=Licence(
            ("training",),
            expires=datetime.fromtimestamp(now + 86_400, tz=UTC),
            dp_required=False,
        ),
    )
    rnd.attest()
    with pytest.raises(InvalidProposalError, match=f"asset {denied.asset_id}: its licence denies"):
        rnd.propose(wtp_bps=1000, selection=[*rnd.asset_ids, denied.asset_id])
    rnd.asset_ids.append(expiring.asset_id)
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid, max_duration_s=3 * 86_400)
    rnd.chain.advance_time(2 * 86_400)  # the licence expires before the node trains
    worker = rnd.trainer()
    try:
        worker.poll()
    finally:
        worker.close()
    result = rnd.result(pid)
    assert (result["trainSamples"], result["excludedSamples"]) == (120, 20)
    card = read_model_card(result["modelCard"])
    assert [(a.asset_id, a.reason) for a in card.left_out] == [(expiring.asset_id, "licence")]


def test_re_encoded_copies_of_another_providers_images_earn_nothing(
    rnd: Round, tmp_path: Path
) -> None:
    import io

    from PIL import Image

    from tests.integration.compute.roundkit import TRAIN_X, TRAIN_Y
    from visdm.assets import add_asset

    folder = tmp_path / "copies"
    folder.mkdir()
    rows = ["filename,label"]
    for i in range(20):  # JPEG re-encodings of the first provider's first 20 images
        out = io.BytesIO()
        Image.fromarray(TRAIN_X[i]).save(out, format="JPEG", quality=90)
        (folder / f"copy{i:02d}.jpg").write_bytes(out.getvalue())
        rows.append(f"copy{i:02d}.jpg,{NAMES[int(TRAIN_Y[i])]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    copies = add_asset(
        rnd.as_("provider2"), rnd.accounts["provider2"], folder, licence=NO_DP_LICENCE
    )
    rnd.attest()
    rnd.asset_ids.append(copies.asset_id)
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)
    trainer = rnd.trainer()
    try:
        trainer.poll()
    finally:
        trainer.close()
    scores = rnd.scores(pid)["samples"]
    copied = [s for s in scores if s["asset_id"] == copies.asset_id]
    assert len(copied) == 20
    assert all("copied" in s["flags"] and s["value"] == 0.0 for s in copied)
    # nothing else was taken for a copy: distinct images keep their own value
    others = [s for s in scores if s["asset_id"] != copies.asset_id]
    assert sum("copied" in s["flags"] for s in others) <= 2


@pytest.mark.attack
def test_the_node_process_never_decodes_images_or_archives(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder exploit in a crafted image or archive would run where the node's key and all
    decrypted data live; the node process only decrypts and hashes, so with every decoder of
    the node process broken the round still completes (the sandbox is another process)."""
    import PIL.Image

    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the node process parsed untrusted bytes")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(zipfile, "ZipFile", refuse)
    worker = rnd.trainer()
    try:
        worker.poll()
        job = worker.journal.get(pid)
        assert job is not None and job.state == "submitted", job and job.message
    finally:
        worker.close()
    assert rnd.market.proposal(pid).status == ProposalStatus.COMPLETED
    assert rnd.result(pid)["trainSamples"] == 120


def _lying_archive(declared: tuple[int, ...]) -> bytes:
    """A validation archive whose images header declares ``declared`` over 20 real images."""
    images = io.BytesIO()
    npy_format.write_array_header_1_0(
        images, {"descr": "|u1", "fortran_order": False, "shape": declared}
    )
    images.write(VAL_X[:20].tobytes())
    labels = io.BytesIO()
    npy_format.write_array(labels, VAL_Y[:20].astype(np.int64))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("images.npy", images.getvalue())
        archive.writestr("labels.npy", labels.getvalue())
    return out.getvalue()


@pytest.mark.attack
def test_a_validation_archive_with_a_lying_header_refunds_the_data_price_and_pays_the_node(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    import visdm.market.workflow as consumer_workflow
    import visdm.proposals._validation as validation

    lie = _lying_archive((10**12, 28, 28))  # np.load would try to allocate 784 TB
    with monkeypatch.context() as hostile:
        # a hostile consumer skips its own client's checks and sends the archive as it is
        hostile.setattr(consumer_workflow, "pack_arrays", lambda *_: lie)
        hostile.setattr(validation, "unpack_arrays", lambda *_, **__: (VAL_X[:20], VAL_Y[:20]))
        pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    cost = rnd.start(pid)
    consumer = rnd.accounts["consumer"].address
    credit_before = rnd.market.credit_of(consumer)
    worker = rnd.trainer()
    try:
        worker.poll()
        job = worker.journal.get(pid)
        assert job is not None
        assert (job.state, job.attempts) == ("submitted", 1), job.message
    finally:
        worker.close()
    record = rnd.market.proposal(pid)
    assert record.status == ProposalStatus.WTP_MISSED
    assert rnd.market.credit_of(consumer) - credit_before == 10**18  # the data price back
    assert rnd.market.credit_of(rnd.accounts["node"].address) == cost  # the node is paid
    assert "header lies" in rnd.result(pid)["consumerFault"]


@pytest.mark.attack
def test_a_job_whose_sandbox_dies_every_time_is_abandoned_after_the_cap(rnd: Round) -> None:
    """A job that kills its sandbox (here: an address space too small to import anything) is
    not retried forever: after ``max_attempts`` runs — one of them cut short by the node itself
    being killed — the node abandons it and the consumer gets everything back at once."""
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    cost = rnd.start(pid)
    consumer = rnd.accounts["consumer"].address
    credit_before = rnd.market.credit_of(consumer)
    dying = SandboxLimits(memory_bytes=64 << 20, cpu_s=60, wall_s=60.0)
    worker = rnd.trainer(sandbox=dying, max_attempts=3)
    try:
        for attempt in (1, 2):
            worker.poll()
            job = worker.journal.get(pid)
            assert job is not None
            assert (job.state, job.attempts) == ("queued", attempt), job.message
            assert f"attempt {attempt} of 3 failed, will retry" in job.message
    finally:
        worker.close()

    class Killed(BaseException):
        """The node process dies in the middle of the third attempt."""

    worker = rnd.trainer(sandbox=dying, max_attempts=3)

    def die(*_: object, **__: object) -> None:
        raise Killed

    worker._prepare_input = die  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            worker.poll()
        job = worker.journal.get(pid)
        assert job is not None and (job.state, job.attempts) == ("preparing", 3)
    finally:
        worker.close()
    # the restarted node counts the cut-short run and gives the job up without a fourth
    worker = rnd.trainer(sandbox=dying, max_attempts=3)
    try:
        worker.poll()
        job = worker.journal.get(pid)
        assert job is not None
        assert (job.state, job.attempts) == ("abandoned", 3), job.message
        assert worker.poll() == 0
    finally:
        worker.close()
    assert rnd.market.proposal(pid).status == ProposalStatus.CANCELLED
    assert rnd.market.credit_of(consumer) - credit_before == 10**18 + cost
    (event,) = rnd.market.logs("TrainingAbandoned", where={"proposalId": pid})
    assert "3 attempts" in event["args"]["reason"]
    assert rnd.market.logs("ResultSubmitted", where={"proposalId": pid}) == []


def test_a_journal_from_before_seeds_gains_the_column_and_keeps_its_jobs(tmp_path: Path) -> None:
    import sqlite3

    from visdm.compute import JobJournal

    path = tmp_path / "jobs.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE jobs (proposal_id INTEGER PRIMARY KEY, state TEXT NOT NULL, attempts "
        "INTEGER NOT NULL DEFAULT 0, deadline INTEGER NOT NULL, progress REAL, message TEXT NOT "
        "NULL DEFAULT '', result TEXT, submission TEXT, tx_hash TEXT, created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL);"
        "INSERT INTO jobs (proposal_id, state, deadline, created_at, updated_at) "
        "VALUES (7, 'queued', 100, 1.0, 1.0);"
    )
    old.commit()
    old.close()
    journal = JobJournal(path)
    try:
        assert journal.seed(7) is None
        with journal.transaction():
            journal.set_seed(7, b"\x5a" * 32)
        assert journal.seed(7) == b"\x5a" * 32
        job = journal.get(7)
        assert job is not None and job.state == "queued"
        assert "5a" * 32 not in json.dumps(job.to_json())
    finally:
        journal.close()


@pytest.mark.attack
def test_data_whose_licence_requires_dp_is_never_trained_without_it(
    rnd: Round, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Owners decide: the default licence requires DP (ε ≤ 8). A consumer proposes a spec
    without DP over such an asset; its client refuses, and when a hostile client skips that
    check the node leaves the asset out (and says why), so its images never meet the spec."""
    from visdm.assets import add_asset
    from visdm.errors import InvalidProposalError

    guarded = add_asset(
        rnd.as_("provider"),
        rnd.accounts["provider"],
        write_folder(tmp_path / "guarded", list(range(300, 330))),
    )
    rnd.attest()
    selection = [*rnd.asset_ids, guarded.asset_id]
    with pytest.raises(InvalidProposalError, match="requires differentially private"):
        rnd.propose(wtp_bps=1000, selection=selection)
    monkeypatch.setattr("visdm.proposals._consumer.asset_refusal", lambda *a, **k: None)
    pid = rnd.propose(wtp_bps=1000, selection=selection)
    alone = rnd.propose(wtp_bps=1000, selection=[guarded.asset_id])
    for proposal in (pid, alone):
        for who in ("provider", "provider2"):
            workflow.vote(rnd.as_(who), rnd.accounts[who], proposal, 0)
    rnd.chain.advance_time(131)
    for proposal in (pid, alone):
        workflow.tally(rnd.as_("stranger"), rnd.accounts["stranger"], proposal)
        rnd.start(proposal)
    worker = rnd.trainer()
    try:
        worker.poll()
    finally:
        worker.close()
    result = rnd.result(pid)
    assert result["trainSamples"] == 120  # the two NO-DP assets only
    assert "differentially private" in result["leftOut"][str(guarded.asset_id)]
    (left,) = read_model_card(result["modelCard"]).left_out
    assert (left.asset_id, left.reason, left.samples) == (guarded.asset_id, "dp-terms", 30)
    assert str(guarded.asset_id) not in result["payouts"]["assets"]
    # a round with nothing but that asset is the consumer's fault: the data price comes back
    fault = rnd.result(alone)
    assert "differentially private" in fault["consumerFault"]
    assert rnd.market.proposal(alone).status == ProposalStatus.WTP_MISSED


def test_a_restarted_node_sweeps_its_own_decrypted_leftovers_and_no_other_nodes(
    chain: ChainClient, deployment: Deployment, tmp_path: Path, funded_roles: dict[str, Any]
) -> None:
    """Decrypted job input a killed node left in RAM is removed when it starts again; another
    node on the machine running under the same key (its own working directory) keeps its
    in-flight job directory."""
    rnd = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    first = rnd.trainer()
    first.close()
    own_stale = Path(tempfile.mkdtemp(prefix=first._shm_prefix, dir=_shm_or_tmp()))
    other_config = TrainingConfig(workdir=tmp_path / "second-node")
    other = TrainingWorker(chain, deployment, rnd.store, rnd.accounts["node"], other_config)
    other.close()
    assert other._shm_prefix != first._shm_prefix
    in_flight = Path(tempfile.mkdtemp(prefix=other._shm_prefix, dir=_shm_or_tmp()))
    try:
        restarted = rnd.trainer()
        restarted.close()
        assert not own_stale.exists()
        assert in_flight.is_dir()
    finally:
        shutil.rmtree(own_stale, ignore_errors=True)
        shutil.rmtree(in_flight, ignore_errors=True)


def _shm_or_tmp() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def test_an_outage_while_reading_the_proposal_spends_no_attempt(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain (or the store) away while the node reads the proposal document is an outage,
    not the consumer's document at fault: the job waits for the next poll with its attempts
    untouched, rather than failing three times and being abandoned."""
    import visdm.compute._training as training

    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)
    worker = rnd.trainer(max_attempts=2)
    try:
        for outage in (ChainNotRunningError("no chain answers"), ChainTimeoutError("slow")):

            def away(*_: object, error: Exception = outage) -> None:
                raise error

            monkeypatch.setattr(training, "load_checked_proposal", away)
            with pytest.raises(type(outage)):
                worker.poll()
            job = worker.journal.get(pid)
            assert job is not None and (job.state, job.attempts) == ("queued", 0), job
            assert job.message.startswith("waiting: ")
        monkeypatch.undo()
        assert worker.poll() == 1
        job = worker.journal.get(pid)
        assert job is not None and (job.state, job.attempts) == ("submitted", 1), job.message
    finally:
        worker.close()
