"""Typed wrappers, one class per contract, with real methods (no ABI attached at run time)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain.client import ChainClient, TxResult
from visdm.types import Address, Role

__all__ = ["ContractWrapper", "StakeholderRecord", "StakeholderRegistry"]


class ContractWrapper:
    """Shared plumbing: the client, the web3 contract object and the artifact name."""

    ARTIFACT: str = ""

    def __init__(self, client: ChainClient, address: str) -> None:
        if not self.ARTIFACT:
            raise TypeError(f"{type(self).__name__} must set ARTIFACT")
        self.client = client
        self.address = Address(to_checksum_address(address))
        self._contract = client.contract(self.address, self.ARTIFACT)


@dataclass(frozen=True, slots=True)
class StakeholderRecord:
    """An account's on-chain registration."""

    address: Address
    roles: Role
    encryption_key: bytes
    registered_at: int

    @property
    def registered(self) -> bool:
        return self.roles != Role.NONE


class StakeholderRegistry(ContractWrapper):
    """``StakeholderRegistry.sol``: roles and X25519 keys of marketplace participants."""

    ARTIFACT = "StakeholderRegistry"

    def register(self, account: LocalAccount, roles: Role, encryption_key: bytes) -> TxResult:
        """Register ``account`` with ``roles`` and its 32-byte X25519 public key."""
        fn = self._contract.functions.register(int(roles), encryption_key)
        return self.client.transact(account, fn, action="register")

    def add_roles(self, account: LocalAccount, roles: Role) -> TxResult:
        fn = self._contract.functions.addRoles(int(roles))
        return self.client.transact(account, fn, action="addRoles")

    def rotate_encryption_key(self, account: LocalAccount, encryption_key: bytes) -> TxResult:
        fn = self._contract.functions.rotateEncryptionKey(encryption_key)
        return self.client.transact(account, fn, action="rotateEncryptionKey")

    def stakeholder(self, address: str) -> StakeholderRecord:
        checksum = to_checksum_address(address)
        key, roles, registered_at = self.client.call(self._contract.functions.stakeholder(checksum))
        return StakeholderRecord(Address(checksum), Role(roles), bytes(key), int(registered_at))

    def has_roles(self, address: str, roles: Role) -> bool:
        fn = self._contract.functions.hasRoles(to_checksum_address(address), int(roles))
        return bool(self.client.call(fn))

    def stakeholder_count(self) -> int:
        return int(self.client.call(self._contract.functions.stakeholderCount()))
