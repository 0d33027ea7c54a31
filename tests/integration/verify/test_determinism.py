"""Re-execution is bit for bit: the same training job, with valuation and DP-SGD, run twice in
the real sandbox (two separate worker processes) with the same seed commits the same model
hash, scores hash and payout root. (That another seed trains other weights is
``tests/unit/training``'s business; each DP run here costs seconds of privacy accounting.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from visdm.compute.sandbox import SandboxJob, SandboxLimits, SandboxStatus, run_in_sandbox
from visdm.datasets import load_fashion_mnist
from visdm.types import Address
from visdm.verify import (
    ResultCommitments,
    SettledAsset,
    determinism_envelope,
    settle_output,
)

pytestmark = pytest.mark.integration

ENTRY = "visdm.training:run_job"
SPEC = {
    "architecture": "mlp",
    "hidden": [32],
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 32,
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "dp": {"target_epsilon": 8.0, "delta": 1e-5},
}
SEED = bytes(range(32)).hex()
TRAIN, VAL = 240, 120
PROVIDERS = [Address(f"0x{i:040x}") for i in (0xA1, 0xB2, 0xC3)]
# three assets of 80 samples, one per provider, selected in this order
ASSETS = {11 + i: SettledAsset(position=i, owner=PROVIDERS[i]) for i in range(3)}
PRICE = 1_000_000


def _inputs(root: Path) -> tuple[Path, dict[str, tuple[int, int]]]:
    images, labels = load_fashion_mnist("train", limit=TRAIN + VAL)
    inputs = root / "in"
    inputs.mkdir()
    np.savez(inputs / "train.npz", images=images[:TRAIN], labels=labels[:TRAIN])
    np.savez(inputs / "validation.npz", images=images[TRAIN:], labels=labels[TRAIN:])
    ids = [f"0x{i + 1:064x}" for i in range(TRAIN)]
    asset_of = [11 + i // 80 for i in range(TRAIN)]
    (inputs / "samples.json").write_text(
        json.dumps(
            {
                "labels": [int(v) for v in labels[:TRAIN]],
                "sample_ids": ids,
                "providers": [ASSETS[a].owner for a in asset_of],
                "asset_ids": asset_of,
                "rank": list(range(TRAIN)),
                "links": [],
            }
        )
    )
    return inputs, {s: (a, i % 80) for i, (s, a) in enumerate(zip(ids, asset_of, strict=True))}


def _run(root: Path, inputs: Path, name: str, seed: str) -> ResultCommitments:
    out = root / name
    out.mkdir()
    job = SandboxJob(
        job_id=name,
        entry_point=ENTRY,
        input_dir=inputs,
        output_dir=out,
        limits=SandboxLimits(memory_bytes=6 << 30, cpu_s=600, wall_s=300),
        params={"spec": SPEC, "seed": seed, "valuation": {"k": 5}},
    )
    result = run_in_sandbox(job, allowed_entry_points={ENTRY})
    assert result.status is SandboxStatus.SUCCEEDED, (result.error, result.log_tail)
    assert result.sandboxed and result.return_value is not None
    versions = result.return_value["versions"]
    assert isinstance(versions, dict)
    assert determinism_envelope({str(k): str(v) for k, v in versions.items()})["threads"] == 1
    sample_assets = json.loads((root / "where.json").read_text())
    commitments, settlement = settle_output(
        out,
        result.return_value,
        proposal_id=7,
        amount=PRICE,
        sample_assets={k: (v[0], v[1]) for k, v in sample_assets.items()},
        assets=ASSETS,
    )
    assert sum(settlement.payout.asset_amounts.values()) == PRICE
    return commitments


@pytest.mark.slow  # two DP-SGD jobs: seconds of privacy accounting each
def test_two_processes_with_one_seed_commit_the_same_result(tmp_path: Path) -> None:
    inputs, where = _inputs(tmp_path)
    (tmp_path / "where.json").write_text(json.dumps(where))
    first = _run(tmp_path, inputs, "first", SEED)
    second = _run(tmp_path, inputs, "second", SEED)
    assert first.differences(second) == []
    assert first.payout_root != bytes(32)
    assert first.model_hash != bytes(32)
