"""Domain types shared by every stage of the data flow.

``NewType`` wrappers cost nothing at run time but keep mypy from mixing a CID with an address.
"""

from __future__ import annotations

from enum import IntEnum
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


class Role(IntEnum):
    """Stakeholder roles, numbered as in ``StakeholderRegistry.sol``."""

    NONE = 0
    PROVIDER = 1
    CONSUMER = 2

    @classmethod
    def parse(cls, text: str) -> Role:
        """Parse a role name as typed on the command line (case-insensitive)."""
        try:
            role = cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(r.name.lower() for r in cls if r is not cls.NONE)
            raise InvalidInputError(f"unknown role {text!r}: use one of {names}") from None
        if role is cls.NONE:
            raise InvalidInputError("role 'none' cannot be registered")
        return role
