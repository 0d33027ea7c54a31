"""Where a result's accuracy claim stands, and overturning a result whose proof failed.

A job started while the market's court names a ``ZkAccuracyCheck`` counts only once its claim
is accepted. :func:`claim_view` says where the claim stands for ``visdm status``: ``none`` (not
committed), ``committed`` (its draw is not readable yet), ``drawn`` (its node may prove the
drawn samples), ``accepted``, ``rejected`` or ``expired`` (its draw went unproven for 256
blocks; ``ResultCourt.overturnUnproven`` marks it on chain if nobody did).

:func:`overturn_unproven` calls ``ResultCourt.overturnUnproven`` (anyone may): the result is
overturned, the consumer credited price and training cost and paid the node's bond. It refuses
before sending, with the court's own reason, what the court would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import ProposalRecord, ProposalStatus, ResultCourt
from visdm.config import Settings
from visdm.errors import ContractRevertError, InvalidInputError
from visdm.session import connect_deployed
from visdm.verify._zk_chain import ZkAccuracyCheckClient

__all__ = [
    "CLAIM_STATES",
    "ClaimState",
    "claim_state",
    "overturn_unproven",
    "proposal_claim",
]

#: what :attr:`ClaimState.state` can be
CLAIM_STATES = ("none", "committed", "drawn", "accepted", "rejected", "expired")
#: blocks a claim's draw stays readable (``blockhash``)
_DRAW_BLOCKS = 256


@dataclass(frozen=True, slots=True)
class ClaimState:
    """A job's accuracy claim as the chain holds it (``check`` ``None``: the job needs none)."""

    proposal_id: int
    check: str | None
    state: str
    accuracy_bps: int = 0
    samples: int = 0
    correct: int = 0
    draw_block: int = 0
    #: ``expired`` while the chain still says pending (``overturnUnproven`` marks it)
    unmarked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "state": self.state,
            "accuracyBps": self.accuracy_bps,
            "sampleCount": self.samples,
            "correct": self.correct if self.state in ("accepted", "rejected") else None,
            "drawBlock": self.draw_block or None,
        }

    @property
    def failed(self) -> bool:
        return self.state in ("rejected", "expired")


def claim_state(client: ChainClient, court: ResultCourt, proposal_id: int) -> ClaimState:
    """Where ``proposal_id``'s accuracy claim stands."""
    proof = court.proof_of(proposal_id)
    if proof.check is None:
        return ClaimState(proposal_id, None, "none")
    if proof.status == "none":
        return ClaimState(proposal_id, str(proof.check), "none")
    check = ZkAccuracyCheckClient(client, proof.check)
    claim = check.claim(proposal_id)
    state, unmarked = claim.status, False
    if claim.status == "pending":
        head = int(client.rpc(lambda: client.w3.eth.block_number))
        if head >= claim.draw_block + _DRAW_BLOCKS:
            state, unmarked = "expired", True  # the next block can no longer read the draw
        else:
            try:
                check.drawn_indices(proposal_id)
                state = "drawn"
            except ContractRevertError:
                state = "committed"  # the block whose hash draws is not there yet
    return ClaimState(
        proposal_id,
        str(proof.check),
        state,
        accuracy_bps=claim.accuracy_bps,
        samples=claim.sample_count,
        correct=claim.correct,
        draw_block=claim.draw_block,
        unmarked=unmarked,
    )


def proposal_claim(settings: Settings, proposal_id: int) -> ClaimState | None:
    """:func:`claim_state` of ``proposal_id`` on the deployed market (``None``: the market has
    no court, or the job was started without a check)."""
    conn = connect_deployed(settings)
    court_address = conn.deployment.training_market(conn.client).parameters().court
    if not court_address:
        return None
    claim = claim_state(conn.client, ResultCourt(conn.client, court_address), proposal_id)
    return None if claim.check is None else claim


def _refusal(record: ProposalRecord, claim: ClaimState, now: int) -> str | None:
    """The court's reason to refuse ``overturnUnproven`` now, in words (``None``: it would
    overturn)."""
    pid = record.proposal_id
    if claim.check is None:
        return (
            f"proposal {pid}'s job was started without an accuracy check "
            "(ResultCourtNoProofRequired): its result never waits for a proof"
        )
    if record.status is not ProposalStatus.COMPLETED or record.deadline == 0:
        what = "settled" if record.deadline == 0 else record.status.name.lower()
        return (
            f"proposal {pid} has no held WTP-met result (it is {what}; "
            "ResultCourtNoProofRequired): only such a result is overturned for its proof"
        )
    if claim.failed:
        return None
    if claim.state == "accepted":
        return (
            f"proposal {pid}'s accuracy proof was accepted (ResultCourtProofNotFailed): "
            "release it with `visdm release` after its window"
        )
    if claim.state in ("committed", "drawn"):
        return (
            f"proposal {pid}'s accuracy claim is {claim.state} and its node may still prove it "
            f"until block {claim.draw_block + _DRAW_BLOCKS} (ZkAccuracyCheckNotDrawnYet)"
        )
    if now < record.deadline:
        return (
            f"proposal {pid}'s node may still commit its accuracy claim until the window ends "
            f"at {record.deadline} (in {record.deadline - now} s; ResultCourtProofNotFailed)"
        )
    return None


def overturn_unproven(settings: Settings, caller: UnlockedAccount, proposal_id: int) -> TxResult:
    """Overturn ``proposal_id``'s result because its accuracy proof was rejected, expired or
    never committed by its window's end (anyone may; the node's bond goes to the consumer)."""
    if isinstance(proposal_id, bool) or not isinstance(proposal_id, int) or proposal_id <= 0:
        raise InvalidInputError(f"a proposal id is a positive integer, got {proposal_id!r}")
    conn = connect_deployed(settings)
    market = conn.deployment.training_market(conn.client)
    if proposal_id > market.proposal_count():
        raise InvalidInputError(f"proposal {proposal_id} does not exist on this market")
    court_address = market.parameters().court
    if not court_address:
        raise InvalidInputError(
            "this market has no court: results are released as they are submitted and never "
            "wait for a proof"
        )
    court = ResultCourt(conn.client, court_address)
    record = market.proposal(proposal_id)
    claim = claim_state(conn.client, court, proposal_id)
    why = _refusal(record, claim, conn.client.latest_timestamp())
    if why is not None:
        raise InvalidInputError(f"{why}; nothing was sent")
    conn.client.fund_from_dev_faucet(caller.address)
    return court.overturn_unproven(caller.local_account, proposal_id)
