"""The consumer's validation set: images → arrays, a strict NumPy archive, sealed to the node.

The archive holds ``images`` (uint8, ``N×H×W`` or ``N×H×W×C``) and ``labels`` (int64 class
indexes into the proposal's class list). It is loaded with ``allow_pickle=False``, so a hostile
archive cannot run code. ``validationSetHash`` on chain is keccak256 of the archive's bytes;
the archive is stored encrypted under a fresh data key sealed to the node's X25519 key, so
only the node (and the consumer) ever see it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from eth_utils.crypto import keccak
from numpy.typing import NDArray
from PIL import Image

from visdm.crypto import decrypt_blob, encrypt_blob, generate_data_key, wrap_key
from visdm.errors import InvalidInputError
from visdm.ingest import decode_image, validate_directory

__all__ = [
    "SealedValidationSet",
    "check_validation_set",
    "image_to_array",
    "load_labelled_directory",
    "open_validation_set",
    "pack_arrays",
    "seal_validation_set",
    "unpack_arrays",
]

_AAD = b"visdm/validation-set/v1"
_MAX_ARCHIVE_BYTES = 1 << 30


def image_to_array(image: Image.Image, input_shape: Sequence[int]) -> NDArray[np.uint8]:
    """One decoded image as the model's input layout: ``H×W`` (1 channel) or ``H×W×3``."""
    channels, height, width = (int(v) for v in input_shape)
    if channels not in (1, 3):
        raise InvalidInputError(f"input_shape must have 1 or 3 channels, got {channels}")
    converted = image.convert("L" if channels == 1 else "RGB")
    if converted.size != (width, height):
        converted = converted.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(converted, dtype=np.uint8)


def pack_arrays(images: NDArray[np.uint8], labels: NDArray[np.integer[Any]]) -> bytes:
    """``images`` and ``labels`` as a NumPy archive (the format the training job reads)."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise InvalidInputError(
            f"images must be uint8 N×H×W or N×H×W×C, got {images.dtype} {images.shape}"
        )
    if (
        labels.ndim != 1
        or len(labels) != len(images)
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise InvalidInputError(
            f"labels must be one integer per image, got {labels.dtype} {labels.shape} for "
            f"{len(images)} images"
        )
    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=labels.astype(np.int64))
    return buffer.getvalue()


def unpack_arrays(data: bytes, *, what: str) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The inverse of :func:`pack_arrays`, strict about dtypes and shapes."""
    if len(data) > _MAX_ARCHIVE_BYTES:
        raise InvalidInputError(f"{what} is {len(data)} bytes, over the 1 GiB limit")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            images = np.asarray(archive["images"])
            labels = np.asarray(archive["labels"])
    except (KeyError, ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{what} is not an archive of images and labels: {exc}") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or labels.shape != (len(images),):
        raise InvalidInputError(
            f"{what}: expected uint8 images and one label per image, got {images.dtype} "
            f"{images.shape} and labels {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{what}: labels must be integers, got {labels.dtype}")
    return images, labels.astype(np.int64)


def check_validation_set(archive: bytes, input_shape: Sequence[int], classes: int) -> None:
    """Refuse a validation set a node cannot score a model on: not an archive of images and
    labels, images of another shape than the spec's input, or labels outside the classes.
    The consumer runs it before proposing; the node again before training."""
    images, labels = unpack_arrays(archive, what="the validation set")
    channels, height, width = (int(v) for v in input_shape)
    want = (height, width) if channels == 1 else (height, width, channels)
    if tuple(images.shape[1:]) != want:
        raise InvalidInputError(
            f"the validation images are {tuple(images.shape[1:])}; the spec's input_shape "
            f"{list(input_shape)} needs {want}"
        )
    if len(labels) and not (int(labels.min()) >= 0 and int(labels.max()) < classes):
        raise InvalidInputError(
            f"validation labels span {int(labels.min())}..{int(labels.max())}, outside the "
            f"{classes} classes"
        )


def load_labelled_directory(
    root: str | os.PathLike[str], classes: Sequence[str], input_shape: Sequence[int]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Images and ``labels.csv`` from ``root`` (the layout ``visdm asset add`` reads) as arrays;
    labels become indexes into ``classes``. A label outside ``classes`` is an error."""
    report = validate_directory(root)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({s.label for s in report.accepted} - set(index))
    if unknown:
        raise InvalidInputError(
            f"{root}: labels {', '.join(map(repr, unknown[:5]))} are not among the proposal's "
            f"classes ({', '.join(classes)})"
        )
    images = [
        image_to_array(decode_image(s.path.read_bytes(), name=s.name).image, input_shape)
        for s in report.accepted
    ]
    labels = np.array([index[s.label] for s in report.accepted], dtype=np.int64)
    return np.stack(images), labels


@dataclass(frozen=True, slots=True)
class SealedValidationSet:
    ciphertext: bytes
    plaintext_hash: bytes
    wrapped_key: bytes
    samples: int


def seal_validation_set(archive: bytes, node_encryption_key: bytes) -> SealedValidationSet:
    """Encrypt the archive under a fresh key sealed to the node's X25519 public key."""
    images, _ = unpack_arrays(archive, what="the validation set")
    key = generate_data_key()
    return SealedValidationSet(
        ciphertext=encrypt_blob(key, archive, aad=_AAD),
        plaintext_hash=bytes(keccak(archive)),
        wrapped_key=wrap_key(key, node_encryption_key),
        samples=len(images),
    )


def open_validation_set(ciphertext: bytes, data_key: bytes, expected_hash: bytes) -> bytes:
    """Decrypt and check the archive against the hash committed on chain."""
    archive = decrypt_blob(data_key, ciphertext, aad=_AAD)
    if keccak(archive) != expected_hash:
        raise InvalidInputError(
            "the decrypted validation set does not match the validationSetHash committed on chain"
        )
    return archive
