"""Exact payouts: largest remainder, fallbacks, the split over assets, and Merkle proofs."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.errors import InvalidInputError
from visdm.merkle import StandardMerkleTree
from visdm.types import Address
from visdm.valuation import PAYOUT_LEAF_ENCODING, PayoutAsset, compute_payout, largest_remainder

pytestmark = pytest.mark.unit

MAX = 2**256 - 1


def addr(i: int) -> Address:
    return Address("0x" + f"{i:040x}")


@settings(max_examples=200, deadline=None)
@given(
    price=st.one_of(st.integers(0, 10**6), st.integers(0, MAX)),
    values=st.lists(
        st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, allow_subnormal=False),
        min_size=1,
        max_size=60,
    ),
)
def test_amounts_sum_exactly_to_the_price(price: int, values: list[float]) -> None:
    payout = compute_payout(price, {addr(i + 1): v for i, v in enumerate(values)})
    assert sum(payout.amounts.values()) == price
    assert all(isinstance(a, int) and a >= 0 for a in payout.amounts.values())
    positive = {p: v for p, v in payout.weights.items() if v > 0}
    if payout.basis == "value":
        total = sum(Fraction(v) for v in values if v > 0)
        for i, v in enumerate(values):
            quota = price * Fraction(max(v, 0.0)) / total
            amount = payout.amounts[_cs(addr(i + 1))]
            assert quota - 1 < amount < quota + 1
        assert positive
    else:
        assert all(v <= 0 for v in values)


def _cs(a: str) -> Address:
    from eth_utils.address import to_checksum_address

    return Address(to_checksum_address(a))


@settings(max_examples=60, deadline=None)
@given(
    price=st.integers(1, MAX),
    weights=st.lists(st.integers(0, 10**30), min_size=1, max_size=30).filter(lambda w: sum(w) > 0),
)
def test_every_paid_asset_can_claim_and_providers_get_their_share(
    price: int, weights: list[int]
) -> None:
    # provider i owns two assets at positions 2i and 2i+1, worth 3:1 of its value
    assets = [
        PayoutAsset(2 * i + k, 100 + 2 * i + k, addr(i + 1), float(w) * (3 - 2 * k), 5)
        for i, w in enumerate(weights)
        for k in (0, 1)
    ]
    payout = compute_payout(
        price, {addr(i + 1): float(w) for i, w in enumerate(weights)}, assets=assets
    )
    assert payout.tree is not None
    assert sum(payout.asset_amounts.values()) == price
    for i, provider in enumerate(_cs(addr(j + 1)) for j in range(len(weights))):
        mine = [payout.asset_amounts.get(100 + 2 * i + k, 0) for k in (0, 1)]
        assert sum(mine) == payout.amounts[provider]
        # 3:1, up to rounding to integers and the float weights' own rounding
        assert abs(mine[0] - 3 * mine[1]) <= 4 + sum(mine) * 2**-48
    for asset_id, amount in payout.asset_amounts.items():
        if amount:
            leaf = payout.leaf(asset_id)
            assert leaf == (payout.positions[asset_id], asset_id, amount)
            proof = payout.proof(asset_id)
            assert StandardMerkleTree.verify(payout.root, PAYOUT_LEAF_ENCODING, leaf, proof)


def test_a_harmful_asset_is_netted_within_its_provider() -> None:
    """A provider cannot escape the netting of harmful samples by putting them in an asset of
    their own: the provider's net value decides its amount, its assets only split it."""
    assets = [
        PayoutAsset(0, 1, addr(1), 0.6, 10),
        PayoutAsset(1, 2, addr(1), -0.4, 10),  # mislabelled data, in its own asset
        PayoutAsset(2, 3, addr(2), 0.2, 10),
    ]
    payout = compute_payout(1000, {addr(1): 0.2, addr(2): 0.2}, assets=assets)
    assert payout.amounts == {_cs(addr(1)): 500, _cs(addr(2)): 500}
    assert payout.asset_amounts == {1: 500, 2: 0, 3: 500}
    with pytest.raises(InvalidInputError, match="nothing to claim"):
        payout.proof(2)


def test_bad_asset_input() -> None:
    with pytest.raises(InvalidInputError, match="owns none of the assets"):
        compute_payout(10, {addr(1): 1.0}, assets=[PayoutAsset(0, 1, addr(2), 1.0, 1)])
    twice = [PayoutAsset(0, 1, addr(1), 1.0, 1), PayoutAsset(1, 1, addr(1), 1.0, 1)]
    with pytest.raises(InvalidInputError, match="appears twice"):
        compute_payout(10, {addr(1): 1.0}, assets=twice)
    with pytest.raises(InvalidInputError, match="finite"):
        compute_payout(10, {addr(1): 1.0}, assets=[PayoutAsset(0, 1, addr(1), math.nan, 1)])
    same_place = [PayoutAsset(0, 1, addr(1), 1.0, 1), PayoutAsset(0, 2, addr(1), 1.0, 1)]
    with pytest.raises(InvalidInputError, match="share a selection position"):
        compute_payout(10, {addr(1): 1.0}, assets=same_place)


def test_ties_go_to_the_lower_address() -> None:
    amounts = largest_remainder(2, {addr(3): 1, addr(1): 1, addr(2): 1})
    assert list(amounts.values()) == [1, 1, 0]
    assert list(amounts) == [_cs(addr(1)), _cs(addr(2)), _cs(addr(3))]
    assert largest_remainder(10, {addr(1): 1, addr(2): 2}) == {
        _cs(addr(1)): 3,
        _cs(addr(2)): 7,
    }


def test_same_address_in_two_spellings_is_one_provider() -> None:
    low = "0x8ba1f109551bd432803012645ac136ddd64dba72"
    amounts = largest_remainder(9, {Address(low): 1, Address(low.upper().replace("0X", "0x")): 2})
    assert amounts == {_cs(low): 9}


def test_all_values_non_positive_fall_back_to_sample_counts() -> None:
    payout = compute_payout(
        100, {addr(1): -0.5, addr(2): 0.0}, sample_counts={addr(1): 3, addr(2): 1}
    )
    assert payout.basis == "sample_count"
    assert payout.amounts == {_cs(addr(1)): 75, _cs(addr(2)): 25}
    even = compute_payout(3, {addr(1): -1.0, addr(2): -2.0})
    assert even.amounts == {_cs(addr(1)): 2, _cs(addr(2)): 1}


def test_zero_price_and_negative_providers_get_nothing() -> None:
    payout = compute_payout(0, {addr(1): 1.0})
    assert payout.amounts == {_cs(addr(1)): 0}
    assert payout.tree is None
    assert payout.root == bytes(32)
    with pytest.raises(InvalidInputError, match="nothing to claim"):
        payout.proof(addr(1))
    mixed = compute_payout(10**18, {addr(1): 0.75, addr(2): -0.2, addr(3): 0.25})
    assert mixed.amounts[_cs(addr(2))] == 0
    assert mixed.amounts[_cs(addr(1))] == 3 * mixed.amounts[_cs(addr(3))]
    summary = mixed.to_json()
    assert summary["price"] == str(10**18)
    assert summary["root"] == "0x" + mixed.root.hex()


def test_max_price_is_exact() -> None:
    amounts = largest_remainder(MAX, {addr(1): 1e-300, addr(2): 1.0, addr(3): 1 / 3})
    assert sum(amounts.values()) == MAX


@pytest.mark.parametrize(
    ("price", "weights", "match"),
    [
        (-1, {addr(1): 1.0}, "price"),
        (2**256, {addr(1): 1.0}, "price"),
        (1.5, {addr(1): 1.0}, "integer"),
        (True, {addr(1): 1.0}, "integer"),
        (5, {addr(1): -1.0}, "negative"),
        (5, {addr(1): float("nan")}, "finite"),
        (5, {addr(1): 0.0}, "positive sum"),
        (5, {Address("0x123"): 1.0}, "not an Ethereum address"),
    ],
)
def test_bad_input(price: int, weights: dict[Address, float], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        largest_remainder(price, weights)


def test_bad_payout_input() -> None:
    with pytest.raises(InvalidInputError, match="at least one provider"):
        compute_payout(5, {})
    with pytest.raises(InvalidInputError, match="not finite"):
        compute_payout(5, {addr(1): float("inf")})
    with pytest.raises(InvalidInputError, match="sample counts"):
        compute_payout(5, {addr(1): -1.0}, sample_counts={addr(1): 0})
