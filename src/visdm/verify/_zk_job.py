"""The sandboxed half of an accuracy claim: what needs the trained model and the consumer's
decoded validation set, run by the compute node in its sandbox (``visdm.compute.sandbox``).

Three entry points, each ``function(job, progress)``:

* :func:`build_claim_circuit`: input ``model.safetensors`` and ``validation.npz``; builds the
  model's circuit for k samples into the output directory (SRS files the node left there are
  reused) and writes ``claim.json``: the circuit's shape and the sample tree's leaves
  (``[inputs hash, label]`` per validation sample, in archive order);
* :func:`prove_drawn_samples`: input ``validation.npz``, the circuit's directory as output;
  proves the validation samples at ``params.indices`` and writes ``proof.json``;
* :func:`validation_sample_root`: input ``validation.npz`` and ``settings.json`` (a committed
  circuit's settings file, from the store); returns the sample root a claim over this
  validation set must commit (:func:`visdm.verify.expected_sample_root`).

``params`` carries the model spec (``spec``), k and the circuit's :class:`ZkSettings` fields,
never code. The validation set is read as the training job reads it
(:func:`visdm.proposals.read_validation_set`); an unusable one is the consumer's fault
(:class:`~visdm.compute.sandbox.InputRejectedError`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from visdm.compute.sandbox import InputRejectedError, ProgressReporter, SandboxJob
from visdm.errors import InvalidInputError, ZkInputError
from visdm.verify._zk import ZkCircuit, ZkSettings
from visdm.verify._zk_rule import MAX_SAMPLES, inputs_hash

__all__ = [
    "CLAIM_FILE",
    "MODEL_FILE",
    "PROOF_FILE",
    "SETTINGS_FILE",
    "VALIDATION_FILE",
    "build_claim_circuit",
    "prove_drawn_samples",
    "settings_from",
    "validation_sample_root",
]

MODEL_FILE = "model.safetensors"
VALIDATION_FILE = "validation.npz"
SETTINGS_FILE = "settings.json"
CLAIM_FILE = "claim.json"
PROOF_FILE = "proof.json"


def settings_from(value: Any) -> ZkSettings:
    """:class:`ZkSettings` from its :meth:`~ZkSettings.describe` mapping."""
    if value is None:
        return ZkSettings()
    fields = ZkSettings().describe()
    if not isinstance(value, dict) or set(value) - set(fields):
        raise ZkInputError(f"params.settings must be an object of {sorted(fields)}")
    for key, given in value.items():
        if type(given) is not type(fields[key]):
            raise ZkInputError(f"params.settings.{key} must be a {type(fields[key]).__name__}")
    return ZkSettings(**value)


def _spec(params: dict[str, Any]) -> Any:
    from visdm.training import parse_model_spec

    doc = params.get("spec")
    if not isinstance(doc, dict):
        raise InvalidInputError("the proving job carries no model spec object (params.spec)")
    return parse_model_spec(doc)


def _k(params: dict[str, Any]) -> int:
    k = params.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SAMPLES:
        raise ZkInputError(f"params.k must be an integer in 1..{MAX_SAMPLES}, got {k!r}")
    return k


def _validation(inputs: Path, spec: Any) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    from visdm.proposals._validation import read_validation_set

    path = inputs / VALIDATION_FILE
    if not path.is_file():  # the node's omission, not the consumer's
        raise InvalidInputError(f"the proving job's input has no {VALIDATION_FILE}")
    try:
        return read_validation_set(path.read_bytes(), spec.input_shape, spec.num_classes)
    except InvalidInputError as exc:
        raise InputRejectedError(str(exc)) from None


def build_claim_circuit(job: SandboxJob, progress: ProgressReporter) -> dict[str, Any]:
    """Build the trained model's circuit for ``params.k`` samples and the validation set's
    sample leaves; returns the circuit's shape (the leaves are in ``claim.json``)."""
    from visdm.training import load_model

    params = dict(job.params)
    spec, k = _spec(params), _k(params)
    settings = settings_from(params.get("settings"))
    inputs, out = Path(job.input_dir), Path(job.output_dir)
    val_x, val_y = _validation(inputs, spec)
    model = load_model(inputs / MODEL_FILE, spec)
    progress("building the circuit", fraction=0.0)
    channels, height, width = spec.input_shape
    circuit = ZkCircuit.build(
        model,
        input_shape=(channels, height, width),
        num_classes=spec.num_classes,
        k=k,
        workdir=out,
        srs_dir=out,
        settings=settings,
    )
    progress("circuit built", fraction=1.0)
    leaves = [
        ["0x" + inputs_hash(felts).hex(), int(label)]
        for felts, label in zip(circuit.public_inputs(val_x), val_y, strict=True)
    ]
    shape = {
        "k": k,
        "features": circuit.features,
        "classes": circuit.classes,
        "logrows": circuit.logrows,
        "settings": settings.describe(),
    }
    (out / CLAIM_FILE).write_text(json.dumps({**shape, "leaves": leaves}))
    return {**shape, "samples": len(leaves), "timings": circuit.timings}


def prove_drawn_samples(job: SandboxJob, progress: ProgressReporter) -> dict[str, Any]:
    """Prove the validation samples at ``params.indices`` with the circuit in the output
    directory (``params``: its ``k``, ``logrows`` and ``settings``)."""
    params = dict(job.params)
    spec, k = _spec(params), _k(params)
    given = params.get("indices")
    val_x, _ = _validation(Path(job.input_dir), spec)
    given = given if isinstance(given, list) else []
    indices = [i for i in given if type(i) is int]
    if (
        len(indices) != k
        or len(indices) != len(given)
        or not all(0 <= i < len(val_x) for i in indices)
    ):
        raise ZkInputError(f"params.indices must be the {k} drawn positions in 0..{len(val_x) - 1}")
    logrows = params.get("logrows")
    if type(logrows) is not int or not 10 <= logrows <= 26:
        raise ZkInputError(f"params.logrows must be an integer in 10..26, got {logrows!r}")
    out = Path(job.output_dir)
    circuit = ZkCircuit(
        out,
        out / f"kzg{logrows}.srs",
        k,
        int(np.prod(spec.input_shape)),
        spec.num_classes,
        logrows,
        settings_from(params.get("settings")),
    )
    progress("proving the drawn samples", fraction=0.0)
    circuit.prove(val_x[indices], name="proof")
    return {"proof": PROOF_FILE, "timings": circuit.timings}


def validation_sample_root(job: SandboxJob, progress: ProgressReporter) -> dict[str, Any]:
    """The sample root a claim over this validation set commits under the circuit settings in
    ``settings.json``."""
    from visdm.verify._zk_prove import expected_sample_root

    params = dict(job.params)
    spec = _spec(params)
    inputs = Path(job.input_dir)
    val_x, val_y = _validation(inputs, spec)
    settings = inputs / SETTINGS_FILE
    if not settings.is_file():
        raise InvalidInputError(f"the job's input has no {SETTINGS_FILE}")
    root = expected_sample_root(settings.read_bytes(), val_x, val_y)
    return {"root": "0x" + root.hex(), "samples": len(val_y)}
