"""A regional node's local round inside the node's bubblewrap sandbox.

The ClientApp runs in the SuperNode's process tree, which holds the node's SuperNode key and
talks to the network; the region's decrypted samples should meet training code only in the
sandbox (no network, read-only system, private ``/tmp``, kernel limits), as a single-node job
does. With ``sandbox = true`` in the SuperNode's node config the ClientApp hands each round to
:func:`run_sandboxed_round`: the global weights and the region's data go into a fresh input
directory, :func:`local_round` (on the sandbox's allow-list) runs
:func:`visdm.federation._local.local_update` there, and the new weights come back through the
output directory. The round's seed travels in the job's parameters, as for a training job, and
the result is the same weights as outside the sandbox.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from visdm.compute.sandbox import (
    ProgressReporter,
    SandboxJob,
    SandboxLimits,
    run_in_sandbox,
)
from visdm.errors import FederationRoundError, InvalidInputError
from visdm.federation._local import LocalUpdate, local_update
from visdm.training._spec import ModelSpec, canonical_spec_json, parse_model_spec

__all__ = ["ENTRY_POINT", "local_round", "run_sandboxed_round"]

ENTRY_POINT = "visdm.federation._sandboxed:local_round"
_DATA, _WEIGHTS = "region.npz", "weights.npz"


def local_round(job: SandboxJob, progress: ProgressReporter) -> dict[str, Any]:
    """The sandbox's entry point: one local round on ``/sandbox/input``, weights out."""
    params = dict(job.params)
    spec = parse_model_spec(params.get("spec"))  # type: ignore[arg-type]
    seed_hex = params.get("seed")
    if not isinstance(seed_hex, str) or len(seed_hex) != 64:
        raise InvalidInputError("params.seed must be the round's 32-byte seed as 64 hex digits")
    inputs, out = Path(job.input_dir), Path(job.output_dir)
    with np.load(inputs / _DATA, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    with np.load(inputs / _WEIGHTS, allow_pickle=False) as saved:
        weights = {k: saved[k] for k in saved.files}
    sigma = params.get("sigma")
    progress("data loaded", fraction=0.0)
    update = local_update(
        spec,
        images,
        labels,
        weights,
        seed=bytes.fromhex(seed_hex),
        epochs=int(params["epochs"]),  # type: ignore[arg-type]
        total_epochs=int(params["total_epochs"]),  # type: ignore[arg-type]
        proximal_mu=float(params.get("proximal_mu", 0.0)),  # type: ignore[arg-type]
        sigma=float(sigma) if isinstance(sigma, int | float) else None,
    )
    np.savez(out / _WEIGHTS, **update.weights)  # type: ignore[arg-type]
    progress("weights written", fraction=1.0)
    return {
        "num_examples": update.num_examples,
        "loss": None if math.isnan(update.loss) else update.loss,
        "steps": update.steps,
        "history_entry": list(update.history_entry) if update.history_entry else None,
    }


def _place(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # same file system: no copy of the decrypted data
    except OSError:
        shutil.copyfile(source, target)


def run_sandboxed_round(
    spec: ModelSpec,
    data_path: Path,
    weights: Mapping[str, NDArray[Any]],
    *,
    workdir: Path,
    seed: bytes,
    epochs: int,
    total_epochs: int,
    proximal_mu: float,
    sigma: float | None,
    limits: SandboxLimits | None = None,
) -> LocalUpdate:
    """Run :func:`local_round` in the sandbox; a failed job raises
    :class:`FederationRoundError` with the sandbox's reason (the region then drops out)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    inputs, outputs = workdir / "in", workdir / "out"
    inputs.mkdir(parents=True)
    outputs.mkdir()
    _place(data_path, inputs / _DATA)
    np.savez(inputs / _WEIGHTS, **dict(weights))  # type: ignore[arg-type]
    job = SandboxJob(
        job_id=workdir.name,
        entry_point=ENTRY_POINT,
        input_dir=inputs,
        output_dir=outputs,
        limits=limits or SandboxLimits(),
        params={
            "spec": json.loads(canonical_spec_json(spec)),
            "seed": seed.hex(),
            "epochs": epochs,
            "total_epochs": total_epochs,
            "proximal_mu": proximal_mu,
            "sigma": sigma,
        },
    )
    result = run_in_sandbox(job, allowed_entry_points={ENTRY_POINT})
    try:
        if not result.ok or result.return_value is None:
            raise FederationRoundError(
                f"the sandboxed local round ended {result.status.value}: "
                f"{result.error or 'no reason given'}"
            )
        with np.load(outputs / _WEIGHTS, allow_pickle=False) as saved:
            new = {k: saved[k] for k in saved.files}
        value = result.return_value
        entry = value.get("history_entry")
        loss = value.get("loss")
        return LocalUpdate(
            weights=new,
            num_examples=int(value["num_examples"]),  # type: ignore[arg-type]
            loss=float(loss) if isinstance(loss, int | float) else math.nan,
            steps=int(value["steps"]),  # type: ignore[arg-type]
            history_entry=(
                (float(entry[0]), float(entry[1]), int(entry[2]))  # type: ignore[arg-type]
                if isinstance(entry, list)
                else None
            ),
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # decrypted data never outlives the round
