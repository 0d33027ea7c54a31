"""A small, deterministic Fashion-MNIST marketplace for the fairness tests.

Embedding: a fixed PCA projection of the pixels (32 components, fitted on 5,000 training
images that no provider in the scenario owns: ``train[-5000:]``), centred with the same mean.
It is exact, deterministic and takes well under a second, and K-NN on it classifies
Fashion-MNIST at about 80-85 % accuracy, so KNN-Shapley values are meaningful (the benchmark
uses a trained CNN instead). Near-duplicate links use ``imagehash.phash`` (the metadata's pHash)
at Hamming radius 8, as the metadata stage computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import imagehash
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from visdm.datasets import load_fashion_mnist

N_PROVIDERS = 10
PER_PROVIDER = 60
N_VAL = 400
K = 5
DIMS = 32
PHASH_RADIUS = 8


def address(i: int) -> str:
    return "0x" + f"{0xA11CE000 + i:040x}"


@cache
def _pool() -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8], NDArray[np.int64]]:
    images, labels = load_fashion_mnist("train")
    val_images, val_labels = load_fashion_mnist("test", limit=N_VAL)
    return images, labels, val_images, val_labels


@cache
def _projection() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    images = _pool()[0][-5000:].reshape(5000, -1).astype(np.float64) / 255.0
    mean = images.mean(axis=0)
    _, _, vt = np.linalg.svd(images - mean, full_matrices=False)
    return mean, vt[:DIMS].T


def embed(images: NDArray[np.uint8]) -> NDArray[np.float64]:
    mean, basis = _projection()
    flat = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return (flat - mean) @ basis


def phash(images: NDArray[np.uint8]) -> NDArray[np.uint64]:
    return np.array(
        [int(str(imagehash.phash(Image.fromarray(img))), 16) for img in images], dtype=np.uint64
    )


def phash_links(hashes: NDArray[np.uint64], radius: int = PHASH_RADIUS) -> list[tuple[int, int]]:
    x = hashes[:, None] ^ hashes[None, :]
    bytes_ = x.view(np.uint8).reshape(x.shape[0], x.shape[1], 8)
    dist = np.unpackbits(bytes_, axis=2).sum(axis=2)
    i, j = np.nonzero(np.triu(dist <= radius, k=1))
    return list(zip(i.tolist(), j.tolist(), strict=True))


def augment(images: NDArray[np.uint8], seed: int) -> NDArray[np.uint8]:
    """Copies an attacker might upload: contrast and brightness jitter and sensor noise.

    Photometric changes only: a one-pixel shift of a 28x28 image moves its pHash by a median
    of 12 bits and its pixel-PCA embedding below cosine 0.93, so neither link catches shifted
    copies at this resolution (see the report); a shift-invariant embedding would be needed.
    """
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for n, img in enumerate(images.astype(np.float64)):
        gain, offset = rng.uniform(0.9, 1.1), rng.uniform(-10.0, 10.0)
        noisy = img * gain + offset + rng.normal(0.0, 4.0, size=img.shape)
        out[n] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True, eq=False)
class Market:
    images: NDArray[np.uint8]
    labels: NDArray[np.int64]
    providers: tuple[str, ...]
    val_features: NDArray[np.float64]
    val_labels: NDArray[np.int64]

    @property
    def features(self) -> NDArray[np.float64]:
        return embed(self.images)

    def links(self) -> list[tuple[int, int]]:
        return phash_links(phash(self.images))

    def with_copies(self, provider: int, k: int, *, augmented: bool) -> Market:
        """``provider`` uploads ``k`` more copies of each of its images, registered last."""
        own = np.flatnonzero(np.array(self.providers) == address(provider))
        extra = [
            augment(self.images[own], seed=1000 * k + c) if augmented else self.images[own]
            for c in range(k)
        ]
        return replace(
            self,
            images=np.concatenate([self.images, *extra]),
            labels=np.concatenate([self.labels] + [self.labels[own]] * k),
            providers=self.providers + (address(provider),) * (k * own.size),
        )

    def with_flipped(self, provider: int, fraction: float, seed: int = 7) -> Market:
        """Flip ``fraction`` of one provider's labels to another class, uniformly at random."""
        rng = np.random.default_rng(seed)
        own = np.flatnonzero(np.array(self.providers) == address(provider))
        flip = rng.choice(own, size=round(fraction * own.size), replace=False)
        labels = self.labels.copy()
        labels[flip] = (labels[flip] + rng.integers(1, 10, size=flip.size)) % 10
        return replace(self, labels=labels)

    def with_sybils(self, provider: int, identities: int) -> Market:
        """Spread one provider's samples round-robin over ``identities`` addresses."""
        providers = list(self.providers)
        own = [i for i, p in enumerate(providers) if p == address(provider)]
        for n, i in enumerate(own):
            providers[i] = address(100 + provider * 10 + n % identities)
        return replace(self, providers=tuple(providers))


@cache
def base_market() -> Market:
    images, labels, val_images, val_labels = _pool()
    n = N_PROVIDERS * PER_PROVIDER
    return Market(
        images=images[:n].copy(),
        labels=labels[:n].copy(),
        providers=tuple(address(i // PER_PROVIDER) for i in range(n)),
        val_features=embed(val_images),
        val_labels=val_labels,
    )
