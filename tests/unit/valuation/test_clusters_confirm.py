"""Links confirmed by embeddings: a pHash link between different images does not merge them."""

from __future__ import annotations

import numpy as np
import pytest

from visdm.errors import InvalidInputError
from visdm.valuation import find_near_duplicates


def test_a_phash_link_counts_only_when_the_embeddings_agree() -> None:
    e = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0], [0.7, 0.7]])
    links = [(0, 1), (0, 2)]  # 0-1 a real copy, 0-2 a pHash collision of different images
    union = find_near_duplicates(4, links=links, embeddings=e, cosine_threshold=0.999)
    assert union.cluster_of[2] == union.cluster_of[0]  # the collision merged them
    confirmed = find_near_duplicates(
        4, links=links, embeddings=e, cosine_threshold=0.999, confirm_threshold=0.99
    )
    assert confirmed.cluster_of[1] == confirmed.cluster_of[0]
    assert confirmed.cluster_of[2] != confirmed.cluster_of[0]
    assert confirmed.n_clusters == 3


def test_confirming_needs_embeddings_and_a_valid_threshold() -> None:
    with pytest.raises(InvalidInputError, match="needs the embeddings"):
        find_near_duplicates(2, links=[(0, 1)], confirm_threshold=0.9)
    with pytest.raises(InvalidInputError, match=r"confirm threshold must be in \[-1, 1\]"):
        find_near_duplicates(2, links=[(0, 1)], embeddings=np.eye(2), confirm_threshold=1.5)


def test_centring_removes_the_common_component_of_relu_features() -> None:
    rng = np.random.default_rng(0)
    common = np.full(16, 10.0)
    e = common + rng.normal(size=(6, 16))  # distinct samples sharing a large offset
    e = np.vstack([e, e[0] + 1e-4])  # sample 6 is a near-exact copy of sample 0
    raw = find_near_duplicates(7, embeddings=e, cosine_threshold=0.99)
    assert raw.n_clusters < 6  # distinct samples merged by their common offset
    centred = find_near_duplicates(7, embeddings=e, cosine_threshold=0.99, center=True)
    assert centred.n_clusters == 6
    assert centred.cluster_of[6] == centred.cluster_of[0]


def test_the_ratio_test_keeps_a_copy_and_drops_a_phash_collision() -> None:
    rng = np.random.default_rng(1)
    e = rng.normal(size=(40, 8))
    e = np.vstack([e, e[3] + 1e-3])  # sample 40 re-encodes sample 3
    links = [(3, 40), (5, 6), (7, 8)]  # one real copy, two collisions of distinct images
    clusters = find_near_duplicates(
        41, links=links, embeddings=e, cosine_threshold=2.0, confirm_ratio=0.3
    )
    assert clusters.cluster_of[40] == clusters.cluster_of[3]
    assert clusters.cluster_of[5] != clusters.cluster_of[6]
    assert clusters.cluster_of[7] != clusters.cluster_of[8]
    assert clusters.n_clusters == 40
    with pytest.raises(InvalidInputError, match=r"confirm ratio must be in \(0, 1\]"):
        find_near_duplicates(41, links=links, embeddings=e, confirm_ratio=0.0)
    with pytest.raises(InvalidInputError, match="needs the embeddings"):
        find_near_duplicates(41, links=links, confirm_ratio=0.3)
