"""The plumbing every typed contract wrapper shares."""

from __future__ import annotations

from typing import Any

from eth_utils.address import to_checksum_address
from web3.logs import DISCARD
from web3.types import EventData

from visdm.chain.client import ChainClient
from visdm.types import Address

__all__ = ["ContractWrapper", "address_or_none"]


def address_or_none(raw: str) -> Address | None:
    return None if int(raw, 16) == 0 else Address(to_checksum_address(raw))


class ContractWrapper:
    """Shared plumbing: the client, the web3 contract object and the artifact name."""

    ARTIFACT: str = ""

    def __init__(self, client: ChainClient, address: str) -> None:
        if not self.ARTIFACT:
            raise TypeError(f"{type(self).__name__} must set ARTIFACT")
        self.client = client
        self.address = Address(to_checksum_address(address))
        self._contract = client.contract(self.address, self.ARTIFACT)

    def events(self, name: str, receipt: Any) -> list[EventData]:
        """Decoded ``name`` events emitted by this contract in a transaction receipt."""
        event = self._contract.events[name]()
        return list(event.process_receipt(receipt, errors=DISCARD))

    def logs(
        self,
        name: str,
        *,
        from_block: int = 0,
        to_block: int | str = "latest",
        where: dict[str, Any] | None = None,
    ) -> list[EventData]:
        """Decoded ``name`` events of this contract in a block range; ``where`` filters on the
        event's arguments (indexed ones by topic, on the node)."""
        event = self._contract.events[name]()
        return list(
            self.client.rpc(
                lambda: event.get_logs(
                    argument_filters=where,
                    from_block=from_block,
                    to_block=to_block,
                )
            )
        )
