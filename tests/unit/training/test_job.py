"""run_job, the sandbox entry point, called in process: the job seed it takes and commits to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.unit.training.conftest import SEED, Data, make_spec
from visdm.compute.sandbox import SandboxJob
from visdm.errors import InvalidInputError
from visdm.training import MODEL_FILE, model_hash, run_job, seed_commitment

pytestmark = pytest.mark.unit

SPEC = make_spec(architecture="mlp", hidden=[8])


def _job(tmp_path: Path, fmnist: Data, params: dict[str, Any]) -> SandboxJob:
    x, y, xv, yv = fmnist
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    np.savez(inputs / "train.npz", images=x[:128], labels=y[:128])
    np.savez(inputs / "validation.npz", images=xv[:64], labels=yv[:64])
    return SandboxJob(
        job_id="t",
        entry_point="visdm.training:run_job",
        input_dir=inputs,
        output_dir=outputs,
        params=params,
    )


def _quiet(*_: Any, **__: Any) -> None:
    return None


def test_the_result_commits_to_the_seed(tmp_path: Path, fmnist: Data) -> None:
    job = _job(tmp_path, fmnist, {"spec": SPEC, "seed": SEED.hex()})
    value = run_job(job, _quiet)
    assert value["seed_hash"] == "0x" + seed_commitment(SEED).hex()
    assert SEED.hex() not in str(value)
    assert (
        value["model_hash"] == "0x" + model_hash((job.output_dir / MODEL_FILE).read_bytes()).hex()
    )


@pytest.mark.parametrize(
    ("seed", "got"),
    [
        (None, "NoneType"),
        (7, "int"),
        ("ab" * 31, "a string of 62 characters"),
        ("0x" + "ab" * 31, "a string of 64 characters"),
        ("zz" * 32, "a string of 64 characters"),
        ("ab " * 21 + "a", "a string of 64 characters"),
    ],
)
def test_a_bad_seed_is_refused_without_echoing_it(
    tmp_path: Path, fmnist: Data, seed: Any, got: str
) -> None:
    job = _job(tmp_path, fmnist, {"spec": SPEC} if seed is None else {"spec": SPEC, "seed": seed})
    with pytest.raises(InvalidInputError, match=f"64 hex digits without 0x, got {got}:") as info:
        run_job(job, _quiet)
    if isinstance(seed, str):
        assert seed not in str(info.value)
    assert list(job.output_dir.iterdir()) == []


def test_the_job_reports_what_the_model_card_needs(tmp_path: Path, fmnist: Data) -> None:
    from PIL import Image

    x, y = fmnist[:2]
    job = _job(tmp_path, fmnist, {})
    (job.input_dir / "train.npz").unlink()
    train = job.input_dir / "train"
    train.mkdir()
    files, assets = [], []
    for i in range(96):
        name = f"{i:06d}"
        Image.fromarray(x[i]).save(train / name, format="PNG")
        files.append(name)
        assets.append(7 if i < 48 else 9)
    for broken in (3, 50, 51):  # undecodable: excluded and counted against their asset
        (train / files[broken]).write_bytes(b"not an image")
    (job.input_dir / "samples.json").write_text(
        json.dumps({"files": files, "labels": [int(v) for v in y[:96]], "asset_ids": assets})
    )
    spec = make_spec(architecture="mlp", hidden=[8], batch_size=16, optimizer="sgd")
    value = run_job(job.model_copy(update={"params": {"spec": spec, "seed": SEED.hex()}}), _quiet)
    assert (value["train_samples"], value["unreadable"]) == (93, 3)
    assert value["unreadable_assets"] == [
        {"asset_id": 7, "samples": 1},
        {"asset_id": 9, "samples": 2},
    ]
    assert value["noise_multiplier"] is None  # no DP asked (DP runs are in test_train)
    times = value["timings"]
    assert 0 < times["train_s"] + times["eval_s"] + times["embed_s"] <= times["job_s"]
    assert {"python", "torch", "opacus", "numpy", "visdm"} <= set(value["versions"])
    assert value["versions"]["torch"] == torch.__version__
