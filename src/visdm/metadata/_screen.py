"""Screen a consumer's validation set before it may score anyone (design section 7).

KNN-Shapley (design section 4) pays a training sample for being the near neighbour of
validation samples of its own label. A consumer therefore controls who is paid through its
validation set: filled with copies of a friend's selected images, the set makes those images
the nearest neighbours of everything and moves the data price to the friend. The node's
sandbox screens the set, before training, in three steps:

1. **exact duplicates** — a sample whose pixels equal an earlier sample's is dropped;
2. **near-duplicates** — a sample whose pHash, or the pHash of any of its 8 flips and 90°
   rotations (the dihedral group D4), lies within ``radius`` bits of the pHash of an earlier
   *kept* sample (or of any of its transforms), or that is a copy of an earlier kept sample by
   copy hash (:mod:`._copyindex`: flips, rotations, crops up to 10 %, contrast and saturation
   changes), is dropped: the first of each group is kept;
3. **near a selected sample** — a sample whose pHash, or that of any of its 8 transforms, lies
   within ``radius`` bits of a selected training sample's pHash, or that is a copy of a
   selected sample by copy hash (when the selected samples' copy hashes are given:
   :func:`array_copy_hashes`), is dropped.

What remains scores the model and the samples; fewer than
``max(min_samples, ceil(min_share × given))`` left is the consumer's fault (the node refuses
the set). Hashes are :mod:`._phash`'s (equal to ``imagehash.phash``) of the images *in the
model's input layout* on both sides, so that a validation image and a training image are
compared at the same resolution; the pairs are found by :func:`._hamming.find_duplicate_pairs`,
exactly (the same pairs a linear scan finds).

The radius is :data:`VALIDATION_SCREEN_RADIUS` (4 bits), tighter than the marketplace's
duplicate radius (8): copies that steer — repeats, flips, rotations, re-encodings, brightness
changes — land within 2–4 bits, while on small, centred, grey images such as Fashion-MNIST's
28×28 pHash is coarse and distinct images of one class often lie within 8. Measured on 500
Fashion-MNIST test images screened against 1,200 selected training images: radius 8 dropped 39 %
of an honest set, radius 4 dropped 8 %, and both dropped every one of 50 steering copies
(``benchmarks/valuation.py`` measures the steering gain).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from visdm.errors import InvalidInputError

from ._copyhash import copy_hash_words, copy_probes
from ._copyindex import DEFAULT_COPY_KEY_RADIUS, DEFAULT_COPY_RADIUS, find_copy_links
from ._hamming import HashesLike, _as_hashes, find_duplicate_pairs
from ._phash import phash_from_grids
from ._resample import lanczos_resize_stack

__all__ = [
    "DIHEDRAL_TRANSFORMS",
    "VALIDATION_SCREEN_RADIUS",
    "ValidationScreen",
    "array_copy_hashes",
    "array_phashes",
    "dihedral_phashes",
    "minimum_validation_samples",
    "screen_validation_set",
]

#: the screen's Hamming radius (see the module docstring for why it is tighter than 8)
VALIDATION_SCREEN_RADIUS = 4
#: the flips and 90° rotations each validation sample is hashed under (identity first)
DIHEDRAL_TRANSFORMS = 8
_GRID = 32
# pixels per chunk: the resize and the luma work on float64 / uint32 copies of a chunk, so a
# chunk of large images must hold fewer of them (4 Mi pixels: 32 MiB of float64)
_CHUNK_PIXELS = 1 << 22
# ITU-R 601-2 luma in Pillow's fixed point: Image.convert("L") computes exactly this
_LUMA = (19595, 38470, 7471)


@dataclass(frozen=True, slots=True)
class ValidationScreen:
    """Which validation samples may score, and why the others may not."""

    #: positions of the kept samples in the given set, ascending
    keep: NDArray[np.int64]
    given: int
    #: exact or near-duplicates of an earlier kept sample of the set
    duplicates: int
    #: of the rest, those near a selected training sample
    near_selected: int
    #: fewest samples the set must keep to be usable
    minimum: int

    @property
    def used(self) -> int:
        return int(self.keep.size)

    @property
    def usable(self) -> bool:
        return self.used >= self.minimum

    def counts(self) -> dict[str, int]:
        """The figures a result document shows."""
        return {
            "given": self.given,
            "duplicates": self.duplicates,
            "nearSelected": self.near_selected,
            "used": self.used,
        }


def minimum_validation_samples(given: int, *, min_samples: int = 10, min_share: float = 0.1) -> int:
    """How many samples a screened set of ``given`` must keep: ``max(min_samples,
    ceil(min_share × given))`` — a set mostly made of copies is refused, not scored."""
    return max(min_samples, math.ceil(min_share * given))


def _grays(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``(N, H, W)`` grey pixels of ``N×H×W`` or ``N×H×W×C`` uint8 images, as Pillow's
    ``convert("L")`` computes them (RGB) or as they are (one channel)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise InvalidInputError(
            f"images must be uint8 N×H×W or N×H×W×C, got {images.dtype} {images.shape}"
        )
    if images.ndim == 3:
        return images
    channels = images.shape[3]
    if channels == 1:
        return images[..., 0]
    if channels != 3:
        raise InvalidInputError(f"images must have 1 or 3 channels, got {channels}")
    out = np.empty(images.shape[:3], dtype=np.uint8)
    step = _images_per_chunk(images.shape[1] * images.shape[2])
    for start in range(0, images.shape[0], step):
        rgb = images[start : start + step].astype(np.uint32)
        luma = rgb[..., 0] * _LUMA[0] + rgb[..., 1] * _LUMA[1] + rgb[..., 2] * _LUMA[2]
        out[start : start + step] = (luma + 0x8000) >> 16
    return out


def _images_per_chunk(pixels: int) -> int:
    return max(1, _CHUNK_PIXELS // max(1, pixels))


def _phashes(grays: NDArray[np.uint8]) -> NDArray[np.uint64]:
    out = np.empty(grays.shape[0], dtype=np.uint64)
    step = _images_per_chunk(grays.shape[1] * grays.shape[2])
    for start in range(0, grays.shape[0], step):
        stack = np.ascontiguousarray(grays[start : start + step])
        out[start : start + step] = phash_from_grids(lanczos_resize_stack(stack, _GRID, _GRID))
    return out


def _transforms(grays: NDArray[np.uint8]) -> Iterator[NDArray[np.uint8]]:
    for quarter_turns in range(4):
        turned = np.rot90(grays, quarter_turns, axes=(1, 2))
        yield turned
        yield turned[:, :, ::-1]


def array_phashes(images: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """The pHash of every image of a ``N×H×W`` or ``N×H×W×C`` uint8 array (what
    ``imagehash.phash(Image.fromarray(image))`` gives)."""
    return _phashes(_grays(images))


def array_copy_hashes(images: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """``(N, 3)`` copy hashes (as words, :func:`._copyhash.copy_hash_words`) of every image of
    a ``N×H×W`` or ``N×H×W×C`` uint8 array — what :func:`screen_validation_set` takes as
    ``selected_copy_hashes``."""
    probes = copy_probes(list(_grays(images)))
    return copy_hash_words([p.copy_hash for p in probes])


def dihedral_phashes(images: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """``(N, 8)`` pHashes of every image under the 4 rotations by 90°, each unflipped and
    mirrored; column 0 is the image itself."""
    return _dihedral(_grays(images))


def _dihedral(grays: NDArray[np.uint8]) -> NDArray[np.uint64]:
    out = np.empty((grays.shape[0], DIHEDRAL_TRANSFORMS), dtype=np.uint64)
    for column, transformed in enumerate(_transforms(grays)):
        out[:, column] = _phashes(transformed)
    return out


def screen_validation_set(
    images: NDArray[np.uint8],
    selected_hashes: HashesLike,
    *,
    selected_copy_hashes: NDArray[np.uint64] | None = None,
    radius: int = VALIDATION_SCREEN_RADIUS,
    copy_key_radius: int = DEFAULT_COPY_KEY_RADIUS,
    copy_radius: int = DEFAULT_COPY_RADIUS,
    min_samples: int = 10,
    min_share: float = 0.1,
) -> ValidationScreen:
    """Screen validation ``images`` (``N×H×W`` or ``N×H×W×C`` uint8) against the pHashes of
    the selected training samples (:func:`array_phashes` of them, in the same layout) and, when
    given, their copy hashes (:func:`array_copy_hashes`, same layout).

    Returns which samples may score and the counts; :attr:`ValidationScreen.usable` says
    whether enough are left. Memory is linear in the set plus the near pairs found.
    """
    selected = _as_hashes(selected_hashes)
    grays = _grays(images)
    given = grays.shape[0]
    minimum = minimum_validation_samples(given, min_samples=min_samples, min_share=min_share)
    kept = _first_of_each(np.asarray(images))
    hashes = _dihedral(grays)  # (N, 8)
    n_sel = selected.size
    pairs = find_duplicate_pairs(np.concatenate([selected, hashes.reshape(-1)]), radius=radius)
    first, second = pairs.first, pairs.second  # first < second
    # a selected hash (< n_sel) near a transform of a validation sample
    cross = (first < n_sel) & (second >= n_sel)
    near = np.zeros(given, dtype=bool)
    near[(second[cross] - n_sel) // DIHEDRAL_TRANSFORMS] = True
    # two validation samples near each other under some transforms
    inside = first >= n_sel
    a = (first[inside] - n_sel) // DIHEDRAL_TRANSFORMS
    b = (second[inside] - n_sel) // DIHEDRAL_TRANSFORMS
    # copies by copy hash: within the set (a later sample of an earlier one), and of selected
    probes = copy_probes(list(grays))
    own = copy_hash_words([p.copy_hash for p in probes])
    inner = find_copy_links(
        probes, own, key_radius=copy_key_radius, radius=copy_radius, earlier_only=True
    )
    a = np.concatenate([a, np.array([m.stored for m in inner], dtype=np.int64)])
    b = np.concatenate([b, np.array([m.probe for m in inner], dtype=np.int64)])
    if selected_copy_hashes is not None:
        for match in find_copy_links(
            probes, selected_copy_hashes, key_radius=copy_key_radius, radius=copy_radius
        ):
            near[match.probe] = True
    kept = _greedy_keep(np.minimum(a, b), np.maximum(a, b), kept)
    duplicates = given - int(kept.sum())
    near_selected = int((kept & near).sum())
    keep = np.flatnonzero(kept & ~near).astype(np.int64)
    return ValidationScreen(keep, given, duplicates, near_selected, minimum)


def _first_of_each(images: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """``True`` for the first sample of each group of identical pixels."""
    seen: set[bytes] = set()
    first = np.zeros(images.shape[0], dtype=bool)
    for i in range(images.shape[0]):
        digest = hashlib.blake2b(np.ascontiguousarray(images[i]).tobytes(), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            first[i] = True
    return first


def _greedy_keep(
    low: NDArray[np.int64], high: NDArray[np.int64], candidates: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Walk the samples in order and keep each candidate that has no near pair with an earlier
    kept one; ``(low, high)`` are the pairs, ``low <= high`` (pairs among one sample's own
    transforms are ignored)."""
    distinct = low < high
    order = np.lexsort((low[distinct], high[distinct]))
    lows = low[distinct][order].tolist()
    highs = high[distinct][order].tolist()
    keep = candidates.tolist()
    for earlier, later in zip(lows, highs, strict=True):
        # pairs come sorted by the later sample, so every earlier one is already decided
        if keep[later] and keep[earlier]:
            keep[later] = False
    return np.array(keep, dtype=bool)
