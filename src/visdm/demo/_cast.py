"""Who plays in the demo market, with which data, and how each votes on the first proposal.

Twenty providers (ten with ``--quick``) each hold distinct Fashion-MNIST images. Two of them
(``gus``, ``hal``) label 40% of their images wrongly; ``sam`` uploads JPEG re-encodings of
``ada``'s images as its own; ``ben`` registers his images as two assets. In the negotiation
``ivy`` counter-offers (asks 20% above the offer), ``lu → kai → jo → ivy`` is a three-hop
delegation chain, others delegate to ``ivy`` directly, a few vote ``accept`` or ask a little
more, ``tom`` rejects every proposal (his data leaves those rounds) and the rest abstain — so
the weighted median lands above the offer and the first proposal is Countered. ``kai`` is the
consumer's friend: the consumer slips copies of ``kai``'s images into its validation set, which
would steer value to them if the node did not screen them out. ``lu`` never claims its pay.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from visdm.chain.contracts import REJECT_ASK
from visdm.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = [
    "ACCEPT",
    "ASK_MORE",
    "COPIER",
    "COUNTER_OFFERER",
    "DELEGATIONS",
    "FRIEND",
    "LATE_CLAIMER",
    "NOISY",
    "REJECTER",
    "TWO_ASSETS",
    "VICTIM",
    "DemoConfig",
    "Provider",
    "class_names",
    "first_ask",
    "prepare_folders",
    "validation_arrays",
    "vote_text",
]

FULL_CAST = (
    "ada", "ben", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo",
    "kai", "lu", "max", "ned", "oli", "pat", "quin", "rae", "sam", "tom",
)  # fmt: skip
QUICK_CAST = ("ada", "ben", "ivy", "jo", "kai", "lu", "gus", "hal", "sam", "tom")
NOISY = frozenset({"gus", "hal"})
VICTIM, COPIER = "ada", "sam"
COUNTER_OFFERER = "ivy"
#: rejects every proposal: its assets leave each round, unused and unpaid
REJECTER = "tom"
#: registers its images as two assets; one claimMany pays both
TWO_ASSETS = "ben"
#: the consumer's friend, whose images the consumer copies into its validation set
FRIEND = "kai"
#: never claims: after the claim period its payout goes to the market treasury
LATE_CLAIMER = "lu"
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


def first_ask(who: str, offer: int) -> int | None:
    """``who``'s direct vote on the first proposal (``None``: no direct vote)."""
    if who == REJECTER:
        return REJECT_ASK
    if who == COUNTER_OFFERER:
        return offer * 12 // 10
    if who in ASK_MORE:
        return offer * 11 // 10
    if who in ACCEPT:
        return 0
    return None


def vote_text(who: str, cast: tuple[str, ...]) -> str:
    """How ``who`` voted on the first proposal, in words."""
    ask = first_ask(who, 100)
    if ask is None:
        to = DELEGATIONS.get(who)
        return f"via {to}" if to in cast else "abstains"
    return "reject" if ask == REJECT_ASK else "accept" if ask == 0 else f"+{ask - 100}%"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """The demo market's size and terms (``quick`` is the CI-sized market).

    Sizes meet the market's default minimums (256 samples of 3 providers in every round, also
    after rejecting providers leave it and once samples flagged noisy are searched out); the
    spec trains with DP-SGD at the default licence's ε cap or below and the minimum batch size.
    """

    quick: bool = False
    images_per_provider: int = 60
    validation_images: int = 500
    #: of those, copies of the friend's training images (the node's screen drops them)
    validation_copies: int = 20
    offer_tokens: int = 100
    wtp_bps: int = 6000
    #: the share of the selected samples the consumer still wants after rejections
    min_share_bps: int = 8000
    epochs: int = 10
    batch_size: int = 64
    dp_epsilon: float = 3.0
    seed: int = 7

    @classmethod
    def for_size(cls, quick: bool) -> DemoConfig:
        if quick:
            return cls(
                quick=True,
                images_per_provider=48,
                validation_images=200,
                validation_copies=10,
                wtp_bps=3000,
            )
        return cls()

    @property
    def cast(self) -> tuple[str, ...]:
        return QUICK_CAST if self.quick else FULL_CAST


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    folders: tuple[Path, ...]  # one per asset
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


def _train_range(config: DemoConfig, who: str) -> range:
    """Which training images ``who`` holds (the copier holds the victim's)."""
    n = config.images_per_provider
    k = config.cast.index(VICTIM if who == COPIER else who)
    return range(k * n, (k + 1) * n)


def prepare_folders(root: Path, config: DemoConfig) -> dict[str, Provider]:
    """One folder of images + ``labels.csv`` per asset, noise and copies included."""
    cast = config.cast
    n = config.images_per_provider
    x, y = load_fashion_mnist("train", limit=n * len(cast))
    names = class_names()
    rng = np.random.default_rng(config.seed)
    out: dict[str, Provider] = {}
    for who in cast:
        idx = list(_train_range(config, who))
        labels = [names[int(y[i])] for i in idx]
        wrong = 0
        if who in NOISY:
            flip = rng.choice(n, size=int(NOISE_RATE * n), replace=False)
            for j in flip:
                true = int(y[idx[int(j)]])
                labels[int(j)] = names[(true + int(rng.integers(1, len(names)))) % len(names)]
            wrong = len(flip)
        copier = who == COPIER
        files = [f"{who}-{i:05d}.{'jpg' if copier else 'png'}" for i in idx]
        data = [_jpeg(x[i]) if copier else _png(x[i]) for i in idx]
        parts = 2 if who == TWO_ASSETS else 1
        cut = [len(idx) * p // parts for p in range(parts + 1)]
        folders = tuple(root / who / f"asset-{p + 1}" for p in range(parts))
        for p, folder in enumerate(folders):
            part = slice(cut[p], cut[p + 1])
            _write(folder, files[part], data[part], labels[part])
        out[who] = Provider(who, folders, n, wrong, VICTIM if copier else None)
    return out


def validation_arrays(config: DemoConfig) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The consumer's labelled images: the Fashion-MNIST test split, with the first
    ``validation_copies`` replaced by copies of the friend's training images."""
    x, y = load_fashion_mnist("test", limit=config.validation_images)
    copies = config.validation_copies
    if copies and FRIEND in config.cast:
        xt, yt = load_fashion_mnist("train", limit=config.images_per_provider * len(config.cast))
        idx = list(_train_range(config, FRIEND))[:copies]
        x[:copies], y[:copies] = xt[idx], yt[idx]
    return x, y
