"""Copy-robust valuation: who gets a cluster's value, flags, published scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eth_utils.address import to_checksum_address

from visdm.errors import InvalidInputError
from visdm.types import SampleId
from visdm.valuation import CopyRobustValuation, KNNShapley

pytestmark = pytest.mark.unit

ALICE = "0x" + "a" * 40
BOB = "0x" + "b" * 40
CAROL = "0x" + "c" * 40


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (10, 2)), rng.normal(6, 1, (10, 2))])
    y = np.array([0] * 10 + [1] * 10)
    xv = np.concatenate([rng.normal(0, 1, (15, 2)), rng.normal(6, 1, (15, 2))])
    yv = np.array([0] * 15 + [1] * 15)
    return x, y, xv, yv


def test_a_copier_takes_nothing_from_the_original() -> None:
    x, y, xv, yv = _scene()
    providers = [ALICE] * 10 + [BOB] * 10
    honest = CopyRobustValuation(KNNShapley(k=3), cosine_threshold=None)
    before = honest.fit(x, y, providers, xv, yv).result.payout(10**6)
    # Carol re-uploads Alice's first three images, registered later; exact copies have
    # cosine similarity 1 and are caught without any pHash link
    x2 = np.concatenate([x, x[:3]])
    y2 = np.concatenate([y, y[:3]])
    after = (
        CopyRobustValuation(KNNShapley(k=3), cosine_threshold=0.999999)
        .fit(x2, y2, [*providers, CAROL, CAROL, CAROL], xv, yv)
        .result
    )
    assert after.copied.tolist() == [False] * 20 + [True] * 3
    np.testing.assert_array_equal(after.values[20:], 0.0)
    payout = after.payout(10**6)
    assert payout.amounts == {**before.amounts, to_checksum_address(CAROL): 0}
    assert "copied" in after.scores()[21]["flags"]


def test_own_copies_share_the_cluster_value() -> None:
    x, y, xv, yv = _scene()
    providers = [ALICE] * 10 + [BOB] * 10
    plain = CopyRobustValuation(KNNShapley(k=3), cosine_threshold=None).fit(x, y, providers, xv, yv)
    base = plain.result
    ids = [SampleId(bytes([i]) * 32) for i in range(22)]
    robust = CopyRobustValuation(KNNShapley(k=3), cosine_threshold=None).fit(
        np.concatenate([x, x[:1] + 1e-3, x[:1]]),
        np.concatenate([y, y[:1], y[:1]]),
        [*providers, ALICE, ALICE],
        xv,
        yv,
        sample_ids=ids,
        links=[(ids[0], ids[20]), (ids[21], ids[0]), (ids[0], SampleId(b"\xff" * 32))],
    )
    result = robust.result
    assert result.values[[0, 20, 21]] == pytest.approx([base.values[0] / 3] * 3)
    assert result.duplicate.tolist() == [False] * 20 + [True, True]
    assert not result.copied.any()
    assert result.provider_values() == pytest.approx(base.provider_values())
    scores = result.scores()
    json.dumps(scores)
    assert scores[20]["cluster_founder"] == "0x" + ids[0].hex()
    assert scores[20]["cluster_size"] == 3
    assert scores[20]["flags"] == ["duplicate"]
    assert result.timings["total"] >= result.timings["valuation"]


def test_negative_clusters_are_netted_and_flagged_only_with_evidence() -> None:
    x, y, xv, yv = _scene()
    y = y.copy()
    y[[0, 1, 2]] = 1  # Alice mislabels three of her class-0 images
    result = (
        CopyRobustValuation(KNNShapley(k=3), cosine_threshold=None)
        .fit(x, y, [ALICE] * 10 + [BOB] * 10, xv, yv)
        .result
    )
    assert (result.values[[0, 1, 2]] < 0).all()
    # a negative value is not evidence enough: Bob holds no class-0 image to contradict
    # Alice's labels (test_evidence.py has the three witnesses)
    assert (result.evidence.t[[0, 1, 2]] < 0).all()
    assert not result.noisy.any()
    assert result.scores()[0]["flags"] == []
    assert result.scores()[0]["evidence"]["peer_agreement"] == 1.0
    net = result.provider_values(negative="net")
    clip = result.provider_values(negative="clip")
    alice = next(a for a in net if a.lower() == ALICE)
    assert net[alice] < clip[alice]
    with pytest.raises(InvalidInputError, match="negative rule"):
        result.provider_values(negative="keep")  # type: ignore[arg-type]


def test_bad_input() -> None:
    x, y, xv, yv = _scene()
    robust = CopyRobustValuation()
    with pytest.raises(InvalidInputError, match="not been fitted"):
        _ = robust.result
    with pytest.raises(InvalidInputError, match="providers for"):
        robust.fit(x, y, [ALICE], xv, yv)
    with pytest.raises(InvalidInputError, match="not an Ethereum address"):
        robust.fit(x, y, ["alice"] * 20, xv, yv)
    with pytest.raises(InvalidInputError, match="outside"):
        robust.fit(x, y, [ALICE] * 20, xv, yv, links=[(0, 20)])
