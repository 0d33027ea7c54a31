"""The public reference: built from the Fashion-MNIST test split, stored, committed by hash;
a document or archive the store swapped, or one that is malformed, is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak

from visdm.datasets import DatasetNotFoundError
from visdm.errors import InvalidInputError
from visdm.proposals import unpack_arrays
from visdm.scoring import (
    InvalidReferenceError,
    build_reference,
    fashion_mnist_classes,
    fetch_blob,
    load_reference,
    parse_reference,
)
from visdm.storage import MemoryStore

pytestmark = pytest.mark.unit


def test_a_reference_is_stored_and_read_back_with_its_archives() -> None:
    store = MemoryStore()
    reference, raw = build_reference(store, validation_samples=20, anchor_samples=10)
    assert reference.reference_hash == keccak(raw)
    assert reference.classes == fashion_mnist_classes() and reference.classes[0] == "t-shirt-top"
    again = load_reference(store, reference.cid, reference.reference_hash)
    assert again == reference
    images, labels = unpack_arrays(fetch_blob(store, again.validation), what="validation")
    assert images.shape == (20, 28, 28) and len(labels) == 20
    anchors, _ = unpack_arrays(fetch_blob(store, again.anchors), what="anchors")
    assert len(anchors) == 10 and not (anchors[0] == images[0]).all()


def test_a_swapped_document_or_archive_is_refused() -> None:
    store = MemoryStore()
    reference, _ = build_reference(store, validation_samples=10, anchor_samples=5)
    with pytest.raises(InvalidReferenceError, match="pool commits"):
        load_reference(store, reference.cid, keccak(b"another"))
    other = store.put(b"not the archive")
    swapped = type(reference.anchors)(other, reference.anchors.hash, 5, "")
    with pytest.raises(InvalidReferenceError, match="does not hash to"):
        fetch_blob(store, swapped)


def _doc(**changes: Any) -> bytes:
    store = MemoryStore()
    _, raw = build_reference(store, validation_samples=10, anchor_samples=5)
    data = json.loads(raw)
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kind": "other"}, "version-1"),
        ({"classes": "abc"}, "list of classes"),
        ({"classes": ["a", "a"]}, "distinct"),
        ({"valuation": []}, "valuation"),
        ({"anchors": {"cid": "x", "hash": "0x12", "samples": 5}}, "anchors entry"),
        ({"validation": {"cid": "x", "hash": "0x" + "00" * 32, "samples": 0}}, "validation entry"),
        ({"validation": None}, "validation entry"),
    ],
)
def test_a_malformed_reference_is_refused_in_one_line(changes: dict[str, Any], reason: str) -> None:
    raw = _doc(**changes)
    with pytest.raises(InvalidReferenceError, match=reason) as caught:
        parse_reference(raw, expected_hash=keccak(raw))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"classes": ["a"] * 9}, "9 names"),
        ({"classes": [*"abcdefghi", "a"]}, "distinct"),
        ({"validation_samples": 5}, "validation samples"),
        ({"anchor_samples": 0}, "anchor samples"),
        ({"spec": {"num_classes": 3}}, "spec has 3"),
    ],
)
def test_build_refuses_bad_settings(kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        build_reference(MemoryStore(), **kwargs)


def test_a_reference_larger_than_the_test_split_is_refused() -> None:
    with pytest.raises((InvalidInputError, DatasetNotFoundError), match=r"10000|not installed"):
        build_reference(MemoryStore(), validation_samples=6000, anchor_samples=6000)
