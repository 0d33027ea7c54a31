"""Manifest XML: round trip, canonical hash, hardened parsing and the schema's refusals."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from visdm.errors import InvalidManifestError
from visdm.manifest import (
    AssetManifest,
    Licence,
    Location,
    ManifestSample,
    canonical_form,
    manifest_hash,
    parse_manifest,
    write_manifest,
)
from visdm.types import Address, Cid

from ._fixtures import World, account, build

pytestmark = pytest.mark.unit


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


@pytest.fixture
def xml(world: World) -> str:
    return write_manifest(world.manifest).decode()


def test_round_trip(world: World) -> None:
    data = write_manifest(world.manifest)
    parsed = parse_manifest(data)
    assert parsed.manifest == world.manifest
    assert parsed.signature is None
    assert parsed.manifest_hash == manifest_hash(world.manifest)
    assert parsed.canonical == canonical_form(world.manifest)
    assert parsed.manifest.location.regions == ("eu-west", "local")
    assert parsed.manifest.licence.expires == datetime(2026, 3, 1, tzinfo=UTC)
    assert [s.sample_id for s in parsed.manifest.samples] == [
        s.sample_id for s in world.asset.samples
    ]
    assert "ParsedManifest(owner=0x" in repr(parsed)


def test_hash_ignores_formatting_but_not_content(xml: str) -> None:
    original = parse_manifest(xml.encode()).manifest_hash
    reformatted = re.sub(r">\s+<", "><", xml)  # no indentation
    reformatted = reformatted.replace('version="1"', "version='1'")  # quote style
    reformatted = reformatted.replace("<keys>", "<!-- a comment --><keys>")
    reordered = re.sub(  # attribute order
        r'<sample index="(\d+)" cid="(\w+)" label="(\w+)"/>',
        r'<sample label="\3" cid="\2" index="\1"/>',
        reformatted,
    )
    assert parse_manifest(reordered.encode()).manifest_hash == original
    relabelled = xml.replace('label="Bag"', 'label="Coat"', 1)
    assert parse_manifest(relabelled.encode()).manifest_hash != original


# --- hostile XML ----------------------------------------------------------------------------
def test_xxe_file_entity_is_refused(xml: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    hostile = xml.replace(
        "<assetManifest",
        f'<!DOCTYPE assetManifest [<!ENTITY xxe SYSTEM "file://{secret}">]>\n<assetManifest',
        1,
    ).replace('label="Bag"', 'label="&xxe;"', 1)
    with pytest.raises(InvalidManifestError, match=r"line 2: <!DOCTYPE> is refused.*XXE") as info:
        parse_manifest(hostile.encode())
    assert "TOP SECRET" not in str(info.value)


def test_billion_laughs_is_refused_quickly() -> None:
    lol = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{lol}]><lolz>&lol9;</lolz>'
    start = time.perf_counter()
    with pytest.raises(InvalidManifestError, match="<!DOCTYPE> is refused"):
        parse_manifest(bomb.encode())
    assert time.perf_counter() - start < 1.0


def test_external_dtd_is_refused(xml: str) -> None:
    hostile = xml.replace(
        "<assetManifest",
        '<!DOCTYPE assetManifest SYSTEM "http://attacker.invalid/x.dtd">\n<assetManifest',
        1,
    )
    with pytest.raises(InvalidManifestError, match="DOCTYPE> is refused"):
        parse_manifest(hostile.encode())


def test_entity_declaration_without_doctype_keyword_is_refused(xml: str) -> None:
    hostile = xml.replace("<keys>", '<!ENTITY x "y"><keys>', 1)
    with pytest.raises(InvalidManifestError, match="<!ENTITY> is refused"):
        parse_manifest(hostile.encode())


def test_a_doctype_hidden_in_utf16_is_refused(xml: str) -> None:
    hostile = xml.replace("encoding='UTF-8'", "encoding='UTF-16'").replace(
        "<assetManifest", '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><assetManifest'
    )
    with pytest.raises(InvalidManifestError, match=r"not valid UTF-8 \(byte 0\)"):
        parse_manifest(hostile.encode("utf-16"))
    with pytest.raises(InvalidManifestError, match="declares encoding 'UTF-16'"):
        parse_manifest(hostile.encode("utf-8"))
    with pytest.raises(InvalidManifestError, match="not valid UTF-8"):
        parse_manifest(xml.replace("encoding='UTF-8'", "").encode("utf-16"))


def test_undefined_entity_is_not_well_formed(xml: str) -> None:
    hostile = xml.replace('label="Bag"', 'label="&xxe;"', 1)
    with pytest.raises(InvalidManifestError, match="not well-formed XML: Entity 'xxe' not defined"):
        parse_manifest(hostile.encode())


def test_oversized_input_is_refused_unread(xml: str) -> None:
    with pytest.raises(InvalidManifestError, match=r"is \d+ bytes, over the 1000-byte limit"):
        parse_manifest(xml.encode(), max_bytes=1000)
    padded = xml.encode() + b" " * (32 * 1024 * 1024)
    with pytest.raises(InvalidManifestError, match="over the 33554432-byte limit"):
        parse_manifest(padded)


def test_not_bytes_and_not_xml() -> None:
    with pytest.raises(InvalidManifestError, match="must be bytes, got str"):
        parse_manifest("<x/>")  # type: ignore[arg-type]
    with pytest.raises(InvalidManifestError, match="not well-formed XML"):
        parse_manifest(b"<assetManifest><owner>")


# --- schema violations ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda x: re.sub(r"<licence>.*</licence>", "", x, flags=re.S),
            r"line 2: Element 'assetManifest': Missing child element\(s\)\. "
            r"Expected is \( licence \)",
        ),
        (
            lambda x: re.sub(r"<owner>0x[0-9a-fA-F]+</owner>", "<owner>0x1234</owner>", x),
            r"line 3: Element 'owner': \[facet 'pattern'\] The value '0x1234'",
        ),
        (
            lambda x: re.sub(r'cid="b\w+"', 'cid="QmNotACidv1"', x, count=1),
            r"line 6: Element 'sample', attribute 'cid': \[facet 'pattern'\] "
            r"The value 'QmNotACidv1'",
        ),
        (
            lambda x: x.replace('index="1"', 'index="-1"'),
            r"line 7: Element 'sample', attribute 'index': '-1' is not a valid value",
        ),
        (
            lambda x: x.replace('<samples count="4"', '<samples count="4" extra="1"'),
            r"line 5: Element 'samples', attribute 'extra': The attribute 'extra' is not allowed",
        ),
        (
            lambda x: x.replace('version="1"', 'version="2"'),
            r"line 2: Element 'assetManifest', attribute 'version'.*fixed value",
        ),
        (
            lambda x: x.replace("<purpose>training</purpose>", "<purpose>Training!</purpose>"),
            r"Element 'purpose': \[facet 'pattern'\] The value 'Training!'",
        ),
        (
            lambda x: x.replace('label="Bag"', 'label=" Bag"', 1),
            r"attribute 'label': \[facet 'pattern'\] The value ' Bag'",
        ),
        (
            lambda x: x.replace("2025-03-01T12:00:00Z", "2025-03-01T12:00:00+02:00"),
            r"Element 'createdAt': \[facet 'pattern'\]",
        ),
        (
            lambda x: re.sub(r'x25519="[^"]+"', 'x25519="AAAA"', x, count=1),
            r"attribute 'x25519': \[facet 'length'\]",
        ),
        (
            lambda x: x.replace("urn:visdm:asset-manifest:1", "urn:other"),
            r"No matching global declaration available for the validation root",
        ),
        (
            lambda x: re.sub(r'index="3"', 'index="2"', x),
            r"Duplicate key-sequence \['2'\] in unique identity-constraint 'uniqueSampleIndex'",
        ),
    ],
)
def test_schema_violations_name_the_line_and_element(xml: str, edit: object, message: str) -> None:
    hostile = edit(xml)  # type: ignore[operator]
    assert hostile != xml
    with pytest.raises(
        InvalidManifestError, match=f"does not match the asset-manifest schema.*{message}"
    ):
        parse_manifest(hostile.encode())


# --- meaning --------------------------------------------------------------------------------
def test_rules_beyond_the_schema(xml: str, world: World) -> None:
    owner = world.manifest.owner
    cases = {
        xml.replace(owner, owner[:2] + owner[2:].swapcase(), 1): "wrong EIP-55 checksum",
        xml.replace('count="4"', 'count="5"'): "samples count says 5 but 4 sample elements",
        re.sub(r'root="0x[0-9a-f]+"', 'root="0x' + "00" * 32 + '"', xml): (
            "samples root 0x00.* does not match the samples"
        ),
        xml.replace('index="0"', 'index="9"'): "sample at position 0 has index 9",
        re.sub(r"<computeNode>[^<]+</computeNode>", "", xml, count=1): (
            r"node keys must match the allowed compute nodes: no key for none, key for a node "
            r"not allowed \['0x"
        ),
    }
    for hostile, message in cases.items():
        assert hostile != xml
        with pytest.raises(InvalidManifestError, match=message):
            parse_manifest(hostile.encode())


def test_the_model_refuses_what_the_parser_refuses(world: World) -> None:
    m = world.manifest
    stranger = account("stranger").address
    with pytest.raises(
        InvalidManifestError, match=f"consumer {stranger} is both allowed and denied"
    ):
        replace(m, licence=Licence(("training",), (stranger,), (stranger,)))
    with pytest.raises(InvalidManifestError, match=r"licence expires .* before it was created"):
        replace(m, licence=Licence(("training",), expires=datetime(2020, 1, 1, tzinfo=UTC)))
    with pytest.raises(InvalidManifestError, match="location lists no region"):
        replace(m, location=Location((), m.location.compute_nodes))
    with pytest.raises(InvalidManifestError, match="region local is listed twice"):
        replace(m, location=Location(("local", "local"), m.location.compute_nodes))
    with pytest.raises(InvalidManifestError, match="licence lists no purpose"):
        replace(m, licence=Licence(()))
    with pytest.raises(InvalidManifestError, match="exactly one owner key"):
        replace(m, owner=Address(stranger))
    with pytest.raises(InvalidManifestError, match="manifest has no samples"):
        replace(m, samples=())
    with pytest.raises(InvalidManifestError, match="timezone-aware"):
        replace(m, created_at=datetime(2025, 1, 1))
    with pytest.raises(InvalidManifestError, match="whole seconds"):
        replace(m, created_at=datetime(2025, 1, 1, 0, 0, 0, 5, tzinfo=UTC))
    with pytest.raises(InvalidManifestError, match="format version 2 is not supported"):
        replace(m, version=2)
    bad_cid = (ManifestSample(0, Cid("bafk-not-a-cid"), "x"), *m.samples[1:])
    with pytest.raises(InvalidManifestError, match="sample 0: 'bafk-not-a-cid' is not a CID"):
        replace(m, samples=bad_cid)
    twice = (m.samples[0], replace(m.samples[1], cid=m.samples[0].cid), *m.samples[2:])
    with pytest.raises(InvalidManifestError, match=r"sample CID .* is listed twice"):
        replace(m, samples=twice)
    with pytest.raises(InvalidManifestError, match="no wrapped key for"):
        m.key_for(stranger)
    assert m.key_for(world.nodes[0].address).role == "node"
    assert isinstance(m, AssetManifest)
