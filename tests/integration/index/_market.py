"""Market moves for the index tests that publish what real users publish: a proposal document
signed by the consumer, and result documents in the compute node's format."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from eth_utils.crypto import keccak

from tests.integration.market.conftest import Market
from visdm.chain.contracts import ProposalTerms
from visdm.merkle import StandardMerkleTree
from visdm.proposals import SelectedAsset, TrainingProposal, ValidationSetRef, sign_proposal
from visdm.storage import ContentStore
from visdm.types import Address, Cid

SPEC = b'{"architecture":"mlp"}'


def propose_signed(
    mk: Market,
    store: ContentStore,
    selection: Sequence[tuple[int, Sequence[int]]],
    *,
    offer: int = 1000,
) -> int:
    """Propose ``selection`` (asset id, sample indexes) with a stored proposal document signed
    by the consumer, as ``visdm proposal create`` publishes it."""
    consumer = mk.roles["consumer"]
    deadline = mk.now() + 3600
    root = keccak(text=f"selection {list(selection)} at {deadline}")
    validation = keccak(text="validation")
    document = TrainingProposal(
        chain_id=mk.chain.chain_id,
        market=Address(mk.market.address),
        consumer=Address(consumer.address),
        node=Address(mk.roles["node"].address),
        created_at=deadline - 3600,
        offer=offer,
        wtp_bps=8000,
        voting_deadline=deadline,
        classes=("top", "trouser"),
        model_spec_json=SPEC,
        model_spec_hash=keccak(SPEC),
        validation=ValidationSetRef(
            Cid(store.put(b"sealed validation set")), validation, 10, bytes(80)
        ),
        selection=tuple(SelectedAsset(a, tuple(indexes)) for a, indexes in selection),
        selection_root=root,
    )
    cid = store.put(sign_proposal(document, bytes(consumer.key)))
    terms = ProposalTerms(
        asset_ids=document.asset_ids,
        sample_counts=document.sample_counts,
        selection_root=root,
        offer=offer,
        wtp_bps=8000,
        node=document.node,
        voting_deadline=deadline,
        model_spec_hash=keccak(SPEC),
        validation_set_hash=validation,
        proposal_cid=cid,
    )
    pid, _ = mk.market.propose(consumer, terms)
    return pid


def vote_and_tally(
    mk: Market, pid: int, selection: Sequence[tuple[int, int]], asks: dict[str, int]
) -> None:
    """Each role in ``asks`` votes its ask; after the deadline a stranger tallies."""
    for role, ask in asks.items():
        mk.market.vote(mk.roles[role], pid, ask)
    mk.advance(3601)
    mk.tally(pid, selection, batch_size=256)


def result_document(
    pid: int,
    node: str,
    *,
    tree: StandardMerkleTree | None,
    owners: dict[int, str],
    model: dict[str, str] | None = None,
    scores: dict[str, str] | None = None,
    seed_hash: bytes = bytes(32),
    **extra: Any,
) -> bytes:
    """A result document in the compute node's format; payouts from ``tree``'s leaves."""
    payouts = None
    if tree is not None:
        per_owner: dict[str, int] = {}
        for _, asset, amount in tree.values:
            per_owner[owners[int(asset)]] = per_owner.get(owners[int(asset)], 0) + int(amount)
        payouts = {
            "root": "0x" + tree.root.hex(),
            "basis": "value",
            "amounts": {a: str(v) for a, v in per_owner.items()},
            "assets": {str(a): str(v) for _, a, v in tree.values},
            "tree": tree.dump(),
        }
    document = {
        "version": 1,
        "kind": "visdm-training-result",
        "proposalId": pid,
        "node": node,
        "accuracyBps": 9100,
        "wtpBps": 8000,
        "wtpMet": True,
        "epsilonSpent": None,
        "seedHash": "0x" + seed_hash.hex(),
        "model": model,
        "scores": scores,
        "payouts": payouts,
        **extra,
    }
    return json.dumps(document, sort_keys=True).encode()
