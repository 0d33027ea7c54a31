"""Per-sample public metadata: what a consumer may learn about an image without seeing it.

Design section 3.2 step 7 lists the fields; this module fixes their exact definitions so that
two nodes describing the same bytes publish the same numbers:

* ``width``, ``height``; ``channels`` = number of bands of the decoded image (``L`` 1, ``LA`` 2,
  ``RGB`` 3, ``RGBA``/``CMYK`` 4, palette ``P`` 1); ``mode`` = Pillow's mode; ``format`` =
  the container Pillow detected (``PNG``, ``JPEG``, ``WEBP``, ``BMP``); ``byte_size`` = length
  of the plaintext file;
* ``histogram``: 16 equal bins (``value >> 4``) per channel, each normalised to sum to 1. Colour
  images (``RGB``, ``RGBA``, ``P``, ``CMYK``, ``YCbCr``…) are converted with Pillow to ``RGB``
  and give channels ``R, G, B``; grey images (``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``) give
  one channel ``L``. Alpha is not histogrammed;
* ``brightness`` / ``contrast``: mean and population standard deviation of the luma
  ``Y = convert("L")`` (ITU-R 601-2, Pillow's fixed-point weights), on 0..255;
* ``blur``: variance of the 4-neighbour Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` of the luma in
  float64 with mirrored borders (reflect-101) — what OpenCV's ``Laplacian(gray, CV_64F).var()``
  returns (Pech-Pacheco et al., ICPR 2000). Low values mean blurry or flat images;
* ``phash``: the 64-bit pHash, bit-compatible with ``imagehash.phash`` (see :mod:`._phash`);
* ``copyHash``: the 168-bit copy hash (:mod:`._copyhash`, ``visdm-copyhash/1``) that
  near-duplicate links are made with: unlike the pHash it follows the image through flips,
  90° rotations, crops and contrast changes.

Luma, pHash and copy hash are computed from the same ``convert("L")`` array, and the pHashes
of a batch are computed together.

**Document format.** ``visdm-metadata/1`` grew four optional fields, all additions a reader
that ignores unknown keys skips: ``copyHash`` per sample (42 lower-case hex digits),
``transform`` per duplicate link (``0..7``, the dihedral transform that maps the other sample
onto this one; absent on a link made by pHash), and ``copyLinking`` at the top
(``{"descriptor": "visdm-copyhash/1", "keyRadius": 9, "radius": 21}``: how the links were
made; absent when they were made by pHash radius alone), and ``cluster`` per sample (the
``0x`` id of the first sample of its near-duplicate cluster, :mod:`._linkindex`; a node that
writes it keeps only the nearest links of each sample). A document without them is one
written before copy hashes: its links are pHash links within ``duplicateRadius``.
:func:`read_copy_hash`, :func:`read_link_transform` and :func:`read_copy_linking` check the
three fields of a parsed document, :func:`read_cluster` the fourth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils.crypto import keccak
from numpy.typing import NDArray
from PIL import Image

from visdm.errors import InvalidInputError
from visdm.types import PHash, SampleId

from ._copyhash import (
    COPY_HASH_BITS,
    COPY_HASH_VERSION,
    CopyHash,
    CopyProbe,
    copy_hash_from_hex,
    copy_hash_to_hex,
    copy_probes,
)
from ._hamming import DEFAULT_DUPLICATE_RADIUS
from ._phash import gray_stacks, phash_from_grids, phash_to_hex
from ._resample import lanczos_resize_stack

__all__ = [
    "HISTOGRAM_BINS",
    "METADATA_FORMAT",
    "AssetMetadata",
    "CopyLinking",
    "DuplicateLink",
    "ImageMetadata",
    "SampleMetadata",
    "describe_images",
    "laplacian_variance",
    "read_cluster",
    "read_copy_hash",
    "read_copy_linking",
    "read_link_transform",
]

#: bins per channel in the colour histograms
HISTOGRAM_BINS = 16
#: version tag of the metadata document
METADATA_FORMAT = "visdm-metadata/1"
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


@dataclass(frozen=True, slots=True)
class ImageMetadata:
    """What can be said about one decoded image (see the module docstring for definitions)."""

    width: int
    height: int
    channels: int
    mode: str
    format: str | None
    byte_size: int | None
    histogram_channels: str
    histogram: tuple[tuple[float, ...], ...]
    phash: PHash
    brightness: float
    contrast: float
    blur: float
    #: the copy hash (``None`` for an image described before copy hashes existed)
    copy_hash: CopyHash | None = None
    #: the pixels the node matches copies with; never published, not part of equality
    probe: CopyProbe | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the pHash as imagehash's 16-digit hex string, the copy hash as
        42 hex digits (left out when there is none). The probe is never included."""
        extra = {} if self.copy_hash is None else {"copyHash": copy_hash_to_hex(self.copy_hash)}
        return {
            **extra,
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "mode": self.mode,
            "format": self.format,
            "byteSize": self.byte_size,
            "histogramChannels": self.histogram_channels,
            "histogram": [list(h) for h in self.histogram],
            "phash": phash_to_hex(self.phash),
            "brightness": self.brightness,
            "contrast": self.contrast,
            "blur": self.blur,
        }


@dataclass(frozen=True, slots=True)
class SampleMetadata:
    """One accepted sample of an asset: its position, id, label and image metadata."""

    index: int
    sample_id: SampleId
    label: str
    image: ImageMetadata
    #: the near-duplicate cluster (its first sample) the node put the sample in; ``None`` in
    #: a document written before clusters (then the field is left out)
    cluster: SampleId | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.cluster is None else {"cluster": "0x" + bytes(self.cluster).hex()}
        return {
            **extra,
            "index": self.index,
            "sampleId": "0x" + bytes(self.sample_id).hex(),
            "label": self.label,
            **self.image.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class DuplicateLink:
    """``sample_id`` (new) is a near-duplicate of ``other_id`` (active before it, or earlier in
    the same asset): ``distance`` bits apart — of the copy hash after refinement when
    ``transform`` (the dihedral transform mapping ``other_id`` onto ``sample_id``) is set, of
    the pHash when it is ``None``."""

    sample_id: SampleId
    other_id: SampleId
    distance: int
    transform: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sampleId": "0x" + bytes(self.sample_id).hex(),
            "otherId": "0x" + bytes(self.other_id).hex(),
            "distance": self.distance,
        }
        if self.transform is not None:
            out["transform"] = self.transform
        return out


@dataclass(frozen=True, slots=True)
class CopyLinking:
    """How a document's copy links were made: the descriptor and the two radii
    (:mod:`._copyindex`)."""

    key_radius: int
    radius: int
    descriptor: str = COPY_HASH_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"descriptor": self.descriptor, "keyRadius": self.key_radius, "radius": self.radius}


@dataclass(frozen=True, slots=True)
class AssetMetadata:
    """The metadata document a node publishes for an asset (then attests its hash on chain).

    ``rejected`` lists ``(index, reason)`` for samples that failed to decrypt or decode.
    """

    manifest_hash: bytes
    samples: tuple[SampleMetadata, ...]
    links: tuple[DuplicateLink, ...]
    rejected: tuple[tuple[int, str], ...] = field(default=())
    radius: int = DEFAULT_DUPLICATE_RADIUS
    #: set when the links were made with copy hashes (``None``: by pHash radius alone)
    copy_linking: CopyLinking | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.copy_linking is None else {"copyLinking": self.copy_linking.to_dict()}
        return {
            **extra,
            "format": METADATA_FORMAT,
            "manifestHash": "0x" + bytes(self.manifest_hash).hex(),
            "duplicateRadius": self.radius,
            "samples": [s.to_dict() for s in self.samples],
            "duplicateLinks": [link.to_dict() for link in self.links],
            "rejected": [{"index": i, "reason": r} for i, r in self.rejected],
        }

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, UTF-8 (floats in Python's shortest
        round-trip form), so the same metadata always hashes the same."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    @property
    def metadata_hash(self) -> bytes:
        """``keccak256`` of :meth:`to_json` (what ``attestMetadata`` commits)."""
        return bytes(keccak(self.to_json()))


def describe_images(
    images: Sequence[Image.Image],
    *,
    byte_sizes: Sequence[int | None] | None = None,
    formats: Sequence[str | None] | None = None,
) -> list[ImageMetadata]:
    """Describe decoded images; pHashes of the whole batch are computed together.

    ``formats`` default to each image's ``format`` attribute (set by ``Image.open``).
    """
    n = len(images)
    sizes = list(byte_sizes) if byte_sizes is not None else [None] * n
    kinds = list(formats) if formats is not None else [getattr(i, "format", None) for i in images]
    if len(sizes) != n or len(kinds) != n:
        raise InvalidInputError(f"{n} images but {len(sizes)} byte sizes and {len(kinds)} formats")
    grays: list[NDArray[np.uint8]] = [np.zeros((0, 0), dtype=np.uint8)] * n
    grids = np.empty((n, 32, 32), dtype=np.uint8)
    for positions, stack in gray_stacks(images):
        grids[positions] = lanczos_resize_stack(stack, 32, 32)
        for position, gray in zip(positions, stack, strict=True):
            grays[position] = gray
    hashes = phash_from_grids(grids)
    probes = copy_probes(grays)
    out = []
    for image, gray, phash, probe, size, kind in zip(
        images, grays, hashes, probes, sizes, kinds, strict=True
    ):
        channels, histogram = _histogram(image, gray)
        luma = gray.astype(np.float64)
        out.append(
            ImageMetadata(
                width=image.width,
                height=image.height,
                channels=len(image.getbands()),
                mode=image.mode,
                format=kind,
                byte_size=size,
                histogram_channels=channels,
                histogram=histogram,
                phash=PHash(int(phash)),
                brightness=float(luma.mean()),
                contrast=float(luma.std()),
                blur=laplacian_variance(luma),
                copy_hash=probe.copy_hash,
                probe=probe,
            )
        )
    return out


def _histogram(
    image: Image.Image, gray: NDArray[np.uint8]
) -> tuple[str, tuple[tuple[float, ...], ...]]:
    if image.mode in _GREY_MODES:
        planes = [gray]
        names = "L"
    else:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        pixels = np.frombuffer(rgb.tobytes(), dtype=np.uint8).reshape(-1, 3)
        planes = [pixels[:, c] for c in range(3)]
        names = "RGB"
    shift = 8 - (HISTOGRAM_BINS.bit_length() - 1)
    hist = []
    for plane in planes:
        counts = np.bincount((plane.reshape(-1) >> shift), minlength=HISTOGRAM_BINS)
        hist.append(tuple(float(c) for c in counts / plane.size))
    return names, tuple(hist)


def laplacian_variance(luma: NDArray[np.float64]) -> float:
    """Variance of the 4-neighbour Laplacian with reflect-101 borders (OpenCV's default)."""
    if luma.ndim != 2 or luma.size == 0:
        raise InvalidInputError(f"need a non-empty 2-D luma array, got shape {luma.shape}")
    padded = luma
    for axis in (0, 1):
        widths = [(0, 0), (0, 0)]
        widths[axis] = (1, 1)
        # reflect-101 needs two pixels; a one-pixel axis mirrors onto itself
        padded = np.pad(padded, widths, mode="reflect" if luma.shape[axis] > 1 else "edge")
    lap = (
        padded[:-2, 1:-1]
        + padded[2:, 1:-1]
        + padded[1:-1, :-2]
        + padded[1:-1, 2:]
        - 4.0 * padded[1:-1, 1:-1]
    )
    return float(lap.var())


# --- reading the copy fields of a parsed document --------------------------------------------
def read_copy_hash(
    sample: Mapping[str, object], *, where: str = "metadata sample"
) -> CopyHash | None:
    """A sample's ``copyHash``, or ``None`` when the document predates copy hashes."""
    if "copyHash" not in sample:
        return None
    try:
        return copy_hash_from_hex(sample["copyHash"])
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def read_cluster(sample: Mapping[str, object], *, where: str = "metadata sample") -> str | None:
    """A sample's ``cluster`` as a lower-case ``0x`` id, or ``None`` when the document has
    none."""
    if "cluster" not in sample:
        return None
    value = sample["cluster"]
    if (
        not isinstance(value, str)
        or len(value) != 66
        or not value.startswith("0x")
        or any(c not in "0123456789abcdef" for c in value[2:])
    ):
        raise InvalidInputError(
            f"{where}: cluster must be a sample id (0x and 64 lower-case hex digits), "
            f"got {_shown(value)}"
        )
    return value


def read_link_transform(link: Mapping[str, object], *, where: str = "duplicate link") -> int | None:
    """A link's ``transform`` (``0..7``), or ``None`` for a link made by pHash."""
    if "transform" not in link:
        return None
    value = link["transform"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 7:
        raise InvalidInputError(
            f"{where}: transform must be an integer 0..7 (a dihedral transform), "
            f"got {_shown(value)}"
        )
    return value


def read_copy_linking(document: Mapping[str, object]) -> CopyLinking | None:
    """The document's ``copyLinking``, or ``None`` when its links were made by pHash alone.

    Only descriptor ``visdm-copyhash/1`` is known; another is refused, so that a reader never
    compares hashes of two different definitions.
    """
    if "copyLinking" not in document:
        return None
    value = document["copyLinking"]
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"copyLinking must be an object, got {type(value).__name__}")
    descriptor = value.get("descriptor")
    if descriptor != COPY_HASH_VERSION:
        raise InvalidInputError(
            f"copyLinking names descriptor {_shown(descriptor)}; this reader knows only "
            f"{COPY_HASH_VERSION!r}: upgrade visdm to read it"
        )
    radii = []
    for key, high in (("keyRadius", 63), ("radius", COPY_HASH_BITS)):
        radius = value.get(key)
        if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= high:
            raise InvalidInputError(
                f"copyLinking.{key} must be an integer 0..{high}, got {_shown(radius)}"
            )
        radii.append(radius)
    return CopyLinking(key_radius=radii[0], radius=radii[1])


def _shown(value: object) -> str:
    """A value for a one-line message: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
