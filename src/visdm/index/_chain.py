"""The chain behind :class:`~visdm.index.EventSource`: a deployed marketplace over JSON-RPC.

:class:`ChainEventSource` reads a block range with **one** ``eth_getLogs`` for all three
contract addresses (rather than one request per event name) and decodes each log by its topic
with the contracts' ABIs; an event the ABIs do not know is skipped. The positions a tally took
out of the round are read from ``TrainingMarket.exclusionWord`` through its wrapper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import BlockNotFound
from web3.types import FilterParams

from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment

from ._events import CONTRACTS, OPTIONAL_CONTRACTS, ChainEvent

__all__ = ["ChainEventSource"]


def _plain(value: Any) -> Any:
    """web3's decoded values as plain Python (its addresses are already checksummed)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, Mapping):  # a struct (web3's AttributeDict)
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class ChainEventSource:
    """:class:`EventSource` over a deployed marketplace."""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        self.client = client
        self._by_address: dict[str, str] = {}
        self._decoders: dict[tuple[str, bytes], Any] = {}
        optional = [n for n in OPTIONAL_CONTRACTS if n in deployment.contracts]
        for name in (*CONTRACTS, *optional):
            address = to_checksum_address(deployment.address_of(name))
            contract = client.contract(address, name)
            self._by_address[address] = name
            for entry in contract.abi:
                if entry.get("type") != "event" or entry.get("anonymous"):
                    continue
                event = contract.events[str(dict(entry)["name"])]()
                self._decoders[(address, bytes(HexBytes(event.topic)))] = event
        self._market = deployment.training_market(client)
        #: the first block worth reading: where the earliest contract was deployed
        self.start_block = min(
            deployment.contracts[name].block_number
            for name in CONTRACTS
            if name in deployment.contracts
        )

    def head(self) -> int:
        return int(self.client.rpc(lambda: self.client.w3.eth.block_number))

    def block_hash(self, number: int) -> str:
        try:
            block = self.client.rpc(lambda: self.client.w3.eth.get_block(number))
        except BlockNotFound:
            return "(no such block: the chain is shorter now)"
        return "0x" + bytes(block["hash"]).hex()

    def events(self, start: int, end: int) -> list[ChainEvent]:
        params: FilterParams = {
            "address": list(self._by_address),  # type: ignore[typeddict-item]
            "fromBlock": start,
            "toBlock": end,
        }
        logs = self.client.rpc(lambda: self.client.w3.eth.get_logs(params))
        found = []
        for log in logs:
            address = to_checksum_address(log["address"])
            if not log["topics"]:
                continue
            decoder = self._decoders.get((address, bytes(log["topics"][0])))
            if decoder is None:
                continue  # an event this version of the ABIs does not know
            decoded = decoder.process_log(log)
            found.append(
                ChainEvent(
                    block_number=int(log["blockNumber"]),
                    log_index=int(log["logIndex"]),
                    tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                    contract=self._by_address[address],
                    name=str(decoded["event"]),
                    args={str(k): _plain(v) for k, v in decoded["args"].items()},
                )
            )
        found.sort(key=lambda e: (e.block_number, e.log_index))
        return found

    def excluded_positions(self, proposal_id: int) -> set[int]:
        # the bitmap of the tallier whose tally decided never changes after ProposalTallied,
        # so the latest state answers for the event's block too
        count = self._market.proposal(proposal_id).asset_count
        return self._market.excluded_positions(proposal_id, count)
