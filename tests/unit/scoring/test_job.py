"""run_scoring_job, the scoring round's sandbox entry point, called in process: the anchors are
trained and valued beside the batch and dropped from its scores, the round's scale is taken
over every player, and a reference that cannot be used is the reference's fault."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from visdm.compute.sandbox import InputRejectedError, SandboxJob
from visdm.datasets import load_fashion_mnist
from visdm.proposals import pack_arrays
from visdm.scoring import round_scale, run_scoring_job
from visdm.training import seed_commitment

pytestmark = pytest.mark.unit

SEED = bytes(range(32))
SPEC = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 16,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "hidden": [8],
}
BATCH = 12


def _job(tmp_path: Path, *, anchors: bytes | None = None) -> SandboxJob:
    x, y = load_fashion_mnist("train", limit=BATCH)
    xt, yt = load_fashion_mnist("test", limit=80)
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    (inputs / "train").mkdir(parents=True)
    outputs.mkdir()
    files = []
    for i in range(BATCH):
        buffer = io.BytesIO()
        Image.fromarray(x[i]).save(buffer, format="PNG")
        files.append(f"{i:06d}")
        (inputs / "train" / files[-1]).write_bytes(buffer.getvalue())
    files[3] = "000003"
    (inputs / "train" / "000003").write_bytes(b"not an image")
    (inputs / "samples.json").write_text(
        json.dumps(
            {
                "files": files,
                "labels": y.tolist(),
                "sample_ids": [f"0x{i + 1:064x}" for i in range(BATCH)],
                "providers": [f"0x{(i % 2) + 1:040x}" for i in range(BATCH)],
                "asset_ids": [1 + i % 2 for i in range(BATCH)],
                "rank": list(range(1 << 32, (1 << 32) + BATCH)),
                "links": [],
            }
        )
    )
    (inputs / "validation.npz").write_bytes(pack_arrays(xt[:40], yt[:40]))
    (inputs / "anchors.npz").write_bytes(
        pack_arrays(xt[40:], yt[40:]) if anchors is None else anchors
    )
    return SandboxJob(
        job_id="s",
        entry_point="visdm.scoring._job:run_scoring_job",
        input_dir=inputs,
        output_dir=outputs,
        params={"spec": SPEC, "seed": SEED.hex(), "valuation": {"k": 3}},
    )


def _quiet(*_: Any, **__: Any) -> None:
    return None


def test_the_batch_is_valued_beside_the_anchors_which_are_dropped(tmp_path: Path) -> None:
    job = _job(tmp_path)
    outcome = run_scoring_job(job, _quiet)
    assert outcome["seed_hash"] == "0x" + seed_commitment(SEED).hex()
    assert (outcome["anchors"], outcome["players"], outcome["scored"]) == (40, 40 + 11, 11)
    assert outcome["unreadable_assets"] == [{"asset_id": 2, "samples": 1}]
    written = json.loads((job.output_dir / "scores.json").read_text())
    ids = [row["sample_id"] for row in written["samples"]]
    assert ids == [f"0x{i + 1:064x}" for i in range(BATCH) if i != 3]  # no anchor, in order
    every = json.loads((job.output_dir / "valuation.json").read_text())["samples"]
    assert len(every) == 51 and written["scale"] == round_scale(r["value"] for r in every)
    assert outcome["scale"] == written["scale"] > 0
    # the same seed gives the same scores: a verifier can re-execute the batch
    again = _job(tmp_path / "again")
    run_scoring_job(again, _quiet)
    assert (again.output_dir / "scores.json").read_text() == json.dumps(written)


@pytest.mark.parametrize(
    ("anchors", "reason"),
    [
        (b"not an archive", "anchors are unusable"),
        (pack_arrays(np.zeros((4, 28, 28), np.uint8), np.full(4, 12)), "anchor labels"),
        (
            pack_arrays(np.zeros((4, 32, 32), np.uint8), np.zeros(4, np.int64)),
            "anchors are unusable",
        ),
    ],
)
def test_a_reference_that_cannot_be_used_is_its_fault(
    tmp_path: Path, anchors: bytes, reason: str
) -> None:
    with pytest.raises(InputRejectedError, match=reason):
        run_scoring_job(_job(tmp_path, anchors=anchors), _quiet)
