"""Fuzzing the XML documents peers publish: asset manifests (a provider's, read by nodes,
consumers and the index) and training proposals (a consumer's, read by nodes and providers).
Each starts from a valid, signed document; mutations replace element text and attribute
values, nest elements deeply, declare entities, and damage the bytes."""

from __future__ import annotations

import re
import tempfile
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ._harness import fuzz
from ._strategies import HOSTILE_NUMBER, HOSTILE_TEXT, mangled, token_spliced
from ._targets import manifest_xml, proposal_xml

pytestmark = pytest.mark.unit

_TEXT = re.compile(rb">([^<>]+)<")
_ATTRIBUTE = re.compile(rb'(\w+)="([^"]*)"')


@cache
def manifest_seed() -> bytes:
    from tests.unit.manifest._fixtures import build
    from visdm.manifest import sign_manifest

    world = build(Path(tempfile.mkdtemp(prefix="visdm-fuzz-xml-")), n=2)
    return sign_manifest(
        world.manifest, bytes(world.owner.key), chain_id=31337, registry="0x" + "ab" * 20
    )


@cache
def proposal_seed() -> bytes:
    from tests.unit.proposals.test_document import signed

    return signed()


def _xml_value(value: object) -> bytes:
    return escape(str(value)).encode("utf-8", "surrogatepass")


@st.composite
def edited(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed with one element's text or one attribute's value replaced, escaped so that
    the document stays well-formed and reaches the schema and the rules."""
    texts = list(_TEXT.finditer(seed))
    attributes = list(_ATTRIBUTE.finditer(seed))
    value = draw(st.one_of(HOSTILE_TEXT, HOSTILE_NUMBER.map(str)))
    if draw(st.booleans()) and texts:
        found = draw(st.sampled_from(texts))
        start, end = found.span(1)
        return seed[:start] + _xml_value(value) + seed[end:]
    found = draw(st.sampled_from(attributes))
    start, end = found.span(0)
    name = found.group(1)
    return (
        seed[:start]
        + name
        + b"="
        + quoteattr(str(value)).encode("utf-8", "surrogatepass")
        + seed[end:]
    )


@st.composite
def deepened(draw: st.DrawFn, seed: bytes) -> bytes:
    """An element nested ``depth`` times inside the root: past libxml2's 256, or within it."""
    depth = draw(st.sampled_from([3, 255, 257, 10_000]))
    at = seed.index(b">", seed.index(b"<", seed.index(b"?>") + 2 if b"?>" in seed else 0)) + 1
    return seed[:at] + b"<x>" * depth + b"</x>" * depth + seed[at:]


def documents(seed: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        edited(seed),
        edited(seed).flatmap(lambda d: mangled(d, max_edits=2)),
        deepened(seed),
        st.just(seed.decode("utf-8", "surrogateescape")).flatmap(token_spliced),
        mangled(seed, max_edits=4),
    )


@fuzz(150)
@given(st.data())
def test_manifests(data: st.DataObject) -> None:
    manifest_xml(data.draw(documents(manifest_seed())))


@fuzz(150)
@given(st.data())
def test_proposals(data: st.DataObject) -> None:
    proposal_xml(data.draw(documents(proposal_seed())))


@fuzz(60)
@given(
    st.binary(max_size=200).map(lambda b: b"<?xml version='1.0'?>" + b) | st.binary(max_size=200)
)
def test_random_bytes_as_either_document(data: bytes) -> None:
    manifest_xml(data)
    proposal_xml(data)


def test_a_time_the_schema_allows_but_no_manifest_holds_is_refused_in_one_line() -> None:
    """xs:dateTime takes 24:00:00, and ``datetime.strptime`` raised a bare ValueError on it."""
    from visdm.errors import InvalidManifestError
    from visdm.manifest import parse_manifest

    seed = manifest_seed()
    assert seed.count(b"2025-03-01T12:00:00Z") == 1
    for time in (b"2025-03-01T24:00:00Z", b"0025-03-01T12:00:00Z"):  # and one strftime drops
        with pytest.raises(InvalidManifestError, match=f"{time.decode()!r} is not a UTC time"):
            parse_manifest(seed.replace(b"2025-03-01T12:00:00Z", time))
