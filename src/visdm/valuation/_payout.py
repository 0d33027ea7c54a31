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

**Per asset.** The chain pays assets, never accounts (so a node cannot pay itself): each
provider's amount is split among its selected assets in proportion to their positive values
(by sample count when none is positive), again by largest remainder, so the provider-level
netting of harmful samples is kept whatever way a provider spreads its data over assets.

**Commitment.** One ``(uint256 position, uint256 assetId, uint256 amount)`` leaf per asset with
a non-zero amount, ``position`` being the asset's place in the proposal's selection, in an
OpenZeppelin ``StandardMerkleTree`` (:mod:`visdm.merkle`). ``TrainingMarket.claim`` checks the
leaf against this root, checks that the proposal selected ``assetId`` at ``position`` (the
market stores the selected ids at ``propose``), and credits the asset's on-chain owner; the
position also feeds its claimed-bitmap (256 claims share one storage word, as in Uniswap's
MerkleDistributor).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, TypeVar

from eth_utils.address import to_checksum_address

from visdm.errors import InvalidInputError
from visdm.merkle import StandardMerkleTree
from visdm.types import Address

__all__ = [
    "PAYOUT_LEAF_ENCODING",
    "Payout",
    "PayoutAsset",
    "compute_payout",
    "find_payout_leaf",
    "largest_remainder",
    "payout_tree",
]

#: the ABI types of one payout leaf: (position, assetId, amount)
PAYOUT_LEAF_ENCODING: tuple[str, str, str] = ("uint256", "uint256", "uint256")
_UINT256_MAX = 2**256 - 1

Basis = Literal["value", "sample_count"]


def checksum(address: str) -> Address:
    """A provider address in checksum form, or :class:`InvalidInputError`."""
    try:
        return Address(to_checksum_address(address))
    except (ValueError, TypeError):
        raise InvalidInputError(f"{address!r} is not an Ethereum address") from None


K = TypeVar("K", bound=Hashable)


def _split(price: int, weights: Mapping[K, Fraction], order: Callable[[K], Any]) -> dict[K, int]:
    """Largest remainder over exact weights; ties and key order by ``order``."""
    total = sum(weights.values(), Fraction(0))
    ordered = sorted(weights, key=order)
    amounts: dict[K, int] = {}
    remainders: list[tuple[Fraction, Any, K]] = []
    for key in ordered:
        quota = price * weights[key] / total
        floor = quota.numerator // quota.denominator
        amounts[key] = floor
        remainders.append((quota - floor, order(key), key))
    left = price - sum(amounts.values())
    remainders.sort(key=lambda r: (-r[0], r[1]))
    for _, _, key in remainders[:left]:
        amounts[key] += 1
    return amounts


def _check_price(price: int) -> None:
    if isinstance(price, bool) or not isinstance(price, int):
        raise InvalidInputError(f"price must be an integer amount, got {price!r}")
    if not 0 <= price <= _UINT256_MAX:
        raise InvalidInputError(f"price must be in 0..2**256-1, got {price}")


def _address_order(a: Address) -> bytes:
    return bytes.fromhex(a[2:])


def largest_remainder(
    price: int, weights: Mapping[Address, float | int | Fraction]
) -> dict[Address, int]:
    """Split ``price`` in proportion to ``weights`` into integers that sum exactly to it.

    Weights must be finite and ``>= 0`` with a positive sum. Keys are returned in address order.
    """
    _check_price(price)
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
    if sum(exact.values(), Fraction(0)) <= 0:
        raise InvalidInputError("weights must have a positive sum to split a price")
    return _split(price, exact, _address_order)


@dataclass(frozen=True, slots=True)
class PayoutAsset:
    """One selected asset as the payout sees it: where it sits in the proposal's selection,
    who owns it, and the net value and number of its samples used in the round."""

    position: int
    asset_id: int
    owner: Address
    value: float
    samples: int


@dataclass(frozen=True, slots=True, eq=False)
class Payout:
    """Token amounts per provider (summing to ``price``), their split over the providers'
    assets, and the Merkle tree committing to the asset amounts (``None`` without assets)."""

    price: int
    amounts: Mapping[Address, int]
    weights: Mapping[Address, float]
    basis: Basis
    asset_amounts: Mapping[int, int]
    positions: Mapping[int, int]
    tree: StandardMerkleTree | None

    @property
    def root(self) -> bytes:
        """The Merkle root to post on chain (32 zero bytes when nothing is paid)."""
        return self.tree.root if self.tree is not None else bytes(32)

    def leaf(self, asset_id: int) -> tuple[int, int, int]:
        """The ``(position, assetId, amount)`` leaf claimed for an asset."""
        return find_payout_leaf(self.tree, asset_id)[1]

    def proof(self, asset_id: int) -> list[bytes]:
        """The Merkle proof of an asset's payout leaf."""
        position, _ = find_payout_leaf(self.tree, asset_id)
        assert self.tree is not None  # find_payout_leaf found it in the tree
        return self.tree.proof(position)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: amounts as decimal strings, the root, and the full tree."""
        return {
            "price": str(self.price),
            "basis": self.basis,
            "root": "0x" + self.root.hex(),
            "amounts": {a: str(v) for a, v in self.amounts.items()},
            "assets": {str(a): str(v) for a, v in self.asset_amounts.items()},
            "weights": dict(self.weights),
            "tree": self.tree.dump() if self.tree is not None else None,
        }


def compute_payout(
    price: int,
    provider_values: Mapping[Address, float],
    *,
    sample_counts: Mapping[Address, int] | None = None,
    assets: Sequence[PayoutAsset] | None = None,
) -> Payout:
    """Turn per-provider values into exact token amounts and, given the providers' ``assets``,
    into per-asset amounts and their Merkle commitment.

    ``provider_values`` are the providers' aggregated values (see
    :meth:`~visdm.valuation.RobustValuationResult.provider_values`); ``sample_counts`` is the
    fallback basis when no value is positive (default: one sample each). Every provider with a
    positive amount must own at least one of ``assets``.
    """
    _check_price(price)
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
    amounts = {p: shares.get(p, 0) for p in sorted(values, key=_address_order)}
    total_w = float(sum(Fraction(w) for w in weights.values()))
    norm = {p: float(Fraction(weights.get(p, 0))) / total_w for p in amounts}
    asset_amounts: dict[int, int] = {}
    positions: dict[int, int] = {}
    if assets is not None:
        asset_amounts, positions = _split_over_assets(amounts, assets)
    tree = payout_tree(asset_amounts, positions) if any(asset_amounts.values()) else None
    return Payout(
        price=price,
        amounts=amounts,
        weights=norm,
        basis=basis,
        asset_amounts=asset_amounts,
        positions=positions,
        tree=tree,
    )


def _split_over_assets(
    amounts: Mapping[Address, int], assets: Sequence[PayoutAsset]
) -> tuple[dict[int, int], dict[int, int]]:
    by_owner: dict[Address, list[PayoutAsset]] = {}
    positions: dict[int, int] = {}
    for asset in assets:
        if asset.asset_id in positions:
            raise InvalidInputError(f"asset {asset.asset_id} appears twice in the payout")
        if not math.isfinite(asset.value) or asset.samples < 0:
            raise InvalidInputError(f"asset {asset.asset_id}: value and samples must be finite")
        positions[asset.asset_id] = asset.position
        by_owner.setdefault(checksum(asset.owner), []).append(asset)
    out: dict[int, int] = {}
    for provider, amount in amounts.items():
        own = by_owner.get(provider, [])
        if amount and not own:
            raise InvalidInputError(f"{provider} is owed {amount} but owns none of the assets")
        if not own:
            continue
        weights = {a.asset_id: Fraction(max(a.value, 0.0)) for a in own}
        if sum(weights.values()) <= 0:
            weights = {a.asset_id: Fraction(max(a.samples, 0)) for a in own}
        if sum(weights.values()) <= 0:
            weights = {a.asset_id: Fraction(1) for a in own}
        out.update(_split(amount, weights, lambda asset_id: positions[asset_id]))
    return dict(sorted(out.items(), key=lambda kv: positions[kv[0]])), positions


def find_payout_leaf(
    tree: StandardMerkleTree | None, asset_id: int
) -> tuple[int, tuple[int, int, int]]:
    """``(position in the tree, (position, assetId, amount))`` of ``asset_id``'s payout leaf."""
    if tree is not None:
        for index, (position, asset, amount) in enumerate(tree.values):
            if int(asset) == int(asset_id):
                return index, (int(position), int(asset), int(amount))
    raise InvalidInputError(f"asset {asset_id} has nothing to claim in this payout")


def payout_tree(amounts: Mapping[int, int], positions: Mapping[int, int]) -> StandardMerkleTree:
    """The payout tree for ``assetId → amount`` (zero amounts left out), each leaf carrying the
    asset's ``position`` in the proposal's selection."""
    rows: list[tuple[int, int, int]] = []
    for asset_id, amount in amounts.items():
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or not 0 <= amount <= _UINT256_MAX
        ):
            raise InvalidInputError(f"payout for asset {asset_id} must be a uint256: {amount!r}")
        if asset_id not in positions:
            raise InvalidInputError(f"asset {asset_id} has no position in the selection")
        if amount:
            rows.append((int(positions[asset_id]), int(asset_id), amount))
    if not rows:
        raise InvalidInputError("a payout tree needs at least one positive amount")
    if len({r[0] for r in rows}) != len(rows):
        raise InvalidInputError("two payout leaves share a selection position")
    return StandardMerkleTree.of(sorted(rows), PAYOUT_LEAF_ENCODING)
