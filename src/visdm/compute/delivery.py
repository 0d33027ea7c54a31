"""Model delivery: the trained model, signed by the node and sealed to the consumer (design 3.4).

The node encrypts the model file with a fresh key (XChaCha20-Poly1305, the proposal id as
associated data), wraps that key to the consumer's X25519 public key (sealed box), and signs
``ModelDelivery(proposalId, modelHash, sealedHash)`` with EIP-712 in the market's domain (chain
id + market address). Only the consumer can open the envelope, and it can check — without
trusting the storage or the network — that the node it chose produced exactly the model whose
hash the node committed on chain.

Envelope (one blob, stored under its CID)::

    b"VSDM-MODEL/1\\n" | u32 header length | header (JSON) | ciphertext
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.crypto import (
    decrypt_blob,
    encrypt_blob,
    generate_data_key,
    recover_typed,
    wrap_key,
)
from visdm.errors import CiphertextFormatError, InvalidInputError, SignatureError
from visdm.jsonsafe import load_untrusted_object
from visdm.market.quotes import market_domain
from visdm.types import Address

__all__ = ["DELIVERY_TYPES", "SealedModel", "open_model", "seal_model"]

_MAGIC = b"VSDM-MODEL/1\n"
_MAX_HEADER = 64 * 1024
#: EIP-712 types of the node's delivery statement
DELIVERY_TYPES: dict[str, list[dict[str, str]]] = {
    "ModelDelivery": [
        {"name": "proposalId", "type": "uint256"},
        {"name": "modelHash", "type": "bytes32"},
        {"name": "sealedHash", "type": "bytes32"},
    ]
}


def _aad(proposal_id: int) -> bytes:
    return b"visdm/model/v1:" + proposal_id.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class SealedModel:
    """A sealed model and the hashes the node commits to."""

    envelope: bytes
    model_hash: bytes
    signer: Address


def seal_model(
    model: bytes,
    *,
    proposal_id: int,
    consumer_key: bytes,
    node: UnlockedAccount,
    chain_id: int,
    market: str,
) -> SealedModel:
    """Encrypt ``model`` for the consumer's X25519 public key; ``node`` signs the delivery."""
    if proposal_id < 0:
        raise InvalidInputError(f"proposal id must not be negative, got {proposal_id}")
    data_key = generate_data_key()
    ciphertext = encrypt_blob(data_key, model, aad=_aad(proposal_id))
    model_hash = bytes(keccak(model))
    message = {
        "proposalId": proposal_id,
        "modelHash": model_hash,
        "sealedHash": bytes(keccak(ciphertext)),
    }
    domain = market_domain(chain_id, market)
    signature = node.sign_typed(domain, DELIVERY_TYPES, "ModelDelivery", message)
    signer = recover_typed(signature, domain, DELIVERY_TYPES, "ModelDelivery", message)
    header = json.dumps(
        {
            "proposalId": proposal_id,
            "modelHash": "0x" + model_hash.hex(),
            "wrappedKey": wrap_key(data_key, consumer_key).hex(),
            "signature": signature.hex(),
            "signer": signer,
        },
        sort_keys=True,
    ).encode()
    envelope = _MAGIC + struct.pack(">I", len(header)) + header + ciphertext
    return SealedModel(envelope=envelope, model_hash=model_hash, signer=signer)


def open_model(
    envelope: bytes,
    *,
    consumer: UnlockedAccount,
    proposal_id: int,
    expected_signer: str,
    expected_model_hash: bytes,
    chain_id: int,
    market: str,
) -> bytes:
    """Verify the node's signature and the committed hash, then decrypt; returns the model.

    Raises ``CiphertextFormatError`` for a malformed envelope, ``SignatureError`` when the node
    (``expected_signer``) did not sign this delivery for this proposal and market,
    ``InvalidInputError`` when the hash differs from the one committed on chain, and
    ``DecryptionError`` when the key is not the consumer's or the ciphertext was altered.
    """
    header, ciphertext = _split(envelope)
    try:
        claimed_id = int(str(header["proposalId"]))
        model_hash = bytes.fromhex(str(header["modelHash"]).removeprefix("0x"))
        wrapped = bytes.fromhex(str(header["wrappedKey"]))
        signature = bytes.fromhex(str(header["signature"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CiphertextFormatError(f"model envelope header is malformed: {exc}") from None
    if claimed_id != proposal_id:
        raise InvalidInputError(
            f"the envelope is for proposal {claimed_id}, not proposal {proposal_id}"
        )
    if model_hash != expected_model_hash:
        raise InvalidInputError(
            f"the envelope's model hash 0x{model_hash.hex()} differs from the committed "
            f"0x{expected_model_hash.hex()}"
        )
    message = {
        "proposalId": proposal_id,
        "modelHash": model_hash,
        "sealedHash": bytes(keccak(ciphertext)),
    }
    domain = market_domain(chain_id, market)
    signer = recover_typed(signature, domain, DELIVERY_TYPES, "ModelDelivery", message)
    if str(signer) != str(to_checksum_address(expected_signer)):
        raise SignatureError(
            f"the model was signed by {signer}, not by the proposal's node {expected_signer}"
        )
    data_key = consumer.unwrap_key(wrapped)
    model = decrypt_blob(data_key, ciphertext, aad=_aad(proposal_id))
    if keccak(model) != model_hash:  # pragma: no cover - AEAD already authenticated it
        raise InvalidInputError("the decrypted model does not match its hash")
    return model


def _split(envelope: bytes) -> tuple[dict[str, object], bytes]:
    if not envelope.startswith(_MAGIC) or len(envelope) < len(_MAGIC) + 4:
        raise CiphertextFormatError("not a ViSDM model envelope (bad magic or truncated)")
    (size,) = struct.unpack(">I", envelope[len(_MAGIC) : len(_MAGIC) + 4])
    start = len(_MAGIC) + 4
    if size > _MAX_HEADER or start + size > len(envelope):
        raise CiphertextFormatError(f"model envelope header length {size} is out of bounds")
    header = load_untrusted_object(
        envelope[start : start + size],
        what="the model envelope's header",
        max_bytes=_MAX_HEADER,
        error=CiphertextFormatError,
        hint="the node sent a broken model file: fetch it again, or report the node",
    )
    return header, envelope[start + size :]
