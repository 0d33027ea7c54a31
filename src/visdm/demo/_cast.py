"""Who plays in the demo market and with which data.

Twenty providers (nine with ``--quick``) each hold distinct Fashion-MNIST images. Two of them
(``gus``, ``hal``) label 40% of their images wrongly; ``sam`` uploads JPEG re-encodings of
``ada``'s images as its own. In the negotiation ``ivy`` counter-offers (asks 20% above the
offer), ``lu → kai → jo → ivy`` is a three-hop delegation chain, others delegate to ``ivy``
directly, a few vote ``accept`` or ask a little more, and the rest abstain — so the weighted
median lands above the offer and the proposal is Countered.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from visdm.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = [
    "COPIER",
    "COUNTER_OFFERER",
    "DELEGATIONS",
    "NOISY",
    "VICTIM",
    "DemoConfig",
    "Provider",
    "class_names",
    "prepare_folders",
    "validation_arrays",
]

FULL_CAST = (
    "ada", "ben", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo",
    "kai", "lu", "max", "ned", "oli", "pat", "quin", "rae", "sam", "tom",
)  # fmt: skip
QUICK_CAST = ("ada", "ben", "ivy", "jo", "kai", "lu", "gus", "hal", "sam")
NOISY = frozenset({"gus", "hal"})
VICTIM, COPIER = "ada", "sam"
COUNTER_OFFERER = "ivy"
#: who delegates to whom (``lu → kai → jo → ivy`` is the three-hop chain)
DELEGATIONS = {
    "lu": "kai",
    "kai": "jo",
    "jo": "ivy",
    "max": "ivy",
    "ned": "ivy",
    "oli": "ivy",
    "pat": "ivy",
    "quin": "ivy",
    "rae": "ivy",
}
ACCEPT = frozenset({"ada", "ben", "cy", "dee", "eli"})
ASK_MORE = frozenset({"fay"})  # asks 10% above the offer
NOISE_RATE = 0.4


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """The demo market's size and terms (``quick`` is the CI-sized market)."""

    quick: bool = False
    images_per_provider: int = 60
    validation_images: int = 500
    offer_tokens: int = 100
    wtp_bps: int = 6000
    epochs: int = 10
    dp_epsilon: float = 3.0
    seed: int = 7

    @classmethod
    def for_size(cls, quick: bool) -> DemoConfig:
        if quick:
            return cls(quick=True, images_per_provider=25, validation_images=200, wtp_bps=3000)
        return cls()

    @property
    def cast(self) -> tuple[str, ...]:
        return QUICK_CAST if self.quick else FULL_CAST


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    folder: Path
    images: int
    mislabelled: int
    copies_of: str | None


def _slug(name: str) -> str:
    return name.lower().replace("/", "-").replace(" ", "-")


def class_names() -> list[str]:
    """The label names the demo's files carry, in class-index order."""
    return [_slug(c) for c in FASHION_MNIST_CLASSES]


def _write(folder: Path, names: list[str], images: list[bytes], labels: list[str]) -> None:
    folder.mkdir(parents=True)
    rows = ["filename,label"]
    for name, data, label in zip(names, images, labels, strict=True):
        (folder / name).write_bytes(data)
        rows.append(f"{name},{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


def _png(pixels: NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _jpeg(pixels: NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def prepare_folders(root: Path, config: DemoConfig) -> dict[str, Provider]:
    """One folder of images + ``labels.csv`` per provider, noise and copies included."""
    cast = config.cast
    n = config.images_per_provider
    x, y = load_fashion_mnist("train", limit=n * len(cast))
    names = class_names()
    rng = np.random.default_rng(config.seed)
    out: dict[str, Provider] = {}
    for k, who in enumerate(cast):
        if who == COPIER:
            continue
        idx = range(k * n, (k + 1) * n)
        labels = [names[int(y[i])] for i in idx]
        wrong = 0
        if who in NOISY:
            flip = rng.choice(n, size=int(NOISE_RATE * n), replace=False)
            for j in flip:
                true = int(y[k * n + int(j)])
                labels[int(j)] = names[(true + int(rng.integers(1, len(names)))) % len(names)]
            wrong = len(flip)
        files = [f"{who}-{i:05d}.png" for i in idx]
        _write(root / who, files, [_png(x[i]) for i in idx], labels)
        out[who] = Provider(who, root / who, n, wrong, None)
    victim = cast.index(VICTIM)
    idx = range(victim * n, (victim + 1) * n)
    _write(
        root / COPIER,
        [f"{COPIER}-{i:05d}.jpg" for i in idx],
        [_jpeg(x[i]) for i in idx],
        [names[int(y[i])] for i in idx],
    )
    out[COPIER] = Provider(COPIER, root / COPIER, n, 0, VICTIM)
    return out


def validation_arrays(config: DemoConfig) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The consumer's own labelled images (Fashion-MNIST test split)."""
    return load_fashion_mnist("test", limit=config.validation_images)
