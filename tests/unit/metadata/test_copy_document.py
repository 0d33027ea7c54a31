"""The metadata document's copy fields: what a node writes, what a reader accepts, and the
one-line refusal of every malformed value. Documents written before copy hashes stay valid."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from visdm.datasets import load_fashion_mnist
from visdm.errors import InvalidInputError, VisdmError
from visdm.metadata import (
    COPY_HASH_VERSION,
    DEFAULT_COPY_KEY_RADIUS,
    DEFAULT_COPY_RADIUS,
    METADATA_FORMAT,
    AssetMetadata,
    CopyIndex,
    CopyLinking,
    DuplicateLink,
    SampleMetadata,
    copy_hash_to_hex,
    describe_images,
    read_copy_hash,
    read_copy_linking,
    read_link_transform,
)
from visdm.types import SampleId

pytestmark = pytest.mark.unit

IMAGES, _ = load_fashion_mnist("train", limit=3)
ONE, TWO = SampleId(b"\x01" * 32), SampleId(b"\x02" * 32)


def _document(*, with_copies: bool) -> AssetMetadata:
    original = Image.fromarray(IMAGES[0])
    described = describe_images([original, original.transpose(Image.Transpose.ROTATE_90)])
    samples = tuple(
        SampleMetadata(i, sid, "T-shirt/top", meta)
        for i, (sid, meta) in enumerate(zip((ONE, TWO), described, strict=True))
    )
    if not with_copies:  # as a node wrote it before copy hashes
        samples = tuple(
            SampleMetadata(
                s.index,
                s.sample_id,
                s.label,
                type(s.image)(**{**_fields(s.image), "copy_hash": None, "probe": None}),
            )
            for s in samples
        )
        return AssetMetadata(b"\x00" * 32, samples, (DuplicateLink(TWO, ONE, 6),))
    index: CopyIndex[bytes] = CopyIndex()
    links = index.link([bytes(ONE), bytes(TWO)], described)
    return AssetMetadata(
        b"\x00" * 32,
        samples,
        tuple(DuplicateLink(SampleId(a), SampleId(b), d, t) for a, b, d, t in _rows(links)),
        copy_linking=CopyLinking(key_radius=index.key_radius, radius=index.radius),
    )


def _fields(image: object) -> dict[str, Any]:
    return {name: getattr(image, name) for name in image.__dataclass_fields__}  # type: ignore[attr-defined]


def _rows(links: list[Any]) -> list[tuple[bytes, bytes, int, int | None]]:
    return [(k.sample_id, k.other_id, k.distance, k.transform) for k in links]


def test_a_node_writes_copy_hashes_transforms_and_how_it_linked() -> None:
    doc = json.loads(_document(with_copies=True).to_json())
    assert doc["format"] == METADATA_FORMAT
    assert doc["copyLinking"] == {
        "descriptor": COPY_HASH_VERSION,
        "keyRadius": DEFAULT_COPY_KEY_RADIUS,
        "radius": DEFAULT_COPY_RADIUS,
    }
    for sample in doc["samples"]:
        assert read_copy_hash(sample) is not None
        assert len(sample["copyHash"]) == 42
    (link,) = doc["duplicateLinks"]
    assert (link["sampleId"], link["otherId"]) == ("0x" + TWO.hex(), "0x" + ONE.hex())
    assert read_link_transform(link) == 2  # a quarter turn maps the first onto the second
    assert read_copy_linking(doc) == CopyLinking(DEFAULT_COPY_KEY_RADIUS, DEFAULT_COPY_RADIUS)
    assert "probe" not in json.dumps(doc) and "raster" not in json.dumps(doc)


def test_a_document_from_before_copy_hashes_is_unchanged_and_reads_as_phash_links() -> None:
    old = _document(with_copies=False)
    doc = json.loads(old.to_json())
    assert "copyLinking" not in doc
    assert all("copyHash" not in s for s in doc["samples"])
    assert doc["duplicateLinks"] == [
        {"sampleId": "0x" + TWO.hex(), "otherId": "0x" + ONE.hex(), "distance": 6}
    ]
    assert read_copy_linking(doc) is None
    assert [read_copy_hash(s) for s in doc["samples"]] == [None, None]
    assert read_link_transform(doc["duplicateLinks"][0]) is None
    # the copy fields change the bytes, so the attested hash tells the two apart
    assert old.metadata_hash != _document(with_copies=True).metadata_hash


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("ab", "42 lower-case hex digits"),
        ("F" * 42, "42 lower-case hex digits"),
        ("0x" + "0" * 40, "42 lower-case hex digits"),
        (12345, "42 lower-case hex digits"),
        (None, "42 lower-case hex digits"),
        (["0" * 42], "42 lower-case hex digits"),
    ],
)
def test_a_malformed_copy_hash_is_refused_with_where_it_was(value: object, why: str) -> None:
    with pytest.raises(InvalidInputError, match=f"metadata sample #3: copy hash .*{why}"):
        read_copy_hash({"copyHash": value}, where="metadata sample #3")


@pytest.mark.parametrize("value", [8, -1, True, 1.0, "2", None, [1]])
def test_a_malformed_transform_is_refused(value: object) -> None:
    with pytest.raises(InvalidInputError, match=r"duplicate link #0: transform must be .* 0..7"):
        read_link_transform({"transform": value}, where="duplicate link #0")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("visdm-copyhash/1", "copyLinking must be an object"),
        ({"keyRadius": 8, "radius": 21}, "knows only 'visdm-copyhash/1'"),
        ({"descriptor": "visdm-copyhash/2", "keyRadius": 8, "radius": 21}, "upgrade visdm"),
        ({"descriptor": COPY_HASH_VERSION, "radius": 21}, r"copyLinking.keyRadius must be"),
        ({"descriptor": COPY_HASH_VERSION, "keyRadius": 64, "radius": 21}, r"0..63"),
        ({"descriptor": COPY_HASH_VERSION, "keyRadius": 8, "radius": 169}, r"0..168"),
        ({"descriptor": COPY_HASH_VERSION, "keyRadius": 8, "radius": True}, r"copyLinking.radius"),
        ({"descriptor": COPY_HASH_VERSION, "keyRadius": "8", "radius": 21}, r"keyRadius"),
    ],
)
def test_a_malformed_copy_linking_is_refused(value: object, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        read_copy_linking({"copyLinking": value})


def test_the_writer_refuses_a_hash_it_could_not_publish() -> None:
    with pytest.raises(InvalidInputError, match="does not fit in 168 bits"):
        copy_hash_to_hex(1 << 168)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(value=_JSON)
def test_any_json_value_reads_or_is_refused_in_one_line(value: object) -> None:
    for read, container in (
        (read_copy_hash, {"copyHash": value}),
        (read_link_transform, {"transform": value}),
        (read_copy_linking, {"copyLinking": value}),
    ):
        try:
            read(container)  # type: ignore[operator]
        except VisdmError as exc:
            assert isinstance(exc, ValueError)
            assert "\n" not in str(exc) and len(str(exc)) < 300
