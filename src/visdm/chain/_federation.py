"""``Federation.sol`` and the registry's federation records: one proposal's node when its
assets may only be trained in different regions (docs/federation.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from visdm.chain._market import ResultCommitment
from visdm.chain._wrapper import ContractWrapper
from visdm.chain.artifacts import load_artifact
from visdm.chain.client import ChainClient, TxResult
from visdm.types import Address

__all__ = ["FederationContract", "FederationRecord", "NodeRegions", "deploy_federation"]


@dataclass(frozen=True, slots=True)
class FederationRecord:
    """A federation as the registry holds it (``coordinator`` ``None``: not registered)."""

    address: Address
    coordinator: Address | None
    members: tuple[Address, ...]
    joined_mask: int

    @property
    def registered(self) -> bool:
        return self.coordinator is not None

    def joined(self, member: str) -> bool:
        wanted = str(to_checksum_address(member))
        return any(
            str(m) == wanted and self.joined_mask >> i & 1 for i, m in enumerate(self.members)
        )

    @property
    def complete(self) -> bool:
        return bool(self.members) and self.joined_mask == (1 << len(self.members)) - 1


@dataclass(frozen=True, slots=True)
class NodeRegions:
    """The market's view of a proposal's node: active, its region bitmask, its quote signer."""

    active: bool
    mask: int
    signer: Address | None

    def allows(self, asset_mask: int) -> bool:
        return bool(self.mask & asset_mask)


class FederationContract(ContractWrapper):
    """One federation: forwards the coordinator's result, splits the training cost into the
    members' fees and pays them once the market released it."""

    ARTIFACT = "Federation"

    def coordinator(self) -> Address:
        return Address(
            to_checksum_address(self.client.call(self._contract.functions.coordinator()))
        )

    def market(self) -> Address:
        return Address(to_checksum_address(self.client.call(self._contract.functions.market())))

    def members(self) -> tuple[Address, ...]:
        raw = self.client.call(self._contract.functions.members())
        return tuple(Address(to_checksum_address(m)) for m in raw)

    def fees_of(self, proposal_id: int) -> tuple[int, ...]:
        return tuple(int(f) for f in self.client.call(self._contract.functions.feesOf(proposal_id)))

    def owed_to(self, member: str) -> int:
        fn = self._contract.functions.owedTo(to_checksum_address(member))
        return int(self.client.call(fn))

    def runs_shipped_code(self) -> bool:
        """Whether the contract at this address runs exactly the shipped ``Federation`` runtime
        code: what a member checks before it joins (the contract holds no immutables)."""
        code = bytes(
            self.client.rpc(lambda: self.client.w3.eth.get_code(to_checksum_address(self.address)))
        )
        shipped = bytes.fromhex(load_artifact(self.ARTIFACT).deployed_bytecode.removeprefix("0x"))
        return bool(shipped) and keccak(code) == keccak(shipped)

    def set_fees(
        self, coordinator: LocalAccount, proposal_id: int, fees: Sequence[int]
    ) -> TxResult:
        fn = self._contract.functions.setFees(proposal_id, [int(f) for f in fees])
        return self.client.transact(coordinator, fn, action="Federation.setFees")

    def submit_result(
        self, coordinator: LocalAccount, proposal_id: int, result: ResultCommitment
    ) -> TxResult:
        fn = self._contract.functions.submitResult(proposal_id, result.as_tuple())
        return self.client.transact(coordinator, fn, action="Federation.submitResult")

    def abandon_training(
        self, coordinator: LocalAccount, proposal_id: int, reason: str
    ) -> TxResult:
        fn = self._contract.functions.abandonTraining(proposal_id, reason)
        return self.client.transact(coordinator, fn, action="Federation.abandonTraining")

    def deposit_bond(self, coordinator: LocalAccount, amount: int) -> TxResult:
        fn = self._contract.functions.depositBond(amount)
        return self.client.transact(coordinator, fn, action="Federation.depositBond")

    def withdraw_bond(self, coordinator: LocalAccount, amount: int) -> TxResult:
        fn = self._contract.functions.withdrawBond(amount)
        return self.client.transact(coordinator, fn, action="Federation.withdrawBond")

    def announce_round(
        self, coordinator: LocalAccount, proposal_id: int, round_cid: str
    ) -> TxResult:
        fn = self._contract.functions.announceRound(proposal_id, round_cid)
        return self.client.transact(coordinator, fn, action="Federation.announceRound")

    def bind_key(self, member: LocalAccount, proposal_id: int, public_key: bytes) -> TxResult:
        fn = self._contract.functions.bindKey(proposal_id, public_key)
        return self.client.transact(member, fn, action="Federation.bindKey")

    def announced_round(self, proposal_id: int, *, from_block: int = 0) -> str | None:
        """The CID of ``proposal_id``'s round document (the latest announced), if any."""
        found = self.logs(
            "RoundAnnounced", from_block=from_block, where={"proposalId": proposal_id}
        )
        return str(found[-1]["args"]["roundCid"]) if found else None

    def bound_keys(self, proposal_id: int, *, from_block: int = 0) -> dict[Address, bytes]:
        """Each member's SuperNode public key bound to ``proposal_id`` (its latest binding)."""
        found = self.logs("KeyBound", from_block=from_block, where={"proposalId": proposal_id})
        return {
            Address(to_checksum_address(e["args"]["member"])): bytes(e["args"]["publicKey"])
            for e in found
        }

    def collect(self, sender: LocalAccount, proposal_id: int) -> TxResult:
        fn = self._contract.functions.collect(proposal_id)
        return self.client.transact(sender, fn, action="Federation.collect")

    def withdraw(self, member: LocalAccount) -> TxResult:
        fn = self._contract.functions.withdraw()
        return self.client.transact(member, fn, action="Federation.withdraw")


def deploy_federation(
    client: ChainClient, coordinator: LocalAccount, market: str, members: Sequence[str]
) -> tuple[FederationContract, TxResult]:
    """Deploy a ``Federation`` of ``members`` for ``market``, sent (and coordinated) by
    ``coordinator``; it still has to be registered and joined."""
    address, tx = client.deploy(
        coordinator,
        "Federation",
        to_checksum_address(market),
        coordinator.address,
        [to_checksum_address(m) for m in members],
    )
    return FederationContract(client, address), tx
