"""What an account looks like to callers: public facts, and an unlocked handle that signs.

The unlocked handle carries the secrets (the secp256k1 key inside eth-account's
``LocalAccount`` and the derived X25519 key) but never shows them: its ``repr`` names the
account only, and it refuses to be pickled so that a secret cannot slip into a cache, a log
or a worker process by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from eth_account.signers.local import LocalAccount

from visdm.crypto import Eip712Domain, Eip712Types, X25519KeyPair, sign_typed, unwrap_key
from visdm.types import Address

__all__ = ["AccountInfo", "PublicIdentity", "UnlockedAccount"]


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An account as listed without its password.

    ``x25519_public`` is the ``0x``-hex encryption key recorded in the keystore when ViSDM
    wrote it (``None`` for keystores made by other tools). It is not authenticated by the
    keystore's MAC; :func:`~visdm.accounts.export_public` re-derives it from the secret and
    refuses a file whose record disagrees, so publish that, not this.
    """

    name: str
    address: Address
    x25519_public: str | None
    path: Path


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """What an account publishes: its address and its X25519 encryption key, checked."""

    name: str
    address: Address
    x25519_public: str


class UnlockedAccount:
    """An account opened with its password: signs transactions and typed data, unwraps keys."""

    __slots__ = ("_info", "_local", "_x25519")

    def __init__(self, info: AccountInfo, local: LocalAccount, x25519: X25519KeyPair) -> None:
        self._info = info
        self._local = local
        self._x25519 = x25519

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def address(self) -> Address:
        return self._info.address

    @property
    def info(self) -> AccountInfo:
        return self._info

    @property
    def local_account(self) -> LocalAccount:
        """eth-account's signer, for building and signing transactions."""
        return self._local

    @property
    def x25519_public(self) -> bytes:
        """The 32-byte X25519 public key others seal data keys to."""
        return self._x25519.public

    def public_identity(self) -> PublicIdentity:
        """Address and X25519 public key, ready to publish on chain."""
        return PublicIdentity(
            name=self.name, address=self.address, x25519_public="0x" + self._x25519.public.hex()
        )

    def sign_typed(
        self,
        domain: Eip712Domain,
        types: Eip712Types,
        primary_type: str,
        message: Mapping[str, Any],
    ) -> bytes:
        """Sign EIP-712 typed data as this account (see :func:`visdm.crypto.sign_typed`)."""
        return sign_typed(bytes(self._local.key), domain, types, primary_type, message)

    def unwrap_key(self, wrapped: bytes) -> bytes:
        """Open a data key sealed to this account's X25519 key (:func:`visdm.crypto.unwrap_key`)."""
        return unwrap_key(wrapped, self._x25519.private)

    def __repr__(self) -> str:
        return f"UnlockedAccount(name={self.name!r}, address={self.address!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("an unlocked account holds secrets and cannot be pickled or copied")
