"""The sandbox entry point of a training round: ``visdm.training:run_job``.

The node only decrypts and hashes; every parser of untrusted bytes runs in here, under the
sandbox's limits. The job's input directory holds:

* ``train/`` — the plaintext bytes of each usable selected image, one file per sample, as the
  provider uploaded them (never decoded by the node), and ``samples.json`` describing them:
  ``files``, ``labels`` (class indexes), ``sample_ids``, ``providers``, ``asset_ids``,
  ``rank`` (registration order) and ``links`` (the metadata's near-duplicate pairs);
* ``validation.npz`` — the consumer's validation archive exactly as decrypted (the node checked
  its keccak256 against the chain, nothing more).

Instead of ``train/``, a ``train.npz`` archive of decoded ``images`` and ``labels`` is accepted
too (benchmarks and tests that start from arrays); ``samples.json`` then needs no ``files``.

The job reads, in this order, and bounds memory from declared sizes before allocating:

1. the validation archive, by :func:`visdm.proposals.read_validation_set` (zip directory and
   ``.npy`` headers first, checked against the spec's input shape, the sample and byte limits
   and the members' sizes); an unusable set is the consumer's fault: the job raises
   :class:`~visdm.compute.sandbox.InputRejectedError` and ends ``INPUT_REJECTED``;
2. the training images: the decoded set (count × C×H×W from the spec, and its float copy for
   training) is checked against the sandbox's address-space limit, then each file is decoded by
   the bounded decoder (:func:`visdm.ingest.decode_image`) and converted to the spec's layout
   (:func:`visdm.proposals.image_to_array`); an unreadable image is excluded and counted;
3. the screen (:func:`visdm.metadata.screen_validation_set`): duplicates within the validation
   set and near-copies of selected samples never score; too few left is the consumer's fault.

``job.params`` carries the declarative model spec (``spec``), the node's limits (``limits``),
the job's secret seed (``seed``, 64 hex characters), the screen's settings (``screen``:
``radius``, ``min_samples``, ``min_share``) and the valuation settings (``valuation``). The job
writes ``model.safetensors`` and ``embeddings.npz`` (penultimate-layer embeddings) to the output
directory and returns the figures the node posts on chain, among them ``seed_hash`` (the
keccak256 commitment to the seed), ``validation`` (the screen's counts) and ``unreadable``, and
what the model card (:mod:`visdm.training._card`) needs from inside: ``unreadable_assets``
(``[{"asset_id", "samples"}]``, the undecodable images per asset), ``noise_multiplier``,
``timings`` (``job_s``, ``train_s``, ``eval_s``, ``embed_s``) and ``versions`` (Python and the
libraries that trained the model).

With ``job.params["valuation"]`` (``{"k": 5, "cosine_threshold": 0.98}``) and ``samples.json``,
the job also values every sample with :class:`~visdm.valuation.CopyRobustValuation` on those
embeddings and writes ``valuation.json`` (per-sample scores and per-provider values). Valuation
runs in here, not on the node, because the embeddings are derived from the private samples.
"""

from __future__ import annotations

import json
import math
import platform
import re
import resource
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from visdm.compute.sandbox import InputRejectedError, ProgressReporter, SandboxJob
from visdm.errors import InvalidInputError
from visdm.ingest import DEFAULT_LIMITS, decode_image
from visdm.jsonsafe import load_untrusted_object, read_untrusted_file
from visdm.metadata import VALIDATION_SCREEN_RADIUS, array_phashes, screen_validation_set
from visdm.proposals._validation import image_to_array, read_validation_set, unpack_arrays
from visdm.training._design import NodeLimits
from visdm.training._model_file import save_model
from visdm.training._rng import SEED_BYTES, seed_commitment
from visdm.training._spec import ModelSpec, parse_model_spec
from visdm.training._train import train

__all__ = [
    "EMBEDDINGS_FILE",
    "MODEL_FILE",
    "SAMPLES_FILE",
    "TRAIN_DIR",
    "TRAIN_FILE",
    "VALIDATION_FILE",
    "VALUATION_FILE",
    "run_job",
]

TRAIN_DIR = "train"
TRAIN_FILE = "train.npz"
VALIDATION_FILE = "validation.npz"
MODEL_FILE = "model.safetensors"
EMBEDDINGS_FILE = "embeddings.npz"
SAMPLES_FILE = "samples.json"
VALUATION_FILE = "valuation.json"
_HEX_SEED = re.compile(f"[0-9a-fA-F]{{{2 * SEED_BYTES}}}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
#: bytes of memory per byte of decoded pixels: the uint8 arrays, their float32 copies for
#: training (4) and a transposed copy on the way (1)
_MEMORY_PER_PIXEL_BYTE = 6
#: what the interpreter, torch and the model take besides the data
_BASE_BYTES = 1 << 30
_PROGRESS_EVERY = 1000
#: samples.json holds a few hundred bytes per sample
_MAX_DESCRIPTION_BYTES = 1 << 30
#: per-sample lists of samples.json, filtered to the images that could be decoded
_PER_SAMPLE = ("files", "labels", "sample_ids", "providers", "asset_ids", "rank")
#: the distributions whose versions a model card names (Python's own is added)
_VERSIONED = ("visdm", "torch", "opacus", "numpy", "safetensors")


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
    """Read and screen the job's input, train the spec in ``job.params`` on it, write the model
    and embeddings (and the values); raises :class:`InputRejectedError` when the consumer's
    validation set cannot be used."""
    started = time.perf_counter()
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
    screen = _screen_settings(params.get("screen"))
    inputs = Path(job.input_dir)
    x_val, y_val = _validation(inputs / VALIDATION_FILE, spec)
    samples = _description(inputs / SAMPLES_FILE)
    unreadable: dict[int, int] = {}
    if (inputs / TRAIN_DIR).is_dir():
        x_train, y_train, samples, unreadable = _decode_training(
            inputs / TRAIN_DIR, samples, spec, val_samples=len(y_val), progress=progress
        )
    else:
        x_train, y_train = _arrays(inputs / TRAIN_FILE, spec)
    x_val, y_val, counts = _screen(x_val, y_val, x_train, screen)
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
        if samples is None:
            raise InvalidInputError(f"the job's input has no {SAMPLES_FILE} to value samples by")
        _value(valuation, samples, out / VALUATION_FILE, result, y_train, y_val)
        progress("samples valued", fraction=1.0)
    return {
        "accuracy_bps": result.accuracy_bps,
        "epsilon_spent": result.epsilon_spent,
        "model_hash": "0x" + digest.hex(),
        "seed_hash": "0x" + seed_commitment(seed).hex(),
        "spec_hash": "0x" + result.spec_hash.hex(),
        "train_samples": len(y_train),
        "unreadable": sum(unreadable.values()),
        "unreadable_assets": [{"asset_id": a, "samples": n} for a, n in sorted(unreadable.items())],
        "validation": counts,
        "validation_samples": len(y_val),
        "noise_multiplier": result.noise_multiplier,
        "timings": {
            "job_s": time.perf_counter() - started,
            "train_s": result.timings.train_s,
            "eval_s": result.timings.eval_s,
            "embed_s": result.timings.embed_s,
        },
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    """Python's version and the installed versions of the libraries that trained the model."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


# --- reading the input ------------------------------------------------------------------------
def _validation(path: Path, spec: ModelSpec) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The consumer's validation set, read with bounded memory; unusable is its fault."""
    if not path.is_file():  # the node's omission, not the consumer's
        raise InvalidInputError(f"the job's input has no {path.name}")
    try:
        return read_validation_set(path.read_bytes(), spec.input_shape, spec.num_classes)
    except InvalidInputError as exc:
        raise InputRejectedError(str(exc)) from None


def _arrays(path: Path, spec: ModelSpec) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """A ``train.npz`` of decoded arrays, read with the same bounds as the validation set."""
    if not path.is_file():
        raise InvalidInputError(f"the job's input has neither {TRAIN_DIR}/ nor {path.name}")
    return unpack_arrays(
        path.read_bytes(), what=path.name, input_shape=spec.input_shape, max_samples=2**62
    )


def _description(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    # the node writes it, partly from peers' documents; the sandbox trusts no input it reads
    what, hint = f"{path.name} is unusable: it", "the node wrote a broken job description"
    raw = read_untrusted_file(path, what=what, max_bytes=_MAX_DESCRIPTION_BYTES, hint=hint)
    return load_untrusted_object(raw, what=what, max_bytes=_MAX_DESCRIPTION_BYTES, hint=hint)


def _check_memory(samples: int, spec: ModelSpec) -> None:
    """Refuse, before allocating, data the sandbox's address space cannot train on."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return
    need = _BASE_BYTES + _MEMORY_PER_PIXEL_BYTE * samples * math.prod(spec.input_shape)
    if need > limit:
        raise InvalidInputError(
            f"{samples:,} samples of input_shape {list(spec.input_shape)} need about "
            f"{need / 2**30:.1f} GiB to train on, over the sandbox's {limit / 2**30:.1f} GiB: "
            "give the node's sandbox more memory or train on fewer samples"
        )


def _decode_training(
    folder: Path,
    samples: dict[str, Any] | None,
    spec: ModelSpec,
    *,
    val_samples: int,
    progress: ProgressReporter,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], dict[str, Any], dict[int, int]]:
    """Decode the selected images into the spec's layout; returns the images, their labels,
    ``samples.json`` filtered to them, and how many could not be decoded per asset (under
    asset -1 when ``samples.json`` names no assets)."""
    if samples is None:
        raise InvalidInputError(f"the job's input has {TRAIN_DIR}/ but no {SAMPLES_FILE}")
    files, labels = samples.get("files"), samples.get("labels")
    if not isinstance(files, list) or not isinstance(labels, list) or len(files) != len(labels):
        raise InvalidInputError(f"{SAMPLES_FILE} needs 'files' and 'labels' of equal length")
    if not all(isinstance(f, str) and _FILE_NAME.fullmatch(f) for f in files):
        raise InvalidInputError(f"{SAMPLES_FILE} names a file that is not a plain file name")
    classes = spec.num_classes
    if not all(isinstance(v, int) and 0 <= v < classes for v in labels):
        raise InvalidInputError(f"{SAMPLES_FILE} has a label outside 0..{classes - 1}")
    n = len(files)
    if n == 0:
        raise InvalidInputError(f"{SAMPLES_FILE} lists no training image")
    _check_memory(n + val_samples, spec)
    channels, height, width = spec.input_shape
    images = np.empty(
        (n, height, width) if channels == 1 else (n, height, width, channels), dtype=np.uint8
    )
    kept: list[int] = []
    for i, name in enumerate(files):
        if i and i % _PROGRESS_EVERY == 0:
            progress(f"decoded {i}/{n} training images")
        try:
            with (folder / name).open("rb") as stream:
                data = stream.read(DEFAULT_LIMITS.max_file_bytes + 1)
            decoded = decode_image(data, name=f"training image {name}")
            with decoded.image:
                images[len(kept)] = image_to_array(decoded.image, spec.input_shape)
        except (InvalidInputError, OSError):
            continue  # unreadable: excluded and counted, as the node excluded undecryptable ones
        kept.append(i)
    if not kept:
        raise InvalidInputError(f"none of the {n} selected images could be decoded")
    filtered = dict(samples)
    for key in _PER_SAMPLE:
        column = samples.get(key)
        if isinstance(column, list) and len(column) == n:
            filtered[key] = [column[i] for i in kept]
    y = np.asarray([labels[i] for i in kept], dtype=np.int64)
    return images[: len(kept)], y, filtered, _dropped_per_asset(samples.get("asset_ids"), n, kept)


def _dropped_per_asset(asset_ids: Any, n: int, kept: list[int]) -> dict[int, int]:
    kept_set = set(kept)
    known = isinstance(asset_ids, list) and len(asset_ids) == n
    dropped: dict[int, int] = {}
    for i in range(n):
        if i not in kept_set:
            asset = asset_ids[i] if known and isinstance(asset_ids[i], int) else -1
            dropped[asset] = dropped.get(asset, 0) + 1
    return dropped


# --- screening the validation set -------------------------------------------------------------
def _screen_settings(value: Any) -> dict[str, Any]:
    settings = {"radius": VALIDATION_SCREEN_RADIUS, "min_samples": 10, "min_share": 0.1}
    if value is None:
        return settings
    if not isinstance(value, dict) or set(value) - set(settings):
        raise InvalidInputError(f"params.screen must be an object of {sorted(settings)}")
    return {**settings, **value}


def _screen(
    x_val: NDArray[np.uint8],
    y_val: NDArray[np.int64],
    x_train: NDArray[np.uint8],
    settings: dict[str, Any],
) -> tuple[NDArray[np.uint8], NDArray[np.int64], dict[str, int]]:
    """Drop duplicates and near-copies of selected samples from the validation set; too few
    left is the consumer's fault."""
    screen = screen_validation_set(x_val, array_phashes(x_train), **settings)
    if not screen.usable:
        raise InputRejectedError(
            f"the validation set keeps {screen.used} of its {screen.given} samples after "
            f"screening ({screen.duplicates} duplicates, {screen.near_selected} near-copies of "
            f"selected samples); at least {screen.minimum} must be distinct images that are not "
            "copies of the selection"
        )
    return x_val[screen.keep], y_val[screen.keep], screen.counts()


# --- valuation ---------------------------------------------------------------------------------
def _value(  # noqa: PLR0917 - one private call site
    settings: Any,
    doc: dict[str, Any],
    out_path: Path,
    result: Any,
    y_train: NDArray[np.int64],
    y_val: NDArray[np.int64],
) -> None:
    from visdm.valuation import CopyRobustValuation, KNNShapley

    if not isinstance(settings, dict):
        raise InvalidInputError("params.valuation must be an object")
    try:
        ids = [bytes.fromhex(s[2:]) for s in doc["sample_ids"]]
        providers = [str(p) for p in doc["providers"]]
        rank = np.asarray(doc["rank"], dtype=np.int64)
        links = [(bytes.fromhex(a[2:]), bytes.fromhex(b[2:])) for a, b in doc["links"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{SAMPLES_FILE} is unusable: {exc}") from None
    if not len(ids) == len(providers) == len(rank) == len(y_train):
        raise InvalidInputError(
            f"{SAMPLES_FILE} describes {len(ids)} samples, the training set has {len(y_train)}"
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
