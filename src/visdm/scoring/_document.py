"""The scores document a node publishes for a batch, and its verification.

The node stores (and pins) one JSON document per batch and commits its keccak256 on chain
with ``publishScores``, beside the hash of the job's secret seed; the batch's asset list and
reference were committed when it was claimed. Like a training result it is checkable: the
document names everything a re-execution needs (batch, reference, spec and model hashes, the
seed's commitment) and the counts that must add up (``scored`` rows = what the node was paid
for). Rows carry a sample's raw KNN-Shapley ``value`` among ``players`` training samples (the
batch's plus the reference's anchors) and its standard error ``valueSe`` over the validation
points; ``scale`` is the round's :func:`round_scale` over every player, anchors included, and
:func:`relative_value` puts values of rounds of any size and context on one scale with it.

:func:`parse_scores` is what every reader applies (the index, ``visdm scoring show``): a
document that does not hash to the chain's commitment, names another batch, node, reference or
seed, holds a row for a sample outside the batch's assets, a row twice, or a count that
differs from the one the node was paid for is refused whole with the first reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from visdm.errors import InvalidInputError
from visdm.jsonsafe import load_untrusted_object

__all__ = [
    "SCORES_KIND",
    "BatchScore",
    "InvalidScoresError",
    "ScoresDocument",
    "build_scores_document",
    "parse_scores",
    "relative_value",
    "round_scale",
]

SCORES_KIND = "visdm-scoring-scores"
#: about 300 bytes per row; a batch holds at most a few thousand samples
MAX_SCORES_BYTES = 64 << 20
_FLAGS = frozenset({"noisy", "copied", "duplicate"})


class InvalidScoresError(InvalidInputError):
    """A scores document that does not match its batch or the chain's commitment."""


def round_scale(values: Iterable[float]) -> float:
    """The value of a round's typical helpful sample: the median of its positive values.

    KNN-Shapley values depend on the round: their sum is the KNN classifier's accuracy gain
    (Jia et al., 2019, efficiency), spread over however many players the round had, and a
    correct sample is worth more among mislabelled neighbours than among clean ones. Dividing
    by this scale (:func:`relative_value`) makes a typical helpful sample worth 1 in every round,
    training round or scoring round, whatever its size and its share of noise, as long as most
    of its positive values come from helpful samples; a harmful sample stays below 0. A round
    without a positive value has scale 1 (its values are then small negatives or zero).
    """
    positive = sorted(float(v) for v in values if math.isfinite(v) and v > 0)
    if not positive:
        return 1.0
    middle = len(positive) // 2
    if len(positive) % 2:
        return positive[middle]
    return (positive[middle - 1] + positive[middle]) / 2


def relative_value(value: float, scale: float) -> float:
    """``value`` in units of its round's :func:`round_scale`."""
    return float(value) / scale


@dataclass(frozen=True, slots=True)
class BatchScore:
    """One scored sample."""

    asset_id: int
    index: int
    sample_id: str
    value: float
    value_se: float | None
    flags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "assetId": self.asset_id,
            "index": self.index,
            "sampleId": self.sample_id,
            "value": self.value,
            "valueSe": self.value_se,
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class ScoresDocument:
    """A verified scores document."""

    batch_id: int
    node: str
    reference_hash: bytes
    seed_hash: bytes
    spec_hash: str
    model_hash: str
    players: int
    scale: float
    accuracy_bps: int
    rows: tuple[BatchScore, ...]
    details: Mapping[str, Any]


def build_scores_document(
    *,
    batch_id: int,
    node: str,
    reference_hash: bytes,
    outcome: Mapping[str, Any],
    rows: Sequence[BatchScore],
    details: Mapping[str, Any],
) -> bytes:
    """The bytes a node stores for a batch (canonical JSON: sorted keys, no spaces)."""
    doc = {
        "version": 1,
        "kind": SCORES_KIND,
        "batchId": batch_id,
        "node": to_checksum_address(node),
        "referenceHash": "0x" + reference_hash.hex(),
        "seedHash": str(outcome["seed_hash"]),
        "specHash": str(outcome["spec_hash"]),
        "modelHash": str(outcome["model_hash"]),
        "players": int(outcome["players"]),
        "scale": float(outcome["scale"]),
        "accuracyBps": int(outcome["accuracy_bps"]),
        "scored": len(rows),
        "samples": [r.to_json() for r in rows],
        **details,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _hash(value: Any, what: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32 or not str(value).startswith("0x"):
        raise InvalidScoresError(f"{what} {value!r} is not a 0x-prefixed 32-byte hash")
    return raw


def _whole(value: Any, what: str, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidScoresError(f"{what} must be a whole number ≥ {low}, got {value!r}")
    return value


def _row(item: Any, where: str, assets: Collection[int]) -> BatchScore:
    if not isinstance(item, dict):
        raise InvalidScoresError(f"{where} is not an object")
    asset_id = _whole(item.get("assetId"), f"{where}.assetId", low=1)
    if asset_id not in assets:
        raise InvalidScoresError(
            f"{where} scores asset {asset_id}, which is not in the batch "
            f"({', '.join(map(str, sorted(assets)))})"
        )
    value, se = item.get("value"), item.get("valueSe")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidScoresError(f"{where}.value must be a finite number, got {value!r}")
    if se is not None and (
        isinstance(se, bool) or not isinstance(se, int | float) or not 0 <= se < math.inf
    ):
        raise InvalidScoresError(f"{where}.valueSe must be a finite number ≥ 0 or null")
    flags = item.get("flags", [])
    if not isinstance(flags, list) or not set(flags) <= _FLAGS:
        raise InvalidScoresError(f"{where}.flags must be a list of {sorted(_FLAGS)}")
    sample_id = str(item.get("sampleId", ""))
    _hash(sample_id, f"{where}.sampleId")
    return BatchScore(
        asset_id,
        _whole(item.get("index"), f"{where}.index"),
        sample_id.lower(),
        float(value),
        None if se is None else float(se),
        tuple(flags),
    )


def _rows(
    data: Mapping[str, Any], scored: int, batch_assets: Collection[int]
) -> tuple[BatchScore, ...]:
    samples = data.get("samples")
    if not isinstance(samples, list):
        raise InvalidScoresError("the document's samples must be a list")
    if len(samples) != scored or data.get("scored") != scored:
        raise InvalidScoresError(
            f"the document holds {len(samples)} rows (says {data.get('scored')!r}); the node "
            f"was paid for {scored}"
        )
    assets = set(batch_assets)
    rows = tuple(_row(item, f"samples[{i}]", assets) for i, item in enumerate(samples))
    seen: set[tuple[int, int]] = set()
    for row in rows:
        place = (row.asset_id, row.index)
        if place in seen:
            raise InvalidScoresError(f"sample {row.index} of asset {row.asset_id} is scored twice")
        seen.add(place)
    return rows


def parse_scores(
    raw: bytes,
    *,
    scores_hash: bytes,
    batch_id: int,
    node: str,
    reference_hash: bytes,
    seed_hash: bytes,
    scored: int,
    batch_assets: Collection[int],
) -> ScoresDocument:
    """The scores document ``raw``, checked against what the chain says of its batch (see the
    module docstring); :class:`InvalidScoresError` with the first thing that is wrong."""
    if keccak(raw) != scores_hash:
        raise InvalidScoresError(
            f"the scores document hashes to 0x{keccak(raw).hex()}, the chain commits "
            f"0x{scores_hash.hex()}"
        )
    data = load_untrusted_object(
        raw,
        what=f"batch {batch_id}'s scores document",
        max_bytes=MAX_SCORES_BYTES,
        error=InvalidScoresError,
        hint="the node published a broken document",
    )
    if data.get("kind") != SCORES_KIND or data.get("version") != 1:
        raise InvalidScoresError(f"the document is not a version-1 {SCORES_KIND}")
    if data.get("batchId") != batch_id:
        raise InvalidScoresError(
            f"the document is for batch {data.get('batchId')!r}, not {batch_id}"
        )
    author = data.get("node")
    if not isinstance(author, str) or not is_address(author) or author.lower() != node.lower():
        raise InvalidScoresError(f"the document names node {author!r}, the batch's is {node}")
    for key, wanted in (("referenceHash", reference_hash), ("seedHash", seed_hash)):
        if _hash(data.get(key), key) != wanted:
            raise InvalidScoresError(
                f"the document's {key} {data.get(key)} differs from the chain's 0x{wanted.hex()}"
            )
    rows = _rows(data, scored, batch_assets)
    players = _whole(data.get("players"), "players", low=1)
    if players < len(rows):
        raise InvalidScoresError(f"{players} players cannot hold {len(rows)} scored samples")
    scale = data.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < math.inf:
        raise InvalidScoresError(f"scale must be a finite number above 0, got {scale!r}")
    accuracy = _whole(data.get("accuracyBps"), "accuracyBps")
    if accuracy > 10_000:
        raise InvalidScoresError(f"accuracyBps {accuracy} is above 10000")
    for key in ("specHash", "modelHash"):
        _hash(data.get(key), key)
    known = {"version", "kind", "batchId", "node", "referenceHash", "seedHash", "samples"}
    known |= {"scored", "players", "scale", "accuracyBps", "specHash", "modelHash"}
    return ScoresDocument(
        batch_id=batch_id,
        node=to_checksum_address(author),
        reference_hash=reference_hash,
        seed_hash=seed_hash,
        spec_hash=str(data["specHash"]),
        model_hash=str(data["modelHash"]),
        players=players,
        scale=float(scale),
        accuracy_bps=accuracy,
        rows=rows,
        details={k: v for k, v in data.items() if k not in known},
    )
