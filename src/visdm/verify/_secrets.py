"""What a verifier needs to re-execute a job, sealed to it alone.

The node that trained a round never publishes the job's seed (a consumer who knew it could
subtract the DP noise, :mod:`visdm.training._rng`). A verifier gets it, with the consumer's
validation key and the data key of every selected asset that was not wrapped for the verifier
itself, each sealed (libsodium sealed box, :func:`visdm.crypto.wrap_key`) to the verifier's
registered X25519 key. :func:`open_job_secrets` checks the seed against the seed hash the result
committed on chain before anything is re-executed, so a node cannot hand a verifier another
seed than the one it trained with.

The document (``kind`` :data:`SECRETS_KIND`) is JSON::

    {"version": 1, "kind": "visdm-job-secrets", "proposalId": 7, "verifier": "0x…",
     "seed": "0x<sealed>", "validationKey": "0x<sealed>", "assetKeys": {"12": "0x<sealed>"}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import is_checksum_address
from eth_utils.crypto import keccak

from visdm.crypto import wrap_key
from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object

__all__ = ["SECRETS_KIND", "JobSecrets", "open_job_secrets", "seal_job_secrets"]

SECRETS_KIND = "visdm-job-secrets"
_MAX_BYTES = 1 << 20
_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class JobSecrets:
    """A job's seed, the consumer's validation-set key and the data keys of selected assets."""

    seed: bytes
    validation_key: bytes
    asset_keys: Mapping[int, bytes] = field(default_factory=dict)


def seal_job_secrets(
    secrets: JobSecrets, *, proposal_id: int, verifier: str, verifier_key: bytes
) -> bytes:
    """The secrets of ``proposal_id`` sealed to ``verifier``'s X25519 public key."""
    for what, key in (
        ("seed", secrets.seed),
        ("validation key", secrets.validation_key),
        *((f"data key of asset {a}", k) for a, k in secrets.asset_keys.items()),
    ):
        if len(key) != _KEY_BYTES:
            raise InvalidInputError(f"the job's {what} must be {_KEY_BYTES} bytes, got {len(key)}")
    doc = {
        "version": 1,
        "kind": SECRETS_KIND,
        "proposalId": proposal_id,
        "verifier": verifier,
        "seed": "0x" + wrap_key(secrets.seed, verifier_key).hex(),
        "validationKey": "0x" + wrap_key(secrets.validation_key, verifier_key).hex(),
        "assetKeys": {
            str(a): "0x" + wrap_key(k, verifier_key).hex()
            for a, k in sorted(secrets.asset_keys.items())
        },
    }
    return json.dumps(doc, sort_keys=True).encode()


def open_job_secrets(
    data: bytes,
    *,
    proposal_id: int,
    verifier: str,
    unwrap: Callable[[bytes], bytes],
    seed_hash: bytes,
) -> JobSecrets:
    """Open a secrets document with the verifier's ``unwrap`` (e.g. ``account.unwrap_key``);
    refuse one for another proposal or verifier, or whose seed is not the committed one."""
    what = "the job secrets document"
    if not isinstance(verifier, str) or not is_checksum_address(verifier):
        raise InvalidInputError(f"verifier {verifier!r} is not a checksummed address")
    doc = load_untrusted_object(data, what=what, max_bytes=_MAX_BYTES)
    if doc.get("kind") != SECRETS_KIND or doc.get("version") != 1:
        raise InvalidInputError(f"{what} is not a version-1 {SECRETS_KIND!r}: ask the node again")
    if doc.get("proposalId") != proposal_id or doc.get("verifier") != verifier:
        raise InvalidInputError(
            f"{what} is for proposal {doc.get('proposalId')!r} and verifier "
            f"{doc.get('verifier')!r}, not proposal {proposal_id} and {verifier}: it was not "
            "sealed for this re-execution"
        )
    keys = doc.get("assetKeys")
    if not isinstance(keys, dict):
        raise InvalidInputError(f"{what} has no 'assetKeys' object")
    try:
        seed = unwrap(_hex(doc.get("seed"), "seed"))
        validation = unwrap(_hex(doc.get("validationKey"), "validationKey"))
        assets = {_asset_id(a): unwrap(_hex(k, f"assetKeys.{a}")) for a, k in keys.items()}
    except VisdmError as exc:
        raise InvalidInputError(f"{what} cannot be opened by {verifier}: {exc}") from None
    if keccak(seed) != seed_hash:
        raise InvalidInputError(
            f"the seed sealed for proposal {proposal_id} does not hash to the seed hash its "
            "result committed: the node handed out another seed than it trained with; "
            "challenge the result"
        )
    return JobSecrets(seed=seed, validation_key=validation, asset_keys=assets)


def _hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidInputError(f"{name} must be 0x-hex, got {type(value).__name__}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidInputError(f"{name} is not valid hex") from None


def _asset_id(value: str) -> int:
    if not value.isdigit() or len(value) > 10:
        raise InvalidInputError(f"assetKeys has a key {value[:20]!r} that is not an asset id")
    return int(value)
