"""Scoring rounds in the index: batches, their verified scores, the market's fees, and every
sample's expected value.

Tables (:data:`SCORING_TABLES`, created with the others):

* ``scoring_batches`` — one row per ``BatchClaimed``: node, assets, samples, deadline, the
  reference it is scored against; its end (``BatchEnded``) or its published scores
  (``ScoresPublished``: scored count, pay, commitments, the document's CID and its state);
* ``scoring_scores`` — the rows of a verified scores document (:func:`visdm.scoring.parse_scores`
  checks it against the chain, and each row must name a sample its asset's metadata holds, with
  the same id): raw value, standard error and the round's ``scale``;
* ``scoring_fees`` — the fee the market credited the pool from each completed proposal
  (``ScoringFeeTaken``, emitted before ``ResultSubmitted``): a result's payout leaves add up to
  the price less it.

:func:`sample_estimates` turns every round that scored a sample — training rounds' published
values and scoring rounds' alike, each divided by its round's :func:`visdm.scoring.round_scale`
— into an expected value and a confidence (:func:`visdm.scoring.expected_values`), which
``market search`` shows and ranks by, and :func:`asset_scores` shows per asset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.scoring import (
    Observation,
    ValueEstimate,
    expected_values,
    parse_scores,
    relative_value,
    round_scale,
)

from ._db import Database
from ._documents import DocumentError, DocumentUnavailableError, one_line
from ._events import ChainEvent

__all__ = [
    "SCORING_TABLES",
    "AssetScores",
    "SampleEstimate",
    "ScoringApplier",
    "asset_scores",
    "ranked",
    "sample_estimates",
    "scores_of_asset",
    "scoring_fee",
    "with_estimates",
]

log = logging.getLogger("visdm.index")


class _Hit(Protocol):
    @property
    def asset_id(self) -> int: ...
    @property
    def index(self) -> int: ...


H = TypeVar("H", bound=_Hit)

SCORING_TABLES: dict[str, str] = {
    "scoring_batches": """
        batch_id BIGINT PRIMARY KEY, node TEXT NOT NULL, asset_ids TEXT NOT NULL,
        samples BIGINT NOT NULL, deadline BIGINT NOT NULL, reserved TEXT NOT NULL,
        reference_hash TEXT NOT NULL, claimed_block BIGINT NOT NULL,
        status TEXT NOT NULL,                       -- claimed | published | released | lapsed
        scored BIGINT, paid TEXT, scores_hash TEXT, seed_hash TEXT, scores_cid TEXT,
        published_block BIGINT, players BIGINT,
        document_status TEXT NOT NULL, document_detail TEXT NOT NULL""",
    "scoring_scores": """
        batch_id BIGINT NOT NULL, asset_id BIGINT NOT NULL, sample_index BIGINT NOT NULL,
        sample_id TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, value_se DOUBLE PRECISION,
        scale DOUBLE PRECISION NOT NULL,            -- the round's round_scale, anchors included
        flags TEXT NOT NULL,
        PRIMARY KEY (batch_id, asset_id, sample_index)""",
    "scoring_fees": "proposal_id BIGINT PRIMARY KEY, pool TEXT NOT NULL, amount TEXT NOT NULL",
}
_BATCH_ENDS = {2: "published", 3: "released", 4: "lapsed"}


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def scoring_fee(db: Database, proposal_id: int) -> int:
    """The scoring fee the market took from ``proposal_id``'s price (0: none)."""
    value = db.scalar("SELECT amount FROM scoring_fees WHERE proposal_id = ?", (proposal_id,))
    return 0 if value is None else int(value)


class ScoringApplier:
    """Applies ``ScoringPool`` events and the market's ``ScoringFeeTaken``; call inside a
    write transaction, as the other appliers."""

    def __init__(self, db: Database, fetch: Callable[[str], bytes]) -> None:
        self.db = db
        self.fetch = fetch

    def handlers(self) -> dict[tuple[str, str], Callable[[ChainEvent], None]]:
        return {
            ("ScoringPool", "BatchClaimed"): self._claimed,
            ("ScoringPool", "BatchEnded"): self._ended,
            ("ScoringPool", "ScoresPublished"): self._published,
            ("TrainingMarket", "ScoringFeeTaken"): self._fee_taken,
        }

    def _fee_taken(self, e: ChainEvent) -> None:
        self.db.execute(
            "INSERT INTO scoring_fees (proposal_id, pool, amount) VALUES (?, ?, ?) "
            "ON CONFLICT (proposal_id) DO NOTHING",
            (int(e.args["proposalId"]), e.args["pool"], str(e.args["amount"])),
        )

    def _claimed(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO scoring_batches (batch_id, node, asset_ids, samples, deadline, "
            "reserved, reference_hash, claimed_block, status, document_status, document_detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'claimed', 'none', '') "
            "ON CONFLICT (batch_id) DO NOTHING",
            (
                int(a["batchId"]),
                a["node"],
                json.dumps([int(x) for x in a["assetIds"]]),
                int(a["samples"]),
                int(a["deadline"]),
                str(a["reserved"]),
                _hex(a["referenceHash"]),
                e.block_number,
            ),
        )

    def _ended(self, e: ChainEvent) -> None:
        status = _BATCH_ENDS.get(int(e.args["status"]), "claimed")
        self.db.execute(
            "UPDATE scoring_batches SET status = ? WHERE batch_id = ?",
            (status, int(e.args["batchId"])),
        )

    def _published(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "UPDATE scoring_batches SET status = 'published', scored = ?, paid = ?, "
            "scores_hash = ?, seed_hash = ?, scores_cid = ?, published_block = ?, "
            "document_status = CASE WHEN document_status = 'indexed' THEN 'indexed' "
            "ELSE 'pending' END WHERE batch_id = ?",
            (
                int(a["scored"]),
                str(a["paid"]),
                _hex(a["scoresHash"]),
                _hex(a["seedHash"]),
                str(a["scoresCid"]),
                e.block_number,
                int(a["batchId"]),
            ),
        )
        self.index_scores(int(a["batchId"]))

    def index_scores(self, batch_id: int) -> None:
        """Fetch and verify a published batch's scores document (if not done yet)."""
        found = self.db.query(
            "SELECT node, asset_ids, reference_hash, scored, scores_hash, seed_hash, scores_cid, "
            "document_status FROM scoring_batches WHERE batch_id = ?",
            (batch_id,),
        )
        if not found or found[0][7] not in ("pending", "missing"):
            return
        node, assets, reference, scored, scores_hash, seed, cid, _ = found[0]
        try:
            doc = parse_scores(
                self.fetch(str(cid)),
                scores_hash=bytes.fromhex(str(scores_hash)[2:]),
                batch_id=batch_id,
                node=str(node),
                reference_hash=bytes.fromhex(str(reference)[2:]),
                seed_hash=bytes.fromhex(str(seed)[2:]),
                scored=int(scored),
                batch_assets=[int(x) for x in json.loads(assets)],
            )
            self._check_samples(doc.rows)
        except DocumentUnavailableError as exc:
            self._status(batch_id, "missing", str(exc))
            return
        except (DocumentError, VisdmError) as exc:
            log.warning("scoring batch %d: scores rejected: %s", batch_id, exc)
            self._status(batch_id, "rejected", one_line(exc))
            return
        self.db.executemany(
            "INSERT INTO scoring_scores (batch_id, asset_id, sample_index, sample_id, value, "
            "value_se, scale, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (batch_id, asset_id, sample_index) DO NOTHING",
            [
                (
                    batch_id,
                    r.asset_id,
                    r.index,
                    r.sample_id,
                    r.value,
                    r.value_se,
                    doc.scale,
                    ",".join(r.flags),
                )
                for r in doc.rows
            ],
        )
        self.db.execute(
            "UPDATE scoring_batches SET players = ? WHERE batch_id = ?", (doc.players, batch_id)
        )
        self._status(batch_id, "indexed", "")

    def _check_samples(self, rows: Iterable[Any]) -> None:
        """Every row must name a sample its asset's attested metadata holds, by its id."""
        for row in rows:
            known = self.db.scalar(
                "SELECT sample_id FROM samples WHERE asset_id = ? AND sample_index = ?",
                (row.asset_id, row.index),
            )
            if known is None or str(known).lower() != row.sample_id:
                raise DocumentError(
                    f"a row scores sample {row.index} of asset {row.asset_id} as {row.sample_id}, "
                    "which is not that asset's attested sample"
                )

    def _status(self, batch_id: int, status: str, detail: str) -> None:
        self.db.execute(
            "UPDATE scoring_batches SET document_status = ?, document_detail = ? "
            "WHERE batch_id = ?",
            (status, detail, batch_id),
        )

    def retry_missing(self) -> int:
        tried = 0
        for (batch_id,) in self.db.query(
            "SELECT batch_id FROM scoring_batches WHERE document_status = 'missing' "
            "ORDER BY batch_id"
        ):
            self.index_scores(int(batch_id))
            tried += 1
        return tried


# --- estimates ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SampleEstimate:
    """A sample's rounds (training and scoring) and its :class:`ValueEstimate`."""

    training_rounds: int
    scoring_rounds: int
    estimate: ValueEstimate


def _se(evidence: Any) -> float | None:
    if not evidence:
        return None
    try:
        value = json.loads(str(evidence)).get("value_se")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _training_rows(db: Database) -> list[tuple[Any, ...]]:
    """Training rounds' rows with their round's scale (computed here from the round's rows)."""
    rows = db.query(
        "SELECT s.proposal_id, s.asset_id, s.sample_index, s.sample_id, s.value, s.evidence "
        "FROM sample_scores s JOIN results r ON r.proposal_id = s.proposal_id "
        "WHERE r.scores_status = 'indexed'"
    )
    values: dict[int, list[float]] = {}
    for row in rows:
        values.setdefault(int(row[0]), []).append(float(row[4]))
    scales = {pid: round_scale(v) for pid, v in values.items()}
    return [(a, i, sid, v, _se(ev), scales[int(pid)], 0) for pid, a, i, sid, v, ev in rows]


def sample_estimates(
    db: Database, keys: Sequence[tuple[int, int]] | None = None
) -> dict[tuple[int, int], SampleEstimate]:
    """Expected value, confidence and rounds of the samples ``keys`` (``(asset id, index)``;
    default: every scored sample), under the prior fitted to every scored sample of the
    market. A row whose sample id differs from the sample's is not counted."""
    # the ids of scored samples only: reading every sample's made each search linear in the
    # market (a dictionary of 1M ids per page)
    ids = {
        (int(a), int(i)): str(s)
        for a, i, s in db.query(
            "SELECT s.asset_id, s.sample_index, s.sample_id FROM samples s JOIN "
            "(SELECT asset_id, sample_index FROM sample_scores UNION "
            "SELECT asset_id, sample_index FROM scoring_scores) o "
            "ON o.asset_id = s.asset_id AND o.sample_index = s.sample_index"
        )
    }
    scoring_rows = db.query(
        "SELECT asset_id, sample_index, sample_id, value, value_se, scale, 1 FROM scoring_scores"
    )
    observations: dict[tuple[int, int], list[Observation]] = {}
    rounds: dict[tuple[int, int], list[int]] = {}
    for asset_id, index, sample_id, value, se, scale, kind in [
        *_training_rows(db),
        *scoring_rows,
    ]:
        key = (int(asset_id), int(index))
        if ids.get(key) != str(sample_id) or not float(scale) > 0:
            continue
        observations.setdefault(key, []).append(
            Observation(
                relative_value(float(value), float(scale)),
                None if se is None else relative_value(float(se), float(scale)),
            )
        )
        rounds.setdefault(key, [0, 0])[int(kind)] += 1
    wanted = list(keys) if keys is not None else list(observations)
    found = expected_values(observations, keys=wanted)
    return {
        key: SampleEstimate(rounds.get(key, [0, 0])[0], rounds.get(key, [0, 0])[1], found[key])
        for key in wanted
    }


@dataclass(frozen=True, slots=True)
class AssetScores:
    """An asset's samples with their rounds and confidence, and the asset's summary."""

    asset_id: int
    samples: int
    scored_samples: int
    scoring_rounds: int
    mean_confidence: float
    mean_expected_value: float
    rows: list[dict[str, Any]]


def asset_scores(db: Database, asset_id: int) -> AssetScores:
    """Per sample of ``asset_id``: rounds that scored it, expected value and confidence."""
    samples = [
        (int(i), str(s))
        for i, s in db.query(
            "SELECT sample_index, sample_id FROM samples WHERE asset_id = ? ORDER BY sample_index",
            (asset_id,),
        )
    ]
    if not samples:
        raise InvalidInputError(
            f"the index holds no attested sample of asset {asset_id}: check the id, or run "
            "`visdm market sync`"
        )
    found = sample_estimates(db, [(asset_id, i) for i, _ in samples])
    rows: list[dict[str, Any]] = []
    for index, sample_id in samples:
        e = found[(asset_id, index)]
        rows.append(
            {
                "index": index,
                "sampleId": sample_id,
                "trainingRounds": e.training_rounds,
                "scoringRounds": e.scoring_rounds,
                "meanValue": e.estimate.mean,
                "expectedValue": e.estimate.expected,
                "confidence": e.estimate.confidence,
            }
        )
    batches = db.scalar(
        "SELECT COUNT(DISTINCT batch_id) FROM scoring_scores WHERE asset_id = ?", (asset_id,)
    )
    return AssetScores(
        asset_id=asset_id,
        samples=len(rows),
        scored_samples=sum(1 for r in rows if r["trainingRounds"] or r["scoringRounds"]),
        scoring_rounds=int(batches or 0),
        mean_confidence=sum(r["confidence"] for r in rows) / len(rows),
        mean_expected_value=sum(r["expectedValue"] for r in rows) / len(rows),
        rows=rows,
    )


def ranked(db: Database, keys: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``keys`` best expected value first (ties: asset id, then index)."""
    found = sample_estimates(db, keys)
    return sorted(keys, key=lambda k: (-found[k].estimate.expected, k))


def with_estimates(db: Database, hits: list[H]) -> list[H]:
    """Search hits with their scoring rounds, expected value and confidence filled in."""
    if not hits:
        return hits
    found = sample_estimates(db, [(h.asset_id, h.index) for h in hits])
    out = []
    for hit in hits:
        e = found[(hit.asset_id, hit.index)]
        out.append(
            replace(  # type: ignore[type-var]
                hit,
                scoring_rounds=e.scoring_rounds,
                expected_value=e.estimate.expected,
                confidence=e.estimate.confidence,
            )
        )
    return out


def scores_of_asset(settings: Settings, asset_id: int, *, url: str | None = None) -> AssetScores:
    """:func:`asset_scores` of the synced index (``visdm scoring show --asset``)."""
    from ._api import open_index

    if isinstance(asset_id, bool) or not isinstance(asset_id, int) or asset_id < 1:
        raise InvalidInputError(f"--asset {asset_id!r} is not an asset id (1, 2, …)")
    db = open_index(settings, url)
    try:
        return asset_scores(db, asset_id)
    finally:
        db.close()
