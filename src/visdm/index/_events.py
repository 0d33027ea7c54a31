"""Where the indexer's events come from: a small interface (the chain is in :mod:`._chain`).

The follower (:mod:`._indexer`) only needs the head block, a block's hash (to notice a
reorganisation below its cursor), the decoded events of a block range in chain order, and the
selection positions a tally took out of the round — the one fact no event carries (the market
keeps it as a bitmap, fixed once ``ProposalTallied`` is emitted). Keeping that behind
:class:`EventSource` lets the unit tests drive the whole indexer with hand-made events, and
keeps web3 out of the search path (``visdm market search`` needs no chain).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["CONTRACTS", "OPTIONAL_CONTRACTS", "ChainEvent", "EventSource"]

#: the contracts the index follows; DelegationRegistry is inherited by TrainingMarket and so
#: shares its address and ABI
CONTRACTS = ("StakeholderRegistry", "AssetRegistry", "TrainingMarket")
#: followed too when the deployment has them (deployments made before they existed do not)
OPTIONAL_CONTRACTS = ("ScoringPool",)


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One decoded event: where it sits in the chain, which contract emitted it, its args.

    ``args`` hold plain Python values: ``int``, ``bool``, ``str`` (addresses checksummed),
    ``bytes``.
    """

    block_number: int
    log_index: int
    tx_hash: str
    contract: str
    name: str
    args: Mapping[str, Any]


class EventSource(Protocol):
    """What the indexer reads from a chain."""

    def head(self) -> int:
        """The latest block number."""
        ...

    def block_hash(self, number: int) -> str:
        """The ``0x`` hash of block ``number`` (to notice a reorganisation)."""
        ...

    def events(self, start: int, end: int) -> list[ChainEvent]:
        """Every event of the followed contracts in blocks ``start..end``, in chain order."""
        ...

    def excluded_positions(self, proposal_id: int) -> set[int]:
        """The selection positions of tallied proposal ``proposal_id`` that left the round
        (withdrawn, or their owner's resolved vote rejected)."""
        ...
