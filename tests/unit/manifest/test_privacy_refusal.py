"""``privacy_refusal``: every branch of the decision whether a spec's DP budget fits a licence."""

from __future__ import annotations

import math

import pytest

from visdm.errors import InvalidInputError
from visdm.manifest import Licence, privacy_refusal

pytestmark = pytest.mark.unit

STRICT = Licence(("training",))  # the defaults: DP required, ε ≤ 8, δ below 1/N
NO_DP_OK = Licence(("training",), dp_required=False, max_epsilon=4.0)
CAPPED_DELTA = Licence(("training",), max_delta=1e-6)


def test_a_spec_within_every_term_is_allowed() -> None:
    assert privacy_refusal(STRICT, (8.0, 1e-5), 10_000) is None
    assert privacy_refusal(STRICT, (0.5, 1e-9), 1) is None
    assert privacy_refusal(CAPPED_DELTA, (3.0, 1e-6), 10_000) is None


def test_no_dp_is_refused_when_the_licence_requires_it() -> None:
    reason = privacy_refusal(STRICT, None, 10_000)
    assert reason == (
        "its licence requires differentially private training (dp); the spec trains without "
        "it: add a dp section with target_epsilon ≤ 8"
    )


def test_no_dp_is_allowed_when_the_licence_allows_it_whatever_the_caps() -> None:
    assert privacy_refusal(NO_DP_OK, None, 10) is None


def test_a_licence_without_dp_required_still_caps_epsilon_when_dp_is_used() -> None:
    assert privacy_refusal(NO_DP_OK, (4.0, 1e-5), 10_000) is None
    assert privacy_refusal(NO_DP_OK, (5.0, 1e-5), 10_000) == (
        "its licence asks for ε ≤ 4, the spec spends up to 5: lower dp.target_epsilon"
    )


def test_epsilon_above_the_cap_is_refused() -> None:
    assert privacy_refusal(STRICT, (10.0, 1e-5), 10_000) == (
        "its licence asks for ε ≤ 8, the spec spends up to 10: lower dp.target_epsilon"
    )


def test_epsilon_a_hair_above_the_cap_shows_every_digit() -> None:
    spec_epsilon = math.nextafter(8.0, 9.0)
    reason = privacy_refusal(STRICT, (spec_epsilon, 1e-5), 10_000)
    assert reason == (
        f"its licence asks for ε ≤ 8, the spec spends up to {spec_epsilon!r}: "
        "lower dp.target_epsilon"
    )


def test_delta_above_the_licence_cap_is_refused() -> None:
    assert privacy_refusal(CAPPED_DELTA, (1.0, 1e-5), 10_000) == (
        "its licence asks for δ ≤ 1e-06, the spec uses 1e-05: lower dp.delta"
    )


def test_delta_must_be_below_one_over_n_by_default() -> None:
    assert privacy_refusal(STRICT, (1.0, 1e-3), 999) is None
    assert privacy_refusal(STRICT, (1.0, 1e-3), 1000) == (
        "δ must be below 1/N = 0.001 for N = 1000 training samples, the spec uses 0.001: "
        "lower dp.delta"
    )


def test_delta_must_be_below_one_over_n_even_under_a_licence_cap() -> None:
    loose = Licence(("training",), max_delta=0.009)
    assert privacy_refusal(loose, (1.0, 0.005), 100) is None
    assert privacy_refusal(loose, (1.0, 0.005), 1000) == (
        "δ must be below 1/N = 0.001 for N = 1000 training samples, the spec uses 0.005: "
        "lower dp.delta"
    )


def test_the_epsilon_reason_comes_before_the_delta_reasons() -> None:
    reason = privacy_refusal(CAPPED_DELTA, (20.0, 5e-3), 10_000)
    assert reason is not None and reason.startswith("its licence asks for ε ≤ 8")


@pytest.mark.parametrize(
    ("dp", "samples", "message"),
    [
        ((math.nan, 1e-5), 100, "dp target_epsilon must be finite and positive, got nan"),
        ((8.0, math.nan), 100, "dp delta must be finite and positive, got nan"),
        ((math.inf, 1e-5), 100, "dp target_epsilon must be finite and positive, got inf"),
        ((0.0, 1e-5), 100, "dp target_epsilon must be finite and positive, got 0.0"),
        ((1.0, -1e-5), 100, "dp delta must be finite and positive, got -1e-05"),
        ((True, 1e-5), 100, "dp target_epsilon must be a number, got True"),
        (("8", 1e-5), 100, "dp target_epsilon must be a number, got '8'"),
        ((8.0,), 100, r"dp must be \(target_epsilon, delta\) or None, got \(8.0,\)"),
        ([8.0, 1e-5], 100, r"dp must be \(target_epsilon, delta\) or None, got \[8.0, 1e-05\]"),
        ((8.0, 1e-5), 0, "training_samples must be a positive integer .* got 0"),
        ((8.0, 1e-5), True, "training_samples must be a positive integer .* got True"),
        (None, 1.5, "training_samples must be a positive integer .* got 1.5"),
    ],
)
def test_a_malformed_budget_is_an_error_not_a_decision(
    dp: object, samples: object, message: str
) -> None:
    # NaN compares false with everything: compared, it would pass every cap
    with pytest.raises(InvalidInputError, match=message):
        privacy_refusal(STRICT, dp, samples)  # type: ignore[arg-type]
