"""Pillow's LANCZOS resize of 8-bit grayscale images, vectorised over a stack of images.

Why a port: ``imagehash.phash`` shrinks every image with ``Image.resize((32, 32), LANCZOS)``,
and in a batch that per-image C call (plus the Python around it) is most of the cost. This
module reproduces Pillow's ``libImaging/Resample.c`` (checked against Pillow 10–13) *bit for
bit* for mode ``L``, but for a whole ``(N, H, W)`` stack of equally sized images at once, with
each pass as one BLAS matrix product:

* the coefficients are computed exactly as ``precompute_coeffs`` does, in IEEE double with the
  same operation order and the same libm ``sin`` (Python's :mod:`math` calls the C library's),
  then fixed-point rounded as ``normalize_coeffs_8bpc`` does (22 fractional bits, ties away
  from zero, truncation toward zero);
* a pass is ``clip8(2**21 + Σ pixel·coefficient)`` with Pillow's ``clip8`` (arithmetic shift by
  22, clamp to 0..255). Pillow sums in 32-bit integers; here the sum is a float64 matrix
  product, which is *exact* because every product and partial sum is an integer far below
  2**53 (255 · Σ|k| < 2**31), so the summation order cannot change the result;
* the pass order and the rows the first pass covers follow ``ImagingResampleInner``: the
  horizontal pass first unless the height shrinks more than twice as much as the width, the
  horizontal pass only over the rows the vertical pass will read, and a pass skipped when that
  dimension already has the target size.

The unit tests compare it with ``Image.resize`` on hundreds of sizes (including 1-pixel and
very elongated images) and random and extreme content.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["lanczos_resize_stack"]

_PRECISION_BITS = 32 - 8 - 2
_INV_SCALE = 1.0 / float(1 << _PRECISION_BITS)
_LANCZOS_SUPPORT = 3.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@lru_cache(maxsize=512)
def _coefficients(in_size: int, out_size: int) -> tuple[NDArray[np.float64], int, int]:
    """``(matrix, first, last)``: the ``(out_size, in_size)`` fixed-point coefficients times
    ``2**-22`` (zeros outside each output's window) and the range of inputs any output reads."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    inv_filterscale = 1.0 / filterscale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    first, last = in_size, 0
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [_lanczos((x + xmin - center + 0.5) * inv_filterscale) for x in range(xmax)]
        total = 0.0
        for w in weights:
            total += w
        if total != 0.0:
            weights = [w / total for w in weights]
        for x, w in enumerate(weights):
            scaled = w * (1 << _PRECISION_BITS)
            matrix[xx, xmin + x] = int(-0.5 + scaled) if w < 0 else int(0.5 + scaled)
        first, last = min(first, xmin), max(last, xmin + xmax)
    matrix = _scaled(matrix)
    matrix.setflags(write=False)
    return matrix, first, last


def _round_clip8(sums: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pillow's ``clip8(2**21 + s) = clamp(s >> 22)`` on sums already scaled by ``2**-22``.

    ``floor(y + 0.5)`` on ``y = s / 2**22`` is exactly ``(s + 2**21) >> 22``: both the scaling
    and the addition are exact in float64 for these magnitudes. Works in place.
    """
    sums += 0.5
    np.floor(sums, out=sums)
    return np.clip(sums, 0.0, 255.0, out=sums)


def _scaled(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    # multiplying by a power of two is exact, so the product below stays exact
    return matrix * _INV_SCALE


def _horizontal(stack: NDArray[np.float64], matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Resample along the last axis: ``(N, R, W) -> (N, R, out)``, in column blocks.

    Each output reads only a window of the inputs, so the outputs are split into blocks and
    each block multiplies only the input columns its window spans (fewer wasted zeros).
    """
    n, rows, width = stack.shape
    flat = stack.reshape(n * rows, width)
    out_size = matrix.shape[0]
    out = np.empty((n * rows, out_size), dtype=np.float64)
    for lo, hi, first, last in _blocks(matrix):
        block = np.ascontiguousarray(matrix[lo:hi, first:last].T)
        np.matmul(flat[:, first:last], block, out=out[:, lo:hi])
    return _round_clip8(out).reshape(n, rows, out_size)


def _blocks(matrix: NDArray[np.float64]) -> list[tuple[int, int, int, int]]:
    out_size, in_size = matrix.shape
    nonzero = matrix != 0
    per_block = out_size if in_size <= 2 * out_size else max(1, out_size // 2)
    blocks = []
    for lo in range(0, out_size, per_block):
        hi = min(lo + per_block, out_size)
        cols = np.flatnonzero(nonzero[lo:hi].any(axis=0))
        first, last = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
        blocks.append((lo, hi, first, last))
    return blocks


def _vertical(stack: NDArray[np.float64], matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Resample along axis 1: ``(N, H, C) -> (N, out, C)``, one small product per image."""
    return _round_clip8(np.matmul(matrix, stack))


def lanczos_resize_stack(stack: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    """Resize every ``(H, W)`` image of a ``(N, H, W)`` uint8 stack to ``(height, width)``.

    The result equals ``Image.fromarray(img).resize((width, height), Image.LANCZOS)`` for
    every image, bit for bit.
    """
    n, in_h, in_w = stack.shape
    if (in_h, in_w) == (height, width):
        return np.array(stack, dtype=np.uint8, copy=True)
    need_h = in_w != width
    need_v = in_h != height
    horizontal_first = not (in_h - height > 0 and in_h - height > (in_w - width) * 2)
    if horizontal_first and need_h:
        rows = slice(0, in_h)
        v_matrix = None
        if need_v:
            v_full, first, last = _coefficients(in_h, height)
            rows = slice(first, last)
            v_matrix = v_full[:, first:last]
        h_matrix = _coefficients(in_w, width)[0]
        out = _horizontal(stack[:, rows, :].astype(np.float64), h_matrix)
        if v_matrix is not None:
            out = _vertical(out, v_matrix)
    else:
        out = stack.astype(np.float64)
        if need_v:
            out = _vertical(out, _coefficients(in_h, height)[0])
        if need_h:
            out = _horizontal(out, _coefficients(in_w, width)[0])
    return out.astype(np.uint8).reshape(n, height, width)
