"""Asset manifests: the signed, public XML description of an asset (design 3.2 step 4).

A manifest names the owner, every sample's CID, index and label, the data key wrapped for the
owner and each allowed compute node, where the data may be processed (regions, nodes), the
licence (purposes, allowed and denied consumers, expiry, privacy terms), the creation time and
the format version. Its schema, ``asset-manifest.xsd``, ships in this package.

* :class:`AssetManifest` — the values, checked for meaning on construction;
  :meth:`AssetManifest.from_prepared` builds one from :func:`visdm.ingest.prepare_asset`;
* :func:`write_manifest` / :func:`parse_manifest` — XML out, and XML in through a hardened
  parser (no DOCTYPE, no entities, no network, size-limited, XSD-validated);
* :func:`manifest_hash` — keccak256 of the C14N 2.0 form without the signature: the
  ``manifestHash`` registered on chain;
* :func:`sign_manifest` / :func:`verify_manifest` — the owner's EIP-712 signature, bound to
  the chain id and the AssetRegistry address, embedded as the manifest's last element;
* :func:`privacy_refusal` — whether a training spec's DP budget satisfies a licence's privacy
  terms (DP required, maximum ε and δ), torch-free, for the proposal step and the compute node.
"""

from ._model import (
    FORMAT_VERSION,
    MAX_LICENCE_DELTA,
    MAX_LICENCE_EPSILON,
    AssetManifest,
    Licence,
    Location,
    ManifestKey,
    ManifestSample,
)
from ._privacy import privacy_refusal
from ._sign import (
    MANIFEST_EIP712_NAME,
    MANIFEST_EIP712_VERSION,
    MANIFEST_TYPES,
    manifest_domain,
    sign_manifest,
    verify_manifest,
)
from ._xml import (
    MANIFEST_NAMESPACE,
    MAX_MANIFEST_BYTES,
    ParsedManifest,
    canonical_form,
    manifest_hash,
    parse_manifest,
    write_manifest,
)

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_EIP712_NAME",
    "MANIFEST_EIP712_VERSION",
    "MANIFEST_NAMESPACE",
    "MANIFEST_TYPES",
    "MAX_LICENCE_DELTA",
    "MAX_LICENCE_EPSILON",
    "MAX_MANIFEST_BYTES",
    "AssetManifest",
    "Licence",
    "Location",
    "ManifestKey",
    "ManifestSample",
    "ParsedManifest",
    "canonical_form",
    "manifest_domain",
    "manifest_hash",
    "parse_manifest",
    "privacy_refusal",
    "sign_manifest",
    "verify_manifest",
    "write_manifest",
]
