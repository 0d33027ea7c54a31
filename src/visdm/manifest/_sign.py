"""EIP-712 signatures over a manifest's hash, bound to one chain and one AssetRegistry.

The owner signs the typed struct ``AssetManifest(bytes32 manifestHash, address owner)`` in
the domain ``{name: "ViSDM AssetRegistry", version: "1", chainId, verifyingContract:
AssetRegistry address}``. Binding the chain id and the registry address means a manifest
signed for a test chain or for another deployment does not verify here; binding ``owner``
means the signature also states whose asset it is (an attacker cannot re-sign someone else's
manifest hash as their own without the owner field saying so). The signature is embedded in
the manifest as its last element (see :mod:`._xml`); ``manifestHash`` excludes it.
"""

from __future__ import annotations

from eth_utils.address import is_address, to_checksum_address

from visdm.crypto import Eip712Domain, recover_typed, sign_typed, verify_typed
from visdm.errors import InvalidInputError, SignatureError
from visdm.types import Address

from ._model import AssetManifest
from ._xml import ParsedManifest, manifest_hash, parse_manifest, write_manifest

__all__ = [
    "MANIFEST_EIP712_NAME",
    "MANIFEST_EIP712_VERSION",
    "MANIFEST_TYPES",
    "manifest_domain",
    "sign_manifest",
    "verify_manifest",
]

#: EIP-712 domain name of manifest signatures
MANIFEST_EIP712_NAME = "ViSDM AssetRegistry"
#: EIP-712 domain version of manifest signatures
MANIFEST_EIP712_VERSION = "1"
#: the typed struct that is signed
MANIFEST_TYPES = {
    "AssetManifest": [
        {"name": "manifestHash", "type": "bytes32"},
        {"name": "owner", "type": "address"},
    ]
}


def manifest_domain(chain_id: int, registry: str) -> Eip712Domain:
    """The domain of manifest signatures for the AssetRegistry at ``registry`` on ``chain_id``."""
    if not isinstance(registry, str) or not is_address(registry):
        raise InvalidInputError(f"AssetRegistry address {registry!r} is not an address")
    return Eip712Domain(
        name=MANIFEST_EIP712_NAME,
        version=MANIFEST_EIP712_VERSION,
        chain_id=chain_id,
        verifying_contract=Address(to_checksum_address(registry)),
    )


def _message(digest: bytes, owner: str) -> dict[str, object]:
    return {"manifestHash": digest, "owner": owner}


def sign_manifest(
    manifest: AssetManifest, private_key: bytes, *, chain_id: int, registry: str
) -> bytes:
    """Sign ``manifest`` as its owner and return the signed XML (signature embedded).

    Refuses a key that is not the owner's: a manifest signed by anyone else would never
    verify, so it is better to fail here than on the compute node.
    """
    domain = manifest_domain(chain_id, registry)
    digest = manifest_hash(manifest)
    signature = sign_typed(
        private_key, domain, MANIFEST_TYPES, "AssetManifest", _message(digest, manifest.owner)
    )
    signer = recover_typed(
        signature, domain, MANIFEST_TYPES, "AssetManifest", _message(digest, manifest.owner)
    )
    if signer != manifest.owner:
        raise SignatureError(
            f"the key given belongs to {signer}, not to the manifest's owner {manifest.owner}"
        )
    return write_manifest(manifest, signature=signature)


def verify_manifest(
    data: bytes | ParsedManifest, *, chain_id: int, registry: str
) -> ParsedManifest:
    """Parse (if needed) and check that the manifest's owner signed exactly this document for
    this chain and registry; returns the parsed manifest.

    Raises :class:`~visdm.errors.InvalidManifestError` for a bad document and
    :class:`~visdm.errors.SignatureError` when it is unsigned, signed by anyone else, signed
    for another chain or registry, or edited after signing.
    """
    parsed = data if isinstance(data, ParsedManifest) else parse_manifest(data)
    if parsed.signature is None:
        raise SignatureError(
            f"manifest of {parsed.manifest.owner} is not signed: it has no <signature>"
        )
    owner = parsed.manifest.owner
    verify_typed(
        parsed.signature,
        manifest_domain(chain_id, registry),
        MANIFEST_TYPES,
        "AssetManifest",
        _message(parsed.manifest_hash, owner),
        expected_signer=owner,
    )
    return parsed
