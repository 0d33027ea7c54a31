"""What providers earn: the payout leaves of indexed results, and what became of each.

The market pays assets, never accounts. A result's payout tree has one leaf ``(position,
assetId, amount)`` per paid asset, and a claim of that leaf credits the asset's owner — so a
provider's earnings are the leaves of the assets it owns. Not every leaf the node commits can
be paid: the market refuses a claim for an asset that is not at that position of the
proposal's selection (the ``assetsRoot``) or that left the round in the tally (its owner
rejected, or it was withdrawn), and after the claim period the unclaimed remainder is swept
to the treasury. Each leaf is therefore reported in one state, decided in this order:

``claimed``
    a ``Claimed`` event credited it (the chain checked everything);
``overturned``
    the market's court found the result wrong and refunded the consumer: no leaf is payable;
``held``
    the result is in its challenge window (or challenged): claimable once the court releases it;
``left_round``
    its position is in the tally's exclusion bitmap: the market will refuse it;
``not_selected``
    the verified proposal document does not select this asset at this position: refused too;
``swept``
    unclaimed when the remainder went to the treasury;
``unverified``
    the proposal document is missing or rejected, so the selection cannot be checked;
``unclaimed``
    claimable now (until the claim period ends).

A ``Claimed`` event without a leaf in the index (its result document was rejected or is
missing) is reported as ``claimed`` too: the chain paid it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from visdm.errors import InvalidInputError

from ._db import Database

__all__ = ["PAYOUT_STATES", "PayoutLine", "ProviderEarnings", "earnings", "payout_lines"]

#: the states a payout leaf can be in (see the module docstring)
PAYOUT_STATES = (
    "claimed",
    "unclaimed",
    "held",
    "overturned",
    "swept",
    "left_round",
    "not_selected",
    "unverified",
)


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """One payout leaf (or claim) of one proposal."""

    proposal_id: int
    position: int
    asset_id: int
    #: the asset's owner, whom a claim credits
    owner: str
    amount: int
    state: str
    #: the block of the ``Claimed`` event (``None``: not claimed)
    claimed_block: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderEarnings:
    """One provider's payout leaves and their totals by state."""

    provider: str
    claimed: int = 0
    unclaimed: int = 0
    swept: int = 0
    #: leaves the market refuses (``left_round`` and ``not_selected``)
    unpayable: int = 0
    unverified: int = 0
    #: in a challenge window, and voided by a court's overturn
    held: int = 0
    overturned: int = 0
    lines: list[PayoutLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as ``visdm market earnings --json`` prints it: camelCase keys, amounts
        in wei as decimal strings (they may exceed 2**53)."""
        return {
            "provider": self.provider,
            "claimedWei": str(self.claimed),
            "unclaimedWei": str(self.unclaimed),
            "sweptWei": str(self.swept),
            "unpayableWei": str(self.unpayable),
            "unverifiedWei": str(self.unverified),
            "heldWei": str(self.held),
            "overturnedWei": str(self.overturned),
            "lines": [
                {
                    "proposalId": line.proposal_id,
                    "position": line.position,
                    "assetId": line.asset_id,
                    "owner": line.owner,
                    "amountWei": str(line.amount),
                    "state": line.state,
                    "claimedBlock": line.claimed_block,
                }
                for line in self.lines
            ],
        }


def check_provider(provider: str) -> str:
    """``provider`` as a checksummed address, or :class:`InvalidInputError`."""
    if not isinstance(provider, str) or not is_address(provider.strip()):
        raise InvalidInputError(
            f"provider {provider!r} is not an Ethereum address: give 0x and 40 hex digits"
        )
    return str(to_checksum_address(provider.strip()))


def check_proposal_id(proposal_id: int) -> int:
    """``proposal_id`` if it is a proposal id (≥ 1), else :class:`InvalidInputError`."""
    if not isinstance(proposal_id, int) or isinstance(proposal_id, bool) or proposal_id < 1:
        raise InvalidInputError(f"proposal id must be a whole number ≥ 1, got {proposal_id!r}")
    return proposal_id


def _filters(provider: str | None, proposal_id: int | None, alias: str) -> tuple[str, list[Any]]:
    clauses: list[str] = ["1 = 1"]
    params: list[Any] = []
    if provider is not None:
        clauses.append(f"{alias}.owner = ?")
        params.append(check_provider(provider))
    if proposal_id is not None:
        clauses.append(f"{alias}.proposal_id = ?")
        params.append(check_proposal_id(proposal_id))
    return " AND ".join(clauses), params


#: each leaf with what decides its state; ``where`` (placeholders only) is appended
_LEAVES = (
    "SELECT x.proposal_id, x.position, x.asset_id, x.owner, x.amount, p.swept, "
    "p.document_status, p.settlement, EXISTS (SELECT 1 FROM proposal_exclusions e WHERE "
    "e.proposal_id = x.proposal_id AND e.position = x.position), EXISTS (SELECT 1 FROM "
    "proposal_assets s WHERE s.proposal_id = x.proposal_id AND s.position = x.position "
    "AND s.asset_id = x.asset_id) FROM payouts x JOIN proposals p ON "
    "p.proposal_id = x.proposal_id WHERE "
)
_CLAIMS = (
    "SELECT x.proposal_id, x.position, x.asset_id, x.owner, x.amount, x.block_number "
    "FROM claims x WHERE "
)


def payout_lines(
    db: Database, *, provider: str | None = None, proposal_id: int | None = None
) -> list[PayoutLine]:
    """Every payout leaf and claim (of ``provider``'s assets, of ``proposal_id``), each in its
    state, ordered by proposal and position."""
    where, params = _filters(provider, proposal_id, "x")
    leaves = db.query(_LEAVES + where, params)
    claims = {
        (int(pid), int(position)): (int(asset), str(owner), int(amount), int(block))
        for pid, position, asset, owner, amount, block in db.query(_CLAIMS + where, params)
    }
    lines: dict[tuple[int, int], PayoutLine] = {}
    for pid, position, asset, owner, amount, swept, document, settled, excluded, selected in leaves:
        key = (int(pid), int(position))
        claimed = claims.get(key)
        if claimed is not None:
            state = "claimed"
        elif settled == "overturned":
            state = "overturned"
        elif excluded:
            state = "left_round"
        elif document == "indexed" and not selected:
            state = "not_selected"
        elif swept is not None:
            state = "swept"
        elif document != "indexed":
            state = "unverified"
        elif settled == "held":
            state = "held"
        else:
            state = "unclaimed"
        block = None if claimed is None else claimed[3]
        lines[key] = PayoutLine(*key, int(asset), str(owner), int(amount), state, block)
    for key, (asset, owner, amount, block) in claims.items():
        if key not in lines:  # paid by the chain, though the index has no leaf for it
            lines[key] = PayoutLine(*key, asset, owner, amount, "claimed", block)
    return [lines[key] for key in sorted(lines)]


_TOTALS = {
    "claimed": "claimed",
    "unclaimed": "unclaimed",
    "swept": "swept",
    "left_round": "unpayable",
    "not_selected": "unpayable",
    "unverified": "unverified",
    "held": "held",
    "overturned": "overturned",
}


def earnings(
    db: Database, *, provider: str | None = None, proposal_id: int | None = None
) -> list[ProviderEarnings]:
    """Each provider's payout lines and totals (only ``provider``, only ``proposal_id``),
    ordered by provider address."""
    totals: dict[str, dict[str, int]] = {}
    grouped: dict[str, list[PayoutLine]] = {}
    for line in payout_lines(db, provider=provider, proposal_id=proposal_id):
        sums = totals.setdefault(line.owner, dict.fromkeys(set(_TOTALS.values()), 0))
        sums[_TOTALS[line.state]] += line.amount
        grouped.setdefault(line.owner, []).append(line)
    return [
        ProviderEarnings(owner, lines=grouped[owner], **totals[owner])
        for owner in sorted(grouped, key=lambda a: bytes.fromhex(a[2:]))
    ]
