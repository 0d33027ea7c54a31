"""The scores document: built by the node, verified by every reader; every way it can disagree
with its batch is refused in one line, and any bytes parse or are refused (fuzzed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.fuzz._harness import fuzz
from visdm.scoring import (
    BatchScore,
    InvalidScoresError,
    build_scores_document,
    parse_scores,
    relative_value,
    round_scale,
)

pytestmark = pytest.mark.unit

NODE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REFERENCE = keccak(b"reference")
SEED = keccak(b"seed")
SID = ["0x" + keccak(bytes([i])).hex() for i in range(4)]
OUTCOME = {
    "seed_hash": "0x" + SEED.hex(),
    "spec_hash": "0x" + keccak(b"spec").hex(),
    "model_hash": "0x" + keccak(b"model").hex(),
    "players": 504,
    "scale": 0.002,
    "accuracy_bps": 8100,
}
ROWS = [BatchScore(1, i, SID[i], 0.001 * (i - 1), 0.0004, ()) for i in range(3)] + [
    BatchScore(2, 0, SID[3], 0.002, None, ("noisy",))
]


def document(**changes: Any) -> bytes:
    raw = build_scores_document(
        batch_id=7, node=NODE, reference_hash=REFERENCE, outcome=OUTCOME, rows=ROWS, details={}
    )
    data = json.loads(raw)
    data.update(changes)
    return json.dumps(data).encode()


def parse(raw: bytes, **changes: Any) -> Any:
    args: dict[str, Any] = {
        "scores_hash": keccak(raw),
        "batch_id": 7,
        "node": NODE,
        "reference_hash": REFERENCE,
        "seed_hash": SEED,
        "scored": 4,
        "batch_assets": [1, 2],
    }
    args.update(changes)
    return parse_scores(raw, **args)


def test_a_node_s_document_parses_back_to_its_rows() -> None:
    doc = parse(document())
    assert doc.rows == tuple(
        BatchScore(r.asset_id, r.index, r.sample_id, r.value, r.value_se, r.flags) for r in ROWS
    )
    assert (doc.players, doc.scale, doc.accuracy_bps) == (504, 0.002, 8100)


@pytest.mark.parametrize(
    ("changes", "parse_changes", "reason"),
    [
        ({}, {"scores_hash": bytes(32)}, "hashes to"),
        ({"kind": "x"}, {}, "version-1"),
        ({"batchId": 8}, {}, "for batch 8"),
        ({"node": "0x" + "12" * 20}, {}, "names node"),
        ({"referenceHash": "0x" + "00" * 32}, {}, "referenceHash"),
        ({"seedHash": "0xzz"}, {}, "32-byte hash"),
        ({}, {"scored": 5}, "paid for 5"),
        ({"scored": 3}, {}, "says 3"),
        ({}, {"batch_assets": [1]}, "not in the batch"),
        ({"players": 2}, {}, "cannot hold"),
        ({"players": 0}, {}, "players must be"),
        ({"scale": 0}, {}, "scale must be"),
        ({"scale": "1"}, {}, "scale must be"),
        ({"accuracyBps": 10_001}, {}, "above 10000"),
        ({"specHash": "0x12"}, {}, "specHash"),
        ({"samples": {}}, {}, "must be a list"),
    ],
)
def test_a_document_that_disagrees_with_its_batch_is_refused(
    changes: dict[str, Any], parse_changes: dict[str, Any], reason: str
) -> None:
    raw = document(**changes)
    with pytest.raises(InvalidScoresError, match=reason) as caught:
        parse(raw, **parse_changes)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"assetId": 0}, "assetId must be"),
        ({"index": -1}, "index must be"),
        ({"value": float("nan")}, "finite"),
        ({"value": True}, "finite"),
        ({"valueSe": -1.0}, "valueSe"),
        ({"flags": ["great"]}, "flags"),
        ({"sampleId": "0x12"}, "sampleId"),
    ],
)
def test_a_bad_row_is_refused(row: dict[str, Any], reason: str) -> None:
    data = json.loads(document())
    data["samples"][0].update(row)
    if row.get("value") != row.get("value"):  # NaN cannot be written as JSON
        raw = json.dumps(data).replace("NaN", "1e999").encode()
    else:
        raw = json.dumps(data).encode()
    with pytest.raises(InvalidScoresError, match=reason):
        parse(raw)


def test_a_sample_scored_twice_is_refused() -> None:
    data = json.loads(document())
    data["samples"][1] = dict(data["samples"][0])
    with pytest.raises(InvalidScoresError, match="scored twice"):
        parse(json.dumps(data).encode())


def test_the_round_scale_is_the_median_positive_value() -> None:
    assert round_scale([0.1, -0.5, 0.3, 0.2, 0.0]) == 0.2
    assert round_scale([0.1, 0.3]) == pytest.approx(0.2)
    assert round_scale([-1.0, 0.0, float("nan")]) == 1.0
    # a round's scale cancels its size: the same shares of a gain over 10 or 1000 players
    small = [0.08] * 10
    large = [0.0008] * 1000
    assert relative_value(small[0], round_scale(small)) == relative_value(
        large[0], round_scale(large)
    )


@fuzz(150)
@given(st.binary(max_size=600) | st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(
    st.sampled_from(["kind", "version", "batchId", "node", "samples", "scored", "players"]),
    st.integers() | st.text(max_size=8) | st.lists(st.integers(), max_size=3),
)))  # fmt: skip
def test_any_bytes_parse_or_are_refused_in_one_line(raw: bytes) -> None:
    try:
        parse(raw)
    except InvalidScoresError as exc:
        assert str(exc) and "\n" not in str(exc)
