"""Searching the index: filters become one SQL ``WHERE`` clause, run on either backend.

:func:`search` returns a page of matching samples (ordered by asset id, then sample index, so
paging is stable) with the total count; :func:`summarize` groups the same matches by label,
provider and asset; :func:`select_all` lists every match for a saved selection. All three share
:func:`_where`, so a summary always describes exactly what a search would return.

Only samples whose metadata was verified are searchable. A sample's past value is the mean of
the values published for it (matched on asset id, index *and* sample id, so a scores entry that
names the wrong sample is ignored). It is ``copied`` or ``duplicate`` when any round said so, and
``noisy`` while more rounds flagged it noisy, with evidence, than gave it a positive value
(:mod:`._evidence`): one round cannot keep a sample out of the market against later rounds.
Every hit also carries its expected value and the confidence in it (:mod:`._scoring`), and
``rank="expected-value"`` orders the matches best expected value first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from visdm.errors import InvalidInputError

from ._clusters import DISTANCE_SLOTS, EMPTY_SLOT
from ._db import Database
from ._filters import SearchFilters
from ._scoring import ranked, with_estimates

__all__ = [
    "RANKS",
    "SampleHit",
    "SearchResult",
    "SearchSummary",
    "search",
    "select_all",
    "summarize",
]

#: the most samples one page may hold
MAX_LIMIT = 10_000
#: a search counts its matches exactly up to this many (or past the page asked for): an exact
#: count of 100k-540k matches took 0.3-0.8 s at 1M samples on SQLite, the page itself 2 ms
COUNT_LIMIT = 10_000

_SCORES = (
    "LEFT JOIN (SELECT asset_id, sample_index, sample_id, AVG(value) AS score, "
    "COUNT(*) AS rounds, CASE WHEN SUM(flag_noisy) > SUM(CASE WHEN value > 0 THEN 1 ELSE 0 END) "
    "THEN 1 ELSE 0 END AS noisy, MAX(flag_copied) AS copied, MAX(flag_duplicate) AS dup "
    "FROM sample_scores GROUP BY asset_id, sample_index, sample_id) "
    "sc ON sc.asset_id = s.asset_id AND sc.sample_index = s.sample_index "
    "AND sc.sample_id = s.sample_id"
)
_FROM = f"FROM samples s JOIN assets a ON a.asset_id = s.asset_id {_SCORES}"
# for counting matches when no filter reads a score: the scores' grouping is not needed
_FROM_PLAIN = "FROM samples s JOIN assets a ON a.asset_id = s.asset_id"
_FLAG_COLUMNS = {"noisy": "sc.noisy", "copied": "sc.copied", "duplicate": "sc.dup"}


@dataclass(frozen=True, slots=True)
class SampleHit:
    """One matching sample with everything a consumer may know about it."""

    asset_id: int
    index: int
    sample_id: str
    provider: str
    label: str
    width: int
    height: int
    channels: int
    format: str | None
    byte_size: int | None
    phash: str
    brightness: float
    contrast: float
    #: the metadata's ``blur`` (variance of the Laplacian): higher is sharper
    sharpness: float
    #: links to near-duplicates still in the market (within ``duplicate_distance`` if given)
    duplicate_links: int
    cluster_size: int
    #: mean published value over ``score_rounds`` rounds (``None``: never scored)
    score: float | None
    score_rounds: int
    flags: list[str]
    #: scoring-pool rounds that scored it, and what every round says it is worth
    #: (:mod:`._scoring`): the expected relative value and the confidence in it, 0 to 1
    scoring_rounds: int = 0
    expected_value: float | None = None
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A page of matches."""

    #: how many samples match; when ``total_exact`` is false, a lower bound: more matched
    #: than the search counted (see :func:`search`), and a saved selection holds them all
    total: int
    limit: int
    offset: int
    samples: list[SampleHit]
    filters: dict[str, Any]
    #: requested labels that no indexed sample carries (a typo, or not offered yet)
    unknown_labels: list[str] = field(default_factory=list)
    #: where ``--save`` wrote the selection, and how many samples it holds
    saved_path: str | None = None
    saved_samples: int | None = None
    total_exact: bool = True


@dataclass(frozen=True, slots=True)
class SearchSummary:
    """What the matches of a search are made of."""

    samples: int
    assets: int
    providers: int
    labels: dict[str, int]
    per_provider: list[dict[str, Any]]
    per_asset: list[dict[str, Any]]
    filters: dict[str, Any]
    unknown_labels: list[str] = field(default_factory=list)


def _marks(values: tuple[Any, ...]) -> str:
    return ", ".join("?" for _ in values)


def _links_count(distance: int | None) -> tuple[str, list[Any]]:
    if distance is None:  # kept up to date by the sync (._clusters)
        return "s.link_count", []
    sql = (
        "(SELECT COUNT(*) FROM sample_links l JOIN samples o ON o.sample_id = l.other_id "
        "JOIN assets oa ON oa.asset_id = o.asset_id WHERE l.sample_id = s.sample_id "
        "AND oa.status <> 'withdrawn'"
    )
    return sql + " AND l.distance <= ?)", [distance]


class _Where:
    """``WHERE`` clauses and their parameters, in the order they appear in the SQL."""

    def __init__(self) -> None:
        self.clauses = ["a.metadata_status = 'indexed'"]
        self.params: list[Any] = []

    def add(self, sql: str, *values: Any) -> None:
        self.clauses.append(sql)
        self.params.extend(values)

    def among(self, column: str, values: tuple[Any, ...]) -> None:
        if values:
            self.add(f"{column} IN ({_marks(values)})", *values)

    def content(self, f: SearchFilters) -> None:
        self.among("s.label", f.labels)
        for column, low, high in (
            ("s.width", f.min_width, f.max_width),
            ("s.height", f.min_height, f.max_height),
            ("s.brightness", f.min_brightness, f.max_brightness),
            ("s.contrast", f.min_contrast, f.max_contrast),
            ("s.blur", f.min_sharpness, f.max_sharpness),
        ):
            if low is not None:
                self.add(f"{column} >= ?", low)
            if high is not None:
                self.add(f"{column} <= ?", high)
        self.among("s.format", f.formats)

    def duplicates_and_value(self, f: SearchFilters) -> None:
        if f.max_duplicate_links is not None:
            if f.duplicate_distance is None:
                self.add("s.link_count <= ?", f.max_duplicate_links)
            else:
                self._within(f.max_duplicate_links, f.duplicate_distance)
        if f.max_cluster_size is not None:
            self.add("s.cluster_size <= ?", f.max_cluster_size)
        if f.min_score is not None:
            either = "sc.score IS NULL OR " if f.include_unscored else ""
            self.add(f"({either}sc.score >= ?)", f.min_score)
        for flag in f.exclude_flags:
            self.add(f"COALESCE({_FLAG_COLUMNS[flag]}, 0) = 0")

    def _within(self, most: int, distance: int) -> None:
        """At most ``most`` links within ``distance`` bits: the (most+1)-th smallest packed
        distance is over ``distance`` (._clusters); samples without a packing (past 15 links)
        and distances the packing cannot tell apart are counted, stopping one past the limit
        (a sample linked to thousands costs no more)."""
        count = (
            "(SELECT COUNT(*) FROM (SELECT 1 AS one FROM sample_links l JOIN samples o "
            "ON o.sample_id = l.other_id JOIN assets oa ON oa.asset_id = o.asset_id "
            "WHERE l.sample_id = s.sample_id AND oa.status <> 'withdrawn' "
            "AND l.distance <= ? LIMIT ?) AS near) <= ?"
        )
        counted = (distance, most + 1, most)
        if distance >= EMPTY_SLOT:
            self.add(count, *counted)
            return
        # whole numbers checked by SearchFilters, written into the SQL so that both backends
        # shift a BIGINT by an integer
        packed = (
            "1 = 1"
            if most >= DISTANCE_SLOTS
            else f"((s.link_distances >> {4 * int(most)}) & {EMPTY_SLOT}) > {int(distance)}"
        )
        self.add(f"(CASE WHEN s.link_distances IS NULL THEN {count} ELSE {packed} END)", *counted)

    def market(self, f: SearchFilters, now: int) -> None:
        if not f.include_withdrawn:
            self.add("a.status <> 'withdrawn'")
        if f.regions:
            self.add(
                "EXISTS (SELECT 1 FROM asset_regions ar JOIN regions r ON r.region = ar.region "  # noqa: S608 - only placeholders are interpolated
                f"WHERE ar.asset_id = a.asset_id AND r.name IN ({_marks(f.regions)}))",
                *f.regions,
            )
        if f.purposes or f.consumer is not None:
            self.add("a.manifest_status = 'indexed'")
        for purpose in f.purposes:
            self.add(
                "EXISTS (SELECT 1 FROM asset_purposes ap WHERE ap.asset_id = a.asset_id "
                "AND ap.purpose = ?)",
                purpose,
            )
        if f.consumer is not None:
            self.add(
                "NOT EXISTS (SELECT 1 FROM asset_consumers c WHERE c.asset_id = a.asset_id "
                "AND c.consumer = ? AND c.allowed = 0) AND (NOT EXISTS (SELECT 1 FROM "
                "asset_consumers c WHERE c.asset_id = a.asset_id AND c.allowed = 1) OR EXISTS "
                "(SELECT 1 FROM asset_consumers c WHERE c.asset_id = a.asset_id AND "
                "c.consumer = ? AND c.allowed = 1))",
                f.consumer,
                f.consumer,
            )
        if not f.include_expired:
            self.add("(a.licence_expires IS NULL OR a.licence_expires > ?)", now)
        self.among("a.owner", f.providers)
        self.among("s.asset_id", f.asset_ids)


def _where(db: Database, f: SearchFilters, now: int) -> tuple[str, list[Any]]:
    if f.regions:
        _check_regions(db, f.regions)
    where = _Where()
    where.content(f)
    where.duplicates_and_value(f)
    where.market(f, now)
    return " AND ".join(where.clauses), where.params


def _check_regions(db: Database, regions: tuple[str, ...]) -> None:
    known = sorted(str(r[0]) for r in db.query("SELECT name FROM regions"))
    unknown = [r for r in regions if r not in known]
    if unknown:
        raise InvalidInputError(
            f"unknown region(s) {', '.join(repr(r) for r in unknown)}: the index knows "
            f"{', '.join(known) or 'no region yet (run `visdm market sync`)'}"
        )


def _unknown_labels(db: Database, f: SearchFilters) -> list[str]:
    if not f.labels:
        return []
    found = {
        str(r[0])
        for r in db.query(
            f"SELECT DISTINCT label FROM samples WHERE label IN ({_marks(f.labels)})",  # noqa: S608 - only placeholders
            f.labels,
        )
    }
    return [label for label in f.labels if label not in found]


def check_paging(limit: int, offset: int) -> None:
    """Refuse a page that is not a page."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInputError(f"--limit must be a whole number ≥ 1, got {limit!r}")
    if limit > MAX_LIMIT:
        raise InvalidInputError(
            f"--limit {limit} is over {MAX_LIMIT}: page with --offset, or --save NAME to keep "
            "every match"
        )
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInputError(f"--offset must be a whole number ≥ 0, got {offset!r}")


#: how a search orders its matches: by place (stable paging), or best expected value first
RANKS = ("index", "expected-value")


def check_rank(rank: str) -> None:
    """Refuse an order that is not one of :data:`RANKS`."""
    if rank not in RANKS:
        raise InvalidInputError(f"--rank {rank!r} is not a ranking: use {' or '.join(RANKS)}")


def search(
    db: Database,
    filters: SearchFilters,
    *,
    now: int,
    limit: int = 50,
    offset: int = 0,
    rank: str = "index",
    count_limit: int | None = COUNT_LIMIT,
) -> SearchResult:
    """One page of the samples matching ``filters``, and how many match: exactly up to
    ``count_limit`` or the end of the page, whichever is more (``None``: always exactly)."""
    check_paging(limit, offset)
    check_rank(rank)
    where, params = _where(db, filters, now)
    counted = _FROM if filters.min_score is not None or filters.exclude_flags else _FROM_PLAIN
    if count_limit is None:
        total = int(db.scalar(f"SELECT COUNT(*) {counted} WHERE {where}", params) or 0)
        exact = True
    else:
        enough = max(count_limit, offset + limit)
        total = int(
            db.scalar(
                f"SELECT COUNT(*) FROM (SELECT 1 AS one {counted} WHERE {where} LIMIT ?) AS m",  # noqa: S608 - clauses built from fixed SQL
                [*params, enough + 1],
            )
            or 0
        )
        exact = total <= enough
    links, link_params = _links_count(filters.duplicate_distance)
    page: list[tuple[int, int]] = []
    order, paging = "ORDER BY s.asset_id, s.sample_index LIMIT ? OFFSET ?", [limit, offset]
    if rank == "expected-value":
        page = ranked(db, select_all(db, filters, now=now))[offset : offset + limit]
        order, paging = "", []
        # the page's samples by one key each (an index is below 2^32), in any order
        keys = tuple((a << 32) | i for a, i in page) or (-1,)
        where += f" AND s.asset_id * 4294967296 + s.sample_index IN ({_marks(keys)})"
        params = [*params, *keys]
    rows = db.query(
        "SELECT s.asset_id, s.sample_index, s.sample_id, a.owner, s.label, s.width, s.height, "
        "s.channels, s.format, s.byte_size, s.phash, s.brightness, s.contrast, s.blur, "
        f"{links}, s.cluster_size, sc.score, sc.rounds, sc.noisy, sc.copied, sc.dup "
        f"{_FROM} WHERE {where} {order}",
        [*link_params, *params, *paging],
    )
    hits = []
    for r in rows:
        flags = [
            name for name, on in zip(("noisy", "copied", "duplicate"), r[18:21], strict=True) if on
        ]
        hits.append(
            SampleHit(
                asset_id=int(r[0]),
                index=int(r[1]),
                sample_id=str(r[2]),
                provider=str(r[3]),
                label=str(r[4]),
                width=int(r[5]),
                height=int(r[6]),
                channels=int(r[7]),
                format=r[8],
                byte_size=None if r[9] is None else int(r[9]),
                phash=str(r[10]),
                brightness=float(r[11]),
                contrast=float(r[12]),
                sharpness=float(r[13]),
                duplicate_links=int(r[14]),
                cluster_size=int(r[15]),
                score=None if r[16] is None else float(r[16]),
                score_rounds=0 if r[17] is None else int(r[17]),
                flags=flags,
            )
        )
    hits = with_estimates(db, hits)
    if page:
        place = {key: i for i, key in enumerate(page)}
        hits.sort(key=lambda h: place[(h.asset_id, h.index)])
    return SearchResult(
        total=total,
        limit=limit,
        offset=offset,
        samples=hits,
        filters=filters.to_dict(),
        unknown_labels=_unknown_labels(db, filters),
        total_exact=exact,
    )


def select_all(db: Database, filters: SearchFilters, *, now: int) -> list[tuple[int, int]]:
    """Every matching ``(asset id, sample index)``, sorted."""
    where, params = _where(db, filters, now)
    rows = db.query(
        f"SELECT s.asset_id, s.sample_index {_FROM} WHERE {where} "
        "ORDER BY s.asset_id, s.sample_index",
        params,
    )
    return [(int(a), int(i)) for a, i in rows]


def summarize(db: Database, filters: SearchFilters, *, now: int) -> SearchSummary:
    """Label distribution and counts per provider and per asset of the matches."""
    where, params = _where(db, filters, now)
    labels = {
        str(label): int(n)
        for label, n in db.query(
            f"SELECT s.label, COUNT(*) {_FROM} WHERE {where} GROUP BY s.label",
            params,
        )
    }
    per_asset: list[dict[str, Any]] = [
        {"asset_id": int(asset_id), "provider": str(owner), "samples": int(n)}
        for asset_id, owner, n in db.query(
            f"SELECT s.asset_id, a.owner, COUNT(*) {_FROM} WHERE {where} "
            "GROUP BY s.asset_id, a.owner ORDER BY s.asset_id",
            params,
        )
    ]
    providers: dict[str, dict[str, Any]] = {}
    for row in per_asset:
        entry = providers.setdefault(
            row["provider"], {"provider": row["provider"], "assets": 0, "samples": 0}
        )
        entry["assets"] += 1
        entry["samples"] += row["samples"]
    return SearchSummary(
        samples=sum(labels.values()),
        assets=len(per_asset),
        providers=len(providers),
        labels=dict(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))),
        per_provider=sorted(providers.values(), key=lambda p: (-p["samples"], p["provider"])),
        per_asset=per_asset,
        filters=filters.to_dict(),
        unknown_labels=_unknown_labels(db, filters),
    )
