"""Decode one untrusted image file, or say precisely why it cannot be a sample.

Both sides decode untrusted bytes: the provider before upload (design 3.2 step 1) and the
compute node after decryption (step 6). Image decoders are attack surface, so this module
narrows it:

* only the allowed container formats' Pillow plugins are tried (``Image.open(formats=...)``):
  PNG, JPEG, WebP and BMP by default; a GIF, TIFF, PDF… is named in the refusal but never
  parsed beyond its magic bytes;
* the pixel count is checked from the header *before* any pixel is decoded, against our own
  :attr:`ImageLimits.max_pixels` (default 40 MP, well under Pillow's 89 MP bomb threshold);
  Pillow's own ``DecompressionBombWarning`` / ``DecompressionBombError`` are also caught and
  reported as a bomb — the warning is turned into an error only inside this call, without
  touching the global ``Image.MAX_IMAGE_PIXELS`` or warning filters outside it;
* ``verify()`` (container integrity, e.g. PNG CRCs) *and* a full ``load()`` (every pixel, so a
  truncated file fails here, not later in training) — ``ImageFile.LOAD_TRUNCATED_IMAGES`` must
  stay ``False``, and a call refuses to run if someone set it;
* animated images (APNG, animated WebP) are refused: a sample is one picture;
* bytes after the image's end (an appended archive, a phone's motion-photo video) are refused,
  not stripped: a sample's bytes are encrypted and stored exactly as the provider's file, so a
  trailer would travel hidden into the market, and stripping it would register bytes the
  provider never had (see :mod:`._trailing`).

The decoded image is what the pixels *mean*, so that everyone who looks at them — the
provider's checks, the node's metadata, the training job — sees the same picture:

* the EXIF orientation is applied (a phone's portrait photo is stored landscape with
  ``Orientation=6``), and the width and height reported are the upright ones;
* 16-bit grey (Pillow's ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``; ``I`` from older Pillows)
  is scaled to 8 bits, ``round(v × 255 / 65535)``: Pillow's own ``convert("L")`` clips at 255,
  which turns a full-range 16-bit gradient 99 % white. 16-bit colour PNGs already decode to
  8 bits per channel (Pillow keeps the high byte).

``warnings.catch_warnings`` is process-global, so decode from one thread at a time (or
processes); Pillow's decoders themselves are reentrant.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from visdm.errors import InvalidImageError, InvalidInputError

from ._trailing import image_end

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_LIMITS",
    "DecodedImage",
    "ImageLimits",
    "decode_image",
    "sniff_format",
]

#: containers accepted by default (Pillow format names)
ALLOWED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP", "BMP"})

# magic bytes of formats we refuse, only to name them in the refusal
_OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"%PDF", 0, "PDF"),
    (b"%!PS", 0, "PostScript/EPS"),
    (b"8BPS", 0, "PSD"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypavif", 4, "AVIF"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG 2000"),
    (b"<svg", 0, "SVG"),
    (b"<?xml", 0, "XML/SVG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"BM", 0, "BMP"),
    (b"WEBP", 8, "WEBP"),
)
# what a corrupt file makes Pillow's decoders (and its EXIF reader) raise
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    struct.error,
)
# modes of more than 8 bits per sample that the allowed formats decode to (16-bit grey PNG)
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What an acceptable sample file may be."""

    #: most pixels (width x height) a sample may have
    max_pixels: int = 40_000_000
    #: largest file, in bytes
    max_file_bytes: int = 50 * 1024 * 1024
    #: allowed containers, as Pillow names them
    formats: frozenset[str] = field(default=ALLOWED_FORMATS)

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_file_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"ImageLimits.{name} must be a positive integer")
        unknown = sorted(set(self.formats) - ALLOWED_FORMATS)
        if unknown or not self.formats:
            raise InvalidInputError(
                f"ImageLimits.formats must be a non-empty subset of {sorted(ALLOWED_FORMATS)}, "
                f"got {sorted(self.formats)}"
            )


#: the limits used when none are given
DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """A fully decoded, validated image: upright (``width`` and ``height`` are the picture's as
    shown, a quarter turn from the header's when EXIF says so) and 8 bits per channel (``mode``
    is the decoded pixels', ``L`` for 16-bit grey); ``format`` and ``byte_size`` are the file's.
    """

    image: Image.Image
    format: str
    width: int
    height: int
    mode: str
    byte_size: int


def decode_image(
    data: bytes, *, name: str = "<bytes>", limits: ImageLimits = DEFAULT_LIMITS
) -> DecodedImage:
    """Decode ``data`` completely, or raise :class:`~visdm.errors.InvalidImageError` whose
    message starts with ``name`` and says what is wrong."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise InvalidInputError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process: truncated files "
            "would be accepted; set it back to False"
        )
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError(f"{name}: image data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise InvalidImageError(f"{name}: empty file")
    if len(data) > limits.max_file_bytes:
        raise InvalidImageError(
            f"{name}: file is {len(data)} bytes, over the {limits.max_file_bytes}-byte limit"
        )
    formats = sorted(limits.formats)
    with warnings.catch_warnings():
        # the same answer under any warning filter: Pillow's other warnings (a corrupt EXIF
        # tag it skips) change nothing here, and its bomb warning is a refusal
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            fmt, width, height = _probe(data, name, formats, limits)
            _refuse_trailer(data, fmt, name)
            opened = Image.open(io.BytesIO(data), formats=[fmt])
            opened.load()
            image = _upright(opened, name)
        except InvalidImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImageError(f"{name}: decompression bomb refused ({exc})") from None
        except _DECODE_ERRORS as exc:
            raise InvalidImageError(
                f"{name}: corrupt or truncated {sniff_format(data) or 'image'} file ({_short(exc)})"
            ) from None
    if image.mode in _SIXTEEN_BIT:
        image = _eight_bit_grey(image)
    # a camera JPEG with a multi-picture extension opens as "MPO"; one frame is a JPEG
    kind = "JPEG" if fmt == "MPO" else fmt
    width, height = image.size  # upright: a quarter turn swaps the header's two
    return DecodedImage(image, kind, width, height, image.mode, len(data))


def _refuse_trailer(data: bytes, fmt: str, name: str) -> None:
    end = image_end(data, fmt)
    if end is not None and end < len(data):
        extra = len(data) - end
        what = "a ZIP archive" if data[end : end + 4] == b"PK\x03\x04" else "other data"
        raise InvalidImageError(
            f"{name}: {extra:,} byte(s) of {what} follow the end of the {fmt} image at byte "
            f"{end:,}; only the picture may be a sample: re-save it as a plain image (or cut "
            f"the file at byte {end:,})"
        )


def _upright(image: Image.Image, name: str) -> Image.Image:
    """``image`` turned as its EXIF orientation says (Pillow reads EXIF from JPEG, PNG eXIf
    and WebP); an orientation that cannot be read leaves the picture's meaning unknown."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(
            f"{name}: its EXIF metadata is corrupt ({_short(exc)}), so which way is up is "
            "unknown: re-save the image without EXIF"
        ) from None
    if orientation not in range(2, 9):  # 1 is upright; other values mean nothing
        return image
    turned = ImageOps.exif_transpose(image)
    image.close()
    return turned


def _eight_bit_grey(image: Image.Image) -> Image.Image:
    """16-bit grey scaled to 8 bits (``I`` clipped to 0..65535 first: a PNG holds no more)."""
    wide = np.clip(np.asarray(image), 0, 0xFFFF).astype(np.uint32)
    image.close()
    return Image.fromarray(((wide * 255 + 0x7FFF) // 0xFFFF).astype(np.uint8))


def _probe(data: bytes, name: str, formats: list[str], limits: ImageLimits) -> tuple[str, int, int]:
    """Identify the container and check the header; ``verify()`` the container."""
    try:
        probe = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        other = sniff_format(data)
        if other is not None and other not in formats:
            raise InvalidImageError(
                f"{name}: {other} files are not accepted (allowed: {', '.join(formats)})"
            ) from None
        what = f"a corrupt {other} file" if other else "not an image Pillow can identify"
        raise InvalidImageError(f"{name}: {what}") from None
    with probe:
        fmt = str(probe.format)
        width, height = probe.size
        if width < 1 or height < 1:
            raise InvalidImageError(f"{name}: image has no pixels ({width}x{height})")
        if width * height > limits.max_pixels:
            raise InvalidImageError(
                f"{name}: {width}x{height} = {width * height} pixels is over the "
                f"{limits.max_pixels}-pixel limit (decompression bomb guard)"
            )
        frames = int(getattr(probe, "n_frames", 1))
        if frames > 1:
            raise InvalidImageError(f"{name}: animated {fmt} with {frames} frames; send stills")
        probe.verify()
    return fmt, width, height


def sniff_format(data: bytes) -> str | None:
    """A best guess at a file's format from its magic bytes (for messages only)."""
    for magic, offset, fmt in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            return fmt
    return None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
