"""The liquid-democracy tally, computed off chain and submitted for on-chain verification.

The rules (design 3.3.4–6) in plain Python, shared by the SDK that submits tallies and by the
tests that check the contract against them:

* each selected asset weighs its selected sample count (never more than the node attested);
* an asset withdrawn by the tally leaves the round;
* its vote is its owner's own ask, else the first ask met along the owner's delegation chain as
  of the voting deadline, following at most ``max_depth`` hops; otherwise the asset abstains
  and stays in the round;
* a resolved REJECT (2²⁵⁶−1) takes the asset out of the round: its data is never used against
  its owner's vote;
* the round fails as Rejected when what remains is empty, below the consumer's minimum share
  of the selected weight, or below the market's minimum selection;
* quorum: participating weight × 10 000 ≥ quorum (bps) × remaining weight, and some weight
  voted; otherwise Failed;
* the clearing price is the weighted *lower* median of the remaining participating asks: the
  smallest ask ``p`` with at least half of that weight asking ≤ ``p``; ``p`` ≤ offer → Approved,
  otherwise Countered at ``p``.

The contract cannot sort, so :func:`submit_tally` sends ``p`` with the assets in batches (every
batch but the last a multiple of 256 assets) and the contract checks in the last batch that
``p`` is that median. It is two steps a browser wallet takes one transaction at a time:
:func:`tally_outcome` computes the outcome, and :func:`next_batch` is the batch a tallier sends
next given its progress on chain (:func:`tally_progress`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain.client import TxResult
from visdm.chain.contracts import (
    REJECT_ASK,
    AssetRegistry,
    AssetStatus,
    DelegationRegistry,
    ProposalStatus,
    TrainingMarket,
)
from visdm.errors import InvalidInputError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "AssetVote",
    "TallyBatch",
    "TallyOutcome",
    "TallyProgress",
    "TallyReceipt",
    "compute_outcome",
    "next_batch",
    "resolve_ask",
    "submit_tally",
    "tally_outcome",
    "tally_progress",
    "weighted_lower_median",
]

#: assets per tally transaction (a multiple of 256: one exclusion word per 256 assets); about
#: 40k gas each at worst, far below any block gas limit
DEFAULT_BATCH_SIZE = 256
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
class AssetVote:
    """One selected asset in the tally: its resolved ask (``None``: abstains), its weight, and
    whether it is still active."""

    ask: int | None
    weight: int
    active: bool = True

    @property
    def in_round(self) -> bool:
        return self.active and self.ask != REJECT_ASK


@dataclass(frozen=True, slots=True)
class TallyOutcome:
    """What a tally decides; ``excluded`` are the selection positions that left the round."""

    status: ProposalStatus
    clearing_price: int
    participating_weight: int
    remaining_weight: int
    total_weight: int
    excluded: frozenset[int] = frozenset()


def compute_outcome(
    votes: Sequence[AssetVote],
    *,
    offer: int,
    quorum_bps: int,
    min_share_bps: int = 0,
    min_samples: int = 1,
) -> TallyOutcome:
    """Apply the rules to each asset's resolved vote, in selection order."""
    total = sum(v.weight for v in votes)
    excluded = frozenset(i for i, v in enumerate(votes) if not v.in_round)
    remaining = sum(v.weight for v in votes if v.in_round)
    participating = [(v.ask, v.weight) for v in votes if v.in_round and v.ask is not None]
    weight = sum(w for _, w in participating)

    def ends(status: ProposalStatus, price: int = 0) -> TallyOutcome:
        return TallyOutcome(status, price, weight, remaining, total, excluded)

    if remaining == 0 or remaining * _BPS < min_share_bps * total or remaining < min_samples:
        return ends(ProposalStatus.REJECTED)
    if weight == 0 or weight * _BPS < quorum_bps * remaining:
        return ends(ProposalStatus.FAILED)
    price = weighted_lower_median([(a, w) for a, w in participating if a is not None])
    return ends(ProposalStatus.APPROVED if price <= offer else ProposalStatus.COUNTERED, price)


@dataclass(frozen=True, slots=True)
class TallyReceipt:
    """The outcome and the transactions that recorded it."""

    outcome: TallyOutcome
    transactions: tuple[TxResult, ...]

    @property
    def gas_used(self) -> int:
        return sum(t.gas_used for t in self.transactions)


@dataclass(frozen=True, slots=True)
class TallyProgress:
    """One tallier's unfinished tally on chain (``tallyProgress``): how many assets of the
    selection its batches covered (``cursor``) and the clearing price they claimed."""

    cursor: int = 0
    price: int = 0


@dataclass(frozen=True, slots=True)
class TallyBatch:
    """The next ``tally`` call of a tallier: the clearing price, which assets, and whether it
    is the last batch (it completes the tally); ``reset`` first when the tallier's progress on
    chain claimed another price (its next batch would revert)."""

    proposal_id: int
    clearing_price: int
    start: int
    asset_ids: tuple[int, ...]
    sample_counts: tuple[int, ...]
    last: bool
    reset: bool = False


def tally_outcome(
    market: TrainingMarket,
    assets: AssetRegistry,
    delegations: DelegationRegistry,
    proposal_id: int,
    *,
    selection: Sequence[tuple[int, int]],
) -> TallyOutcome:
    """Compute proposal ``proposal_id``'s outcome from chain state (votes, delegations as of
    the voting deadline, asset status); ``selection`` is its (asset id, sample count) list in
    proposal order, checked against the proposal's commitment."""
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

    weighted: list[AssetVote] = []
    for asset_id, count in selection:
        record = assets.asset(asset_id)
        if record.status != AssetStatus.ACTIVE:
            weighted.append(AssetVote(None, count, active=False))
            continue
        vote_of(record.owner)
        weighted.append(AssetVote(resolve_ask(record.owner, votes, delegate_at, max_depth), count))
    params = market.parameters()
    return compute_outcome(
        weighted,
        offer=proposal.offer,
        quorum_bps=params.quorum_bps,
        min_share_bps=proposal.min_share_bps,
        min_samples=params.min_selection_samples,
    )


def tally_progress(market: TrainingMarket, proposal_id: int, tallier: str) -> TallyProgress:
    """``tallier``'s unfinished tally of ``proposal_id`` as the chain keeps it (all zero when
    it has none, and again once its tally completed)."""
    contract = market.client.contract(market.address, market.ARTIFACT)
    fn = contract.functions.tallyProgress(proposal_id, to_checksum_address(tallier))
    price, _running_hash, cursor, *_counts = market.client.call(fn)
    return TallyProgress(int(cursor), int(price))


def next_batch(
    proposal_id: int,
    outcome: TallyOutcome,
    selection: Sequence[tuple[int, int]],
    progress: TallyProgress,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> TallyBatch:
    """The batch a tallier sends next, given its ``progress`` on chain: the assets from its
    cursor on (from the start, after a reset, when its progress claimed another price)."""
    if batch_size <= 0 or batch_size % 256:
        raise InvalidInputError(f"batch size must be a positive multiple of 256, got {batch_size}")
    reset = progress.cursor > 0 and progress.price != outcome.clearing_price
    start = 0 if reset else progress.cursor
    if not 0 <= start < len(selection):
        raise InvalidInputError(
            f"the tally of proposal {proposal_id} is at asset {start} of {len(selection)}: "
            "reset it and tally again"
        )
    chunk = selection[start : start + batch_size]
    return TallyBatch(
        proposal_id,
        outcome.clearing_price,
        start,
        tuple(a for a, _ in chunk),
        tuple(c for _, c in chunk),
        last=start + len(chunk) == len(selection),
        reset=reset,
    )


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
    """Compute the outcome from chain state and record it in batches of ``batch_size`` assets,
    each the :func:`next_batch` after the tallier's progress on chain (so an interrupted tally
    resumes). ``selection`` is the proposal's (asset id, sample count) list in proposal order.
    """
    if batch_size <= 0 or batch_size % 256:
        raise InvalidInputError(f"batch size must be a positive multiple of 256, got {batch_size}")
    outcome = tally_outcome(market, assets, delegations, proposal_id, selection=selection)
    txs: list[TxResult] = []
    for _ in range(len(selection) // batch_size + 2):  # one reset at most, then every batch
        progress = tally_progress(market, proposal_id, tallier.address)
        batch = next_batch(proposal_id, outcome, selection, progress, batch_size=batch_size)
        if batch.reset:
            txs.append(market.reset_tally(tallier, proposal_id))
        done, tx = market.tally(
            tallier, proposal_id, batch.clearing_price, batch.asset_ids, batch.sample_counts
        )
        txs.append(tx)
        if done:
            return TallyReceipt(outcome, tuple(txs))
    raise AssertionError("the last batch did not complete the tally")  # pragma: no cover
