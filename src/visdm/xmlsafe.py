"""Hardened parsing of untrusted XML documents (asset manifests, training proposals).

Anyone can write a document that a compute node or a provider's tools will parse. XML parsers
can be made to read local files (XXE), fetch URLs (external DTDs) or expand a few hundred bytes
into gigabytes (billion laughs). Our documents need none of DTDs, entities or external
references, so :func:`parse_untrusted_xml`:

1. takes at most ``max_bytes`` of UTF-8 (no other encoding, so the byte-level checks below
   cannot be dodged with UTF-16);
2. refuses any ``<!DOCTYPE`` or ``<!ENTITY`` *before* parsing, naming the line;
3. parses with lxml's ``resolve_entities=False, no_network=True, load_dtd=False,
   huge_tree=False`` (so libxml2 refuses nesting past 256 elements and text nodes past
   10 MB) and refuses a DOCTYPE that still reached the tree;
4. validates against the document's XSD, naming line and element of the first errors.

:func:`canonical_xml` is the W3C Canonical XML 2.0 form (comments dropped, whitespace-only text
between elements stripped) that signatures cover.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

from lxml import etree

from visdm.errors import InvalidInputError

__all__ = ["canonical_xml", "load_schema", "parse_untrusted_xml", "validate_xml"]

_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([^\"']+)[\"']")


def load_schema(xsd: bytes) -> etree.XMLSchema:
    """An XSD shipped with the package, parsed without network or DTDs."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.fromstring(xsd, parser=parser))


def validate_xml(
    tree: etree._ElementTree | etree._Element,
    schema: etree.XMLSchema,
    *,
    what: str,
    schema_name: str,
    namespace: str,
    error: type[InvalidInputError] = InvalidInputError,
) -> None:
    """Raise ``error`` listing the first ten schema violations (line and element)."""
    if isinstance(tree, etree._Element):
        tree = etree.ElementTree(tree)
    if schema.validate(tree):
        return
    ns = "{" + namespace + "}"
    problems = [
        f"line {e.line}: {' '.join(e.message.replace(ns, '').split())}"
        for e in list(cast(Iterable[Any], schema.error_log))[:10]
    ]
    raise error(f"{what} does not match the {schema_name}: " + "; ".join(problems))


def parse_untrusted_xml(
    data: bytes,
    *,
    what: str,
    max_bytes: int,
    error: type[InvalidInputError] = InvalidInputError,
) -> etree._ElementTree:
    """Parse untrusted bytes safely (see the module docstring); schema validation is separate.

    ``what`` names the document in every error (``"manifest"``, ``"proposal"``).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise error(f"{what} must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise error(f"{what} is {len(raw)} bytes, over the {max_bytes}-byte limit: refused unread")
    declared = _DECLARED_ENCODING.match(raw)
    if declared and declared.group(1).decode("ascii", "replace").upper() not in ("UTF-8", "UTF8"):
        raise error(
            f"{what} declares encoding {declared.group(1).decode('ascii', 'replace')!r}; "
            "only UTF-8 is accepted"
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} is not valid UTF-8 (byte {exc.start}); only UTF-8 is accepted"
        ) from None
    forbidden = _FORBIDDEN.search(raw)
    if forbidden:
        line = raw.count(b"\n", 0, forbidden.start()) + 1
        kind = forbidden.group(1).decode().upper()
        raise error(
            f"{what} line {line}: <!{kind}> is refused — {what}s must not contain a "
            "DOCTYPE or entity declarations (they enable XXE file reads, external DTD fetches "
            "and billion-laughs expansion)"
        )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        tree = etree.ElementTree(etree.fromstring(raw, parser=parser))
    except etree.XMLSyntaxError as exc:
        # libxml2's messages may hold line breaks, and its depth refusal suggests lifting the
        # limit (XML_PARSE_HUGE), which is not the sender's to ask for
        detail = " ".join(str(exc).replace(", use XML_PARSE_HUGE option", "").split())
        raise error(f"{what} is not well-formed XML: {detail}") from None
    if getattr(tree.docinfo, "doctype", ""):
        raise error(f"{what} has a DOCTYPE, which is refused")
    return tree


def canonical_xml(root: etree._Element) -> bytes:
    """C14N 2.0 of ``root`` as UTF-8: what a document's hash and signature cover."""
    text: str = etree.canonicalize(root, with_comments=False, strip_text=True)
    return text.encode("utf-8")
