"""The collective's rules in plain Python (what the SDK predicts and the contract is checked
against), and the command-line refusals that need no chain."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.cli import main
from visdm.collectives import MAX_FEE_BPS, fee_of, policy_ask, weighted_lower_median
from visdm.errors import InvalidInputError
from visdm.market.tally import weighted_lower_median as market_median

pytestmark = pytest.mark.unit

votes = st.lists(
    st.tuples(st.integers(0, 2**96 - 2), st.integers(0, 2**32 - 1)), min_size=1, max_size=40
)


@settings(max_examples=200, derandomize=True)
@given(votes)
def test_the_floor_is_the_markets_lower_median(pairs: list[tuple[int, int]]) -> None:
    """At least half the weight votes at or below the floor, less than half below it: the
    condition the market's tally checks for asks, so a collective prices like a tally would."""
    floor = weighted_lower_median(pairs)
    total = sum(w for _, w in pairs)
    if total == 0:
        assert floor is None
        return
    assert floor is not None
    assert 2 * sum(w for f, w in pairs if f <= floor) >= total
    assert 2 * sum(w for f, w in pairs if f < floor) < total
    assert floor == market_median([(f, w) for f, w in pairs if w > 0])


def test_median_examples() -> None:
    assert weighted_lower_median([]) is None
    assert weighted_lower_median([(10, 0)]) is None
    assert weighted_lower_median([(10, 100), (30, 100)]) == 10  # exactly half: the lower one
    assert weighted_lower_median([(10, 99), (30, 100)]) == 30
    assert weighted_lower_median([(50, 1), (10, 1), (30, 1)]) == 30


def test_the_ask_accepts_when_the_offer_per_sample_meets_the_floor() -> None:
    assert policy_ask(offer=3000, total_weight=300, floor=10) == 0
    assert policy_ask(offer=2999, total_weight=300, floor=10) == 3000
    assert policy_ask(offer=1, total_weight=300, floor=0) == 0
    biggest = policy_ask(offer=0, total_weight=2**64 - 1, floor=2**96 - 2)
    assert biggest == (2**64 - 1) * (2**96 - 2) < 2**160  # the contract's unchecked product
    with pytest.raises(InvalidInputError, match="cannot be negative"):
        policy_ask(offer=-1, total_weight=1, floor=1)


@settings(derandomize=True)
@given(st.integers(0, 2**200), st.integers(0, MAX_FEE_BPS))
def test_the_fee_never_exceeds_the_cap_and_rounds_for_the_member(amount: int, bps: int) -> None:
    fee = fee_of(amount, bps)
    assert 0 <= fee <= amount * MAX_FEE_BPS // 10_000
    assert fee * 10_000 <= amount * bps < (fee + 1) * 10_000


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["collective", "policy", "potters"], "say what to do: --floor PRICE"),
        (
            ["collective", "policy", "potters", "--asset", "1", "--all-assets"],
            "give either --asset ID (repeatable) or --all-assets, not both",
        ),
        (["collective", "join", "potters", "--floor", "-1"], "outside 0..2^256-2"),
        (["collective", "join", "potters", "--floor", "0.5wei"], "is not a token amount"),
        (["collective", "deposit", "potters", "lots"], "is not a token amount"),
    ],
)
def test_command_line_input_is_refused_in_one_line_before_anything_is_sent(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("VISDM_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err
