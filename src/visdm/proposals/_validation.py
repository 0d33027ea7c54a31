"""The consumer's validation set: images → arrays, a strict NumPy archive, sealed to the node.

The archive holds ``images`` (uint8, ``N×H×W`` or ``N×H×W×C``) and ``labels`` (int64 class
indexes into the proposal's class list). It is read by :func:`unpack_arrays`, never by
``np.load``: the zip directory and ``.npy`` headers first, so that a hostile archive can neither
run code (no object arrays) nor make the reader allocate more than its declared, bounded and
checked sizes; the node reads it only inside its sandbox. ``validationSetHash`` on chain is
keccak256 of the archive's bytes; the archive is stored encrypted under a fresh data key sealed
to the node's X25519 key, so only the node (and the consumer) ever see it.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tokenize
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from numpy.lib import format as npy_format
from numpy.typing import NDArray
from PIL import Image

from visdm.crypto import decrypt_blob, encrypt_blob, generate_data_key, wrap_key
from visdm.errors import InvalidInputError, NoValidSamplesError
from visdm.ingest import decode_image, validate_directory

__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_VALIDATION_SAMPLES",
    "MIN_VALIDATION_SAMPLES",
    "ArrayHeader",
    "LabelledDirectory",
    "SealedValidationSet",
    "check_validation_set",
    "image_to_array",
    "load_labelled_directory",
    "open_validation_set",
    "pack_arrays",
    "read_array_headers",
    "read_validation_set",
    "seal_validation_set",
    "unpack_arrays",
    "validation_aad",
]

_AAD_LABEL = b"visdm/validation-set/v2"
_MAX_ARCHIVE_BYTES = 1 << 30
#: most samples a validation set may hold: a thousand per class of a 100-class task
MAX_VALIDATION_SAMPLES = 100_000
#: fewest samples a model is scored on (also after the node's screening of the set)
MIN_VALIDATION_SAMPLES = 10
#: most bytes an archive's arrays may declare, decompressed: a compressed member (deflate)
#: can declare far more than the archive's own size, so this is checked apart from it
MAX_ARRAY_BYTES = 1 << 30
_MEMBERS = ("images.npy", "labels.npy")
# the zip end-of-directory record, the ZIP64 locator before it, and a generous bound on the
# directory of two members (each entry is 46 bytes plus its name and extra fields)
_END_SIG = b"PK\x05\x06"
_END_SIZE = 22
_ZIP64_SIG = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_MAX_DIRECTORY_BYTES = 4096
_READ_CHUNK = 16 << 20
# what zipfile and NumPy's header parser (tokenize, then ast.literal_eval) raise on garbage
_HEADER_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    ValueError,
    TypeError,
    KeyError,
    OSError,
    EOFError,
    SyntaxError,
    tokenize.TokenError,
    RecursionError,
    zlib.error,  # a deflated member whose stream is corrupt, met while reading its header
)


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


def unpack_arrays(
    data: bytes,
    *,
    what: str,
    input_shape: Sequence[int] | None = None,
    max_samples: int = MAX_VALIDATION_SAMPLES,
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The inverse of :func:`pack_arrays`, strict about dtypes and shapes.

    Memory is bounded before anything is allocated: the archive's zip directory and both
    ``.npy`` headers are read first (:func:`read_array_headers`), and an archive declaring more
    than ``max_samples`` images, more than :data:`MAX_ARRAY_BYTES` of arrays, images of another
    layout than ``input_shape`` (``(C, H, W)``, when given), or sizes its members do not hold is
    refused unread.
    """
    if len(data) > _MAX_ARCHIVE_BYTES:
        raise InvalidInputError(f"{what} is {len(data)} bytes, over the 1 GiB limit")
    headers = read_array_headers(data, what=what)
    images, labels = headers["images"], headers["labels"]
    if (
        images.dtype != np.uint8
        or len(images.shape) not in (3, 4)
        or labels.shape != (images.shape[0],)
    ):
        raise InvalidInputError(
            f"{what}: expected uint8 images and one label per image, got {images.dtype} "
            f"{images.shape} and labels {labels.shape}"
        )
    if labels.dtype.kind not in "iu":
        raise InvalidInputError(f"{what}: labels must be integers, got {labels.dtype}")
    if input_shape is not None:
        channels, height, width = (int(v) for v in input_shape)
        want = (height, width) if channels == 1 else (height, width, channels)
        if images.shape[1:] != want:
            raise InvalidInputError(
                f"{what}: the images are {images.shape[1:]}; the spec's input_shape "
                f"{list(input_shape)} needs {want}"
            )
    if images.shape[0] > max_samples:
        raise InvalidInputError(
            f"{what} declares {images.shape[0]:,} samples, over the limit of {max_samples:,}: "
            "send fewer"
        )
    if images.nbytes + labels.nbytes > MAX_ARRAY_BYTES:
        raise InvalidInputError(
            f"{what} declares {images.nbytes + labels.nbytes:,} bytes of arrays, over the "
            f"{MAX_ARRAY_BYTES:,}-byte limit: send fewer or smaller images"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        x = _read_array(archive, images, what=what)
        y = _read_array(archive, labels, what=what)
    return x, y.astype(np.int64)


def read_validation_set(
    archive: bytes, input_shape: Sequence[int], classes: int
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The validation set's images and labels, or :class:`~visdm.errors.InvalidInputError`
    when a node cannot score a model on it: not an archive of images and labels, declared
    sizes over the limits or disagreeing with the archive, images of another shape than the
    spec's input, fewer than :data:`MIN_VALIDATION_SAMPLES` samples, or labels outside the
    classes."""
    images, labels = unpack_arrays(archive, what="the validation set", input_shape=input_shape)
    if len(labels) < MIN_VALIDATION_SAMPLES:
        raise InvalidInputError(
            f"the validation set holds {len(labels)} samples; a model is scored on at least "
            f"{MIN_VALIDATION_SAMPLES}"
        )
    if not (int(labels.min()) >= 0 and int(labels.max()) < classes):
        raise InvalidInputError(
            f"validation labels span {int(labels.min())}..{int(labels.max())}, outside the "
            f"{classes} classes"
        )
    return images, labels


def check_validation_set(archive: bytes, input_shape: Sequence[int], classes: int) -> None:
    """Refuse a validation set a node cannot score a model on (see
    :func:`read_validation_set`). The consumer runs it before proposing; the node's sandboxed
    training job reads the set with the same rules."""
    read_validation_set(archive, input_shape, classes)


@dataclass(frozen=True, slots=True)
class ArrayHeader:
    """What one ``.npy`` member of an archive declares, checked against the zip directory."""

    #: the member's name without ``.npy``
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool
    #: where the array's bytes start inside the (uncompressed) member
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_array_headers(data: bytes, *, what: str) -> dict[str, ArrayHeader]:
    """The declared ``images`` and ``labels`` arrays of a :func:`pack_arrays` archive, read
    from the zip directory and the ``.npy`` headers alone — no array is read.

    Refuses (:class:`~visdm.errors.InvalidInputError`) what is not such an archive: a zip
    directory larger than two entries need (checked from the end record before the directory is
    parsed), other or repeated members, a compression other than none or deflate, an object
    dtype, or a header whose declared size disagrees with the member's size in the directory
    (a lying header).
    """
    _check_end_record(data, what)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = sorted(info.filename for info in infos)
            if names != sorted(_MEMBERS):
                raise InvalidInputError(
                    f"{what} is not an archive of images and labels: it holds "
                    f"{', '.join(map(repr, names[:5])) or 'nothing'}, expected "
                    f"{' and '.join(_MEMBERS)}"
                )
            return {
                info.filename.removesuffix(".npy"): _read_header(archive, info, what)
                for info in infos
            }
    except InvalidInputError:
        raise
    except _HEADER_ERRORS as exc:
        raise InvalidInputError(f"{what} is not an archive of images and labels: {exc}") from None
    except NotImplementedError as exc:  # an encrypted or exotic member
        raise InvalidInputError(f"{what}: {exc}") from None


def _check_end_record(data: bytes, what: str) -> None:
    """Bound the zip directory before :mod:`zipfile` parses it: find the end record where
    ``zipfile`` looks for it and refuse ZIP64 or a directory over ``_MAX_DIRECTORY_BYTES``."""
    if (
        len(data) >= _END_SIZE
        and data[-_END_SIZE : -_END_SIZE + 4] == _END_SIG
        and (data[-2:] == b"\x00\x00")
    ):
        at = len(data) - _END_SIZE
    else:  # an archive comment: zipfile takes the last signature in the last 64 KiB
        first = max(0, len(data) - (1 << 16) - _END_SIZE)
        at = data.rfind(_END_SIG, first)
    if at < 0 or len(data) - at < _END_SIZE:
        raise InvalidInputError(f"{what} is not an archive of images and labels: no zip directory")
    _, _, _, entries, size, _ = struct.unpack("<HHHHII", data[at + 4 : at + 20])
    zip64 = at >= _ZIP64_LOCATOR_SIZE and data[at - _ZIP64_LOCATOR_SIZE : at - 16] == _ZIP64_SIG
    if zip64 or entries != len(_MEMBERS) or size > _MAX_DIRECTORY_BYTES:
        raise InvalidInputError(
            f"{what} is not an archive of images and labels: its zip directory declares "
            f"{'ZIP64 sizes' if zip64 else f'{entries} entries in {size} bytes'}"
        )


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> ArrayHeader:
    name = info.filename.removesuffix(".npy")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InvalidInputError(f"{what}: {name} uses zip compression {info.compress_type}")
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(member)
        else:
            raise InvalidInputError(f"{what}: {name} is .npy format {version}, expected 1.0 or 2.0")
        header = ArrayHeader(name, tuple(shape), dtype, bool(fortran), member.tell())
    if dtype.hasobject or any(d < 0 for d in header.shape):
        raise InvalidInputError(f"{what}: {name} declares {dtype} {header.shape}; send numbers")
    if header.offset + header.nbytes != info.file_size:
        raise InvalidInputError(
            f"{what}: the header of {name} declares {header.shape} {dtype} "
            f"({header.nbytes:,} bytes) but the member holds "
            f"{info.file_size - header.offset:,}: the archive is corrupt or its header lies"
        )
    return header


def _read_array(archive: zipfile.ZipFile, header: ArrayHeader, *, what: str) -> NDArray[Any]:
    """Read one member into an array of its (already checked) declared size, in chunks."""
    out = np.empty(header.shape, dtype=header.dtype, order="F" if header.fortran_order else "C")
    flat = out.reshape(-1, order="A").view(np.uint8)  # a view: out is contiguous
    try:
        with archive.open(f"{header.name}.npy") as member:
            member.seek(header.offset)
            done = 0
            while done < header.nbytes:
                chunk = member.read(min(_READ_CHUNK, header.nbytes - done))
                if not chunk:
                    break
                flat[done : done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                done += len(chunk)
            if done != header.nbytes or member.read(1):  # the last read checks the CRC too
                raise InvalidInputError(
                    f"{what}: {header.name} holds {done:,} bytes where its header declares "
                    f"{header.nbytes:,}: the archive is corrupt"
                )
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{what}: {header.name} cannot be read: {exc}") from None
    return out


@dataclass(frozen=True, slots=True)
class LabelledDirectory:
    """A validation directory read as arrays, with what was left out of it and why."""

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]
    #: the class names ``labels`` index, in order
    classes: tuple[str, ...]
    #: files found in the directory (``labels.csv`` not counted)
    files: int
    #: each file left out, with its reason (no label, not an image, a copy of another, ...)
    skipped: tuple[tuple[str, str], ...]

    def summary(self) -> str:
        """One line: how many files score the model, and why the others do not."""
        line = f"validation set: {len(self.labels):,} of {self.files:,} files scored"
        return line + (f"; {_skip_reasons(self.skipped)}" if self.skipped else "")


def _skip_reasons(skipped: Sequence[tuple[str, str]]) -> str:
    """``5,998 skipped (5,990 no label; 8 not an image, e.g. a.png: not an image: ...)``."""
    kinds = Counter(reason.split(":", 1)[0].split(" as ", 1)[0][:60] for _, reason in skipped)
    common = "; ".join(f"{count:,} {kind}" for kind, count in kinds.most_common(3))
    more = "; ..." if len(kinds) > 3 else ""
    name, reason = skipped[0]
    return f"{len(skipped):,} skipped ({common}{more}; e.g. {name}: {reason[:120]})"


def load_labelled_directory(
    root: str | os.PathLike[str],
    classes: Sequence[str] | None,
    input_shape: Sequence[int],
    *,
    min_samples: int = MIN_VALIDATION_SAMPLES,
) -> LabelledDirectory:
    """Images and ``labels.csv`` from ``root`` (the layout ``visdm asset add`` reads) as arrays;
    labels become indexes into ``classes`` (default: the labels found, sorted). A label outside
    ``classes`` is an error.

    Only labelled, decodable, distinct images can score a model, so the set can be much smaller
    than the folder: the result says how many files were used and why the others were not, and
    fewer than ``min_samples`` usable images is refused with those counts — an accuracy
    threshold measured on a handful of images would decide a round by chance.
    """
    try:
        report = validate_directory(root)
    except NoValidSamplesError as exc:
        found = getattr(exc, "report", None)
        rejected = [(r.name, r.reason) for r in found.rejected] if found is not None else []
        detail = f": {_skip_reasons(rejected)}" if rejected else ""
        raise InvalidInputError(
            f"validation directory {root} has no image that can score a model{detail}; a "
            f"validation set needs at least {min_samples} labelled images (rows "
            "'filename,label' in its labels.csv)"
        ) from None
    skipped = tuple((r.name, r.reason) for r in report.rejected)
    files = len(report.accepted) + len(skipped)
    if len(report.accepted) < min_samples:
        raise InvalidInputError(
            f"validation directory {root}: only {len(report.accepted):,} of {files:,} files "
            f"can score a model ({_skip_reasons(skipped) if skipped else 'no others'}); a "
            f"validation set needs at least {min_samples}: label more images in its labels.csv"
        )
    names = tuple(classes) if classes is not None else report.labels
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({s.label for s in report.accepted} - set(index))
    if unknown:
        raise InvalidInputError(
            f"{root}: labels {', '.join(map(repr, unknown[:5]))} are not among the proposal's "
            f"classes ({', '.join(names)})"
        )
    images = [
        image_to_array(decode_image(s.path.read_bytes(), name=s.name).image, input_shape)
        for s in report.accepted
    ]
    labels = np.array([index[s.label] for s in report.accepted], dtype=np.int64)
    return LabelledDirectory(np.stack(images), labels, names, files, skipped)


@dataclass(frozen=True, slots=True)
class SealedValidationSet:
    ciphertext: bytes
    plaintext_hash: bytes
    wrapped_key: bytes
    samples: int


def validation_aad(
    *,
    chain_id: int,
    market: str,
    consumer: str,
    node: str,
    selection_root: bytes,
    model_spec_hash: bytes,
) -> bytes:
    """The associated data that binds a sealed validation set to one proposal: its chain,
    market, consumer, node, selection and spec. Another consumer (or another proposal) that
    points at the same ciphertext and wrapped key gets an authentication failure, not a
    validation set it did not make."""
    binding = abi_encode(
        ["uint256", "address", "address", "address", "bytes32", "bytes32"],
        [
            chain_id,
            to_checksum_address(market),
            to_checksum_address(consumer),
            to_checksum_address(node),
            selection_root,
            model_spec_hash,
        ],
    )
    return _AAD_LABEL + bytes(keccak(binding))


def seal_validation_set(
    archive: bytes, node_encryption_key: bytes, *, aad: bytes
) -> SealedValidationSet:
    """Encrypt the archive under a fresh key sealed to the node's X25519 public key, bound to
    its proposal by ``aad`` (:func:`validation_aad`)."""
    images, _ = unpack_arrays(archive, what="the validation set")
    key = generate_data_key()
    return SealedValidationSet(
        ciphertext=encrypt_blob(key, archive, aad=aad),
        plaintext_hash=bytes(keccak(archive)),
        wrapped_key=wrap_key(key, node_encryption_key),
        samples=len(images),
    )


def open_validation_set(
    ciphertext: bytes, data_key: bytes, expected_hash: bytes, *, aad: bytes
) -> bytes:
    """Decrypt (for the proposal ``aad`` names) and check the archive against the hash
    committed on chain."""
    archive = decrypt_blob(data_key, ciphertext, aad=aad)
    if keccak(archive) != expected_hash:
        raise InvalidInputError(
            "the decrypted validation set does not match the validationSetHash committed on chain"
        )
    return archive
