"""Search filters: normalised on the way in, and every bad value refused by its option name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visdm.errors import InvalidInputError
from visdm.index import SearchFilters, parse_resolution

pytestmark = pytest.mark.unit

ADDRESS = "0x" + "ab" * 20


def test_values_are_normalised() -> None:
    f = SearchFilters(
        labels=(" cat ", "dog", "cat"),
        formats=("jpg", "png", "JPEG"),
        exclude_flags=(" Noisy",),
        regions=(" eu ",),
        purposes=("training ",),
        consumer=ADDRESS,
        providers=(ADDRESS, ADDRESS.upper().replace("0X", "0x")),
        asset_ids=[3, 1, 3],  # type: ignore[arg-type]
        min_score=1,
    )
    assert f.labels == ("cat", "dog")
    assert f.formats == ("JPEG", "PNG")
    assert f.exclude_flags == ("noisy",)
    assert (f.regions, f.purposes) == (("eu",), ("training",))
    assert f.consumer == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    assert f.providers == (f.consumer,)
    assert f.asset_ids == (3, 1)
    assert f.min_score == 1.0 and isinstance(f.min_score, float)


def test_resolutions() -> None:
    assert parse_resolution("64x48") == (64, 48)
    assert parse_resolution(" 32 X 32 ") == (32, 32)
    assert parse_resolution("128") == (128, 128)
    for bad in ("", "abc", "64x", "x64", "0x5", "-3x4", "1.5x2"):
        with pytest.raises(InvalidInputError, match="--max-resolution"):
            parse_resolution(bad, option="--max-resolution")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ("",)}, "--label is empty"),
        ({"labels": ("  ",)}, "--label is empty"),
        ({"labels": ("x" * 65,)}, "at most 64"),
        ({"labels": ("cat\ndog",)}, "control characters"),
        ({"labels": (3,)}, "--label must be text"),
        ({"labels": "cat"}, "--labels must be a list"),
        ({"formats": ("GIF",)}, "--format 'GIF' is not an image format.*BMP, JPEG, PNG, WEBP"),
        ({"min_width": 0}, "--min-width must be a whole number ≥ 1"),
        ({"max_height": -5}, "--max-height"),
        ({"min_width": 2.5}, "--min-width"),
        ({"min_width": True}, "--min-width"),
        ({"min_width": 64, "max_width": 32}, "--min-width 64 is above --max-width 32"),
        ({"min_brightness": 200, "max_brightness": 100}, "--min-brightness"),
        ({"min_contrast": float("nan")}, "--min-contrast must be a finite number"),
        ({"max_sharpness": float("inf")}, "--max-sharpness"),
        ({"min_score": "high"}, "--min-score must be a finite number"),
        ({"max_duplicate_links": -1}, "--max-duplicate-links must be a whole number ≥ 0"),
        ({"duplicate_distance": 65}, "--duplicate-distance must be at most 64"),
        ({"max_cluster_size": 0}, "--max-cluster-size must be a whole number ≥ 1"),
        ({"exclude_flags": ("bogus",)}, "--exclude-flag 'bogus' is not a flag: use noisy"),
        ({"regions": ("x" * 33,)}, "--region .* 1 to 32 bytes"),
        ({"regions": ("",)}, "--region"),
        ({"purposes": (" ",)}, "--purpose"),
        ({"consumer": "0x1234"}, "--consumer '0x1234' is not an Ethereum address"),
        ({"providers": ("alice",)}, "--provider 'alice'"),
        ({"asset_ids": (0,)}, "--asset 0 is not an asset id"),
        ({"asset_ids": (True,)}, "--asset True"),
        ({"asset_ids": "1"}, "--asset must be a list"),
        ({"include_expired": "yes"}, "--include-expired must be true or false"),
    ],
)
def test_bad_filters_are_refused_by_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SearchFilters(**kwargs)


def test_to_dict_keeps_only_what_differs_from_the_defaults() -> None:
    assert SearchFilters().to_dict() == {}
    f = SearchFilters(labels=("cat",), min_width=32, include_unscored=True)
    assert f.to_dict() == {"labels": ["cat"], "min_width": 32, "include_unscored": True}


def test_from_dict_refuses_what_it_does_not_know() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown filter.*colour"):
        SearchFilters.from_dict({"colour": "red"}, source="saved filters")
    with pytest.raises(InvalidInputError, match="filters must be a JSON object"):
        SearchFilters.from_dict(["labels"])
    with pytest.raises(InvalidInputError, match="saved: --min-width"):
        SearchFilters.from_dict({"min_width": -1}, source="saved")


label = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs")),
    min_size=1,
    max_size=20,
)


@given(
    labels=st.lists(label, max_size=3),
    width=st.none() | st.integers(1, 4096),
    score=st.none() | st.floats(-1, 1),
    flags=st.lists(st.sampled_from(["noisy", "copied", "duplicate"]), max_size=3),
    assets=st.lists(st.integers(1, 10**6), max_size=4),
    withdrawn=st.booleans(),
)
def test_filters_survive_a_round_trip_through_json(
    labels: list[str],
    width: int | None,
    score: float | None,
    flags: list[str],
    assets: list[int],
    withdrawn: bool,
) -> None:
    import json

    f = SearchFilters(
        labels=tuple(labels),
        min_width=width,
        min_score=score,
        exclude_flags=tuple(flags),
        asset_ids=tuple(assets),
        include_withdrawn=withdrawn,
    )
    assert SearchFilters.from_dict(json.loads(json.dumps(f.to_dict()))) == f
