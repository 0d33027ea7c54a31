"""Where the image in a file ends, so that bytes appended after it can be refused.

``cat photo.png archive.zip > sample.png`` gives a file every image decoder opens as the photo:
decoders stop at the image's end and ignore the rest. A sample's bytes are encrypted and stored
as they are, so an appended trailer would travel hidden into the market — a payload only a
compute node ever decrypts, or a copy of someone's picture made "new" for the exact-bytes
duplicate check by a few appended bytes. :func:`image_end` finds the end each container
defines; :func:`~visdm.ingest.decode_image` refuses a file that goes on past it.

Ends, per container (each walk is linear in the file's size and never reads past its end):

* **PNG**: just after the ``IEND`` chunk (length, type, data and CRC of each chunk walked);
* **JPEG**: just after the ``EOI`` marker that ends the last scan (segments walked by their
  lengths; a scan's entropy-coded data ends at the first marker that is not a stuffed ``FF 00``
  or a restart marker), so an EXIF thumbnail's own ``EOI`` inside ``APP1`` is skipped;
* **WebP**: the RIFF size plus its 8-byte header (plus the pad byte of an odd size);
* **BMP**: the furthest of the pixel array (row stride × height, or ``biSizeImage`` when
  compressed), an embedded colour profile, and the declared ``bfSize``.

``None`` means the end could not be found (a structure the decoder accepted but this walk does
not follow): the file is then not refused for a trailer.
"""

from __future__ import annotations

import re
import struct

__all__ = ["image_end"]

# a marker after entropy-coded data: FF, then neither a stuffed 00, a restart, nor fill FF
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_EOI, _SOS = 0xD9, 0xDA
_BMP_UNCOMPRESSED = frozenset({0, 3, 6})  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
_PROFILE_EMBEDDED = 0x4D424544  # "MBED"


def image_end(data: bytes, fmt: str) -> int | None:
    """The offset just past the image of container ``fmt`` (Pillow's name), or ``None``."""
    try:
        if fmt == "PNG":
            return _png_end(data)
        if fmt in ("JPEG", "MPO"):
            return _jpeg_end(data)
        if fmt == "WEBP":
            return _webp_end(data)
        if fmt == "BMP":
            return _bmp_end(data)
    except (struct.error, IndexError):  # a structure cut short: the decoder has its say
        return None
    return None


def _png_end(data: bytes) -> int | None:
    pos = 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos if pos <= len(data) else None
    return None


def _jpeg_end(data: bytes) -> int | None:
    pos = 2  # after SOI
    while pos + 1 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            return pos + 2
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
        if marker == _SOS:
            found = _SCAN_END.search(data, pos)
            if found is None:
                return None
            pos = found.start()
    return None


def _webp_end(data: bytes) -> int | None:
    if data[:4] != b"RIFF":
        return None
    size = int.from_bytes(data[4:8], "little")
    return 8 + size + (size & 1)


def _bmp_end(data: bytes) -> int | None:
    declared, offset, header = struct.unpack_from("<I4xII", data, 2)
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height, bits = struct.unpack_from("<HH2xH", data, 18)
        compression = size_image = 0
    else:
        width, height, bits, compression, size_image = struct.unpack_from("<ii2xHII", data, 18)
    if compression in _BMP_UNCOMPRESSED:
        pixels = (abs(width) * bits + 31) // 32 * 4 * abs(height)
    else:
        pixels = size_image
    end = offset + pixels
    if header >= 124:  # BITMAPV5HEADER: an embedded profile may follow the pixels
        (colour_space,) = struct.unpack_from("<I", data, 14 + 56)
        profile_at, profile_size = struct.unpack_from("<II", data, 14 + 112)
        if colour_space == _PROFILE_EMBEDDED:
            end = max(end, 14 + profile_at + profile_size)
    if declared <= len(data):
        end = max(end, declared)
    return int(end)
