"""EIP-712 typed-data signatures with a full domain (name, version, chain id, contract).

Why EIP-712: manifests, proposals and quotes are signed off chain and checked both by peers
and by contracts. Typed data gives wallets a readable prompt, and the domain separator binds a
signature to one application, one version, one chain and one verifying contract, so a
signature made for a test chain (31337) or for another deployment cannot be replayed here.

Encoding is eth-account's ``encode_typed_data`` (MetaMask/ethers compatible). This module adds
what eth-account leaves to the caller:

* the domain is always the full four-field :class:`Eip712Domain` (no optional fields that
  could be dropped to make two domains collide);
* the message must have exactly the fields its types declare, recursively: eth-account ignores
  extra keys, which would let a signer believe it signed data that was never encoded;
* signatures are parsed strictly, as OpenZeppelin's ``ECDSA.recover`` does on chain: 65 bytes
  ``r || s || v``, ``v`` in {27, 28}, ``s`` in the lower half of the curve order (EIP-2), so that
  off-chain and on-chain verification accept exactly the same signatures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import EncodingError
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError

from visdm.errors import InvalidInputError, SignatureError
from visdm.types import Address

__all__ = [
    "SIGNATURE_BYTES",
    "Eip712Domain",
    "Eip712Types",
    "recover_typed",
    "sign_typed",
    "typed_data_hash",
    "verify_typed",
]

#: ``{type name: [{"name": field, "type": solidity type}, ...]}`` without ``EIP712Domain``
Eip712Types = Mapping[str, Sequence[Mapping[str, str]]]

#: length of a signature: r (32) || s (32) || v (1)
SIGNATURE_BYTES = 65

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ARRAY_SUFFIX = re.compile(r"(\[\d*\])+$")
_ENCODING_ERRORS = (ValueError, TypeError, KeyError, EncodingError, ValidationError)


@dataclass(frozen=True, slots=True)
class Eip712Domain:
    """The EIP-712 domain: which application, version, chain and contract a signature is for."""

    name: str
    version: str
    chain_id: int
    verifying_contract: Address

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError("EIP-712 domain name must be a non-empty string")
        if not isinstance(self.version, str) or not self.version:
            raise InvalidInputError("EIP-712 domain version must be a non-empty string")
        if (
            isinstance(self.chain_id, bool)
            or not isinstance(self.chain_id, int)
            or not 0 < self.chain_id < 2**256
        ):
            raise InvalidInputError(
                f"EIP-712 chain id must be a positive integer, got {self.chain_id!r}"
            )
        if not isinstance(self.verifying_contract, str) or not is_address(self.verifying_contract):
            raise InvalidInputError(
                f"EIP-712 verifying contract {self.verifying_contract!r} is not an address"
            )
        object.__setattr__(
            self, "verifying_contract", Address(to_checksum_address(self.verifying_contract))
        )

    def as_dict(self) -> dict[str, Any]:
        """The domain as EIP-712 JSON (``chainId``, ``verifyingContract`` keys)."""
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


def typed_data_hash(
    domain: Eip712Domain, types: Eip712Types, primary_type: str, message: Mapping[str, Any]
) -> bytes:
    """The 32-byte digest that is signed: ``keccak256(0x1901 || domainSeparator || hashStruct)``.

    This is what a contract computes with OpenZeppelin's ``EIP712._hashTypedDataV4``.
    """
    signable = _encode(domain, types, primary_type, message)
    # EIP-191 version 0x01: 0x19 || 0x01 || domainSeparator || hashStruct(message)
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def sign_typed(
    private_key: bytes,
    domain: Eip712Domain,
    types: Eip712Types,
    primary_type: str,
    message: Mapping[str, Any],
) -> bytes:
    """Sign typed data with a 32-byte secp256k1 key; returns the 65-byte ``r || s || v``."""
    if not isinstance(private_key, bytes) or len(private_key) != 32:
        raise InvalidInputError("private key must be 32 bytes")
    signable = _encode(domain, types, primary_type, message)
    try:
        signed = Account.sign_message(signable, private_key)
    except (ValueError, ValidationError) as exc:  # a key of 0 or >= the curve order
        raise InvalidInputError(f"cannot sign with this private key: {exc}") from None
    return bytes(signed.signature)


def recover_typed(
    signature: bytes,
    domain: Eip712Domain,
    types: Eip712Types,
    primary_type: str,
    message: Mapping[str, Any],
) -> Address:
    """The checksummed address that made ``signature`` over this typed data.

    Any well-formed signature recovers *some* address; compare it with the expected signer, or
    use :func:`verify_typed`. Raises :class:`~visdm.errors.SignatureError` for a malformed
    signature.
    """
    _check_signature(signature)
    signable = _encode(domain, types, primary_type, message)
    try:
        signer = Account.recover_message(signable, signature=bytes(signature))
    except (ValueError, BadSignature, ValidationError) as exc:
        raise SignatureError(f"signature does not recover a signer: {exc}") from None
    return Address(to_checksum_address(signer))


def verify_typed(
    signature: bytes,
    domain: Eip712Domain,
    types: Eip712Types,
    primary_type: str,
    message: Mapping[str, Any],
    *,
    expected_signer: str,
) -> None:
    """Check that ``expected_signer`` signed this typed data in this domain.

    Raises :class:`~visdm.errors.SignatureError` when the signature is malformed or was made by
    anyone else, over other data, or for another domain (name, version, chain, contract).
    """
    if not isinstance(expected_signer, str) or not is_address(expected_signer):
        raise InvalidInputError(f"expected signer {expected_signer!r} is not an address")
    signer = recover_typed(signature, domain, types, primary_type, message)
    if str(signer) != str(to_checksum_address(expected_signer)):
        raise SignatureError(
            f"{primary_type} signature is not from {to_checksum_address(expected_signer)} "
            f"(it recovers {signer}): wrong signer, altered data, or signed for another "
            f"domain than {domain.name} v{domain.version} on chain {domain.chain_id} at "
            f"{domain.verifying_contract}"
        )


def _encode(
    domain: Eip712Domain, types: Eip712Types, primary_type: str, message: Mapping[str, Any]
) -> SignableMessage:
    if not isinstance(domain, Eip712Domain):
        raise InvalidInputError(f"domain must be an Eip712Domain, got {type(domain).__name__}")
    if "EIP712Domain" in types:
        raise InvalidInputError(
            "types must not define EIP712Domain: the domain type is fixed by Eip712Domain"
        )
    if primary_type not in types:
        raise InvalidInputError(f"primary type {primary_type!r} is not defined in types")
    plain_types = {name: [dict(f) for f in fields] for name, fields in types.items()}
    _check_fields(primary_type, message, plain_types, path=primary_type)
    full_message = {
        "types": {"EIP712Domain": _DOMAIN_TYPE, **plain_types},
        "primaryType": primary_type,
        "domain": domain.as_dict(),
        "message": dict(message),
    }
    try:
        return encode_typed_data(full_message=full_message)
    except _ENCODING_ERRORS as exc:
        raise InvalidInputError(f"{primary_type} does not encode as EIP-712: {exc}") from None


def _check_fields(
    type_name: str, value: Any, types: dict[str, list[dict[str, str]]], *, path: str
) -> None:
    """Refuse a struct value whose keys differ from its type's fields (recursively)."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{path} must be a mapping for struct {type_name}")
    declared = [f["name"] for f in types[type_name]]
    extra = sorted(set(value) - set(declared))
    missing = [name for name in declared if name not in value]
    if extra or missing:
        raise InvalidInputError(
            f"{path} does not match struct {type_name}: "
            f"missing {missing or 'nothing'}, undeclared {extra or 'nothing'}"
        )
    for field_def in types[type_name]:
        base = _ARRAY_SUFFIX.sub("", field_def["type"])
        if base not in types:
            continue
        item = value[field_def["name"]]
        depth = field_def["type"].count("[")
        _check_nested(base, item, depth, types, path=f"{path}.{field_def['name']}")


def _check_nested(
    base: str, item: Any, depth: int, types: dict[str, list[dict[str, str]]], *, path: str
) -> None:
    if depth == 0:
        _check_fields(base, item, types, path=path)
        return
    if isinstance(item, str | bytes | Mapping) or not isinstance(item, Sequence):
        raise InvalidInputError(f"{path} must be a list")
    for index, element in enumerate(item):
        _check_nested(base, element, depth - 1, types, path=f"{path}[{index}]")


def _check_signature(signature: object) -> None:
    if not isinstance(signature, bytes | bytearray):
        raise SignatureError(f"signature must be bytes, got {type(signature).__name__}")
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(
            f"signature is {len(signature)} bytes, expected {SIGNATURE_BYTES} (r || s || v)"
        )
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError(f"signature has v={v}, expected 27 or 28")
    if not 0 < r < _SECP256K1_N:
        raise SignatureError("signature r is 0 or not below the curve order")
    if not 0 < s <= _SECP256K1_N // 2:
        raise SignatureError(
            "signature s is 0 or in the upper half of the curve order (malleable, EIP-2)"
        )
