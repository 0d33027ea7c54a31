"""A verifier node's moves on chain: read a posted result, decide whether to check it, and
confirm, challenge or vote on it after re-executing (:mod:`visdm.verify._verdict`)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes

from visdm.chain.contracts import ResultCourt, TrainingMarket
from visdm.errors import InvalidInputError
from visdm.verify._settle import ResultCommitments
from visdm.verify._verdict import Finding, Verdict, sampled

__all__ = ["PostedResult", "ResultVerifier"]


@dataclass(frozen=True, slots=True)
class PostedResult:
    """What a node committed on chain for one proposal, and the block it was posted in."""

    commitments: ResultCommitments
    block_hash: bytes
    result_cid: str


@dataclass
class ResultVerifier:
    """One admitted, bonded node verifying other nodes' results through the court."""

    market: TrainingMarket
    court: ResultCourt
    account: LocalAccount
    share: float = 1.0

    def posted(self, proposal_id: int) -> PostedResult:
        """The result ``proposal_id``'s node submitted (from its ``ResultSubmitted`` event)."""
        events = self.market.logs("ResultSubmitted", where={"proposalId": proposal_id})
        if not events:
            raise InvalidInputError(
                f"proposal {proposal_id} has no submitted result to verify: wait for its node"
            )
        args = events[-1]["args"]
        record = self.market.proposal(proposal_id)
        commitments = ResultCommitments(
            accuracy_bps=int(args["accuracyBps"]),
            model_hash=bytes(args["modelHash"]),
            scores_hash=bytes(args["scoresHash"]),
            payout_root=bytes(args["payoutRoot"]),
            seed_hash=bytes(args["seedHash"]),
            spec_hash=record.model_spec_hash,
        )
        block = HexBytes(events[-1]["blockHash"])
        return PostedResult(commitments, bytes(block), str(args["resultCid"]))

    def wants(self, proposal_id: int) -> bool:
        """Whether this verifier's share draws ``proposal_id``'s result for re-execution."""
        if self.market.proposal(proposal_id).node == str(self.account.address):
            return False  # its own result
        block = self.posted(proposal_id).block_hash
        return sampled(proposal_id, self.account.address, self.share, block_hash=block)

    def act(self, proposal_id: int, finding: Finding) -> Verdict:
        """Confirm or challenge within the window (an abstention sends nothing)."""
        if finding.verdict is Verdict.CONFIRM:
            self.court.confirm(self.account, proposal_id)
        elif finding.verdict is Verdict.CHALLENGE:
            self.court.challenge(self.account, proposal_id)
        return finding.verdict

    def vote(self, proposal_id: int, finding: Finding) -> bool:
        """As a drawn committee member: vote the finding; returns whether a vote was sent."""
        if finding.verdict is Verdict.ABSTAIN:
            return False
        correct = finding.verdict is Verdict.CONFIRM
        self.court.vote(self.account, proposal_id, result_correct=correct)
        return True
