"""The one JSON language of ``visdm … --json`` (the node's HTTP answers follow the same rules).

- **Keys are camelCase** (``assetId``, ``sampleId``, ``byteSize``, ``gasUsed``), as in the
  contracts' ABI; one concept has one name in every command (``sharpness``, never ``blur``).
- **Token amounts are decimal strings in the token's smallest unit, and the key says so**:
  it ends in ``Wei`` (``offerWei``, ``balanceWei``, ``amountWei``). Never a JSON number, never a
  display string in tokens: a JSON number above 2^53 is rounded by JavaScript and jq.
- **Other integers beyond 2^53 − 1 are decimal strings** too.
- **A map keyed by data** (labels, addresses, asset ids, contract names) is a list of objects,
  so that every key in the output is a field name.
- **A command that sends transactions** prints ``transactions`` (``[{"txHash", "blockNumber",
  "gasUsed"}]``, empty when nothing had to be sent) and their total ``gasUsed``.

:func:`json_view` turns SDK results into this language; :func:`scheme_problems` says where a
value breaks it (the tests run it over every command's output).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visdm.chain.client import TxResult

__all__ = [
    "AMOUNT_WORDS",
    "MAX_SAFE_INTEGER",
    "camel",
    "json_view",
    "scheme_problems",
    "transactions",
]

#: the largest integer a JSON reader that uses doubles (JavaScript, jq) keeps exactly
MAX_SAFE_INTEGER = 2**53 - 1
#: a key whose last word is one of these names an amount, and must end in ``Wei`` instead
AMOUNT_WORDS = frozenset(
    {
        "amount",
        "ask",
        "balance",
        "claimed",
        "cost",
        "credit",
        "fee",
        "offer",
        "paid",
        "payout",
        "price",
        "refund",
        "refunded",
        "swept",
        "unclaimed",
        "unpayable",
        "unverified",
    }
)

_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
_CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+")
_DIGITS = re.compile(r"-?[0-9]+")


def camel(name: str) -> str:
    """``balance_wei`` → ``balanceWei``; a name that is not snake_case is left as it is."""
    if not _SNAKE.fullmatch(name):
        return name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_view(value: Any) -> Any:
    """``value`` (dataclasses, pydantic models, mappings, bytes, paths, enums) in the language
    above: keys camelCase, ``…Wei`` values and integers past 2^53 − 1 as decimal strings,
    bytes as ``0x`` hex, paths as strings, enums by their lower-case name, non-finite floats
    as ``null``."""
    if is_dataclass(value) and not isinstance(value, type):
        return _object((f.name, getattr(value, f.name)) for f in fields(value))
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return json_view(model_dump(mode="json"))
    if isinstance(value, Mapping):
        return _object((str(k), v) for k, v in value.items())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, int):
        return str(value) if abs(value) > MAX_SAFE_INTEGER else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [json_view(v) for v in value]
    return str(value)


def _object(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in items:
        key = camel(name)
        value = json_view(raw)
        if key.endswith("Wei") and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        out[key] = value
    return out


def transactions(*sent: TxResult | None) -> dict[str, Any]:
    """``{"transactions": [...], "gasUsed": total}`` for what a command sent (``None``: a
    transaction that did not have to be sent)."""
    mined = [t for t in sent if t is not None]
    return {
        "transactions": [
            {"txHash": t.tx_hash, "blockNumber": t.block_number, "gasUsed": t.gas_used}
            for t in mined
        ],
        "gasUsed": sum(t.gas_used for t in mined),
    }


def scheme_problems(data: Any, where: str = "$") -> list[str]:
    """Every place where JSON-ready ``data`` breaks the language; empty when it keeps it."""
    problems: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            at = f"{where}.{key}"
            if not isinstance(key, str) or not _CAMEL.fullmatch(key):
                problems.append(f"{at}: the key is not camelCase")
            elif key.endswith("Wei"):
                if value is not None and not (isinstance(value, str) and _DIGITS.fullmatch(value)):
                    problems.append(f"{at}: an amount must be a decimal string, got {value!r}")
            elif _last_word(key) in AMOUNT_WORDS and _numeric(value):
                problems.append(f"{at}: an amount must be named …Wei, got {value!r}")
            problems += scheme_problems(value, at)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            problems += scheme_problems(value, f"{where}[{i}]")
    elif isinstance(data, int) and not isinstance(data, bool) and abs(data) > MAX_SAFE_INTEGER:
        problems.append(f"{where}: {data} is past 2^53 - 1: it must be a decimal string")
    elif isinstance(data, float) and not math.isfinite(data):
        problems.append(f"{where}: {data} is not a JSON number")
    return problems


def _last_word(key: str) -> str:
    words = _WORDS.findall(key)
    return words[-1].lower() if words else key.lower()


def _numeric(value: Any) -> bool:
    """A number, or a string with a digit in it (``"10"``, ``"2.5 tokens"``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and any(c.isdigit() for c in value)
