"""A real training round inside the real sandbox: torch under bubblewrap and rlimits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visdm.compute.sandbox import SandboxJob, SandboxLimits, SandboxStatus, run_in_sandbox
from visdm.datasets import load_fashion_mnist
from visdm.training import load_model, model_hash, seed_commitment

pytestmark = pytest.mark.integration

ENTRY = "visdm.training:run_job"
SPEC = {
    "architecture": "small_cnn",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 0.003,
}
SEED = bytes(range(32)).hex()


def write_inputs(root: Path, *, train: int = 512, val: int = 256) -> tuple[Path, Path]:
    images, labels = load_fashion_mnist("train", limit=train + val)
    inputs, outputs = root / "in", root / "out"
    inputs.mkdir()
    outputs.mkdir()
    np.savez(inputs / "train.npz", images=images[:train], labels=labels[:train])
    np.savez(inputs / "validation.npz", images=images[train:], labels=labels[train:])
    return inputs, outputs


def run(root: Path, params: dict[str, object]):  # type: ignore[no-untyped-def]
    inputs, outputs = write_inputs(root)
    job = SandboxJob(
        job_id="train-1",
        entry_point=ENTRY,
        input_dir=inputs,
        output_dir=outputs,
        limits=SandboxLimits(memory_bytes=6 << 30, cpu_s=600, wall_s=300),
        params=params,
    )
    seen: list[str] = []
    result = run_in_sandbox(
        job, allowed_entry_points={ENTRY}, on_progress=lambda event: seen.append(event.message)
    )
    return result, outputs, seen


def test_training_round_in_the_sandbox(tmp_path: Path) -> None:
    result, outputs, seen = run(tmp_path, {"spec": SPEC, "seed": SEED})
    assert result.status is SandboxStatus.SUCCEEDED, (result.error, result.log_tail)
    assert result.sandboxed
    value = result.return_value
    assert value is not None
    assert 3000 < int(value["accuracy_bps"]) <= 10_000  # well above chance (1000) after 1 epoch
    data = (outputs / "model.safetensors").read_bytes()
    assert value["model_hash"] == "0x" + model_hash(data).hex()
    assert value["seed_hash"] == "0x" + seed_commitment(bytes.fromhex(SEED)).hex()
    model = load_model(outputs / "model.safetensors", SPEC)
    assert sum(p.numel() for p in model.parameters()) > 0
    with np.load(outputs / "embeddings.npz") as emb:
        assert emb["train"].shape[0] == 512
        # the screen drops duplicates and near-copies of the selection before scoring
        screen = value["validation"]
        assert isinstance(screen, dict) and screen["given"] == 256
        assert emb["validation"].shape[0] == screen["used"] == value["validation_samples"]
    assert seen[0] == "data loaded"
    assert any(m.startswith("epoch") for m in seen)


def test_a_bad_spec_fails_inside_without_harm(tmp_path: Path) -> None:
    result, outputs, _ = run(
        tmp_path, {"spec": {**SPEC, "architecture": "transformer"}, "seed": SEED}
    )
    assert result.status is SandboxStatus.FAILED
    assert "architecture" in (result.error or "")
    assert list(outputs.iterdir()) == []
