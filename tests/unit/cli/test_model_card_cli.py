"""``visdm model get`` and the model card: printed for people, checked against the chain before
anything is written, written beside the model, and a wrong card refused in one line.

The chain and the store are replaced by fakes that hand over the proposal record and the result
document; the card's own checks (:mod:`visdm.training._card`) are real.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import visdm.session
from tests.unit.training.test_card import ACCURACY_BPS, card, result
from visdm.accounts import MIN_SCRYPT_N, create_account
from visdm.chain.contracts import ProposalStatus
from visdm.cli import main
from visdm.config import Settings
from visdm.market import workflow
from visdm.training import spec_hash
from visdm.training._card import CARD_FILE

pytestmark = pytest.mark.unit

PASSWORD = "correct-horse"


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """An account, a completed proposal on a fake chain and its result document; what
    ``get_model`` was asked to write is recorded in ``written``."""
    root = tmp_path / "home"
    monkeypatch.setenv("VISDM_HOME", str(root))
    monkeypatch.setenv("VISDM_PASSWORD", PASSWORD)
    monkeypatch.setenv("VISDM_ACCOUNT", "alice")
    monkeypatch.delenv("VISDM_RPC_URL", raising=False)
    create_account(Settings(home=root).keystore_dir, "alice", PASSWORD, scrypt_n=MIN_SCRYPT_N)
    built = card()
    state = SimpleNamespace(
        record=SimpleNamespace(
            status=ProposalStatus.COMPLETED,
            accuracy_bps=ACCURACY_BPS,
            model_spec_hash=spec_hash(dict(built.spec)),
        ),
        document=result(built.to_document()),
        written=[],
    )
    market = SimpleNamespace(proposal=lambda _pid: state.record)
    deployment = SimpleNamespace(training_market=lambda _client: market)
    conn = SimpleNamespace(client=None, deployment=deployment)
    monkeypatch.setattr(visdm.session, "connect_deployed", lambda _cfg: conn)
    monkeypatch.setattr(workflow, "training_result", lambda _cfg, _pid: state.document)

    def get_model(_cfg: Any, _account: Any, pid: int, out: Path, **_: Any) -> dict[str, Any]:
        out.write_bytes(b"weights")
        state.written.append(out)
        return {"proposalId": pid, "path": str(out), "accuracyBps": ACCURACY_BPS}

    monkeypatch.setattr(workflow, "get_model", get_model)
    return state


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_card_is_printed_and_written_beside_the_model(
    chain: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.safetensors"
    code, text, err = run(capsys, ["model", "get", "3", "--out", str(out)])
    assert code == 0, err
    assert "81.00 % (243/300 validation images; 95% wilson interval" in text
    assert "epsilon 2.99 spent of 3 asked" in text
    assert "asset 5 (20 samples): dp-terms" in text
    written = json.loads((tmp_path / CARD_FILE).read_text())
    assert written == chain.document["modelCard"]
    # a second get does not write over the card, unless asked to
    code, _, err = run(capsys, ["model", "get", "3", "--out", str(out)])
    assert code == 2 and f"{tmp_path / CARD_FILE} exists" in err and err.count("\n") == 1
    assert chain.written == [out]
    code, _, err = run(capsys, ["model", "get", "3", "--out", str(out), "--force"])
    assert code == 0, err


@pytest.mark.attack
def test_a_card_that_overstates_accuracy_is_refused_before_anything_is_written(
    chain: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the node claims 90 % where the chain holds 81 %, with figures that agree among themselves
    lying = card(accuracy_bps=9_000)
    chain.document = {**result(lying.to_document()), "accuracyBps": ACCURACY_BPS}
    out = tmp_path / "m.safetensors"
    code, _, err = run(capsys, ["model", "get", "3", "--out", str(out)])
    assert code == 2
    assert "accuracy 9000 bps is not the 8100 bps on chain" in err
    assert "--skip-card" in err and err.count("\n") == 1
    assert chain.written == [] and list(tmp_path.glob("*card*")) == []
    # without the check (--skip-card) the consumer still gets its model, and no card
    code, _, err = run(capsys, ["model", "get", "3", "--out", str(out), "--skip-card"])
    assert code == 0 and "no model card was checked" in err
    assert chain.written == [out] and list(tmp_path.glob("*card*")) == []


@pytest.mark.attack
def test_a_card_of_another_spec_is_refused(
    chain: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an honest-looking card, but of a spec with a larger privacy budget than the one proposed
    chain.record = replace_record(chain.record, model_spec_hash=bytes(32))
    code, _, err = run(capsys, ["model", "get", "3", "--out", str(tmp_path / "m")])
    assert code == 2 and "the proposal committed 0x0000" in err
    assert chain.written == []


def test_a_result_without_a_card_is_refused(
    chain: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    del chain.document["modelCard"]
    code, _, err = run(capsys, ["model", "get", "3", "--out", str(tmp_path / "m")])
    assert code == 2 and "has no model card" in err and "--skip-card" in err
    assert chain.written == []


def test_a_proposal_without_a_model_is_left_to_get_model(
    chain: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain.record = replace_record(chain.record, status=ProposalStatus.WTP_MISSED)
    # get_model (faked here) is the one that says there is no model; no card is looked for
    code, _, _ = run(capsys, ["model", "get", "3", "--out", str(tmp_path / "m"), "--json"])
    assert code == 0 and not (tmp_path / "m-card.json").exists()


def replace_record(record: SimpleNamespace, **changes: Any) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(record), **changes})
