"""Changing market parameters, before anything reaches the chain: names (as in
``MarketParameters``, camelCase or dashed), values (periods with units, whole numbers,
addresses), every rule ``TrainingMarket.setParameters`` checks, and the refusals of no change
at all or a change that changes nothing — each a one-line error that names the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.fuzz._harness import fuzz, outcome, refused
from visdm.chain.contracts import MarketParameters
from visdm.errors import InvalidInputError
from visdm.governance import (
    PARAMETER_NAMES,
    PERIOD_PARAMETERS,
    apply_parameter_changes,
    check_parameters,
    format_period,
    parameter_name,
    parameter_text,
    parse_parameter_assignments,
    parse_parameter_value,
    parse_period,
)

pytestmark = pytest.mark.unit

TREASURY = "0x1111111111111111111111111111111111111111"
COURT = "0x2222222222222222222222222222222222222222"
CURRENT = MarketParameters(treasury=TREASURY)


def refusal(changes: dict[str, str | int], current: MarketParameters = CURRENT) -> str:
    with pytest.raises(InvalidInputError) as info:
        apply_parameter_changes(current, changes)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- periods -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60", 60),
        ("60s", 60),
        (" 30m ", 1800),
        ("12h", 43_200),
        ("3d", 259_200),
        ("2w", 1_209_600),
        ("1d12h", 129_600),
        ("1D", 86_400),
        (90, 90),
        ("0", 0),
    ],
)
def test_a_period_is_seconds_or_whole_numbers_with_units(text: str | int, seconds: int) -> None:
    assert parse_period(text) == seconds


@pytest.mark.parametrize("text", ["3x", "1.5d", "d", "-1d", "3 d", "1e3", "", "²", "٣d", "1d-2h"])
def test_a_period_that_is_none_is_refused_naming_the_units(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"reply_period must be seconds, or whole numbers"):
        parse_period(text, what="reply_period")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (90, "1m30s"), (3600, "1h"), (129_600, "1d12h"), (864_000, "10d")],
)
def test_periods_are_shown_in_the_largest_units_that_divide_them(seconds: int, text: str) -> None:
    assert format_period(seconds) == text


@given(st.integers(min_value=0, max_value=2**32 - 1))
@fuzz(200)
def test_a_shown_period_reads_back_as_itself(seconds: int) -> None:
    assert parse_period(format_period(seconds)) == seconds


# --- names and NAME=VALUE ----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["quorum_bps", "quorumBps", "quorum-bps", " QUORUM_BPS "])
def test_a_name_is_taken_as_in_the_dataclass_in_json_or_dashed(text: str) -> None:
    assert parameter_name(text) == "quorum_bps"


def test_an_unknown_name_is_refused_listing_the_known_ones() -> None:
    message = refusal({"quorum": "5000"})
    assert message.startswith("unknown market parameter 'quorum': the parameters are quorum_bps, ")
    assert all(name in message for name in PARAMETER_NAMES)


def test_assignments_are_name_value_pairs_each_named_once() -> None:
    assert parse_parameter_assignments(["quorumBps=5000", " reply_period = 3d "]) == {
        "quorum_bps": "5000",
        "reply_period": "3d",
    }


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        (["quorum_bps"], "'quorum_bps' is not NAME=VALUE: give e.g. quorum_bps=5000"),
        (["quorum_bps="], "'quorum_bps=' is not NAME=VALUE"),
        (["=5000"], "'=5000' is not NAME=VALUE"),
        (["quorum_bps=1", "quorumBps=2"], "quorum_bps is given twice ('1' and '2'): give it once"),
        (["quorum=1"], "unknown market parameter 'quorum'"),
    ],
)
def test_bad_assignments_are_refused(pairs: list[str], says: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_parameter_assignments(pairs)
    assert str(info.value).startswith(says)


# --- values ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("quorum_bps", "abc", "quorum_bps must be a whole number, got 'abc'"),
        ("quorum_bps", "1.5", "quorum_bps must be a whole number, got '1.5'"),
        ("quorum_bps", "50%", "quorum_bps must be a whole number"),
        ("min_batch_size", "-1", "min_batch_size must not be negative, got -1"),
        ("min_batch_size", "9" * 5000, "min_batch_size must be a whole number"),
        ("reply_period", "9" * 5000, "reply_period is 5,000 characters long"),
        ("treasury", "0x12ab", "treasury must be an address (0x and 40 hex digits)"),
        ("treasury", "alice", "treasury must be an address"),
        ("court", "0x" + "aB" * 20, "court 0x" + "aB" * 20 + " has a wrong EIP-55 checksum"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(name: str, value: str, says: str) -> None:
    message = refusal({name: value})
    assert message.startswith(says), message


def test_a_bool_is_not_a_number() -> None:
    with pytest.raises(InvalidInputError, match="quorum_bps must be a whole number, got True"):
        parse_parameter_value("quorum_bps", True)


def test_values_are_read_with_their_units_and_addresses_checksummed() -> None:
    assert parse_parameter_value("reply_period", "3d") == 259_200
    assert parse_parameter_value("quorumBps", " 5000 ") == 5000
    assert parse_parameter_value("treasury", COURT.lower()) == COURT
    assert parse_parameter_value("court", "none") == ""


# --- the contract's rules ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"quorum_bps": "12000"}, "quorum_bps must be at most 10000, got 12000"),
        ({"min_voting_period": "31d"}, "min_voting_period (31d) must not be above max_voting"),
        ({"max_voting_period": "30s"}, "min_voting_period (1m) must not be above max_voting_"),
        ({"reply_period": "0"}, "reply_period must be positive, got 0"),
        ({"start_period": "0s"}, "start_period must be positive, got 0"),
        ({"max_training_period": 0}, "max_training_period must be positive, got 0"),
        ({"min_batch_size": "0"}, "min_batch_size must be at least 1, got 0"),
        ({"min_selection_samples": "0"}, "min_selection_samples must be at least 1, got 0"),
        ({"min_selection_providers": "0"}, "min_selection_providers must be at least 1, got 0"),
        ({"treasury": "0x" + "00" * 20}, "treasury must not be the zero address"),
        ({"treasury": "0"}, "treasury must not be the zero address"),
        ({"challenge_window": "1d"}, "challenge_window (1d) needs a court: set court=ADDRESS"),
        ({"claim_period": str(2**32)}, "claim_period must be at most 4,294,967,295 s"),
        ({"min_selection_providers": "65536"}, "min_selection_providers must be at most 65,535"),
        ({"quorum_bps": "65536"}, "quorum_bps must be at most 65,535 (the contract's uint16)"),
    ],
)
def test_every_rule_of_the_contract_is_checked_first(
    changes: dict[str, str | int], says: str
) -> None:
    message = refusal(changes)
    assert message.startswith(says), message


def test_a_court_with_a_window_is_removed_only_with_the_window() -> None:
    guarded = MarketParameters(treasury=TREASURY, challenge_window=3600, court=COURT)
    assert refusal({"court": "none"}, guarded).startswith("challenge_window (1h) needs a court")
    after = apply_parameter_changes(guarded, {"court": "none", "challenge_window": "0"})
    assert (after.court, after.challenge_window) == ("", 0)


def test_values_at_the_limits_are_accepted() -> None:
    after = apply_parameter_changes(
        CURRENT,
        {
            "quorum_bps": "10000",
            "min_voting_period": "30d",  # equal to the maximum: allowed
            "reply_period": "1s",
            "min_selection_providers": "65535",
            "claim_period": str(2**32 - 1),
            "challenge_window": "2h",
            "court": COURT,
        },
    )
    check_parameters(after)
    assert after.quorum_bps == 10_000 and after.min_voting_period == after.max_voting_period
    assert after.challenge_window == 7200 and after.court == COURT


def test_only_the_named_fields_change() -> None:
    after = apply_parameter_changes(CURRENT, {"quorumBps": "5000", "max-voting-period": "14d"})
    assert after.quorum_bps == 5000 and after.max_voting_period == 14 * 86_400
    unchanged = set(PARAMETER_NAMES) - {"quorum_bps", "max_voting_period"}
    assert all(getattr(after, n) == getattr(CURRENT, n) for n in unchanged)


def test_no_change_and_a_change_to_the_same_values_are_refused() -> None:
    assert refusal({}).startswith("no change given: name at least one parameter as NAME=VALUE")
    message = refusal({"quorum_bps": "3000", "reply_period": "72h"})
    assert message == (
        "nothing to change: quorum_bps is already 3000, reply_period is already 3d; "
        "nothing was sent"
    )
    # one real change among values already held goes through
    assert apply_parameter_changes(CURRENT, {"quorum_bps": 3000, "reply_period": "1d"}) == (
        MarketParameters(treasury=TREASURY, reply_period=86_400)
    )


def test_values_are_shown_as_they_are_given_back() -> None:
    for name in PARAMETER_NAMES:
        value = getattr(CURRENT, name)
        text = parameter_text(name, value)
        if name in PERIOD_PARAMETERS:
            assert parse_period(text) == value
    assert parameter_text("court", "") == "none"


# --- untrusted input: a change or a one-line refusal, never another exception --------------------
_names = st.one_of(st.sampled_from(PARAMETER_NAMES), st.text(max_size=30))
_values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.from_regex(r"[0-9]{1,12}[smhdw]?", fullmatch=True),
)


@given(st.dictionaries(_names, _values, max_size=4))
@fuzz(300)
def test_any_change_is_applied_within_the_rules_or_refused_in_one_line(
    changes: dict[str, str | int],
) -> None:
    result = outcome(lambda: apply_parameter_changes(CURRENT, changes), errors=(InvalidInputError,))
    if not refused(result):
        assert isinstance(result, MarketParameters)
        check_parameters(result)
        assert result != CURRENT
