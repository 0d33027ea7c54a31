"""Payout claims: what is submitted to ``TrainingMarket.claim`` for a selected asset.

The payout tree is the valuation's commitment (:func:`visdm.valuation.payout_tree`): leaves
``(uint256 position, uint256 assetId, uint256 amount)`` in an OpenZeppelin
``StandardMerkleTree``; the market checks the position against the asset ids it stored at
``propose``. :func:`selection_tree` rebuilds the ``assetsRoot`` that ``ProposalCreated``
emits, so anyone can check a proposal document's asset list against the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from visdm.chain.contracts import ClaimRequest
from visdm.errors import InvalidInputError
from visdm.merkle import PositionalMerkleTree, StandardMerkleTree
from visdm.valuation import PAYOUT_LEAF_ENCODING as PAYOUT_LEAF
from visdm.valuation import find_payout_leaf
from visdm.valuation import payout_tree as build_payout_tree

__all__ = [
    "PAYOUT_LEAF",
    "SELECTION_ASSET_LEAF",
    "build_payout_tree",
    "claim_for",
    "selection_tree",
]

#: the ABI types of one leaf of a proposal's ``assetsRoot``: (position, assetId)
SELECTION_ASSET_LEAF = ("uint256", "uint256")


def selection_tree(asset_ids: Sequence[int]) -> PositionalMerkleTree:
    """The tree behind a proposal's ``assetsRoot``, from its asset ids in proposal order."""
    return PositionalMerkleTree(
        [(position, int(a)) for position, a in enumerate(asset_ids)], SELECTION_ASSET_LEAF
    )


def claim_for(
    tree: StandardMerkleTree,
    proposal_id: int,
    asset_id: int,
    selection: Sequence[int] | None = None,
) -> ClaimRequest:
    """The claim for ``asset_id`` against ``tree``; an error when the asset is not paid, or
    (given the proposal's ``selection`` of asset ids) not paid where it was selected."""
    try:
        index, (position, asset, amount) = find_payout_leaf(tree, asset_id)
    except InvalidInputError:
        raise InvalidInputError(f"asset {asset_id} is not paid by proposal {proposal_id}") from None
    if selection is not None and (position >= len(selection) or selection[position] != asset):
        raise InvalidInputError(
            f"proposal {proposal_id}'s payout pays asset {asset} at selection position "
            f"{position}, which is not where the proposal selected it"
        )
    return ClaimRequest(proposal_id, position, asset, amount, tuple(tree.proof(index)))
