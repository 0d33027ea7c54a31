"""From provider values to token amounts that sum exactly to the price, and their Merkle root.

**Shares.** A provider's weight is its (net) value; providers with weight ``<= 0`` get nothing.
If no provider has a positive weight (every sample harmful or worthless, or a tiny selection)
the valuation says nothing about who helped, so the price is split **by sample count** instead
(the same weight as the provider's vote on the price, DESIGN 3.3), and ``Payout.basis`` says
``"sample_count"``. The data price is never refunded here: by the time a payout is computed the
consumer's accuracy threshold was met.

**Rounding: largest remainder (Hamilton).** Each provider's exact quota
``price * weight / total`` is computed with rationals (float weights are converted exactly, so
prices up to ``2**256 - 1`` lose nothing), everyone gets the floor, and the units left over
(fewer than the number of providers) go one each to the largest fractional remainders; equal
remainders go to the lower address (byte order). The result is deterministic, sums exactly to
the price, and gives nobody less than the floor of their quota or more than its ceiling.

**Commitment.** One ``(uint256 index, address account, uint256 amount)`` leaf per provider
with a non-zero amount, ``index`` being the provider's position in address order, in an
OpenZeppelin ``StandardMerkleTree`` (:mod:`visdm.merkle`). ``TrainingMarket.claim`` checks
``MerkleProof.verify(proof, root, keccak256(bytes.concat(keccak256(abi.encode(index, account,
amount)))))``; the index only feeds its claimed-bitmap (256 claims share one storage word, as in
Uniswap's MerkleDistributor), which keeps a claim's gas flat however many payees there are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from eth_utils.address import to_checksum_address

from visdm.errors import InvalidInputError
from visdm.merkle import StandardMerkleTree
from visdm.types import Address

__all__ = [
    "PAYOUT_LEAF_ENCODING",
    "Payout",
    "compute_payout",
    "find_payout_leaf",
    "largest_remainder",
    "payout_tree",
]

#: the ABI types of one payout leaf: (index, account, amount)
PAYOUT_LEAF_ENCODING: tuple[str, str, str] = ("uint256", "address", "uint256")
_UINT256_MAX = 2**256 - 1

Basis = Literal["value", "sample_count"]


def checksum(address: str) -> Address:
    """A provider address in checksum form, or :class:`InvalidInputError`."""
    try:
        return Address(to_checksum_address(address))
    except (ValueError, TypeError):
        raise InvalidInputError(f"{address!r} is not an Ethereum address") from None


def largest_remainder(
    price: int, weights: Mapping[Address, float | int | Fraction]
) -> dict[Address, int]:
    """Split ``price`` in proportion to ``weights`` into integers that sum exactly to it.

    Weights must be finite and ``>= 0`` with a positive sum. Keys are returned in address order.
    """
    if isinstance(price, bool) or not isinstance(price, int):
        raise InvalidInputError(f"price must be an integer amount, got {price!r}")
    if not 0 <= price <= _UINT256_MAX:
        raise InvalidInputError(f"price must be in 0..2**256-1, got {price}")
    exact: dict[Address, Fraction] = {}
    for provider, weight in weights.items():
        try:
            w = Fraction(weight)
        except (ValueError, OverflowError, TypeError):
            raise InvalidInputError(
                f"weight of {provider} is not a finite number: {weight!r}"
            ) from None
        if w < 0:
            raise InvalidInputError(f"weight of {provider} is negative: {weight!r}")
        exact[checksum(provider)] = exact.get(checksum(provider), Fraction(0)) + w
    total = sum(exact.values(), Fraction(0))
    if total <= 0:
        raise InvalidInputError("weights must have a positive sum to split a price")
    ordered = sorted(exact, key=lambda a: bytes.fromhex(a[2:]))
    amounts: dict[Address, int] = {}
    remainders: list[tuple[Fraction, bytes, Address]] = []
    for provider in ordered:
        quota = price * exact[provider] / total
        floor = quota.numerator // quota.denominator
        amounts[provider] = floor
        remainders.append((quota - floor, bytes.fromhex(provider[2:]), provider))
    left = price - sum(amounts.values())
    remainders.sort(key=lambda r: (-r[0], r[1]))
    for _, _, provider in remainders[:left]:
        amounts[provider] += 1
    return amounts


@dataclass(frozen=True, slots=True, eq=False)
class Payout:
    """Token amounts per provider (summing to ``price``) and the Merkle tree committing to them."""

    price: int
    amounts: Mapping[Address, int]
    weights: Mapping[Address, float]
    basis: Basis
    tree: StandardMerkleTree | None

    @property
    def root(self) -> bytes:
        """The Merkle root to post on chain (32 zero bytes when nothing is paid)."""
        return self.tree.root if self.tree is not None else bytes(32)

    def leaf(self, provider: str) -> tuple[int, Address, int]:
        """The ``(index, account, amount)`` leaf a provider claims with."""
        return find_payout_leaf(self.tree, provider)[1]

    def proof(self, provider: str) -> list[bytes]:
        """The Merkle proof a provider submits to claim its amount."""
        position, _ = find_payout_leaf(self.tree, provider)
        assert self.tree is not None  # find_payout_leaf found it in the tree
        return self.tree.proof(position)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: amounts as decimal strings, the root, and the full tree."""
        return {
            "price": str(self.price),
            "basis": self.basis,
            "root": "0x" + self.root.hex(),
            "amounts": {a: str(v) for a, v in self.amounts.items()},
            "weights": dict(self.weights),
            "tree": self.tree.dump() if self.tree is not None else None,
        }


def compute_payout(
    price: int,
    provider_values: Mapping[Address, float],
    *,
    sample_counts: Mapping[Address, int] | None = None,
) -> Payout:
    """Turn per-provider values into exact token amounts and their Merkle commitment.

    ``provider_values`` are the providers' aggregated values (see
    :meth:`~visdm.valuation.RobustValuationResult.provider_values`); ``sample_counts`` is the
    fallback basis when no value is positive (default: one sample each).
    """
    values = {checksum(p): float(v) for p, v in provider_values.items()}
    if not values:
        raise InvalidInputError("a payout needs at least one provider")
    for provider, v in values.items():
        if not math.isfinite(v):
            raise InvalidInputError(f"value of {provider} is not finite: {v}")
    positive = {p: v for p, v in values.items() if v > 0}
    basis: Basis = "value"
    weights: dict[Address, float | int | Fraction] = dict(positive)
    if not positive:
        basis = "sample_count"
        counts = {checksum(p): int(c) for p, c in (sample_counts or {}).items()}
        weights = {p: counts.get(p, 1) for p in values}
        if any(c < 0 for c in weights.values()) or sum(weights.values()) == 0:
            raise InvalidInputError("sample counts must be >= 0 with a positive sum")
    shares = largest_remainder(price, weights)
    amounts = {p: shares.get(p, 0) for p in sorted(values, key=lambda a: bytes.fromhex(a[2:]))}
    total_w = float(sum(Fraction(w) for w in weights.values()))
    norm = {p: float(Fraction(weights.get(p, 0))) / total_w for p in amounts}
    tree = payout_tree({str(a): v for a, v in amounts.items()}) if any(amounts.values()) else None
    return Payout(price=price, amounts=amounts, weights=norm, basis=basis, tree=tree)


def find_payout_leaf(
    tree: StandardMerkleTree | None, provider: str
) -> tuple[int, tuple[int, Address, int]]:
    """``(position in the tree, (index, account, amount))`` of ``provider``'s payout leaf."""
    address = checksum(provider)
    if tree is not None:
        for position, (index, account, amount) in enumerate(tree.values):
            if checksum(account) == address:
                return position, (int(index), address, int(amount))
    raise InvalidInputError(f"{address} has nothing to claim in this payout")


def payout_tree(amounts: Mapping[str, int]) -> StandardMerkleTree:
    """The payout tree for ``account → amount``: zero amounts are left out, and the remaining
    accounts get indices 0, 1, … in address order."""
    rows: dict[Address, int] = {}
    for account, amount in amounts.items():
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or not 0 <= amount <= _UINT256_MAX
        ):
            raise InvalidInputError(f"payout for {account} must be an int in uint256: {amount!r}")
        address = checksum(account)
        if address in rows:
            raise InvalidInputError(f"{address} appears twice in the payouts")
        if amount:
            rows[address] = amount
    if not rows:
        raise InvalidInputError("a payout tree needs at least one positive amount")
    ordered = sorted(rows.items(), key=lambda kv: bytes.fromhex(kv[0][2:]))
    leaves = [(i, account, amount) for i, (account, amount) in enumerate(ordered)]
    return StandardMerkleTree.of(leaves, PAYOUT_LEAF_ENCODING)
