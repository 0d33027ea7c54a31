"""Payout claims: what providers submit to ``TrainingMarket.claim``.

The tree itself is the valuation's commitment (:func:`visdm.valuation.payout_tree`): leaves
``(uint256 index, address account, uint256 amount)`` in an OpenZeppelin ``StandardMerkleTree``.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from visdm.chain.contracts import ClaimRequest
from visdm.errors import InvalidInputError
from visdm.merkle import StandardMerkleTree
from visdm.valuation import PAYOUT_LEAF_ENCODING as PAYOUT_LEAF
from visdm.valuation import find_payout_leaf
from visdm.valuation import payout_tree as build_payout_tree

__all__ = ["PAYOUT_LEAF", "build_payout_tree", "claim_for"]


def claim_for(tree: StandardMerkleTree, proposal_id: int, account: str) -> ClaimRequest:
    """The claim ``account`` makes against ``tree``; an error when it is not a payee."""
    try:
        position, (index, payee, amount) = find_payout_leaf(tree, account)
    except InvalidInputError:
        raise InvalidInputError(
            f"{to_checksum_address(account)} is not a payee of proposal {proposal_id}"
        ) from None
    return ClaimRequest(proposal_id, index, payee, amount, tuple(tree.proof(position)))
