"""Manifest XML: a writer, a hardened parser, and the canonical form that is hashed.

**Why the parser is strict.** A compute node parses manifests written by anyone. XML parsers
can be made to read local files (XXE: ``<!ENTITY x SYSTEM "file:///etc/passwd">``), fetch URLs
(external DTDs), or expand a few hundred bytes into gigabytes (billion laughs). A manifest
needs none of DTDs, entities or external references, so:

1. the input must be at most ``max_bytes`` (default 32 MiB) of UTF-8 (no other encoding, so
   the byte-level checks below cannot be dodged with UTF-16);
2. any ``<!DOCTYPE`` or ``<!ENTITY`` is refused *before* parsing, with an error naming it;
3. the parser is lxml's with ``resolve_entities=False, no_network=True, load_dtd=False,
   huge_tree=False`` (and DTD validation off), and a DOCTYPE that still reached the tree is
   refused again;
4. the document is validated against ``asset-manifest.xsd`` (shipped in this package); errors
   name the line and the element or attribute;
5. the values are then checked for meaning by :class:`~visdm.manifest.AssetManifest`.

**Canonical form and hash.** ``manifest_hash = keccak256(C14N2(doc without <signature>))``:
the document's W3C Canonical XML 2.0 serialisation (lxml's ``canonicalize``, comments
dropped, whitespace-only text between elements stripped), UTF-8, computed on the parsed tree
after removing the ``<signature>`` element. So re-indenting, reordering attributes, changing
quote style or adding comments keeps the hash; changing any value, element or namespace
prefix changes it. The signature itself is embedded in the same document as the last element,
so the manifest stays one blob in storage and one CID in the ``AssetRegistered`` event.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any, cast

from eth_utils.crypto import keccak
from lxml import etree

from visdm.errors import InvalidManifestError
from visdm.types import Address, Cid
from visdm.xmlsafe import canonical_xml, load_schema, parse_untrusted_xml, validate_xml

from ._model import (
    FORMAT_VERSION,
    AssetManifest,
    Licence,
    Location,
    ManifestKey,
    ManifestSample,
)

__all__ = [
    "MANIFEST_NAMESPACE",
    "MAX_MANIFEST_BYTES",
    "ParsedManifest",
    "canonical_form",
    "manifest_hash",
    "parse_manifest",
    "write_manifest",
]

#: XML namespace of format version 1
MANIFEST_NAMESPACE = "urn:visdm:asset-manifest:1"
#: default size limit of a manifest accepted by :func:`parse_manifest`
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
_NS = f"{{{MANIFEST_NAMESPACE}}}"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_SIGNATURE_BYTES = 65


# --- writing --------------------------------------------------------------------------------
def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _NS + tag, attrib=attrs)
    if text is not None:
        element.text = text
    return element


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _build(manifest: AssetManifest, signature: bytes | None) -> etree._Element:
    root = etree.Element(
        _NS + "assetManifest",
        nsmap=cast(Any, {None: MANIFEST_NAMESPACE}),
        version=str(manifest.version),
    )
    _sub(root, "owner", manifest.owner)
    _sub(root, "createdAt", manifest.created_at.strftime(_TIME))
    samples = _sub(
        root, "samples", count=str(len(manifest.samples)), root="0x" + manifest.samples_root.hex()
    )
    for sample in manifest.samples:
        _sub(samples, "sample", index=str(sample.index), cid=sample.cid, label=sample.label)
    keys = _sub(root, "keys")
    for key in manifest.keys:
        _sub(
            keys,
            "wrappedKey",
            _b64(key.wrapped),
            role=key.role,
            recipient=key.recipient,
            x25519=_b64(key.x25519_public),
        )
    location = _sub(root, "location")
    for region in manifest.location.regions:
        _sub(location, "region", region)
    for node in manifest.location.compute_nodes:
        _sub(location, "computeNode", node)
    licence = _sub(root, "licence")
    for purpose in manifest.licence.purposes:
        _sub(licence, "purpose", purpose)
    for consumer in manifest.licence.allowed_consumers:
        _sub(licence, "allowedConsumer", consumer)
    for consumer in manifest.licence.denied_consumers:
        _sub(licence, "deniedConsumer", consumer)
    if manifest.licence.expires is not None:
        _sub(licence, "expires", manifest.licence.expires.strftime(_TIME))
    # always written, defaults included, so the signed hash covers the privacy terms
    privacy = _sub(
        licence,
        "privacy",
        dpRequired="true" if manifest.licence.dp_required else "false",
        maxEpsilon=repr(manifest.licence.max_epsilon),
    )
    if manifest.licence.max_delta is not None:
        privacy.set("maxDelta", repr(manifest.licence.max_delta))
    if signature is not None:
        if not isinstance(signature, bytes) or len(signature) != _SIGNATURE_BYTES:
            raise InvalidManifestError("signature must be 65 bytes (r || s || v)")
        _sub(root, "signature", "0x" + signature.hex())
    return root


def write_manifest(manifest: AssetManifest, *, signature: bytes | None = None) -> bytes:
    """The manifest as UTF-8 XML (indented), with ``signature`` embedded when given.

    The output always validates against the schema; it is checked before it is returned.
    """
    root = _build(manifest, signature)
    _validate_schema(etree.ElementTree(root))
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def canonical_form(manifest: AssetManifest) -> bytes:
    """The bytes :func:`manifest_hash` hashes (C14N 2.0 of the unsigned document)."""
    return _canonical(_build(manifest, None))


def manifest_hash(manifest: AssetManifest) -> bytes:
    """``keccak256`` of :func:`canonical_form`: the ``manifestHash`` registered on chain."""
    return bytes(keccak(canonical_form(manifest)))


def _canonical(root: etree._Element) -> bytes:
    return canonical_xml(root)


# --- parsing --------------------------------------------------------------------------------
class ParsedManifest:
    """A manifest read from XML: the values, the embedded signature (if any) and the hash of
    the canonical form *of the document as received* (what the signature must cover)."""

    __slots__ = ("canonical", "manifest", "manifest_hash", "signature")

    def __init__(self, manifest: AssetManifest, signature: bytes | None, canonical: bytes) -> None:
        self.manifest = manifest
        self.signature = signature
        self.canonical = canonical
        self.manifest_hash = bytes(keccak(canonical))

    def __repr__(self) -> str:
        return (
            f"ParsedManifest(owner={self.manifest.owner}, samples={len(self.manifest.samples)}, "
            f"manifest_hash=0x{self.manifest_hash.hex()}, signed={self.signature is not None})"
        )


def parse_manifest(data: bytes, *, max_bytes: int = MAX_MANIFEST_BYTES) -> ParsedManifest:
    """Parse untrusted manifest bytes safely (see :mod:`visdm.xmlsafe`).

    Raises :class:`~visdm.errors.InvalidManifestError` naming the problem: too large, not
    UTF-8, a DOCTYPE or entity declaration, malformed XML (with line), a schema violation
    (with line and element), or a rule of :class:`~visdm.manifest.AssetManifest`.
    """
    tree = parse_untrusted_xml(
        data, what="manifest", max_bytes=max_bytes, error=InvalidManifestError
    )
    _validate_schema(tree)
    root = tree.getroot()
    signature_element = root.find(_NS + "signature")
    signature = None
    if signature_element is not None:
        signature = bytes.fromhex((signature_element.text or "")[2:])
        root.remove(signature_element)
    manifest = _read(root)
    return ParsedManifest(manifest, signature, _canonical(root))


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return load_schema(
        resources.files("visdm.manifest").joinpath("asset-manifest.xsd").read_bytes()
    )


def _validate_schema(tree: etree._ElementTree) -> None:
    validate_xml(
        tree,
        _schema(),
        what="manifest",
        schema_name=f"asset-manifest schema (version {FORMAT_VERSION})",
        namespace=MANIFEST_NAMESPACE,
        error=InvalidManifestError,
    )


_EPOCH_YEAR = 1970


def _text(element: etree._Element | None) -> str:
    return "" if element is None or element.text is None else element.text.strip()


def _time(text: str) -> datetime:
    # the schema's xs:dateTime also takes 24:00:00, which Python does not, and years before
    # 1970, which no manifest was written in (and which strftime would not write back)
    try:
        when = datetime.strptime(text, _TIME).replace(tzinfo=UTC)
    except ValueError:
        when = None
    if when is None or when.year < _EPOCH_YEAR:
        raise InvalidManifestError(
            f"manifest time {text!r} is not a UTC time ViSDM writes (YYYY-MM-DDThh:mm:ssZ, "
            "hours 00-23, from 1970): the manifest was not written by visdm"
        )
    return when


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):  # the schema already checked; belt and braces
        raise InvalidManifestError(f"{what} is not base64") from None


def _privacy_terms(element: etree._Element | None) -> dict[str, Any]:
    """The licence's privacy terms; none written (manifests older than the element): defaults.

    The schema has already limited the attributes to ``true``/``false`` and plain decimal
    numbers, so ``float`` sees neither ``nan`` nor ``inf`` spelled out; an overflow such as
    ``1e999`` and values out of range are refused by :class:`Licence`.
    """
    if element is None:
        return {}
    terms: dict[str, Any] = {
        "dp_required": element.get("dpRequired") == "true",
        "max_epsilon": float(element.get("maxEpsilon", "")),
    }
    max_delta = element.get("maxDelta")
    if max_delta is not None:
        terms["max_delta"] = float(max_delta)
    return terms


def _read(root: etree._Element) -> AssetManifest:
    ns = _NS
    samples_el = root.find(ns + "samples")
    if samples_el is None:  # the schema requires it; checked again rather than assumed
        raise InvalidManifestError("manifest has no <samples> element")
    count = int(samples_el.get("count", "0"))
    samples = tuple(
        ManifestSample(int(s.get("index", "-1")), Cid(s.get("cid", "")), s.get("label", ""))
        for s in samples_el.iter(ns + "sample")
    )
    if count != len(samples):
        raise InvalidManifestError(
            f"samples count says {count} but {len(samples)} sample elements follow "
            f"(line {samples_el.sourceline})"
        )
    keys = tuple(
        ManifestKey(
            role=k.get("role", ""),
            recipient=Address(k.get("recipient", "")),
            x25519_public=_unb64(k.get("x25519", ""), "x25519 key"),
            wrapped=_unb64(k.text or "", "wrapped key"),
        )
        for k in root.iter(ns + "wrappedKey")
    )
    location = Location(
        tuple(_text(r) for r in root.iter(ns + "region")),
        tuple(Address(_text(n)) for n in root.iter(ns + "computeNode")),
    )
    expires = root.find(f"{ns}licence/{ns}expires")
    privacy = root.find(f"{ns}licence/{ns}privacy")
    try:
        licence = Licence(
            purposes=tuple(_text(p) for p in root.iter(ns + "purpose")),
            allowed_consumers=tuple(Address(_text(a)) for a in root.iter(ns + "allowedConsumer")),
            denied_consumers=tuple(Address(_text(d)) for d in root.iter(ns + "deniedConsumer")),
            expires=None if expires is None else _time(_text(expires)),
            **_privacy_terms(privacy),
        )
    except InvalidManifestError as exc:  # only the privacy terms are checked here
        line = "?" if privacy is None else privacy.sourceline
        raise InvalidManifestError(f"<privacy> on line {line}: {exc}") from None
    return AssetManifest(
        owner=Address(_text(root.find(ns + "owner"))),
        created_at=_time(_text(root.find(ns + "createdAt"))),
        samples=samples,
        samples_root=bytes.fromhex(samples_el.get("root", "0x")[2:]),
        keys=keys,
        location=location,
        licence=licence,
        version=int(root.get("version", "0")),
    )
