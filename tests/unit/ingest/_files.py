"""Image files, good and bad, written for the ingest tests (all generated, seeded)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def image_bytes(
    fmt: str, *, size: tuple[int, int] = (12, 10), seed: int = 0, **params: object
) -> bytes:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR claims ``width`` x ``height`` (CRC fixed up)."""
    data = bytearray(image_bytes("PNG", size=(4, 4)))
    # IHDR data starts at 16: width(4) height(4) ...; the chunk CRC covers type + data
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()
