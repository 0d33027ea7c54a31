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
* ``phash``: the 64-bit pHash, bit-compatible with ``imagehash.phash`` (see :mod:`._phash`).

Luma and pHash are computed from the same ``convert("L")`` array, and the pHashes of a batch
are computed together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils.crypto import keccak
from numpy.typing import NDArray
from PIL import Image

from visdm.errors import InvalidInputError
from visdm.types import PHash, SampleId

from ._hamming import DEFAULT_DUPLICATE_RADIUS
from ._phash import gray_stacks, phash_from_grids, phash_to_hex
from ._resample import lanczos_resize_stack

__all__ = [
    "HISTOGRAM_BINS",
    "METADATA_FORMAT",
    "AssetMetadata",
    "DuplicateLink",
    "ImageMetadata",
    "SampleMetadata",
    "describe_images",
    "laplacian_variance",
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the pHash as imagehash's 16-digit hex string."""
        return {
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "sampleId": "0x" + bytes(self.sample_id).hex(),
            "label": self.label,
            **self.image.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class DuplicateLink:
    """``sample_id`` (new) is within ``distance`` bits of ``other_id`` (active before it, or
    earlier in the same asset)."""

    sample_id: SampleId
    other_id: SampleId
    distance: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampleId": "0x" + bytes(self.sample_id).hex(),
            "otherId": "0x" + bytes(self.other_id).hex(),
            "distance": self.distance,
        }


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

    def to_dict(self) -> dict[str, Any]:
        return {
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
    out = []
    for image, gray, phash, size, kind in zip(images, grays, hashes, sizes, kinds, strict=True):
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
