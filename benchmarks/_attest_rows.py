"""Attesting a 1,000-sample asset against N active samples (``benchmarks/metadata.py``, 5).

What a node computes per asset that depends on the market's size: describe the decoded
images (pHash, copy hash, statistics), link them to the active samples
(:meth:`visdm.metadata.HammingIndex.link`, at most 8 links per sample plus a cluster) and
write the canonical metadata document. Decryption, storage and the attestation transaction
cost the same at any N and are left out.

Active samples: real pHashes of Fashion-MNIST (train, then test split) up to 70k; beyond,
each further hash is a seeded random real pHash with 0..6 random bits flipped, so that the
market keeps the crowding of real pHashes (uniform hashes would flatter any search). The new
asset: 1,000 test-split images (the last ones, never among the active samples), encoded as PNG
and decoded by the node's ``decode_image``.

Peer: the node's previous linking, run on the same hashes: every link within radius 8, found
by the uniform cost model's choice between a linear scan of new × active and an all-pairs
search over active + new (which also forms, then drops, every active–active pair). It runs
only where it finishes in minutes (≤ 60k); it uses today's popcount, so it is if anything
faster than it was.
"""

from __future__ import annotations

import io
import math
import time
from typing import Any

import numpy as np
from PIL import Image

from _harness import Row
from visdm.datasets import load_fashion_mnist
from visdm.ingest import decode_image
from visdm.metadata import (
    DEFAULT_MAX_LINKS,
    AssetMetadata,
    DuplicateLink,
    HammingIndex,
    SampleMetadata,
    array_phashes,
    describe_images,
    find_cross_pairs,
    find_duplicate_pairs,
)
from visdm.metadata._hamming import _NS_PER_LINEAR_PAIR, _choose_blocks, _table_cost
from visdm.types import SampleId

ASSET = 1000
RADIUS = 8
TARGET_S = 15.0


def _sid(i: int) -> SampleId:
    return SampleId(i.to_bytes(32, "big"))


def _active_hashes(n: int, real: np.ndarray, seed: int) -> np.ndarray:
    if n <= real.size:
        return real[:n]
    rng = np.random.default_rng(seed)
    extra = n - real.size
    out = real[rng.integers(0, real.size, extra)]
    flips = rng.integers(0, 7, extra)
    for step in range(6):
        bits = np.uint64(1) << rng.integers(0, 64, extra).astype(np.uint64)
        out ^= np.where(flips > step, bits, np.uint64(0))
    return np.concatenate([real, out])


def _previous_pairs(old: np.ndarray, new: np.ndarray) -> int:
    """How many links the previous linking made (its choice of search included)."""
    n_old, n_new = old.size, new.size
    m = _choose_blocks(n_old + n_new, RADIUS)
    joint = math.inf if m is None else _table_cost(n_old + n_new, RADIUS, m)
    if n_old * n_new * _NS_PER_LINEAR_PAIR <= joint:
        cross = find_cross_pairs(new, old, radius=RADIUS, method="linear")
        return len(cross) + len(find_duplicate_pairs(new, radius=RADIUS))
    pairs = find_duplicate_pairs(np.concatenate([old, new]), radius=RADIUS)
    return int((pairs.second >= n_old).sum())


def _document(
    samples: list[SampleMetadata], index: HammingIndex[SampleId], links: list[Any]
) -> bytes:
    clustered = [
        SampleMetadata(s.index, s.sample_id, s.label, s.image, index.cluster_of(s.sample_id))
        for s in samples
    ]
    doc = AssetMetadata(
        manifest_hash=b"\x00" * 32,
        samples=tuple(clustered),
        links=tuple(DuplicateLink(SampleId(a), SampleId(b), d) for a, b, d in links),
        radius=RADIUS,
    )
    return doc.to_json()


def attest_rows(sizes: tuple[int, ...], *, peer_up_to: int) -> tuple[list[Row], dict[str, Any]]:
    """Rows for attesting one asset at each number of active samples in ``sizes``."""
    full = max(sizes) + ASSET > 3000
    if full:
        train, _ = load_fashion_mnist("train")
        test, _ = load_fashion_mnist("test")
        pool = np.concatenate([train, test])
    else:  # the images shipped with the package
        train, _ = load_fashion_mnist("train", limit=2000)
        test, _ = load_fashion_mnist("test", limit=1000)
        pool = np.concatenate([train, test])
    asset_images = pool[-ASSET:]
    real = array_phashes(pool[:-ASSET])
    encoded = []
    for pixels in asset_images:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG")
        encoded.append(out.getvalue())
    start = time.perf_counter()
    decoded = [decode_image(b, name=f"sample {i}") for i, b in enumerate(encoded)]
    described = describe_images([d.image for d in decoded])
    t_describe = time.perf_counter() - start
    new = np.array([int(m.phash) for m in described], dtype=np.uint64)
    samples = [SampleMetadata(i, _sid(10**9 + i), "label", m) for i, m in enumerate(described)]
    rows: list[Row] = []
    notes: dict[str, Any] = {"describe_s": round(t_describe, 2)}
    for n in sizes:
        old = _active_hashes(n, real, seed=n)
        index: HammingIndex[SampleId] = HammingIndex(radius=RADIUS, max_links=DEFAULT_MAX_LINKS)
        index.add([_sid(i) for i in range(n)], old)
        start = time.perf_counter()
        links = index.link([s.sample_id for s in samples], new)
        document = _document(samples, index, links)
        t_link = time.perf_counter() - start
        total = t_describe + t_link
        peer_s = peer_links = None
        if n <= peer_up_to:
            start = time.perf_counter()
            peer_links = _previous_pairs(old, new)
            peer_s = t_describe + time.perf_counter() - start
        kind = "real" if n <= real.size else "synthetic"
        rows.append(
            Row(
                f"attest a {ASSET}-sample asset, {n:,} active ({kind} pHashes)",
                round(total, 2),
                "s",
                peer="previous linking (all links)" if peer_s is not None else None,
                peer_value=None if peer_s is None else round(peer_s, 2),
                ratio=None if peer_s is None else round(peer_s / total, 1),
                target=f"<= {TARGET_S:.0f} s",
                meets=total <= TARGET_S,
            )
        )
        per_sample = len(links) / ASSET
        rows.append(
            Row(
                f"links per new sample at {n:,} active",
                round(per_sample, 2),
                "links",
                peer="every link within radius 8" if peer_links is not None else None,
                peer_value=None if peer_links is None else round(peer_links / ASSET, 1),
                target="<= 8 (bounded)",
                meets=per_sample <= 8,
            )
        )
        notes[f"active_{n}"] = {
            "link_s": round(t_link, 2),
            "document_bytes": len(document),
            "links": len(links),
            "previous_links": peer_links,
            "clusters_joined": sum(index.cluster_of(s.sample_id) != s.sample_id for s in samples),
        }
    return rows, notes
