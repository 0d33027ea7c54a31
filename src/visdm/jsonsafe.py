"""Parsing untrusted JSON: size and nesting bounded before the parser runs.

Every JSON document a user or a peer can hand ViSDM (licence files, model specs, keystores,
saved searches, the deployment file; a node's metadata, result and score documents, its HTTP
answers and its model envelopes; the node API's request bodies; the IPFS RPC's answers; the
sandbox's job description and results) goes through :func:`load_untrusted_json`.
Python's ``json`` recurses once per nesting level in C, and importing ``eth_account`` (through
``py_ecc``) raises the interpreter's recursion limit to 100,000: a file of 80,000 ``[`` then
overflows the C stack and kills the process with SIGSEGV instead of raising. So, before
``json.loads`` sees a byte:

1. the size is checked against ``max_bytes`` (files are read at most one byte past it, see
   :func:`read_untrusted_file`);
2. the text must be UTF-8 (``json.loads`` would otherwise guess UTF-16 or UTF-32 from zero
   bytes); a leading byte-order mark is ignored, as RFC 8259 allows;
3. the nesting depth is measured with a linear, vectorised scan (:func:`nesting_depth`:
   escapes dropped, brackets counted where an even number of quotes precedes them) and
   anything deeper than ``max_depth`` is refused.

Duplicate keys are refused while parsing (which copy wins differs between parsers). After
parsing, with the path to the value: ``NaN``, ``Infinity``, floats that overflow to infinity and
integers longer than a uint256 (78 digits; no field has a use for more, and ``int()`` itself
refuses past 4,300); strings, keys included, that hold U+0000 (C strings, XML and PostgreSQL
cannot store it) or an unpaired UTF-16 surrogate (no UTF-8 encoder accepts one). Only documents
whose text could hold such a value are walked.

Every refusal is one line, names ``what`` and ends with ``hint``: what to do about it.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from visdm.errors import InvalidInputError, VisdmError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "MAX_INT_DIGITS",
    "load_untrusted_json",
    "load_untrusted_object",
    "nesting_depth",
    "one_line",
    "read_untrusted_file",
]

#: nesting allowed by default: no ViSDM document nests more than a handful of levels
DEFAULT_MAX_DEPTH = 64
#: digits of the largest integer accepted: 2**256 - 1 has 78
MAX_INT_DIGITS = 78
_DEFAULT_HINT = "check that it is the document you meant, or fix it"
# an integer longer than a uint256 needs more digits in a row
_LONG_INT = re.compile(rb"[0-9]{%d}" % (MAX_INT_DIGITS + 1))
# what a refused value needs in the text: an escape for U+0000 or a surrogate, a non-finite
# constant, or a float too large (a 3-digit exponent, or 309 digits in a row)
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|NaN|Infinity|[eE][+]?0*[0-9]{3}|[0-9]{309}")
_BAD_CHAR = re.compile("[\0\ud800-\udfff]")
_QUOTE = ord('"')
_NOT_KEPT = bytes(b for b in range(256) if b not in b'"[]{}')
_DELTA = np.zeros(256, dtype=np.int8)
_DELTA[list(b"[{")] = 1
_DELTA[list(b"]}")] = -1
_CHUNK = 1 << 24


class _RefusedError(Exception):
    """Raised from the parser's hooks; carries the problem to the one place that words it."""


def one_line(text: str) -> str:
    """``text`` with control and line-separator characters escaped, so a message stays on one
    line whatever a file name or a peer's string holds."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def read_untrusted_file(
    path: str | os.PathLike[str],
    *,
    what: str,
    max_bytes: int,
    error: type[VisdmError] = InvalidInputError,
    hint: str = _DEFAULT_HINT,
) -> bytes:
    """At most ``max_bytes`` of the file at ``path``; a larger file is refused after reading one
    byte past the limit, never in full.

    :class:`FileNotFoundError` propagates so that callers can say how to create the file;
    every other failure to read (a folder, no permission) raises ``error``.
    """
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _error(error, what, f"cannot be read: {exc.strerror or exc}", hint) from None
    if len(data) > max_bytes:
        raise _error(error, what, f"is over the {max_bytes:,}-byte limit", hint)
    return data


def load_untrusted_json(
    data: bytes | bytearray | memoryview | str,
    *,
    what: str,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    error: type[VisdmError] = InvalidInputError,
    hint: str = _DEFAULT_HINT,
) -> Any:
    """Parse ``data`` as JSON with the bounds of the module docstring, or raise ``error`` with
    a one-line message that names ``what`` and ends with ``hint``."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _error(error, what, f"holds an unpaired surrogate at {exc.start}", hint) from None
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise _error(error, what, f"must be bytes or text, got {type(data).__name__}", hint)
    if len(raw) > max_bytes:
        raise _error(error, what, f"is {len(raw):,} bytes, over the {max_bytes:,}-byte limit", hint)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _error(
            error,
            what,
            f"is not valid JSON: it must be UTF-8 text, and byte {exc.start} is "
            f"0x{raw[exc.start]:02x}",
            hint,
        ) from None
    # fewer brackets than the limit cannot nest past it: small documents skip the scan
    depth = nesting_depth(raw) if raw.count(b"[") + raw.count(b"{") > max_depth else 0
    if depth > max_depth:
        raise _error(error, what, f"nests deeper than {max_depth} levels ({depth:,})", hint)
    long_ints = _LONG_INT.search(raw) is not None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            # a Python call per integer: only where one could be longer than a uint256
            parse_int=_bounded_int if long_ints else None,
        )
    except _RefusedError as exc:
        raise _error(error, what, str(exc), hint) from None
    except ValueError as exc:  # JSONDecodeError, and int() past its own digit limit
        raise _error(error, what, f"is not valid JSON ({exc})", hint) from None
    if long_ints or _SUSPECT.search(raw):  # only then can a value be refused: most skip the walk
        problem = _bad_value(value, "")
        if problem is not None:
            raise _error(error, what, problem, hint)
    return value


def load_untrusted_object(
    data: bytes | bytearray | memoryview | str,
    *,
    what: str,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    error: type[VisdmError] = InvalidInputError,
    hint: str = _DEFAULT_HINT,
) -> dict[str, Any]:
    """:func:`load_untrusted_json` for documents that must be one JSON object."""
    value = load_untrusted_json(
        data, what=what, max_bytes=max_bytes, max_depth=max_depth, error=error, hint=hint
    )
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"a {type(value).__name__}"
        raise _error(error, what, f"is not a JSON object (it holds {kind})", hint)
    return value


def nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting of ``raw`` outside strings, unbalanced brackets included.

    An upper bound of how deep ``json.loads`` recurses: up to the first syntax error, where the
    parser stops, the strings seen here are the parser's. Escaped backslashes, then escaped
    quotes are dropped (left to right, as the parser pairs them); of the rest only quotes and
    brackets are kept, and a bracket counts when an even number of quotes precedes it. Linear
    and vectorised: a gigabyte-sized metadata document takes seconds, not minutes.
    """
    kept = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_KEPT)
    deepest = level = 0
    outside = True
    for start in range(0, len(kept), _CHUNK):
        chunk = np.frombuffer(kept, np.uint8, min(_CHUNK, len(kept) - start), start)
        quotes = np.cumsum(chunk == _QUOTE, dtype=np.int64)
        parity = quotes & 1 if outside else (quotes + 1) & 1
        steps = np.where(parity == 0, _DELTA[chunk], 0)
        running = np.cumsum(steps, dtype=np.int64) + level
        deepest = max(deepest, int(running.max()))
        level = int(running[-1])
        outside = bool(parity[-1] == 0)
    return deepest


def _error(error: type[VisdmError], what: str, problem: str, hint: str) -> VisdmError:
    return error(one_line(f"{what} {problem}; {hint}"))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RefusedError(f"repeats the key {_shown(key)}: give each key once")
        out[key] = value
    return out


class _HugeInt:
    """Stands in for an integer longer than a uint256 until the walk names where it is."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _bounded_int(text: str) -> int | _HugeInt:
    digits = len(text) - text.startswith("-")
    # past a uint256 no field has a use for it, and past 4,300 digits int() refuses it anyway
    return _HugeInt(digits) if digits > MAX_INT_DIGITS else int(text)


def _bad_value(value: Any, path: str) -> str | None:
    """The first string (key or value) holding U+0000 or a lone surrogate, or the first number
    that is not finite, as a problem naming where it is."""
    if isinstance(value, str):
        found = _BAD_CHAR.search(value)
        if found is None:
            return None
        where = path or "the top level"
        if found.group() == "\0":
            return f"holds a NUL character (\\u0000) in {where}, which no field allows"
        return f"holds an unpaired surrogate (\\u{ord(found.group()):04x}) in {where}"
    if isinstance(value, _HugeInt):
        return (
            f"has a number out of range: {path or 'the value'} has {value.digits:,} digits, "
            f"more than the {MAX_INT_DIGITS} of a uint256"
        )
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"has a number out of range: {path or 'the value'} must be finite, got {value}"
    if isinstance(value, list):
        items: Any = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        items = (
            pair
            for key, v in value.items()
            for pair in ((f"a key of {path or 'the top level'}", key), (_child(path, key), v))
        )
    else:
        return None
    for at, item in items:
        problem = _bad_value(item, at)
        if problem is not None:
            return problem
    return None


def _child(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{_shown(key)}]"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")
