"""Model files: the weights in safetensors (no pickle, so loading runs no code), with the spec
hash in the file's metadata, so a file can only be loaded against the spec it was trained for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from eth_utils.crypto import keccak
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save

from visdm.errors import ModelFileError
from visdm.training._spec import ModelSpec, parse_model_spec, spec_hash
from visdm.training._zoo import ZooNet, build_model

if TYPE_CHECKING:
    from visdm.training._train import TrainingResult

__all__ = ["load_model", "model_bytes", "model_hash", "save_model"]

# The metadata holds this one key on purpose: safetensors writes its metadata map in hash-map
# order, so a second key would make the file's bytes, and so its hash, vary from run to run.
_KEY_HASH = "visdm.spec_hash"


def model_bytes(result: TrainingResult) -> bytes:
    """The safetensors encoding of ``result``'s weights, with the spec hash as metadata.

    Byte-for-byte deterministic (tensors sorted by name, one metadata key), so two nodes that
    train the same weights publish the same :func:`model_hash`.
    """
    metadata = {_KEY_HASH: "0x" + result.spec_hash.hex()}
    return bytes(save(dict(sorted(result.state.items())), metadata=metadata))


def save_model(result: TrainingResult, path: Path | str) -> bytes:
    """Write ``result``'s weights to ``path``; returns :func:`model_hash` of the file's bytes."""
    data = model_bytes(result)
    Path(path).write_bytes(data)
    return model_hash(data)


def model_hash(data: bytes) -> bytes:
    """keccak256 of a model file's bytes (32 bytes)."""
    return bytes(keccak(data))


def load_model(path: Path | str, spec: ModelSpec | bytes | str | dict[str, object]) -> ZooNet:
    """Build ``spec``'s network and load the weights in ``path`` into it (eval mode).

    Raises :class:`~visdm.errors.ModelFileError` when the file is not safetensors, was saved
    for another spec (hash in its metadata), or holds missing, extra or misshapen tensors.
    """
    spec = parse_model_spec(spec)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc})") from None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_bytes(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise ModelFileError(f"{path}: not a safetensors model file ({exc})") from None
    want = "0x" + spec_hash(spec).hex()
    got = metadata.get(_KEY_HASH)
    if got != want:
        raise ModelFileError(
            f"{path}: saved for spec hash {got or '(none)'}, but the given spec hashes to {want}"
        )
    torch.manual_seed(0)  # initial weights are all overwritten; seed only to stay side-effect free
    model = build_model(spec)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{path}: tensors do not match the spec's {spec.architecture}: "
            f"missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for name, tensor in tensors.items():
        ref = expected[name]
        if tensor.shape != ref.shape or tensor.dtype != ref.dtype:
            raise ModelFileError(
                f"{path}: tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, the spec's "
                f"{spec.architecture} needs {tuple(ref.shape)} {ref.dtype}"
            )
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model
