"""EIP-712 signatures: the spec's own example, domain separation, and malformed signatures."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from visdm.crypto import (
    Eip712Domain,
    Eip712Types,
    recover_typed,
    sign_typed,
    typed_data_hash,
    verify_typed,
)
from visdm.errors import InvalidInputError, SignatureError
from visdm.types import Address

pytestmark = pytest.mark.unit

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CONTRACT = Address("0x5FbDB2315678afecb367f032d93F642f64180aa3")
OTHER_CONTRACT = Address("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
SIGNER = Account.from_key(KEY).address
STRANGER_KEY = bytes.fromhex("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")

DOMAIN = Eip712Domain(name="ViSDM", version="1", chain_id=1, verifying_contract=CONTRACT)
TYPES: Eip712Types = {
    "Manifest": [
        {"name": "owner", "type": "address"},
        {"name": "manifestHash", "type": "bytes32"},
        {"name": "sampleCount", "type": "uint256"},
        {"name": "regions", "type": "string[]"},
    ]
}
MESSAGE: dict[str, Any] = {
    "owner": SIGNER,
    "manifestHash": keccak(b"manifest"),
    "sampleCount": 120,
    "regions": ["eu-west", "us-east"],
}


def sign(domain: Eip712Domain = DOMAIN, message: dict[str, Any] = MESSAGE) -> bytes:
    return sign_typed(KEY, domain, TYPES, "Manifest", message)


# --- the EIP-712 specification's example ------------------------------------------------------
MAIL_TYPES: Eip712Types = {
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
    "Mail": [
        {"name": "from", "type": "Person"},
        {"name": "to", "type": "Person"},
        {"name": "contents", "type": "string"},
    ],
}
MAIL: dict[str, Any] = {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!",
}
MAIL_DOMAIN = Eip712Domain(
    name="Ether Mail",
    version="1",
    chain_id=1,
    verifying_contract=Address("0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"),
)


def test_eip712_spec_example() -> None:
    # https://eips.ethereum.org/EIPS/eip-712 reference implementation (Example.js / .sol)
    digest = typed_data_hash(MAIL_DOMAIN, MAIL_TYPES, "Mail", MAIL)
    assert digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    signature = sign_typed(keccak(b"cow"), MAIL_DOMAIN, MAIL_TYPES, "Mail", MAIL)
    assert signature[64] == 28
    assert signature[:32].hex() == (
        "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
    )
    assert signature[32:64].hex() == (
        "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
    )
    verify_typed(
        signature,
        MAIL_DOMAIN,
        MAIL_TYPES,
        "Mail",
        MAIL,
        expected_signer="0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826",
    )


# --- round trip ------------------------------------------------------------------------------
def test_sign_recover_verify() -> None:
    signature = sign()
    assert len(signature) == 65
    assert recover_typed(signature, DOMAIN, TYPES, "Manifest", MESSAGE) == SIGNER
    verify_typed(signature, DOMAIN, TYPES, "Manifest", MESSAGE, expected_signer=SIGNER)
    verify_typed(signature, DOMAIN, TYPES, "Manifest", MESSAGE, expected_signer=SIGNER.lower())


def test_domain_is_checksummed_and_serialised() -> None:
    domain = Eip712Domain("ViSDM", "1", 31337, Address(CONTRACT.lower()))
    assert domain.verifying_contract == CONTRACT
    assert domain.as_dict() == {
        "name": "ViSDM",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": CONTRACT,
    }


# --- domain separation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "other",
    [
        Eip712Domain("ViSDM", "1", 31337, CONTRACT),
        Eip712Domain("ViSDM", "1", 1, OTHER_CONTRACT),
        Eip712Domain("ViSDM", "2", 1, CONTRACT),
        Eip712Domain("OtherMarket", "1", 1, CONTRACT),
    ],
    ids=["chain-31337", "other-contract", "other-version", "other-name"],
)
def test_signature_does_not_verify_in_another_domain(other: Eip712Domain) -> None:
    signature = sign(DOMAIN)
    assert typed_data_hash(other, TYPES, "Manifest", MESSAGE) != typed_data_hash(
        DOMAIN, TYPES, "Manifest", MESSAGE
    )
    with pytest.raises(SignatureError, match=f"chain {other.chain_id}"):
        verify_typed(signature, other, TYPES, "Manifest", MESSAGE, expected_signer=SIGNER)
    assert recover_typed(signature, other, TYPES, "Manifest", MESSAGE) != SIGNER


def test_altered_message_fails() -> None:
    signature = sign()
    altered = {**MESSAGE, "sampleCount": 121}
    with pytest.raises(SignatureError, match="not from"):
        verify_typed(signature, DOMAIN, TYPES, "Manifest", altered, expected_signer=SIGNER)


def test_wrong_signer_fails() -> None:
    signature = sign_typed(STRANGER_KEY, DOMAIN, TYPES, "Manifest", MESSAGE)
    with pytest.raises(SignatureError, match=f"not from {SIGNER}"):
        verify_typed(signature, DOMAIN, TYPES, "Manifest", MESSAGE, expected_signer=SIGNER)


def test_matches_eth_account_directly() -> None:
    full = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **TYPES,
        },
        "primaryType": "Manifest",
        "domain": DOMAIN.as_dict(),
        "message": MESSAGE,
    }
    expected = Account.sign_message(encode_typed_data(full_message=full), KEY).signature
    assert sign() == bytes(expected)


# --- malformed signatures --------------------------------------------------------------------
def malleate(signature: bytes) -> bytes:
    """The other valid ECDSA signature for the same message: (r, n - s, v flipped)."""
    s = int.from_bytes(signature[32:64], "big")
    v = 27 if signature[64] == 28 else 28
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([v])


def test_high_s_signature_is_refused() -> None:
    high_s = malleate(sign())
    # eth-account on its own accepts it: the strict check is ours, as in OpenZeppelin ECDSA.
    full = {
        "types": {**TYPES},
        "primaryType": "Manifest",
        "domain": DOMAIN.as_dict(),
        "message": MESSAGE,
    }
    assert Account.recover_message(encode_typed_data(full_message=full), signature=high_s) == (
        SIGNER
    )
    with pytest.raises(SignatureError, match="upper half"):
        verify_typed(high_s, DOMAIN, TYPES, "Manifest", MESSAGE, expected_signer=SIGNER)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda s: s[:64], "64 bytes"),
        (lambda s: s + b"\x00", "66 bytes"),
        (lambda s: b"", "0 bytes"),
        (lambda s: s[:64] + b"\x00", "v=0"),
        (lambda s: s[:64] + b"\x01", "v=1"),
        (lambda s: s[:64] + b"\x1d", "v=29"),
        (lambda s: bytes(32) + s[32:], "r is 0"),
        (lambda s: SECP256K1_N.to_bytes(32, "big") + s[32:], "r is 0 or not below"),
        (lambda s: s[:32] + bytes(32) + s[64:], "s is 0"),
    ],
    ids=["short", "long", "empty", "v0", "v1", "v29", "r0", "r-n", "s0"],
)
def test_malformed_signature(mutate: Any, match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        verify_typed(mutate(sign()), DOMAIN, TYPES, "Manifest", MESSAGE, expected_signer=SIGNER)


def test_unrecoverable_signature() -> None:
    # r = 5 is not the x coordinate of a curve point (5**3 + 7 is not a square mod p):
    # well-formed bytes from which no public key can be recovered.
    p = 2**256 - 2**32 - 977
    assert pow(5**3 + 7, (p - 1) // 2, p) == p - 1
    bad = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(SignatureError):
        recover_typed(bad, DOMAIN, TYPES, "Manifest", MESSAGE)


def test_signature_not_bytes() -> None:
    with pytest.raises(SignatureError, match="must be bytes"):
        recover_typed(sign().hex(), DOMAIN, TYPES, "Manifest", MESSAGE)  # type: ignore[arg-type]


# --- malformed typed data --------------------------------------------------------------------
def test_undeclared_field_is_refused() -> None:
    # eth-account would silently drop it, so the signer would not have signed what it sees.
    with pytest.raises(InvalidInputError, match=r"undeclared \['price'\]"):
        sign(message={**MESSAGE, "price": 10})


def test_missing_field_is_refused() -> None:
    message = {k: v for k, v in MESSAGE.items() if k != "regions"}
    with pytest.raises(InvalidInputError, match=r"missing \['regions'\]"):
        sign(message=message)


def test_nested_struct_fields_are_checked() -> None:
    mail = {**MAIL, "to": {**MAIL["to"], "nickname": "B"}}
    with pytest.raises(InvalidInputError, match=r"Mail\.to does not match struct Person"):
        typed_data_hash(MAIL_DOMAIN, MAIL_TYPES, "Mail", mail)


def test_struct_arrays_are_checked() -> None:
    types: Eip712Types = {
        "Item": [{"name": "id", "type": "uint256"}],
        "Batch": [{"name": "items", "type": "Item[]"}],
    }
    typed_data_hash(DOMAIN, types, "Batch", {"items": [{"id": 1}, {"id": 2}]})
    with pytest.raises(InvalidInputError, match=r"Batch\.items\[1\]"):
        typed_data_hash(DOMAIN, types, "Batch", {"items": [{"id": 1}, {"id": 2, "x": 3}]})
    with pytest.raises(InvalidInputError, match="must be a list"):
        typed_data_hash(DOMAIN, types, "Batch", {"items": {"id": 1}})


def test_value_that_does_not_encode() -> None:
    with pytest.raises(InvalidInputError, match="does not encode"):
        sign(message={**MESSAGE, "sampleCount": -1})
    with pytest.raises(InvalidInputError, match="does not encode"):
        sign(message={**MESSAGE, "manifestHash": bytes(33)})


def test_domain_type_in_types_is_refused() -> None:
    types = {**TYPES, "EIP712Domain": [{"name": "name", "type": "string"}]}
    with pytest.raises(InvalidInputError, match="EIP712Domain"):
        sign_typed(KEY, DOMAIN, types, "Manifest", MESSAGE)


def test_unknown_or_non_root_primary_type() -> None:
    with pytest.raises(InvalidInputError, match="not defined"):
        sign_typed(KEY, DOMAIN, TYPES, "Proposal", MESSAGE)
    with pytest.raises(InvalidInputError, match="does not encode"):
        typed_data_hash(MAIL_DOMAIN, MAIL_TYPES, "Person", MAIL["to"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"version": ""},
        {"chain_id": 0},
        {"chain_id": -1},
        {"chain_id": True},
        {"chain_id": "1"},
        {"verifying_contract": "0x1234"},
        {"verifying_contract": "not an address"},
    ],
)
def test_invalid_domain(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "name": "ViSDM",
        "version": "1",
        "chain_id": 1,
        "verifying_contract": CONTRACT,
        **kwargs,
    }
    with pytest.raises(InvalidInputError, match="EIP-712"):
        Eip712Domain(**fields)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(32), SECP256K1_N.to_bytes(32, "big")])
def test_invalid_private_key(key: bytes) -> None:
    with pytest.raises(InvalidInputError, match="private key"):
        sign_typed(key, DOMAIN, TYPES, "Manifest", MESSAGE)


def test_invalid_expected_signer() -> None:
    with pytest.raises(InvalidInputError, match="not an address"):
        verify_typed(sign(), DOMAIN, TYPES, "Manifest", MESSAGE, expected_signer="alice")
