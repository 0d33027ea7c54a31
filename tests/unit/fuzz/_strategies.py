"""Hypothesis strategies for hostile input: valid documents with mutated fields, deep nesting,
huge numbers, NUL bytes, invalid UTF-8 and byte-level damage — not only random bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: strings a careless or hostile writer puts in a field
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\n",
            "line\r\nbreak",
            "\u2028",
            "\ufeff",
            "\x1b[31m",
            "..",
            "../../etc/passwd",
            "/abs",
            "é",
            "e\u0301",
            "0x" + "f" * 40,
            "9" * 100,
            "NaN",
            "x" * 5000,
        ]
    ),
)
#: numbers at and past every bound a field could have
HOSTILE_NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, 2**256, 10**77, 10**78, 10**100, -(10**500)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_LEAF = st.one_of(st.none(), st.booleans(), HOSTILE_NUMBER, HOSTILE_TEXT)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (NaN and infinities included, as Python's encoder writes them)."""
    return st.recursive(
        _LEAF,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def nested(depth: int, *, inner: str = "1", opening: str = "[") -> str:
    closing = {"[": "]", "{": "}"}
    if opening == "{":
        return '{"a":' * depth + inner + "}" * depth
    return opening * depth + inner + closing[opening] * depth


def deep_json() -> st.SearchStrategy[bytes]:
    """Nesting around the default limit and far past it, balanced or not."""
    return st.builds(
        lambda depth, opening, balanced: (
            nested(depth, opening=opening) if balanced else opening * depth
        ).encode(),
        st.one_of(st.integers(1, 80), st.sampled_from([1000, 100_000])),
        st.sampled_from(["[", "{"]),
        st.booleans(),
    )


def with_replaced_field(document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``document`` with one top-level field replaced by a hostile value, removed, or an
    unknown field added."""
    keys = sorted(document)

    def replace(key: str, value: Any) -> dict[str, Any]:
        return {**document, key: value}

    def drop(key: str) -> dict[str, Any]:
        return {k: v for k, v in document.items() if k != key}

    return st.one_of(
        st.builds(replace, st.sampled_from(keys), json_values(6)),
        st.builds(drop, st.sampled_from(keys)),
        st.builds(replace, HOSTILE_TEXT, json_values(3)),
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced (``_DROP``: removed)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        out = dict(document)
        inner = _replaced(out[head], rest, value) if rest else value
        if inner is _DROP:
            del out[head]
        else:
            out[head] = inner
        return out
    items = list(document)
    inner = _replaced(items[head], rest, value) if rest else value
    if inner is _DROP:
        del items[head]
    else:
        items[head] = inner
    return items


_DROP = object()


def with_replaced_path(document: Any) -> st.SearchStrategy[Any]:
    """``document`` with the value at one path — at any depth — replaced by a hostile value or
    removed, or an unknown key added at the top."""
    paths = _paths(document)
    return st.one_of(
        st.builds(
            lambda path, value: _replaced(document, path, value),
            st.sampled_from(paths),
            st.one_of(json_values(6), st.just(_DROP)),
        ),
        st.builds(lambda key, value: {**document, key: value}, HOSTILE_TEXT, json_values(3)),
    )


def encoded(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def mangled(data: bytes, *, max_edits: int = 6) -> st.SearchStrategy[bytes]:
    """``data`` with byte-level damage: overwrites, inserts, deletions, a cut, a tail."""

    def apply(edits: list[tuple[int, int, int]], cut: int | None, tail: bytes) -> bytes:
        out = bytearray(data)
        for kind, position, value in edits:
            if not out:
                break
            at = position % len(out)
            if kind == 0:
                out[at] = value
            elif kind == 1:
                out.insert(at, value)
            else:
                del out[at]
        if cut is not None:
            del out[cut % (len(out) + 1) :]
        return bytes(out) + tail

    return st.builds(
        apply,
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 2**32), st.integers(0, 255)),
            max_size=max_edits,
        ),
        st.none() | st.integers(0, 2**32),
        st.sampled_from([b"", b"\x00", b"\xff\xfe", b"PK\x03\x04" + b"\x00" * 26]),
    )


def token_spliced(text: str) -> st.SearchStrategy[bytes]:
    """``text`` with syntax-significant tokens inserted: the damage a parser trips on."""
    tokens = [
        "[",
        "]",
        "{",
        "}",
        '"',
        "\\",
        ",",
        ":",
        "\\u0000",
        "\\ud800",
        "NaN",
        "1e999",
        "9" * 90,
        "<",
        ">",
        "&",
        "<!DOCTYPE x>",
        "<!ENTITY e 'x'>",
        "&#0;",
        "]]>",
        "\x00",
        "\n",
    ]

    def apply(inserts: list[tuple[int, str]]) -> bytes:
        out = text
        for position, token in inserts:
            at = position % (len(out) + 1)
            out = out[:at] + token + out[at:]
        return out.encode("utf-8", "surrogatepass")

    return st.builds(
        apply, st.lists(st.tuples(st.integers(0, 2**32), st.sampled_from(tokens)), max_size=4)
    )
