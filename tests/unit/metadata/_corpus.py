"""A corpus of real images and their everyday variants, for pHash agreement tests.

Real photographs (scikit-learn's two sample images, scikit-image's bundled data) and
Fashion-MNIST, each also resized, re-encoded as JPEG, cropped, turned grey, hue-shifted,
brightened and darkened, and stored in other Pillow modes — the edits a provider (or a
cheater) applies, and the inputs a node will actually hash. Deterministic: no randomness.
"""

from __future__ import annotations

import io

import numpy as np
import skimage.data
from PIL import Image, ImageEnhance
from sklearn.datasets import load_sample_images

from visdm.datasets import load_fashion_mnist

# bundled with scikit-image (no download); a mix of colour and grey, sizes 172..1411 pixels
SKIMAGE_NAMES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "rocket",
    "text",
)


def photos() -> list[tuple[str, Image.Image]]:
    """The real photographs, as decoded PIL images."""
    out = []
    sample = load_sample_images()
    for name, array in zip(sample.filenames, sample.images, strict=True):
        out.append((name.rsplit("/", 1)[-1], Image.fromarray(array)))
    for name in SKIMAGE_NAMES:
        out.append((name, Image.fromarray(getattr(skimage.data, name)())))
    return out


def _reencode(image: Image.Image, fmt: str, **params: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def _hue_shift(image: Image.Image, shift: int) -> Image.Image:
    hsv = np.array(image.convert("RGB").convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
    return Image.fromarray(hsv, mode="HSV").convert("RGB")


def variants(name: str, image: Image.Image) -> list[tuple[str, Image.Image]]:
    """Everyday edits of one image."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    return [
        (name, image),
        (f"{name}/resize-256", rgb.resize((256, 256), Image.Resampling.BILINEAR)),
        (f"{name}/resize-half", rgb.resize((max(1, w // 2), max(1, h // 2)))),
        (f"{name}/resize-odd", rgb.resize((33, 47), Image.Resampling.BICUBIC)),
        (f"{name}/resize-up", rgb.resize((w + w // 3, h + h // 5))),
        (f"{name}/jpeg-90", _reencode(rgb, "JPEG", quality=90)),
        (f"{name}/jpeg-50", _reencode(rgb, "JPEG", quality=50)),
        (f"{name}/jpeg-10", _reencode(rgb, "JPEG", quality=10)),
        (f"{name}/crop-centre", rgb.crop((w // 10, h // 10, w - w // 10, h - h // 10))),
        (f"{name}/crop-corner", rgb.crop((0, 0, max(1, 3 * w // 5), max(1, 3 * h // 5)))),
        (f"{name}/grey", rgb.convert("L")),
        (f"{name}/hue+40", _hue_shift(rgb, 40)),
        (f"{name}/brighter", ImageEnhance.Brightness(rgb).enhance(1.4)),
        (f"{name}/darker", ImageEnhance.Brightness(rgb).enhance(0.6)),
        (f"{name}/rgba", rgb.convert("RGBA")),
        (f"{name}/palette", rgb.quantize(64)),
        (f"{name}/webp", _reencode(rgb, "WEBP", quality=80)),
    ]


def fashion_mnist(count: int) -> list[tuple[str, Image.Image]]:
    images, _ = load_fashion_mnist("test", limit=count)
    return [(f"fmnist-{i}", Image.fromarray(a)) for i, a in enumerate(images)]


def corpus(fmnist_count: int = 3000, fmnist_variants: int = 200) -> list[tuple[str, Image.Image]]:
    """Photos and their variants, Fashion-MNIST, and variants of some Fashion-MNIST images."""
    out: list[tuple[str, Image.Image]] = []
    for name, image in photos():
        out.extend(variants(name, image))
    fm = fashion_mnist(fmnist_count)
    out.extend(fm)
    for name, image in fm[:fmnist_variants]:
        out.extend(variants(name, image)[1:])
    return out
