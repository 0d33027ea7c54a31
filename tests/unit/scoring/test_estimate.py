"""Expected value and confidence: shrinkage to the market's prior, more rounds more
confidence, an unscored sample at the prior with none."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visdm.scoring import MarketPrior, Observation, expected_values, market_prior

pytestmark = pytest.mark.unit

PRIOR = MarketPrior(mean=1.0, between=0.25, noise=0.25)


def test_an_unscored_sample_is_worth_the_market_mean_with_no_confidence() -> None:
    found = expected_values({}, prior=PRIOR, keys=["new"])
    assert (found["new"].expected, found["new"].confidence, found["new"].rounds) == (1.0, 0, 0)
    assert found["new"].mean is None


def test_one_round_is_shrunk_halfway_when_noise_equals_the_spread() -> None:
    found = expected_values({"s": [Observation(3.0)]}, prior=PRIOR)
    assert found["s"].expected == pytest.approx(2.0) and found["s"].confidence == pytest.approx(0.5)


def test_agreeing_rounds_raise_the_confidence() -> None:
    one = expected_values({"s": [Observation(2.0, 0.5)]}, prior=PRIOR)["s"]
    three = expected_values({"s": [Observation(2.0, 0.5)] * 3}, prior=PRIOR)["s"]
    assert one.confidence < three.confidence < 1
    assert one.expected < three.expected < 2.0 and three.rounds == 3


def test_a_precise_round_counts_more_than_a_noisy_one() -> None:
    found = expected_values(
        {"precise": [Observation(2.0, 0.1)], "noisy": [Observation(2.0, 1.0)]}, prior=PRIOR
    )
    assert found["precise"].expected > found["noisy"].expected
    assert found["precise"].confidence > found["noisy"].confidence


def test_the_prior_is_fitted_to_the_market() -> None:
    prior = market_prior({i: [Observation(float(i))] for i in range(5)})
    assert prior.mean == 2.0 and prior.between > 0 and prior.noise > 0
    assert market_prior({}) == MarketPrior(0.0, 1.0, 0.5)
    # non-finite values are ignored, not propagated
    found = expected_values({"s": [Observation(math.nan), Observation(1.0)]}, prior=PRIOR)
    assert found["s"].rounds == 1 and math.isfinite(found["s"].expected)


@given(
    st.dictionaries(
        st.integers(0, 50),
        st.lists(
            st.builds(
                Observation,
                st.floats(-10, 10),
                st.none() | st.floats(0, 5),
            ),
            min_size=1,
            max_size=4,
        ),
        max_size=20,
    )
)
def test_estimates_lie_between_the_prior_and_the_sample_s_own_values(
    observations: dict[int, list[Observation]],
) -> None:
    prior = market_prior(observations)
    for key, estimate in expected_values(observations, prior=prior).items():
        values = [o.value for o in observations[key]]
        low, high = min([prior.mean, *values]), max([prior.mean, *values])
        assert low - 1e-9 <= estimate.expected <= high + 1e-9
        assert 0 <= estimate.confidence < 1
