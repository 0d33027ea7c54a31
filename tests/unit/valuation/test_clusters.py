"""Near-duplicate clustering: links, cosine similarity, the attach-to-earliest rule."""

from __future__ import annotations

import numpy as np
import pytest

from visdm.errors import InvalidInputError
from visdm.valuation import cosine_links, find_near_duplicates

pytestmark = pytest.mark.unit


def test_links_form_clusters_founded_by_the_earliest() -> None:
    clusters = find_near_duplicates(6, links=[(4, 1), (1, 2), (5, 3)])
    assert clusters.n_clusters == 3
    np.testing.assert_array_equal(clusters.cluster_of, [0, 1, 1, 2, 1, 2])
    np.testing.assert_array_equal(clusters.founder, [0, 1, 3])
    np.testing.assert_array_equal(clusters.members(1), [1, 2, 4])
    np.testing.assert_array_equal(clusters.sizes(), [1, 3, 2])


def test_registration_rank_decides_the_founder() -> None:
    clusters = find_near_duplicates(3, links=[(0, 1), (1, 2)], registration_rank=[5, 1, 3])
    np.testing.assert_array_equal(clusters.founder, [1])
    equal_rank = find_near_duplicates(2, links=[(0, 1)], registration_rank=[1, 1])
    np.testing.assert_array_equal(equal_rank.founder, [0])


def test_a_late_bridge_cannot_merge_earlier_clusters() -> None:
    """Sample 2 resembles both 0 and 1 (unrelated, registered earlier)."""
    attach = find_near_duplicates(3, links=[(2, 0), (2, 1)])
    np.testing.assert_array_equal(attach.cluster_of, [0, 1, 0])
    transitive = find_near_duplicates(3, links=[(2, 0), (2, 1)], mode="transitive")
    np.testing.assert_array_equal(transitive.cluster_of, [0, 0, 0])


def test_direct_links_between_earlier_samples_still_merge() -> None:
    clusters = find_near_duplicates(4, links=[(0, 1), (2, 1), (3, 2)])
    assert clusters.n_clusters == 1


def test_cosine_links() -> None:
    e = np.array([[1.0, 0.0], [2.0, 0.01], [0.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    pairs = cosine_links(e, threshold=0.99)
    assert pairs.tolist() == [[0, 1]]
    clusters = find_near_duplicates(5, embeddings=e, cosine_threshold=0.99, links=[(2, 4)])
    np.testing.assert_array_equal(clusters.cluster_of, [0, 0, 1, 2, 1])
    assert cosine_links(np.zeros((0, 3)), threshold=0.5).shape == (0, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"links": [(0, 9)]}, "outside"),
        ({"links": [(0.5, 1)]}, "pairs"),
        ({"embeddings": np.zeros((2, 2))}, "one row per sample"),
        ({"registration_rank": [1, 2]}, "registration_rank"),
        ({"mode": "single"}, "unknown mode"),
    ],
)
def test_bad_input(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        find_near_duplicates(3, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="n_samples"):
        find_near_duplicates(-1)
    with pytest.raises(InvalidInputError, match="threshold"):
        cosine_links(np.zeros((2, 2)), threshold=2.0)
    with pytest.raises(InvalidInputError, match="NaN"):
        cosine_links(np.full((2, 2), np.nan), threshold=0.5)
