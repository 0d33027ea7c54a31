"""A federation's quote, read from the round document its coordinator announced on chain.

A proposal whose node is a federation has no node API to ask: the coordinator stores the
round's document (its EIP-712 quote signed by the coordinator's signer, each member's share and
fee, where its SuperLink listens) and announces the CID on the ``Federation`` contract. The
consumer reads the quote from there and checks its signer as it checks a node's.
"""

from __future__ import annotations

from visdm.chain._federation import FederationContract
from visdm.chain.contracts import ProposalRecord, Quote
from visdm.errors import FederationError, SignatureError
from visdm.jsonsafe import load_untrusted_object
from visdm.session import Connection
from visdm.storage import ContentStore

from .quotes import recover_quote_signer

__all__ = ["federation_quote", "is_federation"]

_MAX_ROUND_BYTES = 1 << 20


def is_federation(conn: Connection, node: str) -> bool:
    """Whether a proposal's ``node`` is a federation rather than a compute node."""
    registry = conn.deployment.stakeholder_registry(conn.client)
    return not registry.compute_node(node).admitted and registry.federation_of(node).registered


def federation_quote(
    conn: Connection, store: ContentStore, record: ProposalRecord, proposal_id: int
) -> tuple[Quote, bytes, str]:
    """The announced quote of ``proposal_id``, its signature and signer (the coordinator's)."""
    fed = FederationContract(conn.client, record.node)
    cid = fed.announced_round(proposal_id)
    if cid is None:
        raise FederationError(
            f"federation {record.node} has not announced proposal {proposal_id}'s round yet: "
            "its coordinator does once the proposal is approved (`visdm federation serve`); "
            "nothing was paid for training"
        )
    raw = store.get(cid, max_bytes=_MAX_ROUND_BYTES)
    doc = load_untrusted_object(
        raw, what="the federation's round document", max_bytes=_MAX_ROUND_BYTES
    )
    try:
        q = doc["quote"]
        quote = Quote(proposal_id, int(q["trainingCost"]), int(q["maxDuration"]), int(q["expiry"]))
        signature = bytes.fromhex(str(doc["signature"]).removeprefix("0x"))
        if int(doc["proposalId"]) != proposal_id:
            raise ValueError(f"it is for proposal {doc['proposalId']}")
    except (KeyError, TypeError, ValueError) as exc:
        raise FederationError(
            f"federation {record.node}'s round document {cid} holds no usable quote ({exc})"
        ) from None
    market = conn.deployment.training_market(conn.client)
    signer = recover_quote_signer(signature, conn.client.chain_id, market.address, quote)
    expected = conn.deployment.stakeholder_registry(conn.client).node_regions(record.node).signer
    if signer != expected:
        raise SignatureError(
            f"the federation's quote is signed by {signer}, not by its coordinator's signer "
            f"{expected}: nothing was paid for training"
        )
    return quote, signature, str(signer)
