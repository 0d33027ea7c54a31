"""The sandbox entry point of a scoring round: ``visdm.scoring._job:run_scoring_job``.

It is the training job (:mod:`visdm.training._job`) with the reference in the consumer's place,
built from the same parts so that a batch is read, screened, trained and valued exactly as a
training round is. The job's input directory holds:

* ``train/`` and ``samples.json`` — the batch's decrypted images, unparsed, and their
  description (``files``, ``labels``, ``sample_ids``, ``providers``, ``asset_ids``, ``rank``,
  ``links``), as a training job's;
* ``validation.npz`` — the reference's validation archive (the node checked its keccak256);
* ``anchors.npz`` — the reference's public anchor images, trained and valued with the batch and
  then dropped (see :mod:`visdm.scoring._reference`).

``job.params`` carries the reference's ``spec``, the node's ``limits``, the job's secret
``seed`` (64 hex digits), the ``screen`` settings and the reference's ``valuation`` settings.
The job writes ``scores.json`` (the batch's rows of the copy-robust KNN-Shapley valuation, the
number of ``players`` they were valued among and the round's ``scale``) and the model (kept for
verifiers, never delivered), and returns the figures the node publishes: ``seed_hash``,
``spec_hash``, ``model_hash``, ``accuracy_bps`` on the reference, ``players``, ``scale``,
``scored``, the screen's ``validation`` counts and the undecodable images per asset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from eth_utils.crypto import keccak

from visdm.compute.sandbox import InputRejectedError, ProgressReporter, SandboxJob
from visdm.errors import InvalidInputError
from visdm.scoring._document import round_scale
from visdm.training._design import NodeLimits
from visdm.training._job import (
    SAMPLES_FILE,
    TRAIN_DIR,
    VALIDATION_FILE,
    VALUATION_FILE,
    _arrays,
    _decode_training,
    _description,
    _screen,
    _screen_settings,
    _seed,
    _validation,
    _value,
    _versions,
)
from visdm.training._model_file import save_model
from visdm.training._rng import seed_commitment
from visdm.training._spec import parse_model_spec
from visdm.training._train import train

__all__ = ["ANCHORS_FILE", "ANCHOR_PROVIDER", "SCORES_FILE", "run_scoring_job"]

ANCHORS_FILE = "anchors.npz"
SCORES_FILE = "scores.json"
#: the provider the anchors are valued under: no account holds this address
ANCHOR_PROVIDER = "0x00000000000000000000000000000000000A0C40"


def _anchor_ids(count: int) -> list[str]:
    return [
        "0x" + keccak(b"visdm-scoring-anchor" + i.to_bytes(8, "big")).hex() for i in range(count)
    ]


def run_scoring_job(job: SandboxJob, progress: ProgressReporter) -> dict[str, Any]:
    """Read and screen the batch and the reference, train the reference's spec on the batch and
    the anchors, value every sample and write the batch's scores; raises
    :class:`InputRejectedError` when the reference's validation set cannot be used."""
    started = time.perf_counter()
    params: dict[str, Any] = dict(job.params)
    spec_doc = params.get("spec")
    if not isinstance(spec_doc, dict):
        raise InvalidInputError("the scoring job carries no model spec object (params.spec)")
    spec = parse_model_spec(spec_doc)
    limit_doc = params.get("limits") or {}
    if not isinstance(limit_doc, dict):
        raise InvalidInputError("params.limits must be an object of NodeLimits fields")
    try:
        limits = NodeLimits(**limit_doc)
    except TypeError as exc:
        raise InvalidInputError(f"params.limits: {exc}") from None
    seed = _seed(params.get("seed"))
    screen = _screen_settings(params.get("screen"))
    inputs = Path(job.input_dir)
    x_val, y_val = _validation(inputs / VALIDATION_FILE, spec)
    try:
        x_anchor, y_anchor = _arrays(inputs / ANCHORS_FILE, spec)
    except InvalidInputError as exc:
        raise InputRejectedError(f"the reference's anchors are unusable: {exc}") from None
    if len(y_anchor) and not (int(y_anchor.min()) >= 0 and int(y_anchor.max()) < spec.num_classes):
        raise InputRejectedError(
            f"the reference's anchor labels are outside 0..{spec.num_classes - 1}"
        )
    batch = _description(inputs / SAMPLES_FILE)
    x_batch, y_batch, batch, unreadable = _decode_training(
        inputs / TRAIN_DIR,
        batch,
        spec,
        val_samples=len(y_val) + len(y_anchor),
        progress=progress,
    )
    x_train = np.concatenate([x_anchor, x_batch])
    y_train = np.concatenate([y_anchor, y_batch])
    x_val, y_val, counts = _screen(x_val, y_val, x_train, screen)
    progress("data loaded", fraction=0.0)

    def on_step(epoch: int, step: int, total: int) -> None:
        progress(f"epoch {epoch} step {step}/{total}", fraction=step / total if total else None)

    result = train(spec, x_train, y_train, x_val, y_val, seed=seed, limits=limits, progress=on_step)
    out = Path(job.output_dir)
    digest = save_model(result, out / "model.safetensors")
    anchors = len(y_anchor)
    described = {
        "sample_ids": _anchor_ids(anchors) + list(batch["sample_ids"]),
        "providers": [ANCHOR_PROVIDER] * anchors + list(batch["providers"]),
        # anchors rank first: a batch sample that copies one is the copy
        "rank": list(range(anchors)) + list(batch["rank"]),
        "links": batch.get("links", []),
    }
    settings = params.get("valuation") or {}
    _value(settings, described, out / VALUATION_FILE, result, y_train, y_val)
    every = json.loads((out / VALUATION_FILE).read_text())["samples"]
    scale = round_scale(row["value"] for row in every)
    rows = every[anchors:]
    (out / SCORES_FILE).write_text(
        json.dumps({"players": len(y_train), "scale": scale, "samples": rows})
    )
    progress("samples scored", fraction=1.0)
    return {
        "accuracy_bps": result.accuracy_bps,
        "model_hash": "0x" + digest.hex(),
        "seed_hash": "0x" + seed_commitment(seed).hex(),
        "spec_hash": "0x" + result.spec_hash.hex(),
        "players": len(y_train),
        "scale": scale,
        "scored": len(rows),
        "anchors": anchors,
        "unreadable_assets": [{"asset_id": a, "samples": n} for a, n in sorted(unreadable.items())],
        "validation": counts,
        "timings": {"job_s": time.perf_counter() - started, "train_s": result.timings.train_s},
        "versions": _versions(),
    }
