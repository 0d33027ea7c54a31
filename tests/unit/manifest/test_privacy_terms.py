"""A licence's privacy terms: defaults, checks, the ``<privacy>`` element and its signature."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.crypto import sign_typed
from visdm.errors import InvalidManifestError, SignatureError
from visdm.manifest import (
    MANIFEST_TYPES,
    AssetManifest,
    Licence,
    manifest_domain,
    manifest_hash,
    parse_manifest,
    sign_manifest,
    verify_manifest,
    write_manifest,
)

from ._fixtures import CHAIN_ID, REGISTRY, World, build

pytestmark = pytest.mark.unit

_PRIVACY = re.compile(r"\s*<privacy [^>]*/>")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build(tmp_path_factory.mktemp("asset"))


def _with(manifest: AssetManifest, **terms: object) -> AssetManifest:
    return replace(manifest, licence=replace(manifest.licence, **terms))


def _privacy_line(xml: str) -> str:
    found = _PRIVACY.search(xml)
    assert found is not None
    return found.group().strip()


# --- the model ------------------------------------------------------------------------------
def test_defaults_require_dp_with_epsilon_8_and_delta_below_one_over_n() -> None:
    licence = Licence(("training",))
    assert licence.dp_required is True
    assert licence.max_epsilon == 8.0
    assert licence.max_delta is None


def test_integers_become_floats_and_no_dp_may_still_cap_epsilon() -> None:
    licence = Licence(("training",), dp_required=False, max_epsilon=3, max_delta=1e-6)
    assert licence.max_epsilon == 3.0 and isinstance(licence.max_epsilon, float)
    assert licence.dp_required is False
    assert Licence(("training",), max_epsilon=100).max_epsilon == 100.0


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"max_epsilon": 0.0}, r"max_epsilon must be in \(0, 100\], got 0\.0"),
        ({"max_epsilon": -1}, r"max_epsilon must be in \(0, 100\], got -1\.0"),
        ({"max_epsilon": 100.5}, r"max_epsilon must be in \(0, 100\], got 100\.5"),
        ({"max_epsilon": math.nan}, "max_epsilon must be finite, got nan"),
        ({"max_epsilon": math.inf}, "max_epsilon must be finite, got inf"),
        ({"max_epsilon": 10**400}, "max_epsilon must be finite, got a huge integer"),
        ({"max_epsilon": "8"}, "max_epsilon must be a number, got '8'"),
        ({"max_epsilon": True}, "max_epsilon must be a number, got True"),
        ({"max_delta": 0.0}, r"max_delta must be in \(0, 0\.01\), got 0\.0"),
        ({"max_delta": 0.01}, r"max_delta must be in \(0, 0\.01\), got 0\.01"),
        ({"max_delta": -1e-6}, r"max_delta must be in \(0, 0\.01\)"),
        ({"max_delta": math.nan}, "max_delta must be finite, got nan"),
        ({"dp_required": "false"}, "dp_required must be true or false, got 'false'"),
        ({"dp_required": 0}, "dp_required must be true or false, got 0"),
    ],
)
def test_bad_terms_are_refused(terms: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidManifestError, match=message):
        Licence(("training",), **terms)  # type: ignore[arg-type]


def test_the_manifest_keeps_the_terms(world: World) -> None:
    manifest = _with(world.manifest, dp_required=False, max_epsilon=2.5, max_delta=1e-7)
    assert manifest.licence.dp_required is False
    assert (manifest.licence.max_epsilon, manifest.licence.max_delta) == (2.5, 1e-7)
    assert manifest.licence.purposes == world.manifest.licence.purposes


# --- XML ------------------------------------------------------------------------------------
def test_the_writer_always_writes_the_terms_defaults_included(world: World) -> None:
    xml = write_manifest(world.manifest).decode()
    assert _privacy_line(xml) == '<privacy dpRequired="true" maxEpsilon="8.0"/>'
    assert xml.index("<expires>") < xml.index("<privacy ") < xml.index("</licence>")
    parsed = parse_manifest(xml.encode())
    assert parsed.manifest == world.manifest
    assert parsed.manifest_hash == manifest_hash(world.manifest)


def test_round_trip_with_every_term_set(world: World) -> None:
    manifest = _with(world.manifest, dp_required=False, max_epsilon=0.1, max_delta=1e-06)
    xml = write_manifest(manifest).decode()
    assert _privacy_line(xml) == '<privacy dpRequired="false" maxEpsilon="0.1" maxDelta="1e-06"/>'
    parsed = parse_manifest(xml.encode())
    assert parsed.manifest == manifest
    assert parsed.manifest.licence.max_delta == 1e-06
    assert parsed.manifest_hash == manifest_hash(manifest) != manifest_hash(world.manifest)
    assert write_manifest(parsed.manifest) == xml.encode()


@settings(derandomize=True, max_examples=150, database=None, deadline=None)
@given(
    epsilon=st.floats(min_value=0.0, max_value=100.0, exclude_min=True),
    delta=st.none() | st.floats(min_value=0.0, max_value=0.01, exclude_min=True, exclude_max=True),
    dp_required=st.booleans(),
)
def test_every_float_reads_back_exactly(
    world: World, epsilon: float, delta: float | None, dp_required: bool
) -> None:
    manifest = _with(world.manifest, dp_required=dp_required, max_epsilon=epsilon, max_delta=delta)
    data = write_manifest(manifest)
    parsed = parse_manifest(data)
    assert parsed.manifest.licence == manifest.licence
    assert parsed.manifest_hash == manifest_hash(manifest)
    assert write_manifest(parsed.manifest) == data


def test_a_manifest_written_before_the_element_parses_with_the_defaults(world: World) -> None:
    manifest = _with(world.manifest, dp_required=False, max_epsilon=1.0)
    old = _PRIVACY.sub("", write_manifest(manifest).decode())
    assert "privacy" not in old
    licence = parse_manifest(old.encode()).manifest.licence
    assert (licence.dp_required, licence.max_epsilon, licence.max_delta) == (True, 8.0, None)
    assert licence.purposes == manifest.licence.purposes


def test_a_manifest_signed_before_the_element_still_verifies(world: World) -> None:
    # signed the way the owner's tools did before the element existed: over the document
    # without it; such a manifest must keep verifying and mean the strict defaults
    old = _PRIVACY.sub("", write_manifest(world.manifest).decode()).encode()
    digest = parse_manifest(old).manifest_hash
    signature = sign_typed(
        bytes(world.owner.key),
        manifest_domain(CHAIN_ID, REGISTRY),
        MANIFEST_TYPES,
        "AssetManifest",
        {"manifestHash": digest, "owner": world.manifest.owner},
    )
    signed = old.replace(
        b"</assetManifest>",
        f"<signature>0x{signature.hex()}</signature>\n".encode() + b"</assetManifest>",
    )
    parsed = verify_manifest(signed, chain_id=CHAIN_ID, registry=REGISTRY)
    assert parsed.manifest.licence.dp_required is True
    assert parsed.manifest_hash == digest


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            'dpRequired="yes" maxEpsilon="8.0"',
            r"attribute 'dpRequired': \[facet 'enumeration'\] The value 'yes'",
        ),
        (
            'dpRequired="1" maxEpsilon="8.0"',
            r"attribute 'dpRequired': \[facet 'enumeration'\] The value '1'",
        ),
        (
            'dpRequired=" true" maxEpsilon="8.0"',
            r"attribute 'dpRequired': \[facet 'enumeration'\] The value ' true'",
        ),
        ('maxEpsilon="8.0"', r"The attribute 'dpRequired' is required but missing"),
        ('dpRequired="true"', r"The attribute 'maxEpsilon' is required but missing"),
        ('dpRequired="true" maxEpsilon="NaN"', r"attribute 'maxEpsilon': \[facet 'pattern'\]"),
        ('dpRequired="true" maxEpsilon="INF"', r"attribute 'maxEpsilon': \[facet 'pattern'\]"),
        ('dpRequired="true" maxEpsilon="-1"', r"attribute 'maxEpsilon': \[facet 'pattern'\]"),
        ('dpRequired="true" maxEpsilon="0x8"', r"attribute 'maxEpsilon': \[facet 'pattern'\]"),
        ('dpRequired="true" maxEpsilon="1_0"', r"attribute 'maxEpsilon': \[facet 'pattern'\]"),
        ('dpRequired="true" maxEpsilon=" 8"', r"attribute 'maxEpsilon': \[facet 'pattern'\]"),
        (
            'dpRequired="true" maxEpsilon="8.0" maxDelta="' + "1" * 33 + '"',
            r"attribute 'maxDelta': \[facet 'maxLength'\]",
        ),
        (
            'dpRequired="true" maxEpsilon="8.0" minEpsilon="1"',
            r"The attribute 'minEpsilon' is not allowed",
        ),
    ],
)
def test_the_schema_refuses_malformed_terms(world: World, attributes: str, message: str) -> None:
    xml = write_manifest(world.manifest).decode()
    hostile = _PRIVACY.sub(f"\n    <privacy {attributes}/>", xml)
    with pytest.raises(InvalidManifestError, match=f"asset-manifest schema.*{message}"):
        parse_manifest(hostile.encode())


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ('maxEpsilon="0"', r"max_epsilon must be in \(0, 100\], got 0\.0"),
        ('maxEpsilon="100.1"', r"max_epsilon must be in \(0, 100\], got 100\.1"),
        ('maxEpsilon="1e999"', "max_epsilon must be finite, got inf"),
        ('maxEpsilon="8" maxDelta="0.5"', r"max_delta must be in \(0, 0\.01\), got 0\.5"),
        ('maxEpsilon="8" maxDelta="0"', r"max_delta must be in \(0, 0\.01\), got 0\.0"),
    ],
)
def test_out_of_range_terms_are_refused_with_their_line(
    world: World, attributes: str, message: str
) -> None:
    xml = write_manifest(world.manifest).decode()
    hostile = _PRIVACY.sub(f'\n    <privacy dpRequired="true" {attributes}/>', xml)
    line = hostile[: hostile.index("<privacy ")].count("\n") + 1
    with pytest.raises(InvalidManifestError, match=f"<privacy> on line {line}: licence {message}"):
        parse_manifest(hostile.encode())


def test_hand_written_numbers_parse_to_the_same_floats(world: World) -> None:
    xml = write_manifest(world.manifest).decode()
    hand = _PRIVACY.sub('\n    <privacy dpRequired="true" maxEpsilon="8" maxDelta="1E-6"/>', xml)
    licence = parse_manifest(hand.encode()).manifest.licence
    assert (licence.max_epsilon, licence.max_delta) == (8.0, 1e-6)


def test_the_privacy_element_appears_at_most_once(world: World) -> None:
    xml = write_manifest(world.manifest).decode()
    line = _privacy_line(xml)
    twice = xml.replace(line, line + "\n" + line)
    second = twice[: twice.rindex("<privacy ")].count("\n") + 1
    with pytest.raises(
        InvalidManifestError,
        match=f"line {second}: Element 'privacy': This element is not expected",
    ):
        parse_manifest(twice.encode())


# --- the signature covers the terms ---------------------------------------------------------
@pytest.mark.attack
def test_weakening_the_terms_of_a_signed_manifest_is_detected(world: World) -> None:
    """Anyone who relays a signed manifest (a storage node, a consumer's tools) flips
    ``dpRequired`` to train without DP, or raises ε: the owner's signature no longer verifies.
    Without the signature check, the parser would accept the weakened terms."""
    signed = sign_manifest(
        world.manifest, bytes(world.owner.key), chain_id=CHAIN_ID, registry=REGISTRY
    )
    assert verify_manifest(signed, chain_id=CHAIN_ID, registry=REGISTRY).manifest.licence == (
        world.manifest.licence
    )
    edits = [
        signed.replace(b'dpRequired="true"', b'dpRequired="false"'),
        signed.replace(b'maxEpsilon="8.0"', b'maxEpsilon="100.0"'),
        signed.replace(b'maxEpsilon="8.0"', b'maxEpsilon="8.0" maxDelta="0.009"'),
        _PRIVACY.sub("", signed.decode())
        .encode()
        .replace(b"</expires>", b'</expires><privacy dpRequired="false" maxEpsilon="8.0"/>'),
    ]
    for edited in edits:
        assert edited != signed
        weakened = parse_manifest(edited)  # the defence off: only parsing, no signature check
        assert weakened.manifest.licence != world.manifest.licence
        with pytest.raises(SignatureError, match="signature is not from"):
            verify_manifest(edited, chain_id=CHAIN_ID, registry=REGISTRY)


def test_removing_the_terms_from_a_signed_manifest_breaks_the_signature(world: World) -> None:
    """A document without ``<privacy>`` reads as the defaults, so the element's presence is
    signed too: terms the owner wrote cannot be silently replaced by the defaults."""
    loose = _with(world.manifest, dp_required=False, max_epsilon=50.0)
    signed = sign_manifest(loose, bytes(world.owner.key), chain_id=CHAIN_ID, registry=REGISTRY)
    stripped = _PRIVACY.sub("", signed.decode()).encode()
    assert parse_manifest(stripped).manifest.licence.dp_required is True
    with pytest.raises(SignatureError, match="signature is not from"):
        verify_manifest(stripped, chain_id=CHAIN_ID, registry=REGISTRY)
