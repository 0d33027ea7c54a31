"""Typed wrapper of ``TrainingMarket.sol`` and the values it reads and writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain._wrapper import ContractWrapper, address_or_none
from visdm.chain.client import TxResult
from visdm.errors import InvalidInputError
from visdm.types import Address

__all__ = [
    "QUOTE_TYPES",
    "REJECT_ASK",
    "ClaimRequest",
    "MarketParameters",
    "ProposalRecord",
    "ProposalStatus",
    "ProposalTerms",
    "Quote",
    "ResultCommitment",
    "TrainingMarket",
]

#: the ask that rejects a proposal outright (``type(uint256).max``)
REJECT_ASK = 2**256 - 1


# ---------------------------------------------------------------------- TrainingMarket


class ProposalStatus(IntEnum):
    """``TrainingMarket.Status``."""

    NONE = 0
    VOTING = 1
    APPROVED = 2
    COUNTERED = 3
    FAILED = 4
    REJECTED = 5
    TRAINING = 6
    COMPLETED = 7
    WTP_MISSED = 8
    CANCELLED = 9


@dataclass(frozen=True, slots=True)
class ProposalTerms:
    """What a consumer proposes; ``asset_ids`` strictly increasing. ``min_share_bps`` is the
    smallest share of the selected weight the consumer still wants after providers who
    rejected have left the round (below it the proposal fails and is refunded)."""

    asset_ids: tuple[int, ...]
    sample_counts: tuple[int, ...]
    selection_root: bytes
    offer: int
    wtp_bps: int
    node: str
    voting_deadline: int
    model_spec_hash: bytes
    validation_set_hash: bytes
    proposal_cid: str = ""
    min_share_bps: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            list(self.asset_ids),
            list(self.sample_counts),
            self.selection_root,
            self.offer,
            self.wtp_bps,
            self.min_share_bps,
            to_checksum_address(self.node),
            self.voting_deadline,
            self.model_spec_hash,
            self.validation_set_hash,
            self.proposal_cid,
        )


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A proposal as the chain keeps it."""

    proposal_id: int
    consumer: Address
    voting_deadline: int
    wtp_bps: int
    status: ProposalStatus
    min_share_bps: int
    node: Address
    deadline: int
    asset_count: int
    total_weight: int
    remaining_weight: int
    claim_deadline: int
    accuracy_bps: int
    tallier: Address | None
    offer: int
    price: int
    clearing_price: int
    training_cost: int
    unclaimed: int
    assets_hash: bytes
    selection_root: bytes
    model_spec_hash: bytes
    validation_set_hash: bytes
    payout_root: bytes
    model_hash: bytes
    seed_hash: bytes


@dataclass(frozen=True, slots=True)
class Quote:
    """A compute node's offer to train a proposal (EIP-712 typed data ``Quote``)."""

    proposal_id: int
    training_cost: int
    max_duration: int
    expiry: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.proposal_id, self.training_cost, self.max_duration, self.expiry)

    def as_message(self) -> dict[str, int]:
        return {
            "proposalId": self.proposal_id,
            "trainingCost": self.training_cost,
            "maxDuration": self.max_duration,
            "expiry": self.expiry,
        }


#: EIP-712 types of ``Quote`` (the domain is the market's: name, version, chain id, address)
QUOTE_TYPES: dict[str, list[dict[str, str]]] = {
    "Quote": [
        {"name": "proposalId", "type": "uint256"},
        {"name": "trainingCost", "type": "uint256"},
        {"name": "maxDuration", "type": "uint64"},
        {"name": "expiry", "type": "uint64"},
    ]
}

_ZERO32 = bytes(32)


@dataclass(frozen=True, slots=True)
class ResultCommitment:
    """What a node commits with ``submitResult`` (``TrainingMarket.Result``)."""

    accuracy_bps: int
    result_cid: str
    consumer_fault: bool = False
    model_hash: bytes = _ZERO32
    payout_root: bytes = _ZERO32
    scores_hash: bytes = _ZERO32
    seed_hash: bytes = _ZERO32

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.accuracy_bps,
            self.consumer_fault,
            self.model_hash,
            self.payout_root,
            self.scores_hash,
            self.seed_hash,
            self.result_cid,
        )


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One payout claim: the leaf ``(position, asset_id, amount)`` with its Merkle proof; the
    market checks itself that ``asset_id`` is what the proposal selected at ``position``."""

    proposal_id: int
    position: int
    asset_id: int
    amount: int
    proof: tuple[bytes, ...]

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.proposal_id, self.position, self.asset_id, self.amount, list(self.proof))


@dataclass(frozen=True, slots=True)
class MarketParameters:
    """``TrainingMarket.Parameters`` (periods in seconds).

    The selection minimums and the minimum expected batch size keep any one training example
    from dominating an update the consumer could invert (see SECURITY.md); the treasury
    receives payouts nobody claimed within ``claim_period`` (``""``: the deployer). A result's
    claims and its node's fee open ``challenge_window`` seconds after it is submitted, unless
    the ``court`` (a ``ResultCourt``; ``""``: none, and then no window) overturns it first.
    """

    quorum_bps: int = 3000
    min_voting_period: int = 60
    max_voting_period: int = 30 * 86400
    reply_period: int = 3 * 86400
    start_period: int = 7 * 86400
    max_training_period: int = 7 * 86400
    claim_period: int = 180 * 86400
    min_batch_size: int = 64
    min_selection_samples: int = 256
    min_selection_providers: int = 3
    treasury: str = ""
    challenge_window: int = 0
    court: str = ""

    def as_tuple(self) -> tuple[Any, ...]:
        if not self.treasury:
            raise InvalidInputError("market parameters need a treasury address")
        return (
            self.quorum_bps,
            self.min_voting_period,
            self.max_voting_period,
            self.reply_period,
            self.start_period,
            self.max_training_period,
            self.claim_period,
            self.min_batch_size,
            self.min_selection_samples,
            self.min_selection_providers,
            to_checksum_address(self.treasury),
            self.challenge_window,
            to_checksum_address(self.court or "0x" + "00" * 20),
        )


_PARAMETER_NAMES = [f.name for f in fields(MarketParameters)]


class TrainingMarket(ContractWrapper):
    """``TrainingMarket.sol``: proposals, votes, batched tallies, escrowed training, payouts."""

    ARTIFACT = "TrainingMarket"
    EIP712_NAME = "ViSDM TrainingMarket"
    EIP712_VERSION = "1"

    def propose(self, consumer: LocalAccount, terms: ProposalTerms) -> tuple[int, TxResult]:
        """Propose and escrow the offer (approve it first); returns the proposal id."""
        fn = self._contract.functions.propose(terms.as_tuple())
        result = self.client.transact(consumer, fn, action="propose")
        (event,) = self.events("ProposalCreated", result.receipt)
        return int(event["args"]["proposalId"]), result

    def vote(self, voter: LocalAccount, proposal_id: int, ask: int) -> TxResult:
        fn = self._contract.functions.vote(proposal_id, ask)
        return self.client.transact(voter, fn, action="vote")

    def vote_of(self, proposal_id: int, voter: str) -> int | None:
        """The ask of ``voter``, or ``None`` when it has not voted."""
        voted, ask = self.client.call(
            self._contract.functions.voteOf(proposal_id, to_checksum_address(voter))
        )
        return int(ask) if voted else None

    def tally(
        self,
        tallier: LocalAccount,
        proposal_id: int,
        clearing_price: int,
        asset_ids: Sequence[int],
        sample_counts: Sequence[int],
    ) -> tuple[bool, TxResult]:
        """Submit one tally batch; returns whether it completed the tally."""
        fn = self._contract.functions.tally(
            proposal_id, clearing_price, list(asset_ids), list(sample_counts)
        )
        result = self.client.transact(tallier, fn, action="tally")
        return bool(self.events("ProposalTallied", result.receipt)), result

    def reset_tally(self, tallier: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.resetTally(proposal_id)
        return self.client.transact(tallier, fn, action="resetTally")

    def accept_counter(self, consumer: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.acceptCounter(proposal_id)
        return self.client.transact(consumer, fn, action="acceptCounter")

    def start_training(
        self, consumer: LocalAccount, proposal_id: int, quote: Quote, signature: bytes
    ) -> TxResult:
        fn = self._contract.functions.startTraining(proposal_id, quote.as_tuple(), signature)
        return self.client.transact(consumer, fn, action="startTraining")

    def submit_result(
        self, node: LocalAccount, proposal_id: int, result: ResultCommitment
    ) -> TxResult:
        fn = self._contract.functions.submitResult(proposal_id, result.as_tuple())
        return self.client.transact(node, fn, action="submitResult")

    def abandon_training(self, node: LocalAccount, proposal_id: int, reason: str) -> TxResult:
        """The node gives the job up: the consumer is credited everything it escrowed."""
        fn = self._contract.functions.abandonTraining(proposal_id, reason)
        return self.client.transact(node, fn, action="abandonTraining")

    def reclaim(self, consumer: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.reclaim(proposal_id)
        return self.client.transact(consumer, fn, action="reclaim")

    def claim(self, sender: LocalAccount, request: ClaimRequest) -> TxResult:
        """Submit one payout claim (anyone may; the asset's owner is credited)."""
        fn = self._contract.functions.claim(*request.as_tuple())
        return self.client.transact(sender, fn, action="claim")

    def sweep_unclaimed(self, sender: LocalAccount, proposal_id: int) -> TxResult:
        """After the claim period: credit the unclaimed remainder to the treasury."""
        fn = self._contract.functions.sweepUnclaimed(proposal_id)
        return self.client.transact(sender, fn, action="sweepUnclaimed")

    def claim_many(self, sender: LocalAccount, requests: Sequence[ClaimRequest]) -> TxResult:
        fn = self._contract.functions.claimMany([r.as_tuple() for r in requests])
        return self.client.transact(sender, fn, action="claimMany")

    def withdraw(self, account: LocalAccount) -> TxResult:
        fn = self._contract.functions.withdraw()
        return self.client.transact(account, fn, action="withdraw")

    def set_parameters(self, governance: LocalAccount, params: MarketParameters) -> TxResult:
        fn = self._contract.functions.setParameters(params.as_tuple())
        return self.client.transact(governance, fn, action="setParameters")

    # --- reads ------------------------------------------------------------------------------
    def proposal(self, proposal_id: int) -> ProposalRecord:
        raw = self.client.call(self._contract.functions.proposal(proposal_id))
        (consumer, voting_deadline, wtp, status, min_share, node, deadline, count) = raw[:8]
        (weight, remaining, claim_deadline, accuracy, tallier) = raw[8:13]
        (offer, price, clearing, cost, unclaimed) = raw[13:18]
        (assets_hash, root, spec, validation, payout, model, seed) = raw[18:]
        return ProposalRecord(
            proposal_id=proposal_id,
            consumer=Address(to_checksum_address(consumer)),
            voting_deadline=int(voting_deadline),
            wtp_bps=int(wtp),
            status=ProposalStatus(status),
            min_share_bps=int(min_share),
            node=Address(to_checksum_address(node)),
            deadline=int(deadline),
            asset_count=int(count),
            total_weight=int(weight),
            remaining_weight=int(remaining),
            claim_deadline=int(claim_deadline),
            accuracy_bps=int(accuracy),
            tallier=address_or_none(tallier),
            offer=int(offer),
            price=int(price),
            clearing_price=int(clearing),
            training_cost=int(cost),
            unclaimed=int(unclaimed),
            assets_hash=bytes(assets_hash),
            selection_root=bytes(root),
            model_spec_hash=bytes(spec),
            validation_set_hash=bytes(validation),
            payout_root=bytes(payout),
            model_hash=bytes(model),
            seed_hash=bytes(seed),
        )

    def excluded_positions(self, proposal_id: int, asset_count: int) -> set[int]:
        """Selection positions that left the round in the tally (withdrawn or rejected)."""
        out: set[int] = set()
        for word in range((asset_count + 255) // 256):
            bits = int(self.client.call(self._contract.functions.exclusionWord(proposal_id, word)))
            out.update(256 * word + i for i in range(256) if bits >> i & 1)
        return out

    def proposal_count(self) -> int:
        return int(self.client.call(self._contract.functions.proposalCount()))

    def parameters(self) -> MarketParameters:
        doc = dict(
            zip(
                _PARAMETER_NAMES,
                self.client.call(self._contract.functions.parameters()),
                strict=True,
            )
        )
        doc["treasury"] = to_checksum_address(doc["treasury"])
        doc["court"] = "" if int(doc["court"], 16) == 0 else to_checksum_address(doc["court"])
        return MarketParameters(**doc)

    def credit_of(self, account: str) -> int:
        fn = self._contract.functions.creditOf(to_checksum_address(account))
        return int(self.client.call(fn))

    def is_claimed(self, proposal_id: int, position: int) -> bool:
        fn = self._contract.functions.isClaimed(proposal_id, position)
        return bool(self.client.call(fn))

    def quote_digest(self, quote: Quote) -> bytes:
        return bytes(self.client.call(self._contract.functions.quoteDigest(quote.as_tuple())))

    def assets_hash_of(self, asset_ids: Sequence[int], sample_counts: Sequence[int]) -> bytes:
        fn = self._contract.functions.assetsHashOf(list(asset_ids), list(sample_counts))
        return bytes(self.client.call(fn))

    def selected_asset(self, proposal_id: int, position: int) -> int:
        """The asset the proposal selected at ``position`` (0 past the selection's end)."""
        fn = self._contract.functions.selectedAsset(proposal_id, position)
        return int(self.client.call(fn))

    def assets_root_of(self, asset_ids: Sequence[int]) -> bytes:
        fn = self._contract.functions.assetsRootOf(list(asset_ids))
        return bytes(self.client.call(fn))

    def payment_token(self) -> Address:
        raw = self.client.call(self._contract.functions.paymentToken())
        return Address(to_checksum_address(raw))
