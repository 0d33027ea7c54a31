"""Fuzzing the JSON guard: any value round-trips or is refused for a reason it names; any bytes
are read as the standard parser reads them or refused in one line; the depth it measures is
never less than the depth the parser would recurse to."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visdm.errors import InvalidInputError
from visdm.jsonsafe import MAX_INT_DIGITS, load_untrusted_json

from ._harness import fuzz
from ._strategies import deep_json, encoded, json_values, mangled, token_spliced
from ._targets import json_document

pytestmark = pytest.mark.unit


def _reasons(value: Any) -> set[str]:
    """What the guard must refuse in ``value``, if anything."""
    if isinstance(value, str):
        found = set()
        if "\x00" in value:
            found.add("NUL character")
        return found
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, int):
        return {"digits, more than"} if len(str(abs(value))) > MAX_INT_DIGITS else set()
    if isinstance(value, float):
        return set() if math.isfinite(value) else {"must be finite"}
    if isinstance(value, list):
        return set().union(*(_reasons(v) for v in value))
    return set().union(*(_reasons(k) | _reasons(v) for k, v in value.items()))


@fuzz(150)
@given(json_values())
def test_a_value_round_trips_or_is_refused_for_what_it_holds(value: Any) -> None:
    raw = encoded(value)
    reasons = _reasons(value)
    try:
        loaded = load_untrusted_json(raw, what="v", max_bytes=1 << 20)
    except InvalidInputError as exc:
        assert reasons, f"refused a clean value: {exc}"
        assert any(reason in str(exc) for reason in reasons), (reasons, str(exc))
    else:
        assert not reasons, f"accepted a value holding {reasons}"
        assert loaded == value


@fuzz(60)
@given(deep_json())
def test_nesting_is_refused_exactly_past_the_limit(raw: bytes) -> None:
    depth = raw.count(b"[") + raw.count(b"{")
    balanced = raw.endswith((b"]", b"}"))
    try:
        load_untrusted_json(raw, what="v", max_bytes=1 << 20)
    except InvalidInputError as exc:
        assert depth > 64 or not balanced, str(exc)
        if depth > 64:
            assert f"nests deeper than 64 levels ({depth:,})" in str(exc)
    else:
        assert depth <= 64 and balanced


@fuzz(300)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    json_document(data)


@fuzz(300)
@given(st.one_of(json_values().map(encoded).flatmap(mangled), deep_json().flatmap(mangled)))
def test_damaged_documents(data: bytes) -> None:
    json_document(data)


@fuzz(200)
@given(json_values().map(json.dumps).flatmap(token_spliced))
def test_documents_with_syntax_spliced_in(data: bytes) -> None:
    json_document(data)


@fuzz(100)
@given(
    st.lists(
        st.sampled_from(["[", "]", "{", "}", '"', "\\", "\\\\", '\\"', "a", ":", ","]), max_size=60
    )
)
def test_brackets_quotes_and_backslashes_in_any_order(parts: list[str]) -> None:
    json_document("".join(parts).encode())
