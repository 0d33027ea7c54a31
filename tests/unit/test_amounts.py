"""Token amounts on the command line: tokens with 18 decimals, or raw units with ``wei``."""

from __future__ import annotations

import pytest

from visdm.cli.rounds import parse_amount
from visdm.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", 10 * 10**18), ("2.5", 25 * 10**17), ("0", 0), ("1000wei", 1000), (" 1 ", 10**18)],
)
def test_amounts(text: str, value: int) -> None:
    assert parse_amount(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("inf", "not a token amount"),
        ("nan", "not a token amount"),
        ("ten", "not a token amount"),
        ("1e-19", "more than 18 decimals"),
        ("-1", "outside"),
        (f"{2**256 - 1}wei", "outside"),
        ("1.5wei", "not a token amount"),
    ],
)
def test_bad_amounts_name_the_input(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        parse_amount(text, "--offer")
    assert "--offer" in str(info.value)
