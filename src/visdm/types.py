"""Domain types shared by every stage of the data flow.

``NewType`` wrappers cost nothing at run time but keep mypy from mixing a CID with an address.
"""

from __future__ import annotations

from enum import IntFlag
from typing import NewType

from visdm.errors import InvalidInputError

__all__ = [
    "Address",
    "AssetId",
    "Cid",
    "PHash",
    "Role",
    "SampleId",
    "Wei",
]

#: a CIDv1 in its canonical base32 string form (``bafk...`` / ``bafy...``)
Cid = NewType("Cid", str)
#: a sample's id: the 32-byte digest of its ciphertext's CID
SampleId = NewType("SampleId", bytes)
#: an asset's on-chain id
AssetId = NewType("AssetId", int)
#: a checksummed Ethereum address
Address = NewType("Address", str)
#: an amount in the token's smallest unit
Wei = NewType("Wei", int)
#: a 64-bit perceptual hash
PHash = NewType("PHash", int)


class Role(IntFlag):
    """Stakeholder role bits, as in ``StakeholderRegistry.sol`` (an account may hold several)."""

    NONE = 0
    PROVIDER = 1
    CONSUMER = 2

    @classmethod
    def parse(cls, text: str) -> Role:
        """Parse ``provider``, ``consumer`` or ``provider,consumer`` (case-insensitive)."""
        role = cls.NONE
        for part in text.split(","):
            name = part.strip().upper()
            if name not in ("PROVIDER", "CONSUMER"):
                raise InvalidInputError(
                    f"unknown role {part.strip()!r} in {text!r}: use provider, consumer or both "
                    "separated by a comma"
                )
            role |= cls[name]
        return role

    def names(self) -> list[str]:
        """Lower-case names of the bits set, e.g. ``['provider', 'consumer']``."""
        return [r.name.lower() for r in (Role.PROVIDER, Role.CONSUMER) if r in self and r.name]
