"""Metadata generation: batched pHash vs imagehash, and all-pairs near-duplicate search vs a
plain NumPy linear scan (see shared/BENCHMARKS.md for the conventions).

1. **pHash throughput** on the same decoded ``PIL.Image`` objects: ``visdm.metadata.
   phash_batch(images)`` vs ``[imagehash.phash(im) for im in images]``; the hashes are also
   compared (they must be equal bit for bit). Two inputs: Fashion-MNIST 28x28 grey images
   (the test split) and 256x256 RGB crops of real photographs (scikit-learn's two sample
   images, random crops and rescales, seeded). Timings alternate ours/peer in every
   repetition; the median is reported. Target: >= 5x.
2. **All-pairs search at Hamming radius 8** over N random 64-bit hashes of which 10 % are
   planted near-copies of others at distances 0..10 (uniform): ``visdm.metadata.
   find_duplicate_pairs`` (multi-index hashing, exact) vs a plain NumPy linear scan (for each
   row i, XOR with rows i+1.., popcount by a 16-bit lookup table, keep <= 8). When the plain
   scan would take too long (always at 1M), it runs on a seeded random subsample of query
   rows and its time is extrapolated linearly in the number of pairs those rows compare
   (row i compares N-1-i pairs); the output says so. The pairs of those rows are checked to be
   identical to ours. Target: >= 20x at 1M with identical pairs.

Usage: ``python benchmarks/metadata.py [--quick] [--json] [--repeats K]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import imagehash
import numpy as np
from PIL import Image

from _harness import Row, emit, median_time, parse_args
from visdm.datasets import load_fashion_mnist
from visdm.metadata import find_duplicate_pairs, phash_batch

_POP16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.uint8)


# --- 1. pHash ------------------------------------------------------------------------------
def _photo_crops(count: int, seed: int) -> list[Image.Image]:
    """256x256 RGB crops (random position and scale, seeded) of scikit-learn's two sample
    photographs (china.jpg, flower.jpg; 640x427, shipped with the package)."""
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        src = sources[int(rng.integers(len(sources)))]
        side = int(rng.integers(256, min(src.size) + 1))
        x = int(rng.integers(0, src.width - side + 1))
        y = int(rng.integers(0, src.height - side + 1))
        out.append(src.crop((x, y, x + side, y + side)).resize((256, 256)))
    return out


def _phash_rows(images: list[Image.Image], label: str, repeats: int) -> list[Row]:
    def ours() -> np.ndarray:
        return phash_batch(images)

    def peer() -> list[int]:
        return [int(str(imagehash.phash(im)), 16) for im in images]

    ours()  # warm caches (coefficient tables, imports) outside the timing
    t_ours, t_peer = [], []
    for _ in range(max(1, repeats)):
        t, ours_hashes = median_time(ours, 1)
        t_ours.append(t)
        t, peer_hashes = median_time(peer, 1)
        t_peer.append(t)
    agree = float(np.mean(ours_hashes == np.array(peer_hashes, dtype=np.uint64)))
    ours_rate = len(images) / float(np.median(t_ours))
    peer_rate = len(images) / float(np.median(t_peer))
    ratio = ours_rate / peer_rate
    return [
        Row(
            f"pHash {label} ({len(images)} images)",
            ours_rate,
            "images/s",
            "imagehash.phash",
            peer_rate,
            ratio,
            ">= 5x",
            ratio >= 5,
        ),
        Row(
            f"pHash {label}: bit-identical to imagehash",
            agree,
            "fraction",
            None,
            None,
            None,
            "1.0",
            agree == 1.0,
        ),
    ]


# --- 2. all-pairs near-duplicate search ------------------------------------------------------
def _planted_hashes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_copies = n // 10
    base = rng.integers(0, 2**64, n - n_copies, dtype=np.uint64)
    copies = base[rng.integers(0, base.size, n_copies)]
    flips = rng.integers(0, 11, n_copies)
    for k in range(1, 11):  # flip k distinct random bits in the copies drawn for distance k
        rows = np.flatnonzero(flips == k)
        for row in rows:
            for bit in rng.choice(64, k, replace=False):
                copies[row] ^= np.uint64(1) << np.uint64(int(bit))
    out = np.concatenate([base, copies])
    rng.shuffle(out)
    return out


def _plain_scan(hashes: np.ndarray, rows: np.ndarray, radius: int) -> set[tuple[int, int]]:
    """The obvious NumPy scan: row i against every later row."""
    pairs: set[tuple[int, int]] = set()
    for i in rows.tolist():
        x = hashes[i + 1 :] ^ hashes[i]
        v = x.view(np.uint16).reshape(-1, 4)
        d = _POP16[v[:, 0]] + _POP16[v[:, 1]] + _POP16[v[:, 2]] + _POP16[v[:, 3]]
        pairs.update((i, int(j)) for j in (np.flatnonzero(d <= radius) + i + 1).tolist())
    return pairs


def _dedup_rows(
    n: int, radius: int, repeats: int, plain_budget_pairs: float
) -> tuple[list[Row], dict[str, Any]]:
    hashes = _planted_hashes(n, seed=n)
    t_ours, result = median_time(lambda: find_duplicate_pairs(hashes, radius=radius), repeats)
    total_pairs = n * (n - 1) / 2
    if total_pairs <= plain_budget_pairs:
        rows = np.arange(n - 1)
        sampled = False
    else:  # a random subsample of query rows, about plain_budget_pairs comparisons
        k = max(50, int(plain_budget_pairs / (n / 2)))
        rows = np.sort(np.random.default_rng(7).choice(n - 1, size=min(k, n - 1), replace=False))
        sampled = True
    start = time.perf_counter()
    plain = _plain_scan(hashes, rows, radius)
    t_plain_measured = time.perf_counter() - start
    compared = float(np.sum(n - 1 - rows))
    t_plain = t_plain_measured * total_pairs / compared
    ours_rows = set(rows.tolist())
    ours_subset = {(i, j) for i, j, _ in result if i in ours_rows}
    identical = ours_subset == plain
    ratio = t_plain / t_ours
    how = (
        f"plain scan on {rows.size} sampled query rows ({compared:.3g} of {total_pairs:.3g} pairs, "
        f"{t_plain_measured:.1f} s), extrapolated linearly"
        if sampled
        else "plain scan run in full"
    )
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    out = [
        Row(
            f"all-pairs radius {radius}, {label} hashes",
            t_ours,
            "s",
            "numpy linear scan" + (" (extrapolated)" if sampled else ""),
            t_plain,
            ratio,
            ">= 20x at 1M" if n >= 1_000_000 else None,
            (ratio >= 20 and identical) if n >= 1_000_000 else None,
        ),
        Row(
            f"all-pairs {label}: identical pairs on {'sampled' if sampled else 'all'} rows",
            1.0 if identical else 0.0,
            "bool",
            None,
            None,
            None,
            "1",
            identical,
        ),
    ]
    notes = {
        "n": n,
        "pairs_found": len(result),
        "method": result.method,
        "plain": how,
        "plain_pairs_checked": len(plain),
    }
    return out, notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    repeats = args.repeats
    rows: list[Row] = []
    notes: dict[str, Any] = {}

    n_small = 1000 if args.quick else 5000
    n_photo = 100 if args.quick else 500
    fm, _ = load_fashion_mnist("test", limit=n_small)
    rows += _phash_rows([Image.fromarray(a) for a in fm], "28x28 Fashion-MNIST", repeats)
    rows += _phash_rows(_photo_crops(n_photo, seed=1), "256x256 RGB photos", repeats)

    sizes = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    budget = 2e8 if args.quick else 5.1e9  # plain-scan pairs actually compared, per size
    for n in sizes:
        dedup_rows, dedup_notes = _dedup_rows(n, 8, 1 if n >= 1_000_000 else repeats, budget)
        rows += dedup_rows
        notes[f"dedup_{n}"] = dedup_notes
    notes["data"] = (
        "pHash: Fashion-MNIST test split; 256x256 seeded crops of scikit-learn's sample "
        "photos. Dedup: uniform random 64-bit hashes, 10% planted copies at distance 0..10."
    )
    notes["repeats"] = repeats
    emit(
        "metadata",
        rows,
        as_json=args.json,
        packages=("numpy", "scipy", "pillow", "imagehash"),
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
