"""Typed wrappers of ``ScoringPool.sol`` and of the market's scoring fee."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain.client import TxResult
from visdm.chain.contracts import ContractWrapper
from visdm.errors import InvalidInputError
from visdm.types import Address

__all__ = [
    "MAX_SCORING_FEE_BPS",
    "BatchRecord",
    "BatchStatus",
    "PoolBalances",
    "PoolTerms",
    "ScoreCommitment",
    "ScoringFee",
    "ScoringFeeTerms",
    "ScoringPool",
]

#: ``MarketBase._MAX_SCORING_FEE_BPS``: the fee can never exceed 10 % of a proposal's price
MAX_SCORING_FEE_BPS = 1000
_UINT96 = 2**96 - 1
_UINT32 = 2**32 - 1
_UINT16 = 2**16 - 1


class BatchStatus(IntEnum):
    """``ScoringPool.BatchStatus``."""

    NONE = 0
    CLAIMED = 1
    PUBLISHED = 2
    RELEASED = 3
    LAPSED = 4


@dataclass(frozen=True, slots=True)
class PoolTerms:
    """``ScoringPool.Terms``: pay per scored sample (wei), the largest batch, the seconds a
    node has to publish, and the scoring rounds the pool pays per asset."""

    rate_per_sample: int
    max_batch_samples: int
    claim_period: int
    max_rounds: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        for name, value, top in (
            ("rate per sample", self.rate_per_sample, _UINT96),
            ("max batch samples", self.max_batch_samples, _UINT32),
            ("claim period", self.claim_period, _UINT32),
            ("max rounds", self.max_rounds, _UINT16),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top:
                raise InvalidInputError(f"the pool's {name} must be in 1..{top}, got {value!r}")
        return (self.rate_per_sample, self.max_batch_samples, self.claim_period, self.max_rounds)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch as the pool keeps it."""

    batch_id: int
    node: Address
    deadline: int
    status: BatchStatus
    samples: int
    scored: int
    asset_count: int
    reserved: int
    assets_hash: bytes
    reference_hash: bytes


@dataclass(frozen=True, slots=True)
class PoolBalances:
    """What the pool holds: free to reserve, reserved for running batches, owed to nodes, and
    fees the market holds for it (collected when a claim needs them)."""

    available: int
    reserved: int
    owed: int
    uncollected: int


@dataclass(frozen=True, slots=True)
class ScoreCommitment:
    """What a node commits with ``publishScores`` (``ScoringPool.ScoreResult``)."""

    scored: int
    scores_hash: bytes
    seed_hash: bytes
    scores_cid: str

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.scored, self.scores_hash, self.seed_hash, self.scores_cid)


@dataclass(frozen=True, slots=True)
class ScoringFeeTerms:
    """The market's scoring fee: its pool, what new proposals pay, and one proposal's share."""

    pool: Address | None
    current_bps: int
    proposal_bps: int
    amount: int


def _address(raw: str) -> Address | None:
    return None if int(raw, 16) == 0 else Address(to_checksum_address(raw))


class ScoringPool(ContractWrapper):
    """``ScoringPool.sol``: scoring batches, their reserves and the nodes' pay."""

    ARTIFACT = "ScoringPool"

    # --- governance and money in ------------------------------------------------------------
    def set_terms(self, governance: LocalAccount, terms: PoolTerms) -> TxResult:
        fn = self._contract.functions.setTerms(terms.as_tuple())
        return self.client.transact(governance, fn, action="setTerms")

    def set_reference(self, governance: LocalAccount, reference_hash: bytes, cid: str) -> TxResult:
        fn = self._contract.functions.setReference(reference_hash, cid)
        return self.client.transact(governance, fn, action="setReference")

    def fund(self, sender: LocalAccount, amount: int) -> TxResult:
        fn = self._contract.functions.fund(amount)
        return self.client.transact(sender, fn, action="fund")

    def collect_fees(self, sender: LocalAccount) -> TxResult:
        fn = self._contract.functions.collectFees()
        return self.client.transact(sender, fn, action="collectFees")

    # --- batches ----------------------------------------------------------------------------
    def claim_batch(
        self, node: LocalAccount, asset_ids: Sequence[int], key_nodes: Sequence[Sequence[str]]
    ) -> tuple[int, TxResult]:
        """Claim a batch; returns its id (read from the ``BatchClaimed`` event)."""
        fn = self._contract.functions.claimBatch(
            list(asset_ids), [[to_checksum_address(a) for a in nodes] for nodes in key_nodes]
        )
        result = self.client.transact(node, fn, action="claimBatch")
        (event,) = self.events("BatchClaimed", result.receipt)
        return int(event["args"]["batchId"]), result

    def publish_scores(
        self,
        node: LocalAccount,
        batch_id: int,
        asset_ids: Sequence[int],
        commitment: ScoreCommitment,
    ) -> TxResult:
        fn = self._contract.functions.publishScores(
            batch_id, list(asset_ids), commitment.as_tuple()
        )
        return self.client.transact(node, fn, action="publishScores")

    def release_batch(
        self, node: LocalAccount, batch_id: int, asset_ids: Sequence[int]
    ) -> TxResult:
        fn = self._contract.functions.releaseBatch(batch_id, list(asset_ids))
        return self.client.transact(node, fn, action="releaseBatch")

    def lapse_batch(self, sender: LocalAccount, batch_id: int) -> TxResult:
        fn = self._contract.functions.lapseBatch(batch_id)
        return self.client.transact(sender, fn, action="lapseBatch")

    def withdraw(self, account: LocalAccount) -> TxResult:
        return self.client.transact(account, self._contract.functions.withdraw(), action="withdraw")

    # --- reads ------------------------------------------------------------------------------
    def terms(self) -> PoolTerms:
        rate, size, period, rounds = self.client.call(self._contract.functions.terms())
        return PoolTerms(int(rate), int(size), int(period), int(rounds))

    def reference_hash(self) -> bytes | None:
        raw = bytes(self.client.call(self._contract.functions.referenceHash()))
        return None if raw == bytes(32) else raw

    def batch(self, batch_id: int) -> BatchRecord:
        raw = self.client.call(self._contract.functions.batch(batch_id))
        node, deadline, status, samples, scored, count, reserved, assets, reference = raw
        return BatchRecord(
            batch_id=batch_id,
            node=Address(to_checksum_address(node)),
            deadline=int(deadline),
            status=BatchStatus(status),
            samples=int(samples),
            scored=int(scored),
            asset_count=int(count),
            reserved=int(reserved),
            assets_hash=bytes(assets),
            reference_hash=bytes(reference),
        )

    def batch_count(self) -> int:
        return int(self.client.call(self._contract.functions.batchCount()))

    def asset_scoring(self, asset_id: int) -> tuple[int, int, int]:
        """``(rounds paid, locked until, last batch id)`` of an asset."""
        rounds, until, batch_id = self.client.call(self._contract.functions.assetScoring(asset_id))
        return int(rounds), int(until), int(batch_id)

    def open_batch_of(self, node: str) -> int | None:
        raw = int(self.client.call(self._contract.functions.openBatchOf(to_checksum_address(node))))
        return raw or None

    def balances(self) -> PoolBalances:
        available, reserved, owed, uncollected = self.client.call(
            self._contract.functions.balances()
        )
        return PoolBalances(int(available), int(reserved), int(owed), int(uncollected))

    def credit_of(self, account: str) -> int:
        fn = self._contract.functions.creditOf(to_checksum_address(account))
        return int(self.client.call(fn))

    def batch_assets(self, batch_id: int) -> tuple[int, ...]:
        """The assets of a batch, from its ``BatchClaimed`` event."""
        events = self.logs("BatchClaimed", where={"batchId": batch_id})
        if not events:
            raise InvalidInputError(f"batch {batch_id} has no BatchClaimed event")
        return tuple(int(a) for a in events[0]["args"]["assetIds"])

    def reference_cid(self, reference_hash: bytes) -> str:
        """The CID governance published with ``reference_hash`` (its ``ReferenceChanged``)."""
        for event in reversed(self.logs("ReferenceChanged")):
            if bytes(event["args"]["referenceHash"]) == reference_hash:
                return str(event["args"]["referenceCid"])
        raise InvalidInputError(
            f"no ReferenceChanged event published reference 0x{reference_hash.hex()}"
        )


class ScoringFee(ContractWrapper):
    """The scoring fee of ``TrainingMarket.sol`` (its ``setScoringFee`` and ``scoringFee``)."""

    ARTIFACT = "TrainingMarket"

    def set_scoring_fee(self, governance: LocalAccount, pool: str, fee_bps: int) -> TxResult:
        fn = self._contract.functions.setScoringFee(to_checksum_address(pool), fee_bps)
        return self.client.transact(governance, fn, action="setScoringFee")

    def scoring_fee(self, proposal_id: int = 0) -> ScoringFeeTerms:
        """The fee terms, and what ``proposal_id`` pays from its current price (0: none)."""
        pool, current, fixed, amount = self.client.call(
            self._contract.functions.scoringFee(proposal_id)
        )
        return ScoringFeeTerms(_address(pool), int(current), int(fixed), int(amount))
