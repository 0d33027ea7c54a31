"""The node's proving and the verifier's root check, without a chain or a sandbox: the
sandboxed entry points' refusals of bad parameters, the node's reading of what the sandbox
wrote, the refusals of ``overturn-unproven`` and the verify worker's move on a wrong root."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from tests.unit.verify.test_watch import _OTHER, _Chain, _worker
from visdm.chain.contracts import ProofState, ProposalStatus
from visdm.compute._proving import ResultProver, SandboxedProver
from visdm.compute.sandbox import InputRejectedError, SandboxJob
from visdm.errors import ChainNotRunningError, InvalidInputError, ZkBackendError, ZkInputError
from visdm.proposals import pack_arrays
from visdm.verify import Finding, Verdict
from visdm.verify import _watch as watch
from visdm.verify._claims import ClaimState, _refusal
from visdm.verify._zk_job import (
    build_claim_circuit,
    prove_drawn_samples,
    settings_from,
    validation_sample_root,
)

pytestmark = pytest.mark.unit

SPEC = {
    "architecture": "mlp",
    "input_shape": [1, 8, 8],
    "num_classes": 4,
    "epochs": 1,
    "batch_size": 16,
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "hidden": [4],
}


def _job(tmp: Path, params: dict[str, Any], *, validation: bytes | None = None) -> SandboxJob:
    inputs, out = tmp / "in", tmp / "out"
    inputs.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (20, 8, 8), dtype=np.uint8)
    archive = pack_arrays(images, rng.integers(0, 4, 20)) if validation is None else validation
    (inputs / "validation.npz").write_bytes(archive)
    return SandboxJob(job_id="t", entry_point="a.b:c", input_dir=inputs, output_dir=out,
                      params=params)  # fmt: skip


def _silent(message: str, /, *, fraction: float | None = None) -> None:
    return None


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ("scale 4", "must be an object"),
        ({"input_scale": "4"}, "input_scale must be a int"),
        ({"hashed_inputs": 1}, "hashed_inputs must be a bool"),
        ({"logrows": 17}, "must be an object of"),
    ],
)
def test_circuit_settings_from_the_node_are_checked(settings: object, says: str) -> None:
    with pytest.raises(ZkInputError, match=says):
        settings_from(settings)
    assert settings_from({"input_scale": 5}).input_scale == 5


@pytest.mark.parametrize(
    ("params", "error", "says"),
    [
        ({}, InvalidInputError, "no model spec"),
        ({"spec": SPEC, "k": 0}, ZkInputError, "params.k must be an integer in 1..256"),
        ({"spec": SPEC, "k": True}, ZkInputError, "params.k"),
        ({"spec": SPEC, "k": 2, "indices": [0, 20]}, ZkInputError, "2 drawn positions in 0..19"),
        ({"spec": SPEC, "k": 2, "indices": [0]}, ZkInputError, "drawn positions"),
        ({"spec": SPEC, "k": 2, "indices": [0, 1.0]}, ZkInputError, "drawn positions"),
        ({"spec": SPEC, "k": 2, "indices": "01"}, ZkInputError, "drawn positions"),
        ({"spec": SPEC, "k": 2, "indices": [0, 1], "logrows": 40}, ZkInputError, "logrows"),
    ],
)
def test_the_proving_job_refuses_bad_parameters(
    tmp_path: Path, params: dict[str, Any], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        prove_drawn_samples(_job(tmp_path, params), _silent)


def test_an_unusable_validation_archive_is_the_consumers_fault(tmp_path: Path) -> None:
    job = _job(tmp_path, {"spec": SPEC, "k": 2}, validation=b"not an archive")
    with pytest.raises(InputRejectedError):
        build_claim_circuit(job, _silent)


def test_the_root_job_needs_ezkl_settings(tmp_path: Path) -> None:
    job = _job(tmp_path, {"spec": SPEC})
    with pytest.raises(InvalidInputError, match=r"no settings\.json"):
        validation_sample_root(job, _silent)
    (tmp_path / "in" / "settings.json").write_text('{"run_args": {}}')
    with pytest.raises(ZkInputError, match="not ezkl settings"):
        validation_sample_root(job, _silent)
    (tmp_path / "in" / "settings.json").write_text('{"run_args": {"input_scale": 4}}')
    root = validation_sample_root(job, _silent)["root"]
    assert isinstance(root, str) and len(root) == 66


def _prover(tmp: Path) -> SandboxedProver:
    worker = cast("Any", SimpleNamespace())
    return SandboxedProver(worker, 3, SPEC, b"", tmp / "m", tmp / "circuit", tmp / "srs")


@pytest.mark.parametrize(
    "claim",
    [
        b"[]",
        b"{not json",
        json.dumps({"k": 2, "features": 64, "classes": 4, "logrows": 13, "leaves": []}).encode(),
        json.dumps(
            {
                "k": 2,
                "features": 64,
                "classes": 4,
                "logrows": 13,
                "settings": {},
                "leaves": [["0x" + "00" * 32, 9]],
            }
        ).encode(),
        json.dumps(
            {
                "k": 3,
                "features": 64,
                "classes": 4,
                "logrows": 13,
                "settings": {},
                "leaves": [["0x" + "00" * 32, 1]],
            }
        ).encode(),
        json.dumps(
            {
                "k": 2,
                "features": 64,
                "classes": 4,
                "logrows": 13,
                "settings": {},
                "leaves": [["0x00", 1]],
            }
        ).encode(),
    ],
)
def test_what_the_sandboxed_build_wrote_is_read_as_untrusted(tmp_path: Path, claim: bytes) -> None:
    prover = _prover(tmp_path)
    prover.circuit_dir.mkdir()
    (prover.circuit_dir / "claim.json").write_bytes(claim)
    with pytest.raises(ZkInputError):
        prover._read_claim(2)
    assert prover.resume(2) is None  # a broken leftover is rebuilt, never proven from


def test_a_sound_claim_file_gives_the_circuit_and_tree(tmp_path: Path) -> None:
    prover = _prover(tmp_path)
    prover.circuit_dir.mkdir()
    leaves = [["0x" + f"{i:02x}" * 32, i % 4] for i in range(5)]
    doc = {"k": 2, "features": 64, "classes": 4, "logrows": 13, "settings": {}, "leaves": leaves}
    (prover.circuit_dir / "claim.json").write_text(json.dumps(doc))
    circuit, tree = prover._read_claim(2)
    assert (circuit.k, circuit.features, circuit.classes, circuit.logrows) == (2, 64, 4, 13)
    assert len(tree) == 5 and tree.values[4] == (4, bytes([4]) * 32, 0)


def test_a_result_without_a_model_keeps_nothing_for_a_proof(tmp_path: Path) -> None:
    worker = cast("Any", SimpleNamespace(config=SimpleNamespace(workdir=tmp_path)))
    prover = ResultProver(worker)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"weights")
    # a missed WTP commits no model: no chain read, nothing kept
    assert not prover.keep(3, out, {"modelHash": "0x" + "00" * 32})
    assert not prover.keep(3, out, None)  # nothing journaled
    assert prover.sweep() == 0 and prover.prove(3) is None


def _record(*, status: ProposalStatus = ProposalStatus.COMPLETED, deadline: int = 900) -> Any:
    return SimpleNamespace(proposal_id=3, status=status, deadline=deadline)


@pytest.mark.parametrize(
    ("claim", "record", "now", "says"),
    [
        (ClaimState(3, None, "none"), _record(), 1000, "without an accuracy check"),
        (ClaimState(3, _OTHER, "none"), _record(deadline=0), 1000, "no held WTP-met result"),
        (
            ClaimState(3, _OTHER, "none"),
            _record(status=ProposalStatus.WTP_MISSED),
            1000,
            "no held WTP-met result",
        ),
        (ClaimState(3, _OTHER, "accepted"), _record(), 1000, "was accepted"),
        (ClaimState(3, _OTHER, "drawn", draw_block=40), _record(), 1000, "until block 296"),
        (ClaimState(3, _OTHER, "committed", draw_block=40), _record(), 1000, "is committed"),
        (ClaimState(3, _OTHER, "none"), _record(), 800, "until the window ends at 900"),
        (ClaimState(3, _OTHER, "none"), _record(), 900, None),
        (ClaimState(3, _OTHER, "rejected"), _record(), 800, None),
        (ClaimState(3, _OTHER, "expired", unmarked=True), _record(), 800, None),
    ],
)
def test_overturn_unproven_is_refused_as_the_court_would(
    claim: ClaimState, record: Any, now: int, says: str | None
) -> None:
    why = _refusal(record, claim, now)
    assert (why is None) if says is None else (why is not None and says in why)


def test_a_verify_node_challenges_a_committed_claim_over_other_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = _Chain(now=500, deadline=900)  # inside the window
    worker = _worker(tmp_path, chain)
    worker._roots = set()
    worker.reexecutor = cast("Any", None)
    sent: list[tuple[int, Finding]] = []
    wrong = Finding(Verdict.CHALLENGE, ("sampleRoot",), "other inputs")
    worker.verifier = cast("Any", SimpleNamespace(act=lambda pid, f: sent.append((pid, f))))
    worker._secrets = lambda pid, record: (None, {}, None)  # type: ignore[assignment,method-assign,return-value]
    monkeypatch.setattr(watch, "claim_root_finding", lambda *_a: wrong)
    try:
        with worker.journal.transaction():
            worker.journal.add(3, bytes(32), "bafyresult", own=False, drawn=False)
        assert worker.step(3) == 0 and sent == []  # no check named: nothing to compare
        chain.proof = ProofState(_OTHER, "none")
        assert worker.step(3) == 0 and sent == []  # not committed yet: a later poll looks
        chain.proof = ProofState(_OTHER, "accepted")
        assert worker.step(3) == 1 and sent == [(3, wrong)]
        check = worker.journal.get(3)
        assert check is not None and check.differences == ("sampleRoot",) and check.acted
        assert worker.step(3) == 0 and len(sent) == 1  # compared once
    finally:
        worker.journal.close()


@pytest.mark.parametrize(
    ("failure", "kept"),
    [
        (ZkBackendError("ezkl prove failed: out of memory"), False),
        (RuntimeError("a bug"), False),
        (ChainNotRunningError("no chain at http://127.0.0.1:1"), True),
    ],
)
def test_a_failed_proof_is_one_logged_line_and_the_node_carries_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
    kept: bool,
) -> None:
    worker = cast("Any", SimpleNamespace(config=SimpleNamespace(workdir=tmp_path)))
    prover = ResultProver(worker)
    job = tmp_path / "zk" / "jobs" / "3"
    job.mkdir(parents=True)
    (job / "model.safetensors").write_bytes(b"weights")

    def fail(*_: object) -> None:
        raise failure

    monkeypatch.setattr(ResultProver, "_prove", fail)
    with caplog.at_level("INFO", logger="visdm.node.zk"):
        assert prover.prove(3) is None
    (record,) = caplog.records
    assert "\n" not in record.getMessage()
    # an outage waits for the next poll; any other failure gives the proof up and says why
    assert (job / "model.safetensors").exists() is kept
    if not kept:
        assert "overturns the result after its window" in record.getMessage()
        assert prover.sweep() == 0
