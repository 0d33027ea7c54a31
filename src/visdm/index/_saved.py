"""Saved searches: a named selection a consumer curates now and proposes later.

``visdm market search … --save NAME`` writes ``<home>/searches/NAME.json``::

    {"version": 1, "name": "NAME", "filters": {...},
     "selection": [{"asset_id": 1, "sample_indexes": [0, 3, ...]}, ...]}

with *every* match (paging does not apply), assets in increasing id and indexes in increasing
order — the shape a proposal's selection takes (design 3.3 step 2). :func:`load_saved_search`
reads it back for the proposal command and refuses anything malformed with an error naming the
file and what is wrong, so a hand-edited file cannot smuggle a bad selection into a proposal.
The file is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.jsonsafe import load_untrusted_json, read_untrusted_file

from ._filters import SearchFilters

__all__ = [
    "SAVED_SEARCH_VERSION",
    "SavedSearch",
    "SelectedSamples",
    "check_search_name",
    "list_saved_searches",
    "load_saved_search",
    "saved_search_path",
    "write_saved_search",
]

SAVED_SEARCH_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_SAVED_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class SelectedSamples:
    """The chosen samples of one asset."""

    asset_id: int
    sample_indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SavedSearch:
    """A saved search: its name, the filters that made it and the samples they matched."""

    name: str
    filters: SearchFilters
    selection: tuple[SelectedSamples, ...]
    path: Path

    @property
    def sample_count(self) -> int:
        return sum(len(s.sample_indexes) for s in self.selection)

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON form."""
        return {
            "version": SAVED_SEARCH_VERSION,
            "name": self.name,
            "filters": self.filters.to_dict(),
            "selection": [
                {"asset_id": s.asset_id, "sample_indexes": list(s.sample_indexes)}
                for s in self.selection
            ],
        }


def check_search_name(name: object) -> str:
    """A saved search's name: 1–64 of letters, digits, ``.``, ``_``, ``-`` (not first)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith(".json"):
        raise InvalidInputError(
            f"--save {name!r} is not a usable name: use 1 to 64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (it becomes a file name)"
        )
    return name


def searches_dir(settings: Settings) -> Path:
    return settings.home / "searches"


def saved_search_path(settings: Settings, name: str) -> Path:
    """Where the saved search ``name`` lives."""
    return searches_dir(settings) / f"{check_search_name(name)}.json"


def list_saved_searches(settings: Settings) -> list[str]:
    """Names of the saved searches, sorted."""
    folder = searches_dir(settings)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if _NAME.match(p.stem))


def group_selection(pairs: Sequence[tuple[int, int]]) -> tuple[SelectedSamples, ...]:
    """``(asset id, index)`` pairs → one entry per asset, sorted by asset id then index."""
    grouped: dict[int, set[int]] = {}
    for asset_id, index in pairs:
        grouped.setdefault(int(asset_id), set()).add(int(index))
    return tuple(
        SelectedSamples(asset_id, tuple(sorted(indexes)))
        for asset_id, indexes in sorted(grouped.items())
    )


def write_saved_search(
    settings: Settings, name: str, filters: SearchFilters, pairs: Sequence[tuple[int, int]]
) -> SavedSearch:
    """Write every matched ``(asset id, index)`` under ``name`` (replacing an older one)."""
    path = saved_search_path(settings, name)
    saved = SavedSearch(name, filters, group_selection(pairs), path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(saved.to_dict(), indent=1) + "\n")
    tmp.replace(path)
    return saved


def load_saved_search(settings: Settings, name: str) -> SavedSearch:
    """Read the saved search ``name``; :class:`~visdm.errors.InvalidInputError` when it does not
    exist or is not a valid saved search (the message names the file and the problem)."""
    path = saved_search_path(settings, name)
    what, hint = f"saved search {path}", f"save it again with `--save {name}`"
    try:  # a selection of a million samples is a few MiB: the bound only stops planted files
        raw = read_untrusted_file(path, what=what, max_bytes=_MAX_SAVED_BYTES, hint=hint)
    except FileNotFoundError:
        known = list_saved_searches(settings)
        hint = f"saved searches: {', '.join(known)}" if known else "there is none yet"
        raise InvalidInputError(
            f"no saved search {name!r} (no {path}); save one with `visdm market search … "
            f"--save {name}` ({hint})"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"saved search {path} cannot be read: {exc}; {hint}") from None
    data = load_untrusted_json(text, what=what, max_bytes=_MAX_SAVED_BYTES, hint=hint)
    return _parse(data, name, path)


def _parse(data: object, name: str, path: Path) -> SavedSearch:
    def bad(problem: str) -> InvalidInputError:
        return InvalidInputError(
            f"saved search {path} is invalid: {problem}; save it again with `visdm market "
            f"search … --save {name}`"
        )

    if not isinstance(data, dict):
        raise bad("it is not a JSON object")
    if data.get("version") != SAVED_SEARCH_VERSION:
        raise bad(f"version is {data.get('version')!r}, expected {SAVED_SEARCH_VERSION}")
    if data.get("name") != name:
        raise bad(f"it is named {data.get('name')!r}, not {name!r}")
    try:
        filters = SearchFilters.from_dict(data.get("filters", {}), source="its filters")
    except InvalidInputError as exc:
        raise bad(str(exc)) from None
    selection = data.get("selection")
    if not isinstance(selection, list):
        raise bad("selection must be a list")
    entries: list[SelectedSamples] = []
    previous = 0
    for position, item in enumerate(selection):
        if not isinstance(item, dict) or set(item) != {"asset_id", "sample_indexes"}:
            raise bad(f"selection entry {position} must be {{asset_id, sample_indexes}}")
        asset_id, indexes = item["asset_id"], item["sample_indexes"]
        if not _whole(asset_id, 1):
            raise bad(f"selection entry {position}: asset_id {asset_id!r} is not an asset id")
        if asset_id <= previous:
            raise bad(f"selection entry {position}: asset ids must increase (got {asset_id})")
        previous = asset_id
        if not isinstance(indexes, list) or not indexes:
            raise bad(f"asset {asset_id}: sample_indexes must be a non-empty list")
        if not all(_whole(i, 0) for i in indexes):
            raise bad(f"asset {asset_id}: sample_indexes must be whole numbers ≥ 0")
        if any(b <= a for a, b in itertools.pairwise(indexes)):
            raise bad(f"asset {asset_id}: sample_indexes must increase, without repeats")
        entries.append(SelectedSamples(asset_id, tuple(indexes)))
    return SavedSearch(name, filters, tuple(entries), path)


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low
