"""The sandbox entry point of a training round: ``visdm.training:run_job``.

The node decrypts the selection and the consumer's validation set into the job's input
directory as two NumPy archives (``train.npz`` and ``validation.npz``, each with ``images``
uint8 and ``labels`` int64; loaded with ``allow_pickle=False``, so a hostile archive cannot run
code), passes the declarative model spec in ``job.params["spec"]`` and the node's limits in
``job.params["limits"]``, and runs this function inside :mod:`visdm.compute.sandbox`. It writes
``model.safetensors`` and ``embeddings.npz`` (penultimate-layer embeddings for valuation) to
the output directory and returns the figures the node posts on chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from visdm.compute.sandbox import ProgressReporter, SandboxJob
from visdm.errors import InvalidInputError
from visdm.training._design import NodeLimits
from visdm.training._model_file import save_model
from visdm.training._spec import parse_model_spec
from visdm.training._train import train

__all__ = ["EMBEDDINGS_FILE", "MODEL_FILE", "TRAIN_FILE", "VALIDATION_FILE", "run_job"]

TRAIN_FILE = "train.npz"
VALIDATION_FILE = "validation.npz"
MODEL_FILE = "model.safetensors"
EMBEDDINGS_FILE = "embeddings.npz"


def _load(path: Path) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = np.asarray(archive["images"])
            labels = np.asarray(archive["labels"])
    except FileNotFoundError:
        raise InvalidInputError(f"the job's input has no {path.name}") from None
    except (KeyError, ValueError, OSError) as exc:
        raise InvalidInputError(
            f"{path.name} is not an archive of images and labels: {exc}"
        ) from None
    if images.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise InvalidInputError(
            f"{path.name}: expected uint8 images and one label per image, got {images.dtype} "
            f"{images.shape} and labels {labels.shape}"
        )
    return images, labels.astype(np.int64)


def run_job(job: SandboxJob, progress: ProgressReporter) -> dict[str, Any]:
    """Train the spec in ``job.params`` on the job's input; write the model and embeddings."""
    params: dict[str, Any] = dict(job.params)
    spec_doc = params.get("spec")
    if not isinstance(spec_doc, dict):
        raise InvalidInputError("the training job carries no model spec object (params.spec)")
    spec = parse_model_spec(spec_doc)
    limit_doc = params.get("limits") or {}
    if not isinstance(limit_doc, dict):
        raise InvalidInputError("params.limits must be an object of NodeLimits fields")
    try:
        limits = NodeLimits(**limit_doc)
    except TypeError as exc:
        raise InvalidInputError(f"params.limits: {exc}") from None
    x_train, y_train = _load(Path(job.input_dir) / TRAIN_FILE)
    x_val, y_val = _load(Path(job.input_dir) / VALIDATION_FILE)
    progress("data loaded", fraction=0.0)

    def on_step(epoch: int, step: int, total: int) -> None:
        progress(f"epoch {epoch} step {step}/{total}", fraction=step / total if total else None)

    result = train(spec, x_train, y_train, x_val, y_val, limits=limits, progress=on_step)
    out = Path(job.output_dir)
    digest = save_model(result, out / MODEL_FILE)
    np.savez(out / EMBEDDINGS_FILE, train=result.train_embeddings, validation=result.val_embeddings)
    progress("model written", fraction=1.0)
    return {
        "accuracy_bps": result.accuracy_bps,
        "epsilon_spent": result.epsilon_spent,
        "model_hash": "0x" + digest.hex(),
        "spec_hash": "0x" + result.spec_hash.hex(),
        "train_samples": len(y_train),
        "validation_samples": len(y_val),
    }
