"""64-bit perceptual hashes, bit-compatible with ``imagehash.phash``, computed in batches.

Design section 3.2 step 7 asks for a pHash "bit-compatible with ``imagehash.phash``" so that
anyone can recompute a published hash with the library everybody uses. ``imagehash.phash``
(Buchner, imagehash 4.3; after N. Krawetz, "Looks Like It", hackerfactor.com, 2011) does, per
image::

    pixels = asarray(image.convert("L").resize((32, 32), LANCZOS))       # uint8
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)  # float64, DCT-II
    low = dct[:8, :8]
    bits = low > numpy.median(low)                                      # row-major

Here the same steps run over a stack: ``convert("L")`` is still Pillow's, per image (modes
differ and the conversion is cheap C); the LANCZOS resize is :mod:`._resample`'s bit-exact
port, one matrix product per pass for all images of one size; the DCT is SciPy's pocketfft
over the ``(N, 32, 32)`` stack along axes 1 then 2 (the same float64 transform ``fftpack``
calls, so the same bits); the median is NumPy's (mean of the two middle values, so ``>``
makes a value equal to the median a 0 bit, as in imagehash).

The 64 bits are packed most significant first, in imagehash's row-major order, so
``format(h, "016x") == str(imagehash.phash(image))``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.fft  # type: ignore[import-untyped]
from numpy.typing import NDArray
from PIL import Image

from visdm.errors import InvalidInputError
from visdm.types import PHash

from ._resample import lanczos_resize_stack

__all__ = [
    "PHASH_BITS",
    "gray_array",
    "gray_stacks",
    "phash",
    "phash_batch",
    "phash_from_grids",
    "phash_from_hex",
    "phash_grids",
    "phash_to_hex",
    "resize_grays",
]

#: bits in a pHash
PHASH_BITS = 64
_GRID = 32
_LOW = 8
# pixels per resize chunk: keeps the float64 working set (8 MiB) near the caches
_CHUNK_PIXELS = 1 << 20
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")


def _check_image(image: object) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise InvalidInputError(
            f"pHash needs a PIL.Image.Image, got {type(image).__name__}: decode the bytes first"
        )
    if image.width < 1 or image.height < 1:
        raise InvalidInputError(f"cannot hash an empty {image.width}x{image.height} image")
    return image


def _gray_bytes(image: Image.Image) -> bytes:
    return (image if image.mode == "L" else image.convert("L")).tobytes()


def gray_array(image: Image.Image) -> NDArray[np.uint8]:
    """``image.convert("L")`` as a read-only ``(H, W)`` uint8 array (no conversion for ``L``)."""
    image = _check_image(image)
    raw = np.frombuffer(_gray_bytes(image), dtype=np.uint8)
    return raw.reshape(image.height, image.width)


def gray_stacks(
    images: Sequence[Image.Image],
) -> list[tuple[list[int], NDArray[np.uint8]]]:
    """The grey (``convert("L")``) pixels of ``images``, as ``(positions, (k, H, W) stack)``
    per chunk of equally sized images (at most about a million pixels per chunk).

    One ``frombuffer`` per chunk instead of one array per image: for small images the
    per-image NumPy overhead is a large part of the cost.
    """
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        by_size.setdefault(_check_image(image).size, []).append(i)
    out = []
    for (width, height), members in by_size.items():
        per_chunk = max(1, _CHUNK_PIXELS // (height * width))
        for start in range(0, len(members), per_chunk):
            chunk = members[start : start + per_chunk]
            raw = b"".join([_gray_bytes(images[i]) for i in chunk])
            stack = np.frombuffer(raw, dtype=np.uint8).reshape(len(chunk), height, width)
            out.append((chunk, stack))
    return out


def resize_grays(grays: Sequence[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    """Resize ``(H, W)`` uint8 arrays to the ``(N, 32, 32)`` grids pHash transforms, exactly
    as Pillow's ``resize((32, 32), LANCZOS)``; images of one size are resized together."""
    out = np.empty((len(grays), _GRID, _GRID), dtype=np.uint8)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, gray in enumerate(grays):
        by_shape.setdefault((gray.shape[0], gray.shape[1]), []).append(i)
    for (height, width), members in by_shape.items():
        per_chunk = max(1, _CHUNK_PIXELS // (height * width))
        for start in range(0, len(members), per_chunk):
            chunk = members[start : start + per_chunk]
            stack = np.stack([grays[i] for i in chunk])
            out[chunk] = lanczos_resize_stack(stack, _GRID, _GRID)
    return out


def phash_grids(images: Sequence[Image.Image]) -> NDArray[np.uint8]:
    """The ``(N, 32, 32)`` grayscale grids imagehash hashes: ``convert("L")`` then LANCZOS."""
    out = np.empty((len(images), _GRID, _GRID), dtype=np.uint8)
    for positions, stack in gray_stacks(images):
        out[positions] = lanczos_resize_stack(stack, _GRID, _GRID)
    return out


def phash_from_grids(grids: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """pHashes of ``(N, 32, 32)`` uint8 grids: DCT, top-left 8x8, compare with the median."""
    grids = np.asarray(grids)
    if grids.ndim != 3 or grids.shape[1:] != (_GRID, _GRID) or grids.dtype != np.uint8:
        raise InvalidInputError(
            f"pHash grids must be a (N, 32, 32) uint8 array, got {grids.dtype} {grids.shape}"
        )
    if grids.shape[0] == 0:
        return np.zeros(0, dtype=np.uint64)
    pixels = grids.astype(np.float64)
    # Only the first 8 rows of the column transform feed the 8x8 corner, and a row transform
    # reads one row, so transforming just those rows gives the same bits as imagehash.
    columns = scipy.fft.dct(pixels, axis=1)[:, :_LOW, :]
    dct = scipy.fft.dct(columns, axis=2)
    low = dct[:, :, :_LOW].reshape(grids.shape[0], _LOW * _LOW)
    median = np.median(low, axis=1)
    bits = low > median[:, None]
    packed = np.packbits(bits, axis=1)  # (N, 8) bytes, most significant bit first
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def phash_batch(images: Sequence[Image.Image]) -> NDArray[np.uint64]:
    """The pHash of every image, as a uint64 array (equal to ``imagehash.phash`` bit for bit)."""
    return phash_from_grids(phash_grids(images))


def phash(image: Image.Image) -> PHash:
    """The 64-bit pHash of one image; ``phash_to_hex`` of it is ``str(imagehash.phash(image))``."""
    return PHash(int(phash_batch([image])[0]))


def phash_to_hex(value: int) -> str:
    """The 16-digit lower-case hex form imagehash prints."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(f"a pHash is an integer, got {type(value).__name__}")
    if not 0 <= int(value) < 1 << PHASH_BITS:
        raise InvalidInputError(f"pHash {value} does not fit in {PHASH_BITS} bits")
    return format(int(value), "016x")


def phash_from_hex(text: str) -> PHash:
    """Parse the 16-digit hex form (as ``str(imagehash.phash(...))`` prints it)."""
    if not isinstance(text, str) or not _HEX16.fullmatch(text):
        raise InvalidInputError(f"pHash {text!r} is not 16 hex digits")
    return PHash(int(text, 16))
