"""The one way a result's scores and payout are computed, and the determinism envelope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from visdm.errors import InvalidInputError
from visdm.types import Address
from visdm.verify import (
    ENVELOPE_KEYS,
    ResultCommitments,
    SettledAsset,
    cpu_capability,
    determinism_envelope,
    settle,
    settle_output,
)

ALICE, BOB = Address("0x" + "a1" * 20), Address("0x" + "b2" * 20)
ASSETS = {5: SettledAsset(position=0, owner=ALICE), 9: SettledAsset(position=1, owner=BOB)}
WHERE = {"0x01": (5, 0), "0x02": (5, 1), "0x03": (9, 0)}


def _valuation(values: tuple[float, float, float] = (3.0, 1.0, 4.0)) -> dict[str, Any]:
    return {
        "samples": [{"sample_id": s, "value": v} for s, v in zip(WHERE, values, strict=True)],
        "providerValues": {ALICE: values[0] + values[1], BOB: values[2]},
        "sampleCounts": {ALICE: 2, BOB: 1},
    }


def test_settle_pays_the_price_by_value_and_hashes_the_scores() -> None:
    done = settle(_valuation(), proposal_id=3, amount=800, sample_assets=WHERE, assets=ASSETS)
    assert done.payout.asset_amounts == {5: 400, 9: 400}
    assert done.scores_hash == keccak(done.scores)
    doc = json.loads(done.scores)
    assert doc["proposalId"] == 3
    assert [(r["asset_id"], r["index"]) for r in doc["samples"]] == list(WHERE.values())
    again = settle(_valuation(), proposal_id=3, amount=800, sample_assets=WHERE, assets=ASSETS)
    assert (again.scores, again.payout.root) == (done.scores, done.payout.root)


def test_another_value_moves_the_payout_root() -> None:
    one = settle(_valuation(), proposal_id=3, amount=800, sample_assets=WHERE, assets=ASSETS)
    two = settle(
        _valuation((3.0, 1.0, 12.0)), proposal_id=3, amount=800, sample_assets=WHERE, assets=ASSETS
    )
    assert one.payout.root != two.payout.root and one.scores_hash != two.scores_hash


@pytest.mark.parametrize(
    ("where", "assets"),
    [
        ({"0x01": (5, 0), "0x02": (5, 1)}, ASSETS),  # a valued sample the selection lacks
        (WHERE, {5: ASSETS[5]}),  # an asset the selection lacks
    ],
)
def test_a_valuation_that_does_not_fit_the_selection_is_refused(
    where: dict[str, tuple[int, int]], assets: dict[int, SettledAsset]
) -> None:
    with pytest.raises(InvalidInputError, match="does not fit the proposal's selection"):
        settle(_valuation(), proposal_id=3, amount=800, sample_assets=where, assets=assets)


def test_settle_output_reads_a_job_directory(tmp_path: Path) -> None:
    (tmp_path / "valuation.json").write_text(json.dumps(_valuation()))
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    outcome = {"accuracy_bps": 8123, "seed_hash": "0x" + "11" * 32, "spec_hash": "0x" + "22" * 32}
    found, _ = settle_output(
        tmp_path, outcome, proposal_id=3, amount=800, sample_assets=WHERE, assets=ASSETS
    )
    assert found.model_hash == keccak(b"weights") and found.accuracy_bps == 8123
    wrong = ResultCommitments(
        accuracy_bps=9000,
        model_hash=found.model_hash,
        scores_hash=found.scores_hash,
        payout_root=bytes(32),
        seed_hash=found.seed_hash,
        spec_hash=found.spec_hash,
    )
    assert found.differences(wrong) == ["accuracy_bps", "payout_root"]


def test_settle_output_refuses_an_unfinished_job(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a finished training job's output"):
        settle_output(tmp_path, {}, proposal_id=3, amount=800, sample_assets=WHERE, assets=ASSETS)


def test_the_envelope_names_threads_kernels_and_versions(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Test CPU\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    env = determinism_envelope({"torch": "2.13.0"}, cpuinfo=cpuinfo)
    assert set(ENVELOPE_KEYS) <= set(env)
    assert (env["cpuModel"], env["threads"]) == ("Test CPU", 1)
    assert env["simd"] == ["avx", "avx2", "fma", "sse4_2"]
    assert env["versions"] == {"torch": "2.13.0"}
    assert determinism_envelope({}, cpuinfo=tmp_path / "absent")["simd"] == []


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        ({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"}, {}, "AVX512"),
        ({"avx2", "fma"}, {}, "AVX2"),
        ({"avx"}, {}, "DEFAULT"),
        ({"avx2", "fma"}, {"ATEN_CPU_CAPABILITY": "default"}, "DEFAULT"),
    ],
)
def test_cpu_capability_follows_torch_dispatch(
    flags: set[str], environ: dict[str, str], expected: str
) -> None:
    assert cpu_capability(frozenset(flags), environ) == expected
