"""The evidence a ``noisy`` flag needs: three witnesses, published with the flag, and the attacks
a consumer or a provider can mount to get a rival's honest samples flagged."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from eth_utils.address import to_checksum_address

from visdm.errors import InvalidInputError
from visdm.types import Address
from visdm.valuation import (
    CopyRobustValuation,
    KNNShapley,
    NoiseRule,
    RobustValuationResult,
    ValuationResult,
    binomial_tail,
    noise_evidence,
    peer_agreement,
)

pytestmark = pytest.mark.unit

CLASSES = 4
PROVIDERS = 8
PER_PROVIDER = 24
NOISY, RIVAL, ATTACKER = 1, 3, 4
#: where validation images of classes 0 and 1 mix and other providers hold class-1 samples
MIXED = np.array([-5.0, -5.0, 0.0, 0.0])


def address(i: int) -> Address:
    return Address(to_checksum_address(f"0x{0xB0B0 + i:040x}"))


@dataclass
class Market:
    """Four well separated classes, eight providers of 24 samples; provider ``NOISY`` mislabels
    its first 9 samples and holds one more, ``borderline``, labelled 0 in the mixed region."""

    x: np.ndarray
    y: np.ndarray
    truth: np.ndarray
    owners: list[Address]
    xv: np.ndarray
    yv: np.ndarray
    flipped: np.ndarray
    borderline: int

    def value(self, rule: NoiseRule | None = None) -> RobustValuationResult:
        robust = CopyRobustValuation(KNNShapley(k=5), cosine_threshold=None, noise_rule=rule)
        return robust.fit(self.x, self.y, self.owners, self.xv, self.yv).result

    def of(self, provider: int) -> np.ndarray:
        return np.flatnonzero(np.array(self.owners) == address(provider))


def market(seed: int = 0) -> Market:
    rng = np.random.default_rng(seed)
    centres = 5.0 * np.eye(CLASSES)
    truth = np.tile(np.arange(CLASSES), PROVIDERS * PER_PROVIDER // CLASSES)
    x = centres[truth] + rng.normal(0, 0.7, (truth.size, CLASSES))
    owners = [address(i // PER_PROVIDER) for i in range(truth.size)]
    flipped = np.arange(NOISY * PER_PROVIDER, NOISY * PER_PROVIDER + 9)
    y = truth.copy()
    y[flipped] = (truth[flipped] + rng.integers(1, CLASSES, flipped.size)) % CLASSES
    # six class-1 samples of honest providers, and the noisy provider's last sample, labelled 0
    moved = [i for i in range(2 * PER_PROVIDER, truth.size) if truth[i] == 1][:6]
    x[moved] = MIXED + rng.normal(0, 0.7, (6, CLASSES))
    borderline = (NOISY + 1) * PER_PROVIDER - 1
    x[borderline], y[borderline], truth[borderline] = MIXED, 0, 0
    yv = np.repeat(np.arange(CLASSES), 30)
    xv = centres[yv] + rng.normal(0, 0.7, (yv.size, CLASSES))
    # 3 validation images of class 0 among 13 of class 1: the borderline sample's value is
    # near zero, a little negative, and noisy
    xv = np.concatenate([xv, MIXED + rng.normal(0, 0.7, (16, CLASSES))])
    yv = np.concatenate([yv, [0] * 3, [1] * 13])
    return Market(x, y, truth, owners, xv, yv, flipped, borderline)


def test_a_consistently_negative_sample_is_flagged_and_a_noisy_near_zero_one_is_not() -> None:
    m = market()
    result = m.value()
    ev = result.evidence
    # every mislabelled sample is negative over the validation set by more than its noise
    assert (ev.t[m.flipped] <= -1.5).all()
    assert result.noisy[m.flipped].all()
    # the borderline sample: negative, so the sign alone would flag it, but within its noise;
    # its provider is a suspect and other providers' labels disagree with it all the same
    b = m.borderline
    assert -0.001 < result.values[b] < 0
    assert abs(ev.t[b]) < 0.5
    assert np.isnan(ev.agreement[b])  # witness 2 is not asked where witness 1 is silent
    assert peer_agreement(m.x, m.y, m.owners, neighbours=10)[0][b] == 0.0
    assert ev.provider_p[address(NOISY)] < ev.rule.alpha
    assert not result.noisy[b]
    # nothing correctly labelled is flagged; the old rule (a negative value) flagged some
    assert not result.noisy[m.y == m.truth].any()
    assert ((result.values < 0) & (m.y == m.truth)).any()


def test_each_witness_is_needed() -> None:
    """On given values and standard errors: a flag needs all three witnesses."""
    n, per = 8 * 20, 20
    owners = [address(i // per) for i in range(n)]
    labels = np.tile(np.arange(CLASSES), n // CLASSES)
    # one point per class, and a fifth axis that keeps provider 1's mislabelled samples apart
    features = np.hstack([10.0 * np.eye(CLASSES)[labels], np.zeros((n, 1))])
    values = np.full(n, 0.01)
    stderr = np.full(n, 0.002)
    # provider 1 wrote the wrong label on 8 of its samples (others' samples there disagree)
    wrong = np.arange(per, per + 8)
    labels = labels.copy()
    labels[wrong] = (labels[wrong] + 1) % CLASSES
    values[wrong] = -0.01  # t = -5
    near_zero = per + 8  # also mislabelled, but its value is within its noise (t = -0.25)
    labels[near_zero] = (labels[near_zero] + 1) % CLASSES
    values[near_zero] = -0.0005
    features[per : per + 9, CLASSES] = 0.5
    agreed = 3 * per  # provider 3: a negative value its peers' labels contradict
    values[agreed] = -0.01
    alone = 5 * per  # provider 5: one sample with witnesses 1 and 2, nothing else
    labels[alone] = (labels[alone] + 1) % CLASSES
    values[alone] = -0.01

    ev = noise_evidence(features, labels, owners, values, stderr)
    assert ev.noisy.tolist() == [i in set(wrong) for i in range(n)]
    assert ev.t[near_zero] == pytest.approx(-0.25) and np.isnan(ev.agreement[near_zero])
    every, _ = peer_agreement(features, labels, owners, neighbours=10)
    assert every[near_zero] == 0.0
    assert ev.t[agreed] == pytest.approx(-5.0) and ev.agreement[agreed] == 1.0
    assert ev.suspect[alone] and ev.provider_p[address(5)] > 0.1
    assert ev.provider_suspects[address(1)] == 8 and ev.provider_players[address(1)] == per
    assert ev.base_rate == NoiseRule().min_base_rate  # the median provider has no suspect
    # no standard errors: witness 1 cannot speak, nobody is flagged
    assert not noise_evidence(features, labels, owners, values, None).noisy.any()


def test_binomial_tail_is_the_sum_of_the_upper_terms() -> None:
    for n, p in ((20, 0.05), (60, 0.3), (7, 0.9)):
        for k in range(n + 2):
            exact = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
            assert binomial_tail(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-300)
    assert binomial_tail(0, 5, 0.5) == 1.0


def test_peer_agreement_counts_only_other_providers() -> None:
    # A's three samples agree with each other; B's two neighbours carry another label
    x = np.array([[0.0], [0.1], [0.2], [0.15], [5.0]])
    labels = np.array([1, 1, 1, 2, 1])
    owners = ["A", "A", "A", "B", "B"]
    agreement, peers = peer_agreement(x, labels, owners, neighbours=2)
    assert peers.tolist() == [2, 2, 2, 2, 2]
    assert agreement.tolist() == [0.5, 0.5, 0.5, 0.0, 1.0]
    asked = np.array([False, False, False, True, False])
    some, counted = peer_agreement(x, labels, owners, neighbours=2, rows=asked)
    assert some[3] == 0.0 and np.isnan(some[~asked]).all() and counted.tolist() == [0, 0, 0, 2, 0]
    alone, none = peer_agreement(x, labels, ["A"] * 5, neighbours=2)
    assert np.isnan(alone).all() and none.tolist() == [0] * 5


def test_the_evidence_is_published_with_every_score() -> None:
    m = market()
    # provider 7 re-uploads the noisy provider's first sample: a copy, whose labels nobody weighed
    x = np.concatenate([m.x, m.x[m.flipped[:1]]])
    y = np.concatenate([m.y, m.y[m.flipped[:1]]])
    robust = CopyRobustValuation(KNNShapley(k=5), cosine_threshold=0.999999)
    result = robust.fit(x, y, [*m.owners, address(7)], m.xv, m.yv).result
    rows = json.loads(json.dumps(result.scores(), allow_nan=False))
    first = rows[int(m.flipped[0])]
    assert first["flags"] == ["noisy"]
    evidence = first["evidence"]
    assert set(evidence) == {
        "t",
        "value_se",
        "peer_agreement",
        "peers",
        "provider_suspects",
        "provider_players",
        "provider_p",
        "base_rate",
    }
    assert evidence["t"] == pytest.approx(first["value"] / evidence["value_se"])
    assert evidence["t"] <= -1 and evidence["peer_agreement"] <= 0.2 and evidence["peers"] == 10
    assert evidence["provider_p"] < 1e-3 and evidence["provider_suspects"] >= 9
    assert rows[-1]["flags"] == ["copied", "duplicate"] and rows[-1]["evidence"] is None
    assert result.timings["evidence"] >= 0


class _NoSpread:
    """A validation estimator that reports no standard errors."""

    def __init__(self) -> None:
        self.inner = KNNShapley(k=5)

    def fit(self, *args: Any, **kwargs: Any) -> _NoSpread:
        self.inner.fit(*args, **kwargs)
        return self

    @property
    def result(self) -> ValuationResult:
        r = self.inner.result
        return ValuationResult(r.method, r.sample_ids, r.values, r.flagged, r.params, r.timings)


def test_without_standard_errors_nothing_is_flagged() -> None:
    m = market()
    result = CopyRobustValuation(_NoSpread(), cosine_threshold=None).fit(
        m.x, m.y, m.owners, m.xv, m.yv
    )
    assert not result.result.noisy.any()
    assert result.result.scores()[0]["evidence"]["t"] is None


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"max_t": math.nan}, "max_t must be a finite number"),
        ({"neighbours": 0}, "neighbours must be at least 1"),
        ({"max_agreement": 1.5}, r"max_agreement must be in \[0, 1\]"),
        ({"alpha": 0.0}, r"alpha must be in \(0, 1\)"),
        ({"min_base_rate": 1.0}, r"min_base_rate must be in \(0, 1\)"),
    ],
)
def test_the_rule_refuses_bad_knobs(knobs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        NoiseRule(**knobs)  # type: ignore[arg-type]


def test_the_witnesses_need_one_row_per_player() -> None:
    with pytest.raises(InvalidInputError, match="one of each per player"):
        noise_evidence(np.zeros((3, 2)), np.zeros(3, np.int64), ["A"] * 2, np.zeros(3), None)


@pytest.mark.attack
def test_a_consumer_cannot_get_a_rivals_samples_flagged_with_its_validation_labels() -> None:
    """The rival sells class-2 images only; the consumer labels every class-2 image of its
    validation set as class 3: the values of everyone's class-2 samples turn consistently
    negative (witness 1), but in the embedding of the model trained on the selection other
    providers label the same things as the rival does (witness 2)."""
    m = market()
    rival = m.of(RIVAL)
    rng = np.random.default_rng(2)
    m.x[rival] = 5.0 * np.eye(CLASSES)[2] + rng.normal(0, 0.7, (rival.size, CLASSES))
    m.y[rival] = m.truth[rival] = 2
    m.yv = np.where(m.yv == 2, 3, m.yv)

    result = m.value()
    assert (result.values[rival] < 0).all()  # the attack moved the values ...
    assert (result.evidence.t[rival] <= -1).all()
    assert not result.noisy[m.y == m.truth].any()  # ... but flags nothing correctly labelled
    # with the defence off (no witness 2), the attack succeeds against the rival
    off = m.value(NoiseRule(max_agreement=1.0))
    assert off.noisy[rival].all()


@pytest.mark.attack
def test_a_provider_cannot_get_a_rivals_samples_flagged_with_look_alikes() -> None:
    """The attacker uploads nine look-alikes of each of the rival's samples under another
    label, so that the rival's nearest peers disagree with it (witness 2); the consumer's
    validation set still agrees with the rival (witness 1), and the look-alikes are what gets
    flagged."""
    m = market()
    rival = m.of(RIVAL)
    rng = np.random.default_rng(1)
    copies = np.repeat(rival, 9)
    look_alikes = np.arange(m.y.size, m.y.size + copies.size)
    m.x = np.concatenate([m.x, m.x[copies] + rng.normal(0, 0.05, (copies.size, CLASSES))])
    m.y = np.concatenate([m.y, (m.y[copies] + 1) % CLASSES])
    m.truth = np.concatenate([m.truth, m.truth[copies]])
    m.owners = [*m.owners, *[address(ATTACKER)] * copies.size]

    result = m.value()
    agreement, _ = peer_agreement(m.x, m.y, m.owners, neighbours=10)
    assert (agreement[rival] <= 0.2).all()  # the attack moved witness 2 ...
    assert not result.noisy[rival].any()  # ... but flags none of the rival's samples
    assert result.noisy[look_alikes].mean() >= 0.8  # the attacker's look-alikes are flagged
    # with the defence off (no witness 1), the attack succeeds
    off = m.value(NoiseRule(max_t=1e9))
    assert off.noisy[rival].all()
