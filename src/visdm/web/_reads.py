"""Public reads the pages show that no CLI command prints as one call: the market's parameters
beside its nodes, and the list of proposals. Both read the chain through the typed contract
wrappers; nothing here writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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
    settings: Settings, owner: str, *, delegate: str | None = None, url: str | None = None
) -> list[dict[str, object]]:
    """The indexed proposals whose selection holds ``owner``'s samples, newest first, with
    how many of its samples each selects, how ``owner`` voted and how ``delegate`` did."""
    from visdm.index import open_index

    db = open_index(settings, url)
    try:
        rows = db.query(
            "SELECT p.proposal_id, p.status, p.offer, p.voting_deadline, SUM(pa.sample_count), "
            "(SELECT v.ask FROM votes v WHERE v.proposal_id = p.proposal_id "
            "AND LOWER(v.voter) = LOWER(?)), (SELECT d.ask FROM votes d WHERE "
            "d.proposal_id = p.proposal_id AND LOWER(d.voter) = LOWER(?)) FROM proposal_assets pa "
            "JOIN assets a ON a.asset_id = pa.asset_id "
            "JOIN proposals p ON p.proposal_id = pa.proposal_id WHERE LOWER(a.owner) = LOWER(?) "
            "GROUP BY p.proposal_id, p.status, p.offer, p.voting_deadline "
            "ORDER BY p.proposal_id DESC",
            [owner, delegate or "", owner],
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
            "delegate_ask": None if r[6] is None else str(r[6]),
        }
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class DelegationGraph:
    """Who carries whose weight in a proposal: the owners of its selected samples (with their
    sample counts), the delegation edges from them as the index holds them now, and votes."""

    weights: dict[str, int]
    edges: list[tuple[str, str]]
    votes: dict[str, str]


def delegation_graph(
    settings: Settings, proposal_id: int, *, url: str | None = None, max_hops: int = 8
) -> DelegationGraph:
    """The delegation chains that start at the owners of ``proposal_id``'s selection."""
    from visdm.index import open_index

    db = open_index(settings, url)
    try:
        owners = db.query(
            "SELECT a.owner, SUM(pa.sample_count) FROM proposal_assets pa JOIN assets a "
            "ON a.asset_id = pa.asset_id WHERE pa.proposal_id = ? GROUP BY a.owner",
            [proposal_id],
        )
        delegates = {
            str(r[0]).lower(): str(r[1])
            for r in db.query(
                "SELECT delegator, delegate FROM delegations WHERE delegate IS NOT NULL"
            )
        }
        votes = db.query("SELECT voter, ask FROM votes WHERE proposal_id = ?", [proposal_id])
    finally:
        db.close()
    weights = {str(owner): int(count or 0) for owner, count in owners}
    edges: list[tuple[str, str]] = []
    seen_edges: set[tuple[str, str]] = set()
    for owner in weights:
        current = owner
        for _ in range(max_hops):
            nxt = delegates.get(current.lower())
            if nxt is None or (current.lower(), nxt.lower()) in seen_edges:
                break
            seen_edges.add((current.lower(), nxt.lower()))
            edges.append((current, nxt))
            current = nxt
    return DelegationGraph(weights, edges, {str(v): str(a) for v, a in votes})


def node_books(settings: Settings, nodes: list[str], *, url: str | None = None) -> dict[str, Any]:
    """Per node: the training fees credited and not yet withdrawn, and the assets it attested
    (from the index; empty when there is none yet)."""
    from visdm.errors import VisdmError
    from visdm.index import open_index

    conn = connect_deployed(settings)
    market = conn.deployment.training_market(conn.client)
    attested: dict[str, int] = {}
    try:
        db = open_index(settings, url)
        try:
            attested = {
                str(r[0]).lower(): int(r[1])
                for r in db.query(
                    "SELECT attested_by, COUNT(*) FROM assets WHERE attested_by IS NOT NULL "
                    "GROUP BY attested_by"
                )
            }
        finally:
            db.close()
    except VisdmError:
        attested = {}
    return {
        n: {"credit": market.credit_of(n), "attested": attested.get(n.lower(), 0)} for n in nodes
    }
