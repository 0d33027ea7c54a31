"""A 168-bit copy hash that survives flips, 90° rotations, crops and photometric edits.

The marketplace pays for data, not for copies (design section 4), so the node must link an
uploaded image to an earlier one when it is the same picture after the usual augmentations:
a flip or a rotation by a multiple of 90°, a crop of up to 10 % of each side (resized back or
not), a contrast, brightness or saturation change, a re-encoding. ``imagehash.phash`` (kept as
the public ``phash`` field) sees none of the geometric edits: a mirrored image shares about
half of its bits with the original, and a one-pixel crop of a 28×28 image moves most of its
low-frequency DCT.

**The descriptor** (version ``visdm-copyhash/1``), per image:

1. luma ``convert("L")`` (saturation and hue changes leave it almost unchanged); an image
   wider or taller than :data:`RASTER_SIDE` pixels is first shrunk with Pillow's ``BOX``
   filter so that its longer side is :data:`RASTER_SIDE` (the *raster*);
2. the **content box**: the background is the median of the raster's outermost ring of
   pixels; a pixel's weight is its distance from the background less 10 % of the largest
   distance (at least 0); the box spans the 2 % to 98 % quantiles of the weight's row and
   column profiles, in continuous coordinates. A crop that removes background leaves the box on
   the same content; one that cuts into the content moves it by about what was cut. Brightness
   and contrast changes scale the weights and leave the quantiles where they were;
3. the box is area-averaged onto a 32×32 grid (a box filter in continuous coordinates; beyond
   the raster the edge pixel continues) and its 2-D DCT-II is taken for frequencies
   ``0 ≤ u, v ≤ 12``;
4. the 168 bits are the **signs** of those 169 coefficients less the DC term (a coefficient is
   a 1 bit when it exceeds ``1e-9`` times the largest magnitude, so an exact zero — a perfectly
   symmetric image's odd frequencies — is a 0 on every machine). The first 63 bits, the 8×8
   corner less DC in row-major order, are the *key* the search runs on; the other 105 are the
   frequencies 8–12 (row-major), used to verify a candidate.

Signs, not the comparison with the median that pHash makes, because a sign pattern transforms
exactly with the image: mirroring the columns negates the coefficients of odd ``v``, mirroring
the rows those of odd ``u``, transposing swaps ``u`` and ``v`` (DCT-II of a reversed sequence
is ``(-1)^k`` times the original's). So each of the 8 elements of the dihedral group D4 acts on a
stored hash as a bit permutation and an XOR (:func:`dihedral_copy_hashes`) and a flipped or
rotated copy is found without the original's pixels — only its public hash.

**Matching** (:func:`match_probe`): a sample whose pixels the node holds (a :class:`CopyProbe`)
matches a stored hash under transform ``t`` when, for some content box near its own, its bits
lie close to ``t`` applied to the stored hash. The box is refined greedily, one side at a time,
in steps of 4, 2 and 1 % of its size: that absorbs what a crop moved. The distance counts only
the frequencies the box's pixels can carry — ``v`` at most the box's width and ``u`` at most
its height, in raster pixels (a box ``w`` pixels wide holds at most ``w/2`` cycles, which is
``v = w`` on the grid) — scaled to 168 bits: beyond that the grid holds interpolation, whose
signs a re-encoding flips at will. This matters for narrow objects (trousers, 8 pixels wide in
a 28×28 image). Refinement runs only on candidates the key search found
(:mod:`._copyindex`). The constants (quantiles, steps, radii) were chosen on Fashion-MNIST's
training split; ``benchmarks/metadata.py`` measures them on its test split.

Everything is float64 NumPy with a fixed operation order, computed from the 8-bit luma, so
two nodes publish the same bits for the same bytes except for a coefficient within ``1e-9`` of
zero relative to the largest — which a real image essentially never has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NewType

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from visdm.errors import InvalidInputError

__all__ = [
    "COPY_HASH_BITS",
    "COPY_HASH_VERSION",
    "COPY_HASH_WORDS",
    "COPY_KEY_BITS",
    "DIHEDRAL_NAMES",
    "RASTER_SIDE",
    "CopyHash",
    "CopyProbe",
    "copy_hash_from_hex",
    "copy_hash_to_hex",
    "copy_hash_words",
    "copy_probes",
    "dihedral_copy_hashes",
    "hypothesis_boxes",
    "hypothesis_keys",
    "match_probe",
    "refine_box",
    "transform_image",
    "words_to_bits",
]

#: a 168-bit copy hash (key bits first, most significant first)
CopyHash = NewType("CopyHash", int)
#: name of the descriptor defined in the module docstring
COPY_HASH_VERSION = "visdm-copyhash/1"
#: bits in a copy hash
COPY_HASH_BITS = 168
#: bits of its key (the 8×8 low-frequency corner less DC)
COPY_KEY_BITS = 63
#: uint64 words of a hash in array form: the key's, then two for the other 105 bits
COPY_HASH_WORDS = 3
#: longer side of the raster the hash is computed on
RASTER_SIDE = 64
#: the dihedral transforms in the order their numbers ``0..7`` name them: ``t // 2`` quarter
#: turns counter-clockwise (``numpy.rot90``), then a left-right mirror when ``t`` is odd
DIHEDRAL_NAMES = (
    "identity",
    "mirror",
    "rotate 90",
    "rotate 90, mirror",
    "rotate 180",
    "rotate 180, mirror",
    "rotate 270",
    "rotate 270, mirror",
)

_GRID = 32
_FREQ = 13
_KEY_SIDE = 8
_REST_BITS = COPY_HASH_BITS - COPY_KEY_BITS  # 105
_WORDS = COPY_HASH_WORDS  # 1 + ceil(105 / 64)
_HEX_DIGITS = COPY_HASH_BITS // 4
_QUANTILE = 0.02
_NOISE_SHARE = 0.1
_ZERO = 1e-9
_MIN_BOX = 1.0
# key-stage box hypotheses: each side moved alone by these shares of the box, out and in
_HYPOTHESIS_STEPS = (0.04, 0.08)
# refinement: step sizes (share of the box) and the farthest a side may move from its start
_REFINE_STEPS = (0.04, 0.02, 0.01)
_REFINE_LIMIT = 0.16
_REFINE_ROUNDS = 6
# (low side, high side) moves per axis, in steps: one side at a time, out or in. Zooms and
# shifts as moves too found no more crops on the training split and lowered the distances of
# distinct look-alikes as much, so precision fell (0.935 to 0.911 at equal recall)
_MOVES = ((-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))
_HEX = re.compile(f"[0-9a-f]{{{_HEX_DIGITS}}}")


# --- bit layout ----------------------------------------------------------------------------
def _positions() -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(u, v)`` of the 168 bits, in hash order: the 8×8 corner, then frequencies 8–12."""
    u, v = np.meshgrid(np.arange(_FREQ), np.arange(_FREQ), indexing="ij")
    corner = (u < _KEY_SIDE) & (v < _KEY_SIDE)
    not_dc = (u + v) > 0
    key = np.flatnonzero((corner & not_dc).reshape(-1))
    rest = np.flatnonzero((~corner).reshape(-1))
    flat = np.concatenate([key, rest])
    return flat // _FREQ, flat % _FREQ


_U, _V = _positions()
_FLAT = (_U * _FREQ + _V).astype(np.int64)


def _dihedral_action(t: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """``(source, negate)`` for transform ``t``: bit ``i`` of the transformed image's hash is
    bit ``source[i]`` of the original's, inverted where ``negate``.

    Walks back from the output coefficient ``(u, v)``: a left-right mirror gives
    ``C'(u, v) = (-1)^v C(u, v)``; one counter-clockwise quarter turn (``numpy.rot90``:
    ``out[i, j] = in[j, N-1-i]``) gives ``C'(u, v) = (-1)^u C(v, u)``.
    """
    src_u, src_v = _U.copy(), _V.copy()
    sign = np.ones(COPY_HASH_BITS, dtype=np.int64)
    if t % 2:
        sign *= np.where(src_v % 2 == 1, -1, 1)
    for _ in range(t // 2):
        sign *= np.where(src_u % 2 == 1, -1, 1)
        src_u, src_v = src_v, src_u
    lookup = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(_U, _V, strict=True))}
    source = np.array(
        [lookup[(int(a), int(b))] for a, b in zip(src_u, src_v, strict=True)], dtype=np.int64
    )
    return source, sign < 0


_ACTIONS = tuple(_dihedral_action(t) for t in range(8))


def _bits_to_words(bits: NDArray[np.bool_]) -> NDArray[np.uint64]:
    """``(..., BITS)`` bits to ``(..., WORDS)`` uint64 words: the key (63 bits) in the low
    bits of word 0, the other bits right-aligned in the words after it, most significant first.
    """
    shape = bits.shape[:-1]
    flat = bits.reshape(-1, COPY_HASH_BITS)
    padded = np.zeros((flat.shape[0], _WORDS * 64), dtype=bool)
    padded[:, 64 - COPY_KEY_BITS : 64] = flat[:, :COPY_KEY_BITS]
    padded[:, _WORDS * 64 - _REST_BITS :] = flat[:, COPY_KEY_BITS:]
    packed = np.packbits(padded.reshape(-1, _WORDS, 64), axis=2)  # big-endian bytes
    words = np.ascontiguousarray(packed).view(">u8")[..., 0].astype(np.uint64)
    return words.reshape(*shape, _WORDS)


def _words_to_bits(words: NDArray[np.uint64]) -> NDArray[np.bool_]:
    """Inverse of :func:`_bits_to_words`."""
    shape = words.shape[:-1]
    flat = np.ascontiguousarray(words.reshape(-1, _WORDS).astype(">u8")).view(np.uint8)
    bits = np.unpackbits(flat.reshape(-1, _WORDS * 8), axis=1).astype(bool)
    out = np.concatenate(
        [bits[:, 64 - COPY_KEY_BITS : 64], bits[:, _WORDS * 64 - _REST_BITS :]], axis=1
    )
    return out.reshape(*shape, COPY_HASH_BITS)


def copy_hash_words(hashes: Sequence[int] | NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Copy hashes as an ``(N, WORDS)`` uint64 array, the key in word 0 (the form the search
    uses). Accepts Python ints below ``2**BITS`` or such an array (returned as is)."""
    if isinstance(hashes, np.ndarray) and hashes.dtype == np.uint64:
        if hashes.ndim != 2 or hashes.shape[1] != _WORDS:
            raise InvalidInputError(
                f"copy hash words must be (N, {_WORDS}) uint64, got {hashes.shape}"
            )
        return hashes
    out = np.zeros((len(hashes), _WORDS), dtype=np.uint64)
    mask = (1 << 64) - 1
    for i, value in enumerate(hashes):
        checked = _check_hash(value)
        out[i, 0] = checked >> _REST_BITS
        rest = checked & ((1 << _REST_BITS) - 1)
        for word in range(_WORDS - 1, 0, -1):
            out[i, word] = rest & mask
            rest >>= 64
    return out


def _check_hash(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(f"a copy hash is an integer, got {type(value).__name__}")
    if not 0 <= int(value) < 1 << COPY_HASH_BITS:
        what = "a negative number" if int(value) < 0 else f"{int(value).bit_length()} bits"
        raise InvalidInputError(f"copy hash does not fit in {COPY_HASH_BITS} bits: got {what}")
    return int(value)


def _words_to_int(words: NDArray[np.uint64]) -> CopyHash:
    rest = 0
    for word in words[1:]:
        rest = (rest << 64) | int(word)
    return CopyHash((int(words[0]) << _REST_BITS) | rest)


def copy_hash_to_hex(value: int) -> str:
    """The 42-digit lower-case hex form a metadata document carries."""
    return format(_check_hash(value), f"0{_HEX_DIGITS}x")


def copy_hash_from_hex(text: object) -> CopyHash:
    """Parse the 42-digit lower-case hex form (refuses anything else, with the reason)."""
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        shown = repr(text) if isinstance(text, str) and len(text) <= 50 else type(text).__name__
        raise InvalidInputError(
            f"copy hash {shown} is not {_HEX_DIGITS} lower-case hex digits ({COPY_HASH_BITS} bits)"
        )
    return CopyHash(int(text, 16))


def dihedral_copy_hashes(words: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """``(N, 8, 2)``: every hash of an ``(N, 2)`` array under the 8 transforms of
    :data:`DIHEDRAL_NAMES` — what the hash of the transformed image would be."""
    words = copy_hash_words(words)
    out = np.empty((words.shape[0], 8, _WORDS), dtype=np.uint64)
    step = 1 << 16
    for start in range(0, words.shape[0], step):
        bits = _words_to_bits(words[start : start + step])
        for t, (source, negate) in enumerate(_ACTIONS):
            out[start : start + step, t] = _bits_to_words(bits[:, source] ^ negate)
    return out


# --- the raster, the box and the coefficients -------------------------------------------------
@lru_cache(maxsize=1)
def _dct_rows() -> NDArray[np.float64]:
    """The first 11 rows of the (unscaled) 32-point DCT-II matrix."""
    k = np.arange(_FREQ, dtype=np.float64)[:, None]
    n = np.arange(_GRID, dtype=np.float64)[None, :]
    matrix = np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * _GRID))
    matrix.setflags(write=False)
    return matrix


def _area_matrix(low: float, high: float, size: int) -> NDArray[np.float64]:
    """``(32, size)``: averages of the input over 32 equal cells spanning ``[low, high)``
    (continuous pixel coordinates; pixel ``p`` covers ``[p, p+1)``; beyond the ends the edge
    pixel continues)."""
    edges = low + (high - low) * np.arange(_GRID + 1, dtype=np.float64) / _GRID
    first = int(np.floor(min(low, 0.0)))
    last = int(np.ceil(max(high, float(size))))
    pixels = np.arange(first, last, dtype=np.float64)
    overlap = np.minimum(edges[1:, None], pixels[None, :] + 1.0) - np.maximum(
        edges[:-1, None], pixels[None, :]
    )
    np.maximum(overlap, 0.0, out=overlap)
    overlap /= (edges[1:] - edges[:-1])[:, None]
    # pixels beyond the ends are the edge pixels: fold their weights onto them
    inner = overlap[:, -first : size - first].copy()
    if first < 0:
        inner[:, 0] += overlap[:, :-first].sum(axis=1)
    if last > size:
        inner[:, -1] += overlap[:, size - first :].sum(axis=1)
    return inner


Box = tuple[float, float, float, float]  # top, bottom, left, right (continuous coordinates)


def _content_box(pixels: NDArray[np.uint8]) -> Box:
    raster = pixels.astype(np.float64)
    height, width = raster.shape
    ring = np.concatenate([raster[0], raster[-1], raster[:, 0], raster[:, -1]])
    deviation = np.abs(raster - float(np.median(ring)))
    largest = float(deviation.max())
    if largest <= 0.0:
        return 0.0, float(height), 0.0, float(width)
    weight = np.maximum(deviation - _NOISE_SHARE * largest, 0.0)
    total = float(weight.sum())
    top, bottom = _quantile_span(weight.sum(axis=1), total)
    left, right = _quantile_span(weight.sum(axis=0), total)
    top, bottom = _at_least(top, bottom)
    left, right = _at_least(left, right)
    return top, bottom, left, right


def _quantile_span(profile: NDArray[np.float64], total: float) -> tuple[float, float]:
    cumulative = np.concatenate([[0.0], np.cumsum(profile)]) / total
    grid = np.arange(cumulative.size, dtype=np.float64)
    low = float(np.interp(_QUANTILE, cumulative, grid))
    high = float(np.interp(1.0 - _QUANTILE, cumulative, grid))
    return low, high


def _at_least(low: float, high: float) -> tuple[float, float]:
    if high - low >= _MIN_BOX:
        return low, high
    middle = (low + high) / 2.0
    return middle - _MIN_BOX / 2.0, middle + _MIN_BOX / 2.0


def _coefficients(raster: NDArray[np.uint8], box: Box) -> NDArray[np.float64]:
    dct = _dct_rows()
    rows = dct @ _area_matrix(box[0], box[1], raster.shape[0])
    cols = dct @ _area_matrix(box[2], box[3], raster.shape[1])
    result: NDArray[np.float64] = rows @ raster.astype(np.float64) @ cols.T
    return result


def _sign_bits(coefficients: NDArray[np.float64]) -> NDArray[np.bool_]:
    """``(..., 13, 13)`` coefficients to ``(..., 168)`` bits in hash order."""
    flat = coefficients.reshape(*coefficients.shape[:-2], _FREQ * _FREQ)
    scale = np.abs(flat).max(axis=-1, keepdims=True)
    bits: NDArray[np.bool_] = flat[..., _FLAT] > _ZERO * scale
    return bits


@dataclass(frozen=True, eq=False)
class CopyProbe:
    """What the node keeps of a decoded image to match it against stored copy hashes: the
    luma raster (at most :data:`RASTER_SIDE` pixels a side), its content box and its hash.

    It holds pixels, so it never leaves the node: only :attr:`copy_hash` is published.
    """

    #: 8-bit luma (a few KiB: an asset's probes are held until its samples are linked)
    raster: NDArray[np.uint8] = field(repr=False)
    box: Box
    copy_hash: CopyHash
    _bits: NDArray[np.bool_] = field(repr=False)

    def coefficients(self, box: Box) -> NDArray[np.float64]:
        """The ``(13, 13)`` low-frequency DCT of the raster's ``box`` on the 32×32 grid."""
        return _coefficients(self.raster, box)

    def bits(self) -> NDArray[np.bool_]:
        """The 168 bits of :attr:`copy_hash`, in hash order (read-only)."""
        return self._bits


def _raster(gray: NDArray[np.uint8]) -> NDArray[np.uint8]:
    height, width = gray.shape
    if max(height, width) <= RASTER_SIDE:
        return np.array(gray, dtype=np.uint8, copy=True)
    scale = RASTER_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(np.ascontiguousarray(gray)).resize(size, Image.Resampling.BOX)
    return np.array(small, dtype=np.uint8)


def _probe(gray: NDArray[np.uint8]) -> CopyProbe:
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise InvalidInputError(
            f"a copy hash needs a non-empty (H, W) uint8 luma array, got {gray.dtype} {gray.shape}"
        )
    raster = _raster(gray)
    raster.setflags(write=False)
    box = _content_box(raster)
    bits = _sign_bits(_coefficients(raster, box))
    bits.setflags(write=False)
    value = _words_to_int(_bits_to_words(bits))
    return CopyProbe(raster, box, value, bits)


def copy_probes(grays: Sequence[NDArray[np.uint8]]) -> list[CopyProbe]:
    """One :class:`CopyProbe` per ``(H, W)`` uint8 luma array (``convert("L")`` of the image)."""
    return [_probe(np.asarray(gray)) for gray in grays]


def transform_image(pixels: NDArray[np.generic], transform: int) -> NDArray[np.generic]:
    """``pixels`` (``H×W`` or ``H×W×C``) under dihedral transform ``transform`` (0..7)."""
    if isinstance(transform, bool) or transform not in range(8):
        raise InvalidInputError(f"a dihedral transform is 0..7, got {transform!r}")
    turned = np.rot90(pixels, transform // 2, axes=(0, 1))
    return turned[:, ::-1] if transform % 2 else turned


# --- matching -------------------------------------------------------------------------------
def hypothesis_boxes(box: Box) -> list[Box]:
    """The content box and the 16 boxes with one side moved out or in by 4 or 8 % of its size
    (what a crop of up to 10 % may have moved)."""
    top, bottom, left, right = box
    out = [box]
    for step in _HYPOTHESIS_STEPS:
        dv = step * (bottom - top)
        dh = step * (right - left)
        for sign in (-1.0, 1.0):
            out += [
                (top + sign * dv, bottom, left, right),
                (top, bottom - sign * dv, left, right),
                (top, bottom, left + sign * dh, right),
                (top, bottom, left, right - sign * dh),
            ]
    return out


def hypothesis_keys(probe: CopyProbe) -> tuple[list[Box], NDArray[np.uint64]]:
    """The probe's hypothesis boxes and the 63-bit key of each (as uint64, hash order)."""
    boxes = hypothesis_boxes(probe.box)
    coefficients = np.stack([probe.coefficients(b) for b in boxes])
    words = _bits_to_words(_sign_bits(coefficients))
    return boxes, np.ascontiguousarray(words[:, 0])


def match_probe(probe: CopyProbe, target: NDArray[np.bool_], *, start: Box | None = None) -> float:
    """How close the probe comes to ``target`` (168 bits in hash order, e.g. a stored hash
    under a dihedral transform: ``words_to_bits(dihedral_copy_hashes(words)[i, t])``): the
    fewest mismatches, over content boxes near ``start`` (default: the probe's own box), among
    the bits the box can resolve, scaled to 168 bits (module docstring).

    Greedy: from ``start``, move the one side (of 8 moves: 4 sides, out or in) that lowers the
    distance most, until none does, with steps of 4, 2 then 1 % of the box; no side moves more
    than 16 % of the box from where it started. Deterministic.
    """
    return refine_box(probe, target, start=start)[0]


def refine_box(
    probe: CopyProbe, target: NDArray[np.bool_], *, start: Box | None = None
) -> tuple[float, Box]:
    """:func:`match_probe`'s search: the distance and the box that reached it."""
    target = np.asarray(target, dtype=bool)
    if target.shape != (COPY_HASH_BITS,):
        raise InvalidInputError(f"a target is {COPY_HASH_BITS} bits, got shape {target.shape}")
    box = probe.box if start is None else start
    origin = box
    height = box[1] - box[0]
    width = box[3] - box[2]
    dct = _dct_rows()
    pixels = probe.raster.astype(np.float64)
    rows = dct @ _area_matrix(box[0], box[1], pixels.shape[0])
    cols = dct @ _area_matrix(box[2], box[3], pixels.shape[1])
    left_part = rows @ pixels  # (13, W): fixed while only left/right move
    right_part = pixels @ cols.T  # (H, 13): fixed while only top/bottom move
    best = float(_distances((left_part @ cols.T)[None], [box], target)[0])
    for step in _REFINE_STEPS:
        for _ in range(_REFINE_ROUNDS):
            if best == 0.0:
                return best, box
            moves: list[Box] = []
            coefficients = []
            for axis, extent in ((0, height), (2, width)):
                for d_low, d_high in _MOVES:
                    moved = list(box)
                    moved[axis] += d_low * step * extent
                    moved[axis + 1] += d_high * step * extent
                    if (
                        max(
                            abs(moved[axis] - origin[axis]), abs(moved[axis + 1] - origin[axis + 1])
                        )
                        > _REFINE_LIMIT * extent + 1e-12
                        or moved[axis + 1] - moved[axis] < _MIN_BOX
                    ):
                        continue
                    candidate: Box = (moved[0], moved[1], moved[2], moved[3])
                    if axis == 0:
                        new_rows = dct @ _area_matrix(candidate[0], candidate[1], rows.shape[1])
                        coefficients.append(new_rows @ right_part)
                    else:
                        new_cols = dct @ _area_matrix(candidate[2], candidate[3], cols.shape[1])
                        coefficients.append(left_part @ new_cols.T)
                    moves.append(candidate)
            if not moves:
                break
            distances = _distances(np.stack(coefficients), moves, target)
            pick = int(np.argmin(distances))  # first of the best: a fixed order of moves
            if float(distances[pick]) >= best:
                break
            best = float(distances[pick])
            box = moves[pick]
            rows = dct @ _area_matrix(box[0], box[1], pixels.shape[0])
            cols = dct @ _area_matrix(box[2], box[3], pixels.shape[1])
            left_part = rows @ pixels
            right_part = pixels @ cols.T
    return best, box


def _distances(
    coefficients: NDArray[np.float64], boxes: Sequence[Box], target: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Per box: mismatches with ``target`` among the bits the box resolves, scaled to 168."""
    heights = np.array([b[1] - b[0] for b in boxes], dtype=np.float64)[:, None]
    widths = np.array([b[3] - b[2] for b in boxes], dtype=np.float64)[:, None]
    resolved = (_V[None, :] <= widths) & (_U[None, :] <= heights)
    wrong = (_sign_bits(coefficients) != target[None, :]) & resolved
    counted = np.maximum(resolved.sum(axis=1), 1)
    result: NDArray[np.float64] = wrong.sum(axis=1) * (COPY_HASH_BITS / counted)
    return result


def words_to_bits(words: NDArray[np.uint64]) -> NDArray[np.bool_]:
    """``(..., 3)`` hash words to ``(..., 168)`` bits in hash order."""
    return _words_to_bits(np.asarray(words, dtype=np.uint64))
