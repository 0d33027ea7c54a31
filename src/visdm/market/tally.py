"""The liquid-democracy tally, computed off chain and submitted for on-chain verification.

The rules (design 3.3.4–6) in plain Python, shared by the SDK that submits tallies and by the
tests that check the contract against them:

* each selected asset weighs its selected sample count;
* its vote is its owner's own ask, else the first ask met along the owner's delegation chain as
  of the voting deadline, following at most ``max_depth`` hops; otherwise the asset abstains;
* quorum: participating weight × 10 000 ≥ quorum (bps) × total weight, and some weight voted;
* the clearing price is the weighted *lower* median of the participating asks: the smallest ask
  ``p`` with at least half of the participating weight asking ≤ ``p``;
* outcome: no quorum → Failed; ``p`` = reject (2²⁵⁶−1) → Rejected; ``p`` ≤ offer → Approved;
  otherwise Countered at ``p``.

The contract cannot sort, so :func:`submit_tally` sends ``p`` with the assets in batches and the
contract checks in the last batch that ``p`` is that median.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from visdm.chain.client import TxResult
from visdm.chain.contracts import (
    REJECT_ASK,
    AssetRegistry,
    DelegationRegistry,
    ProposalStatus,
    TrainingMarket,
)
from visdm.errors import InvalidInputError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "TallyOutcome",
    "compute_outcome",
    "resolve_ask",
    "submit_tally",
    "weighted_lower_median",
]

#: assets per tally transaction; about 40k gas each at worst, far below any block gas limit
DEFAULT_BATCH_SIZE = 200
_BPS = 10_000


def resolve_ask(
    owner: str,
    votes: Mapping[str, int],
    delegate_at: Callable[[str], str | None],
    max_depth: int,
) -> int | None:
    """The ask that speaks for ``owner``'s assets, or ``None`` when they abstain."""
    voter: str | None = owner
    for _ in range(max_depth + 1):
        if voter is None:
            return None
        if voter in votes:
            return votes[voter]
        voter = delegate_at(voter)
    return None


def weighted_lower_median(asks: Sequence[tuple[int, int]]) -> int:
    """Smallest ask with at least half the total weight at or below it; ``(ask, weight)`` pairs."""
    total = sum(w for _, w in asks)
    if total <= 0:
        raise InvalidInputError("the weighted median needs positive total weight")
    acc = 0
    for ask, weight in sorted(asks):
        acc += weight
        if 2 * acc >= total:
            return ask
    raise AssertionError("unreachable: the weights sum to the total")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class TallyOutcome:
    """What a tally decides."""

    status: ProposalStatus
    clearing_price: int
    participating_weight: int
    total_weight: int


def compute_outcome(
    weighted_asks: Sequence[tuple[int | None, int]], *, offer: int, quorum_bps: int
) -> TallyOutcome:
    """Apply the rules to each asset's resolved ask (``None``: abstains) and weight."""
    total = sum(w for _, w in weighted_asks)
    participating = [(a, w) for a, w in weighted_asks if a is not None]
    weight = sum(w for _, w in participating)
    if weight == 0 or weight * _BPS < quorum_bps * total:
        return TallyOutcome(ProposalStatus.FAILED, 0, weight, total)
    price = weighted_lower_median(participating)
    if price == REJECT_ASK:
        status = ProposalStatus.REJECTED
    elif price <= offer:
        status = ProposalStatus.APPROVED
    else:
        status = ProposalStatus.COUNTERED
    return TallyOutcome(status, price, weight, total)


@dataclass(frozen=True, slots=True)
class TallyReceipt:
    """The outcome and the transactions that recorded it."""

    outcome: TallyOutcome
    transactions: tuple[TxResult, ...]

    @property
    def gas_used(self) -> int:
        return sum(t.gas_used for t in self.transactions)


def submit_tally(
    market: TrainingMarket,
    assets: AssetRegistry,
    delegations: DelegationRegistry,
    tallier: LocalAccount,
    proposal_id: int,
    *,
    selection: Sequence[tuple[int, int]],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> TallyReceipt:
    """Compute the outcome from chain state and record it in batches of ``batch_size`` assets.

    ``selection`` is the proposal's (asset id, sample count) list in proposal order.
    """
    if batch_size <= 0:
        raise InvalidInputError(f"batch size must be positive, got {batch_size}")
    proposal = market.proposal(proposal_id)
    if proposal.status != ProposalStatus.VOTING:
        raise InvalidInputError(
            f"proposal {proposal_id} is {proposal.status.name.lower()}, not open for a tally"
        )
    asset_ids = [a for a, _ in selection]
    counts = [c for _, c in selection]
    if market.assets_hash_of(asset_ids, counts) != proposal.assets_hash:
        raise InvalidInputError(
            f"the selection given does not match proposal {proposal_id}'s commitment"
        )
    as_of = proposal.voting_deadline
    max_depth = delegations.max_depth()
    votes: dict[str, int] = {}
    seen: set[str] = set()
    delegate_cache: dict[str, str | None] = {}

    def vote_of(account: str) -> None:
        if account not in seen:
            seen.add(account)
            ask = market.vote_of(proposal_id, account)
            if ask is not None:
                votes[account] = ask

    def delegate_at(account: str) -> str | None:
        if account not in delegate_cache:
            delegate_cache[account] = delegations.delegate_at(account, as_of)
        target = delegate_cache[account]
        if target is not None:
            vote_of(target)
        return target

    weighted: list[tuple[int | None, int]] = []
    for asset_id, count in selection:
        owner = assets.asset(asset_id).owner
        vote_of(owner)
        weighted.append((resolve_ask(owner, votes, delegate_at, max_depth), count))
    outcome = compute_outcome(
        weighted, offer=proposal.offer, quorum_bps=market.parameters().quorum_bps
    )
    txs: list[TxResult] = []
    for start in range(0, len(selection), batch_size):
        done, tx = market.tally(
            tallier,
            proposal_id,
            outcome.clearing_price,
            asset_ids[start : start + batch_size],
            counts[start : start + batch_size],
        )
        txs.append(tx)
    if not done:
        raise AssertionError("the last batch did not complete the tally")  # pragma: no cover
    return TallyReceipt(outcome, tuple(txs))
