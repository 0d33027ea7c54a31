"""Who plays in the demo market, with which data, and how each votes on the first proposal.

Twenty providers (ten with ``--quick``) each hold distinct Fashion-MNIST images. Two of them
(``gus``, ``hal``) label 40% of their images wrongly; ``sam`` uploads JPEG re-encodings of
``ada``'s images as its own; ``ben`` registers his images as two assets. In the negotiation
``ivy`` counter-offers (asks 20% above the offer), ``lu → kai → jo → ivy`` is a three-hop
delegation chain, others delegate to ``ivy`` directly, ``fay`` asks a little more, ``tom``
rejects every proposal (his data leaves those rounds) and the rest abstain — so the weighted
median lands above the offer and the first proposal is Countered. ``ada``, ``ben``, ``cy``,
``dee`` and ``eli`` form the collective ``tailors``: each votes a floor price per sample once,
and the collective votes on every proposal from the weighted median floor with their pooled
weight (it accepts the first and third offers and asks more than the second's). ``kai`` is the
consumer's friend: the consumer slips copies of ``kai``'s images into its validation set, which
would steer value to them if the node did not screen them out. ``lu`` never claims its pay.
After the rounds ``zoe`` arrives with images no round has scored (:func:`prepare_newcomer`).

Which samples are mislabelled is known (:attr:`Provider.wrong`), so the report can say how well
the node's ``noisy`` flags find them; :func:`demo_market` gives the same market as arrays, as the
node decodes it, for benchmarks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from visdm.chain.contracts import REJECT_ASK
from visdm.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = [
    "ASK_MORE",
    "COLLECTIVE",
    "COPIER",
    "COUNTER_OFFERER",
    "DELEGATIONS",
    "FRIEND",
    "LATE_CLAIMER",
    "MEMBERS",
    "NEWCOMER",
    "NOISY",
    "REJECTER",
    "TWO_ASSETS",
    "VICTIM",
    "DemoConfig",
    "DemoMarket",
    "Provider",
    "class_names",
    "demo_market",
    "demo_spec",
    "first_ask",
    "member_floor",
    "prepare_folders",
    "prepare_newcomer",
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
ASK_MORE = frozenset({"fay"})  # asks 10% above the offer
#: the collective the honest owners below form, and its members in the order they join (the
#: first is its steward)
COLLECTIVE = "tailors"
MEMBERS = ("ada", "ben", "cy", "dee", "eli")
#: each member's floor vote, in basis points of the first offer spread over the whole market
#: (what a sample earns when every sample is bought at that offer): all below the first and
#: third offers per selected sample, so the collective accepts those; the second offers half
#: as much for nearly as many samples, below the policy's floor, so the collective asks more
FLOOR_BPS = {"ada": 6000, "ben": 7500, "cy": 7000, "dee": 8000, "eli": 6500}
#: arrives after the rounds with images of its own that no round has scored
NEWCOMER = "zoe"
NOISE_RATE = 0.4
NUM_CLASSES = len(FASHION_MNIST_CLASSES)


def first_ask(who: str, offer: int) -> int | None:
    """``who``'s direct vote on the first proposal (``None``: no direct vote)."""
    if who == REJECTER:
        return REJECT_ASK
    if who == COUNTER_OFFERER:
        return offer * 12 // 10
    if who in ASK_MORE:
        return offer * 11 // 10
    return None  # the collective's members vote through it


def member_floor(config: DemoConfig, who: str) -> int:
    """``who``'s floor vote in the collective, in wei per sample."""
    market = config.images_per_provider * len(config.cast)
    return config.offer_tokens * 10**18 * FLOOR_BPS[who] // (10_000 * market)


def vote_text(who: str, cast: tuple[str, ...]) -> str:
    """How ``who`` voted on the first proposal, in words."""
    ask = first_ask(who, 100)
    if who in MEMBERS:
        return f"via {COLLECTIVE}"
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


def demo_spec(config: DemoConfig) -> dict[str, Any]:
    """The model spec the demo's consumer proposes: no seed (the node draws each job's
    randomness); DP at the licences' default cap or below, δ far below 1/N, and the market's
    minimum batch size."""
    return {
        "architecture": "mlp",
        "input_shape": [1, 28, 28],
        "num_classes": 10,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "optimizer": "adam",
        "learning_rate": 0.005,
        "hidden": [128],
        "dp": {"target_epsilon": config.dp_epsilon, "delta": 1e-5, "max_grad_norm": 1.0},
    }


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    folders: tuple[Path, ...]  # one per asset
    images: int
    mislabelled: int
    copies_of: str | None
    #: per asset, the sample indexes (positions in file-name order) whose label is wrong
    wrong: tuple[frozenset[int], ...] = ()


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


def _holdings(
    config: DemoConfig, y: NDArray[np.int64]
) -> list[tuple[str, list[int], NDArray[np.int64]]]:
    """Who holds which training images (by index) under which class labels, noise included."""
    n = config.images_per_provider
    rng = np.random.default_rng(config.seed)
    out = []
    for who in config.cast:
        idx = list(_train_range(config, who))
        labels = y[idx].astype(np.int64)
        if who in NOISY:
            flip = rng.choice(n, size=int(NOISE_RATE * n), replace=False)
            for j in flip:
                labels[j] = (labels[j] + int(rng.integers(1, NUM_CLASSES))) % NUM_CLASSES
        out.append((who, idx, labels))
    return out


def prepare_folders(root: Path, config: DemoConfig) -> dict[str, Provider]:
    """One folder of images + ``labels.csv`` per asset, noise and copies included."""
    n = config.images_per_provider
    x, y = load_fashion_mnist("train", limit=n * len(config.cast))
    names = class_names()
    out: dict[str, Provider] = {}
    for who, idx, classes in _holdings(config, y):
        labels = [names[int(c)] for c in classes]
        copier = who == COPIER
        files = [f"{who}-{i:05d}.{'jpg' if copier else 'png'}" for i in idx]
        data = [_jpeg(x[i]) if copier else _png(x[i]) for i in idx]
        parts = 2 if who == TWO_ASSETS else 1
        cut = [len(idx) * p // parts for p in range(parts + 1)]
        folders = tuple(root / who / f"asset-{p + 1}" for p in range(parts))
        wrong = []
        for p, folder in enumerate(folders):
            part = slice(cut[p], cut[p + 1])
            _write(folder, files[part], data[part], labels[part])
            # a sample's index is its file's position in name order
            ordered = sorted(range(cut[p], cut[p + 1]), key=lambda k: files[k])
            wrong.append(frozenset(pos for pos, k in enumerate(ordered) if classes[k] != y[idx[k]]))
        mislabelled = sum(len(w) for w in wrong)
        out[who] = Provider(who, folders, n, mislabelled, VICTIM if copier else None, tuple(wrong))
    return out


def prepare_newcomer(root: Path, config: DemoConfig) -> Provider:
    """The newcomer's one asset: as many correctly labelled images as each provider holds,
    the training images that follow the cast's."""
    n = config.images_per_provider
    start = n * len(config.cast)
    x, y = load_fashion_mnist("train", limit=start + n)
    names = class_names()
    idx = range(start, start + n)
    folder = root / NEWCOMER / "asset-1"
    _write(
        folder,
        [f"{NEWCOMER}-{i:05d}.png" for i in idx],
        [_png(x[i]) for i in idx],
        [names[int(y[i])] for i in idx],
    )
    return Provider(NEWCOMER, (folder,), n, 0, None, (frozenset(),))


@dataclass(frozen=True, slots=True, eq=False)
class DemoMarket:
    """The demo market as arrays: every image as the node decodes it (the copier's are JPEG
    re-encodings), its class label as uploaded and the true one, and who uploaded it, in cast
    order; and the consumer's validation set (:func:`validation_arrays`), unscreened."""

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]
    true_labels: NDArray[np.int64]
    owners: tuple[str, ...]
    val_images: NDArray[np.uint8]
    val_labels: NDArray[np.int64]

    @property
    def mislabelled(self) -> NDArray[np.bool_]:
        wrong: NDArray[np.bool_] = self.labels != self.true_labels
        return wrong


def demo_market(config: DemoConfig, *, leave_out: frozenset[str] = frozenset()) -> DemoMarket:
    """The market :func:`prepare_folders` writes, without files; providers in ``leave_out``
    (``REJECTER``, who keeps his data out of the first round) are left out."""
    n = config.images_per_provider
    x, y = load_fashion_mnist("train", limit=n * len(config.cast))
    images, labels, truth, owners = [], [], [], []
    for who, idx, classes in _holdings(config, y):
        if who in leave_out:
            continue
        for i, c in zip(idx, classes.tolist(), strict=True):
            images.append(_decoded_jpeg(x[i]) if who == COPIER else x[i])
            labels.append(c)
            truth.append(int(y[i]))
            owners.append(who)
    val_images, val_labels = validation_arrays(config)
    return DemoMarket(
        np.stack(images),
        np.asarray(labels, dtype=np.int64),
        np.asarray(truth, dtype=np.int64),
        tuple(owners),
        val_images,
        val_labels.astype(np.int64),
    )


def _decoded_jpeg(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(_jpeg(pixels))) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


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
