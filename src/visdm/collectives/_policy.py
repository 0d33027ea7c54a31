"""The collective's rules in plain Python, as ``Collective.sol`` applies them.

The SDK uses them to say what a transaction will do before it is sent, and the tests check the
contract against them:

* the policy floor is the weighted *lower* median of the members' counted floor votes: the
  smallest floor ``f`` with at least half the counted weight voting ``≤ f`` (the market's own
  rule for asks, :mod:`visdm.market.tally`);
* on a proposal with offer ``O`` over ``W`` selected samples, the collective accepts (ask 0)
  when ``O ≥ f·W``, and otherwise asks ``f·W``: the offer per selected sample meets the floor
  or the collective names the price that would;
* the steward's fee on a payout ``a`` is ``⌊a·bps / 10 000⌋`` (rounded in the member's favour).
"""

from __future__ import annotations

from collections.abc import Iterable

from visdm.errors import InvalidInputError

__all__ = ["fee_of", "policy_ask", "weighted_lower_median"]

_BPS = 10_000


def weighted_lower_median(votes: Iterable[tuple[int, int]]) -> int | None:
    """Smallest floor with at least half the weight at or below it, over ``(floor, weight)``
    pairs; ``None`` when no weight is counted."""
    pairs = sorted((int(f), int(w)) for f, w in votes if w > 0)
    total = sum(w for _, w in pairs)
    if total == 0:
        return None
    running = 0
    for floor, weight in pairs:
        running += weight
        if 2 * running >= total:
            return floor
    raise AssertionError("unreachable: the running weight reaches the total")


def policy_ask(*, offer: int, total_weight: int, floor: int) -> int:
    """The collective's ask on a proposal: 0 (accept) when the offer per selected sample meets
    ``floor``, else ``floor × total_weight``."""
    if offer < 0 or total_weight < 0 or floor < 0:
        raise InvalidInputError("offer, selected weight and floor cannot be negative")
    price = floor * total_weight
    return 0 if offer >= price else price


def fee_of(amount: int, fee_bps: int) -> int:
    """The steward's fee on a payout of ``amount`` at ``fee_bps``."""
    return amount * fee_bps // _BPS
