"""``ResultCourt.sol``: compute nodes' bonds, challenges of results, committee rulings."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain._wrapper import ContractWrapper, address_or_none
from visdm.chain.client import TxResult
from visdm.errors import InvalidInputError
from visdm.types import Address

__all__ = ["ChallengeRecord", "CourtParameters", "ProofState", "ResultCourt"]

#: a claim's status in ``ZkAccuracyCheck``, indexed by its ``Status`` enum
_PROOF_STATUS = ("none", "pending", "accepted", "rejected", "expired")


@dataclass(frozen=True, slots=True)
class CourtParameters:
    """The bond a node locks per job (and a challenger per challenge), the committee size and
    the seconds a committee has to vote."""

    bond: int = 100 * 10**18
    committee_size: int = 3
    ruling_period: int = 3600

    def __post_init__(self) -> None:
        if self.bond <= 0 or not 0 < self.committee_size < 256 or self.ruling_period <= 0:
            raise InvalidInputError(
                f"court parameters need a positive bond, a committee of 1-255 and a positive "
                f"ruling period, got {self.bond}, {self.committee_size}, {self.ruling_period}"
            )

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.bond, self.committee_size, self.ruling_period)


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    """A challenge of one result (``challenger`` is ``None`` when there is none)."""

    challenger: Address | None
    deadline: int
    upheld: int
    overturned: int
    settled: bool
    node: Address | None
    bond: int
    committee: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class ProofState:
    """The accuracy check a job was started under (``check`` ``None``: it needs no proof) and
    its claim's status there (``none``, ``pending``, ``accepted``, ``rejected``, ``expired``)."""

    check: Address | None
    status: str

    @property
    def required(self) -> bool:
        return self.check is not None

    def blocks_release(self) -> str | None:
        """Why a WTP-met result under this check cannot be released yet (``None``: it can)."""
        if self.check is None or self.status == "accepted":
            return None
        if self.status in ("rejected", "expired"):
            return (
                f"its accuracy proof was {self.status}: it can only be overturned "
                "(`ResultCourt.overturnUnproven`), refunding the consumer"
            )
        if self.status == "pending":
            return "its accuracy proof is committed but not proven yet: wait for the node's proof"
        return "its node has not committed its accuracy proof yet"


class ResultCourt(ContractWrapper):
    """Bonds, challenges and their resolution by committees of re-executing nodes."""

    ARTIFACT = "ResultCourt"

    # --- bonds ----------------------------------------------------------------------------
    def deposit(self, node: LocalAccount, amount: int) -> TxResult:
        """Stake ``amount`` of the payment token (approve it to the court first)."""
        fn = self._contract.functions.deposit(amount)
        return self.client.transact(node, fn, action="deposit")

    def withdraw(self, node: LocalAccount, amount: int) -> TxResult:
        fn = self._contract.functions.withdraw(amount)
        return self.client.transact(node, fn, action="withdraw")

    def stake_of(self, node: str) -> tuple[int, int]:
        """``(stake, locked)`` of ``node``."""
        stake, locked = self.client.call(
            self._contract.functions.stakeOf(to_checksum_address(node))
        )
        return int(stake), int(locked)

    def free_stake(self, node: str) -> int:
        fn = self._contract.functions.freeStake(to_checksum_address(node))
        return int(self.client.call(fn))

    def parameters(self) -> CourtParameters:
        bond, size, period = self.client.call(self._contract.functions.parameters())
        return CourtParameters(int(bond), int(size), int(period))

    def set_parameters(self, governance: LocalAccount, params: CourtParameters) -> TxResult:
        fn = self._contract.functions.setParameters(*params.as_tuple())
        return self.client.transact(governance, fn, action="setParameters")

    # --- verification ---------------------------------------------------------------------
    def confirm(self, verifier: LocalAccount, proposal_id: int) -> TxResult:
        """A verifier that re-executed the job and found the same result says so."""
        fn = self._contract.functions.confirm(proposal_id)
        return self.client.transact(verifier, fn, action="confirm")

    def challenge(self, verifier: LocalAccount, proposal_id: int) -> tuple[list[Address], TxResult]:
        """Challenge a result within its window; returns the committee drawn."""
        fn = self._contract.functions.challenge(proposal_id)
        result = self.client.transact(verifier, fn, action="challenge")
        (event,) = self.events("ChallengeOpened", result.receipt)
        return [Address(to_checksum_address(a)) for a in event["args"]["committee"]], result

    def vote(self, member: LocalAccount, proposal_id: int, *, result_correct: bool) -> TxResult:
        fn = self._contract.functions.vote(proposal_id, result_correct)
        return self.client.transact(member, fn, action="vote")

    def resolve(self, caller: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.resolve(proposal_id)
        return self.client.transact(caller, fn, action="resolve")

    def decide(self, governance: LocalAccount, proposal_id: int, *, overturn: bool) -> TxResult:
        fn = self._contract.functions.decide(proposal_id, overturn)
        return self.client.transact(governance, fn, action="decide")

    # --- the accuracy proof -----------------------------------------------------------------
    def set_zk_check(self, governance: LocalAccount, check: str | None) -> TxResult:
        """Name the accuracy check jobs started from now on must pass (``None``: none)."""
        fn = self._contract.functions.setZkCheck(to_checksum_address(check or "0x" + "00" * 20))
        return self.client.transact(governance, fn, action="setZkCheck")

    def zk_check(self) -> Address | None:
        """The accuracy check named for jobs started from now on."""
        return address_or_none(str(self.client.call(self._contract.functions.zkCheck())))

    def proof_of(self, proposal_id: int) -> ProofState:
        """The accuracy check ``proposal_id``'s job was started under and its claim's status."""
        check, status = self.client.call(self._contract.functions.proofOf(proposal_id))
        return ProofState(address_or_none(str(check)), _PROOF_STATUS[int(status)])

    def overturn_unproven(self, caller: LocalAccount, proposal_id: int) -> TxResult:
        """Overturn a WTP-met result whose accuracy proof failed or never came (anyone)."""
        fn = self._contract.functions.overturnUnproven(proposal_id)
        return self.client.transact(caller, fn, action="overturnUnproven")

    def release(self, caller: LocalAccount, proposal_id: int) -> TxResult:
        """Release an unchallenged result after its window; unlock an ended job's bond."""
        fn = self._contract.functions.release(proposal_id)
        return self.client.transact(caller, fn, action="release")

    def challenge_of(self, proposal_id: int) -> ChallengeRecord:
        raw, committee = self.client.call(self._contract.functions.challengeOf(proposal_id))
        challenger, deadline, upheld, overturned, settled, node, bond = raw
        return ChallengeRecord(
            challenger=address_or_none(challenger),
            deadline=int(deadline),
            upheld=int(upheld),
            overturned=int(overturned),
            settled=bool(settled),
            node=address_or_none(node),
            bond=int(bond),
            committee=tuple(Address(to_checksum_address(a)) for a in committee),
        )

    def bonded_nodes(self) -> list[Address]:
        raw = self.client.call(self._contract.functions.bondedNodes())
        return [Address(to_checksum_address(a)) for a in raw]
