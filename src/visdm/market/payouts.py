"""Payout trees: what the node commits on chain and what providers claim with.

A leaf is ``(uint256 index, address account, uint256 amount)`` in an OpenZeppelin
``StandardMerkleTree``. The index (the account's position in address order) only serves the
market's claimed-bitmap — 256 claims share one storage word, as in Uniswap's MerkleDistributor —
which is what keeps a claim near 60k gas however many payees there are.
"""

from __future__ import annotations

from collections.abc import Mapping

from eth_utils.address import to_checksum_address

from visdm.chain.contracts import ClaimRequest
from visdm.errors import InvalidInputError
from visdm.merkle import StandardMerkleTree

__all__ = ["PAYOUT_LEAF", "build_payout_tree", "claim_for"]

#: ABI types of a payout leaf
PAYOUT_LEAF = ("uint256", "address", "uint256")


def build_payout_tree(amounts: Mapping[str, int]) -> StandardMerkleTree:
    """The payout tree for ``account → amount`` (zero amounts are left out)."""
    rows: dict[str, int] = {}
    for account, amount in amounts.items():
        if not isinstance(amount, int) or amount < 0:
            raise InvalidInputError(f"payout for {account} must be a non-negative int: {amount!r}")
        checksum = to_checksum_address(account)
        if checksum in rows:
            raise InvalidInputError(f"{checksum} appears twice in the payouts")
        if amount:
            rows[checksum] = amount
    if not rows:
        raise InvalidInputError("a payout tree needs at least one positive amount")
    ordered = sorted(rows.items(), key=lambda kv: int(kv[0], 16))
    leaves = [(i, account, amount) for i, (account, amount) in enumerate(ordered)]
    return StandardMerkleTree.of(leaves, list(PAYOUT_LEAF))


def claim_for(tree: StandardMerkleTree, proposal_id: int, account: str) -> ClaimRequest:
    """The claim ``account`` makes against ``tree``; an error when it is not a payee."""
    checksum = to_checksum_address(account)
    for position, (index, payee, amount) in enumerate(tree.values):
        if to_checksum_address(payee) == checksum:
            proof = tuple(tree.proof(position))
            return ClaimRequest(proposal_id, int(index), checksum, int(amount), proof)
    raise InvalidInputError(f"{checksum} is not a payee of proposal {proposal_id}")
