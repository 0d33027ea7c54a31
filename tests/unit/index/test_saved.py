"""Saved searches: written in one shape, and read back only when every part of it is sound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.index import SearchFilters, list_saved_searches, load_saved_search, saved_search_path
from visdm.index._saved import write_saved_search

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


def write(settings: Settings, name: str, data: Any) -> Path:
    path = settings.home / "searches" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def valid(name: str = "s") -> dict[str, Any]:
    return {
        "version": 1,
        "name": name,
        "filters": {"labels": ["cat"]},
        "selection": [
            {"asset_id": 1, "sample_indexes": [0, 2]},
            {"asset_id": 4, "sample_indexes": [1]},
        ],
    }


def test_written_selection_is_grouped_and_sorted(settings: Settings) -> None:
    pairs = [(4, 1), (1, 2), (1, 0), (4, 0), (1, 2)]
    saved = write_saved_search(settings, "mine", SearchFilters(labels=("cat",)), pairs)
    assert [(s.asset_id, s.sample_indexes) for s in saved.selection] == [
        (1, (0, 2)),
        (4, (0, 1)),
    ]
    assert load_saved_search(settings, "mine") == saved
    assert list_saved_searches(settings) == ["mine"]
    assert not list(saved.path.parent.glob("*.tmp"))  # written atomically, nothing left over


def test_an_empty_selection_is_valid(settings: Settings) -> None:
    write_saved_search(settings, "none", SearchFilters(), [])
    assert load_saved_search(settings, "none").selection == ()


def test_a_missing_search_names_the_ones_that_exist(settings: Settings) -> None:
    with pytest.raises(InvalidInputError, match=r"no saved search 'x'.*there is none yet"):
        load_saved_search(settings, "x")
    write(settings, "cats", valid("cats"))
    with pytest.raises(InvalidInputError, match="saved searches: cats"):
        load_saved_search(settings, "dogs")


@pytest.mark.parametrize(
    "name", ["", "../etc/passwd", "a/b", ".hidden", "-dash", "x" * 65, "sp ace", "n.json", None]
)
def test_names_that_are_not_plain_file_names_are_refused(settings: Settings, name: Any) -> None:
    with pytest.raises(InvalidInputError, match="not a usable name"):
        saved_search_path(settings, name)
    with pytest.raises(InvalidInputError, match="not a usable name"):
        load_saved_search(settings, name)


def _with(**changes: Any) -> dict[str, Any]:
    data = valid()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (_with(version=2), "version is 2, expected 1"),
        (_with(name="other"), "named 'other', not 's'"),
        (_with(filters={"colour": "red"}), "unknown filter"),
        (_with(filters={"min_width": 0}), "--min-width"),
        (_with(filters=[]), "JSON object of filters"),
        (_with(selection={"1": [0]}), "selection must be a list"),
        (_with(selection=[[1, [0]]]), "entry 0 must be"),
        (_with(selection=[{"asset_id": 1, "sample_indexes": [0], "x": 1}]), "entry 0 must be"),
        (_with(selection=[{"asset_id": 0, "sample_indexes": [0]}]), "asset_id 0"),
        (_with(selection=[{"asset_id": True, "sample_indexes": [0]}]), "asset_id True"),
        (
            _with(
                selection=[
                    {"asset_id": 2, "sample_indexes": [0]},
                    {"asset_id": 1, "sample_indexes": [0]},
                ]
            ),
            "asset ids must increase",
        ),
        (
            _with(
                selection=[
                    {"asset_id": 2, "sample_indexes": [0]},
                    {"asset_id": 2, "sample_indexes": [1]},
                ]
            ),
            "asset ids must increase",
        ),
        (_with(selection=[{"asset_id": 1, "sample_indexes": []}]), "non-empty list"),
        (_with(selection=[{"asset_id": 1, "sample_indexes": [-1]}]), "whole numbers"),
        (_with(selection=[{"asset_id": 1, "sample_indexes": [1.0]}]), "whole numbers"),
        (_with(selection=[{"asset_id": 1, "sample_indexes": [2, 1]}]), "must increase"),
        (_with(selection=[{"asset_id": 1, "sample_indexes": [1, 1]}]), "without repeats"),
    ],
)
def test_a_corrupt_file_is_refused_naming_the_file(
    settings: Settings, content: Any, message: str
) -> None:
    path = write(settings, "s", content)
    with pytest.raises(InvalidInputError, match=message) as err:
        load_saved_search(settings, "s")
    assert str(path) in str(err.value)


def test_a_file_that_is_not_text_is_refused(settings: Settings) -> None:
    path = settings.home / "searches" / "bin.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InvalidInputError, match="cannot be read"):
        load_saved_search(settings, "bin")
