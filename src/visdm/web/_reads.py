"""Public reads the pages show that no CLI command prints as one call: the market's parameters
beside its nodes, and the list of proposals. Both read the chain through the typed contract
wrappers; nothing here writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from visdm.chain.contracts import ComputeNodeRecord, ProposalRecord
from visdm.chain.deployment import Deployment
from visdm.config import Settings
from visdm.governance import _nodes
from visdm.session import connect_deployed

__all__ = ["MarketView", "market_view", "proposals"]

#: the most proposals a list shows (newest first)
MAX_LISTED = 200


@dataclass(frozen=True, slots=True)
class MarketView:
    """The market as anyone may see it."""

    chain_id: int
    rpc_url: str
    block: int
    timestamp: int
    contracts: dict[str, str]
    parameters: dict[str, object]
    nodes: list[ComputeNodeRecord]
    proposal_count: int


def _contracts(deployment: Deployment) -> dict[str, str]:
    names = ("StakeholderRegistry", "AssetRegistry", "TrainingMarket", "DevToken")
    return {n: str(c.address) for n, c in deployment.contracts.items() if n in names}


def market_view(settings: Settings) -> MarketView:
    """Chain, contracts, market parameters, compute nodes and the number of proposals."""
    conn = connect_deployed(settings)
    market = conn.deployment.training_market(conn.client)
    registry = conn.deployment.stakeholder_registry(conn.client)
    block = conn.client.rpc(lambda: conn.client.w3.eth.get_block("latest"))
    return MarketView(
        chain_id=conn.client.chain_id,
        rpc_url=conn.client.rpc_url,
        block=int(block["number"]),
        timestamp=int(block["timestamp"]),
        contracts=_contracts(conn.deployment),
        parameters=asdict(market.parameters()),
        nodes=_nodes(registry),
        proposal_count=market.proposal_count(),
    )


def proposals(settings: Settings, *, limit: int = MAX_LISTED) -> list[ProposalRecord]:
    """The newest ``limit`` proposals as the chain keeps them, newest first."""
    conn = connect_deployed(settings)
    market = conn.deployment.training_market(conn.client)
    count = market.proposal_count()
    first = max(1, count - limit + 1)
    return [market.proposal(pid) for pid in range(count, first - 1, -1)]


def delegate_of(settings: Settings, address: str) -> str | None:
    """Whom ``address`` delegates its votes to now (``None``: nobody)."""
    conn = connect_deployed(settings)
    found = conn.deployment.delegation_registry(conn.client).delegate_of(address)
    return None if found is None else str(found)


def proposals_selecting(
    settings: Settings, owner: str, *, url: str | None = None
) -> list[dict[str, object]]:
    """The indexed proposals whose selection holds ``owner``'s samples, newest first, with
    how many of its samples each selects and how ``owner`` voted."""
    from visdm.index import open_index

    db = open_index(settings, url)
    try:
        rows = db.query(
            "SELECT p.proposal_id, p.status, p.offer, p.voting_deadline, SUM(pa.sample_count), "
            "(SELECT v.ask FROM votes v WHERE v.proposal_id = p.proposal_id "
            "AND LOWER(v.voter) = LOWER(?)) FROM proposal_assets pa "
            "JOIN assets a ON a.asset_id = pa.asset_id "
            "JOIN proposals p ON p.proposal_id = pa.proposal_id WHERE LOWER(a.owner) = LOWER(?) "
            "GROUP BY p.proposal_id, p.status, p.offer, p.voting_deadline "
            "ORDER BY p.proposal_id DESC",
            [owner, owner],
        )
    finally:
        db.close()
    return [
        {
            "proposal_id": int(r[0]),
            "status": str(r[1]),
            "offer": str(r[2]),
            "voting_deadline": int(r[3]),
            "samples": int(r[4] or 0),
            "my_ask": None if r[5] is None else str(r[5]),
        }
        for r in rows
    ]
