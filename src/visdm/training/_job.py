"""The sandbox entry point of a training round: ``visdm.training:run_job``.

The node decrypts the selection and the consumer's validation set into the job's input
directory as two NumPy archives (``train.npz`` and ``validation.npz``, each with ``images``
uint8 and ``labels`` int64; loaded with ``allow_pickle=False``, so a hostile archive cannot run
code), passes the declarative model spec in ``job.params["spec"]``, the node's limits in
``job.params["limits"]`` and the job's secret seed in ``job.params["seed"]`` (64 hex
characters), and runs this function inside :mod:`visdm.compute.sandbox`. It writes
``model.safetensors`` and ``embeddings.npz`` (penultimate-layer embeddings for valuation) to
the output directory and returns the figures the node posts on chain, among them
``seed_hash``, the keccak256 commitment to the seed.

With ``job.params["valuation"]`` (``{"k": 5, "cosine_threshold": 0.98}``) and ``samples.json`` in
the input (``sample_ids``, ``providers``, ``rank`` — registration order — and ``links``, the
metadata's near-duplicate pairs), the job also values every sample with
:class:`~visdm.valuation.CopyRobustValuation` on those embeddings and writes ``valuation.json``
(per-sample scores and per-provider values). Valuation runs in here, not on the node, because
the embeddings are derived from the private samples.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from visdm.compute.sandbox import ProgressReporter, SandboxJob
from visdm.errors import InvalidInputError
from visdm.training._design import NodeLimits
from visdm.training._model_file import save_model
from visdm.training._rng import SEED_BYTES, seed_commitment
from visdm.training._spec import parse_model_spec
from visdm.training._train import train

__all__ = [
    "EMBEDDINGS_FILE",
    "MODEL_FILE",
    "SAMPLES_FILE",
    "TRAIN_FILE",
    "VALIDATION_FILE",
    "VALUATION_FILE",
    "run_job",
]

TRAIN_FILE = "train.npz"
VALIDATION_FILE = "validation.npz"
MODEL_FILE = "model.safetensors"
EMBEDDINGS_FILE = "embeddings.npz"
SAMPLES_FILE = "samples.json"
VALUATION_FILE = "valuation.json"
_HEX_SEED = re.compile(f"[0-9a-fA-F]{{{2 * SEED_BYTES}}}")


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


def _seed(value: Any) -> bytes:
    if isinstance(value, str) and _HEX_SEED.fullmatch(value):
        return bytes.fromhex(value)
    # the seed is secret: describe what came, never echo it
    what = (
        f"a string of {len(value)} characters" if isinstance(value, str) else type(value).__name__
    )
    raise InvalidInputError(
        f"params.seed must be the job's {SEED_BYTES}-byte seed as {2 * SEED_BYTES} hex digits "
        f"without 0x, got {what}: the node draws it with new_job_seed()"
    )


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
    seed = _seed(params.get("seed"))
    x_train, y_train = _load(Path(job.input_dir) / TRAIN_FILE)
    x_val, y_val = _load(Path(job.input_dir) / VALIDATION_FILE)
    progress("data loaded", fraction=0.0)

    def on_step(epoch: int, step: int, total: int) -> None:
        progress(f"epoch {epoch} step {step}/{total}", fraction=step / total if total else None)

    result = train(spec, x_train, y_train, x_val, y_val, seed=seed, limits=limits, progress=on_step)
    out = Path(job.output_dir)
    digest = save_model(result, out / MODEL_FILE)
    np.savez(out / EMBEDDINGS_FILE, train=result.train_embeddings, validation=result.val_embeddings)
    progress("model written", fraction=1.0)
    valuation = params.get("valuation")
    if valuation is not None:
        _value(
            valuation,
            Path(job.input_dir) / SAMPLES_FILE,
            out / VALUATION_FILE,
            result,
            y_train,
            y_val,
        )
        progress("samples valued", fraction=1.0)
    return {
        "accuracy_bps": result.accuracy_bps,
        "epsilon_spent": result.epsilon_spent,
        "model_hash": "0x" + digest.hex(),
        "seed_hash": "0x" + seed_commitment(seed).hex(),
        "spec_hash": "0x" + result.spec_hash.hex(),
        "train_samples": len(y_train),
        "validation_samples": len(y_val),
    }


def _value(  # noqa: PLR0917 - one private call site
    settings: Any,
    samples_path: Path,
    out_path: Path,
    result: Any,
    y_train: NDArray[np.int64],
    y_val: NDArray[np.int64],
) -> None:
    from visdm.valuation import CopyRobustValuation, KNNShapley

    if not isinstance(settings, dict):
        raise InvalidInputError("params.valuation must be an object")
    try:
        doc = json.loads(samples_path.read_bytes())
        ids = [bytes.fromhex(s[2:]) for s in doc["sample_ids"]]
        providers = [str(p) for p in doc["providers"]]
        rank = np.asarray(doc["rank"], dtype=np.int64)
        links = [(bytes.fromhex(a[2:]), bytes.fromhex(b[2:])) for a, b in doc["links"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{samples_path.name} is unusable: {exc}") from None
    if not len(ids) == len(providers) == len(rank) == len(y_train):
        raise InvalidInputError(
            f"{samples_path.name} describes {len(ids)} samples, the training set has {len(y_train)}"
        )
    threshold = settings.get("cosine_threshold", 0.98)
    confirm = settings.get("confirm_threshold")
    ratio = settings.get("confirm_ratio")
    robust = CopyRobustValuation(
        KNNShapley(k=int(settings.get("k", 5))),
        cosine_threshold=None if threshold is None else float(threshold),
        confirm_threshold=None if confirm is None else float(confirm),
        center=bool(settings.get("center", False)),
        confirm_ratio=None if ratio is None else float(ratio),
    )
    valued = robust.fit(
        result.train_embeddings,
        y_train,
        providers,
        result.val_embeddings,
        y_val,
        sample_ids=ids,  # type: ignore[arg-type]
        registration_rank=rank,
        links=links,  # type: ignore[arg-type]
    ).result
    out_path.write_text(
        json.dumps(
            {
                "samples": valued.scores(),
                "providerValues": {str(k): v for k, v in valued.provider_values().items()},
                "sampleCounts": {str(k): v for k, v in valued.sample_counts().items()},
                "timings": dict(valued.timings),
            }
        )
    )
