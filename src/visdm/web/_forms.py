"""Reading form and query fields: each value checked for its type, with the field named.

A browser sends strings, files or nothing; a hostile client sends anything. Every reader here
takes the raw multi-dict and returns a typed value or raises an
:class:`~visdm.errors.InvalidInputError` whose message names the field, what came, and what
is expected, so a form's error reads like the CLI's for the matching option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from visdm.errors import InvalidInputError
from visdm.index import SearchFilters, parse_resolution

__all__ = [
    "FILTER_FIELDS",
    "Fields",
    "boolean",
    "csv_list",
    "filters_from",
    "integer",
    "number",
    "optional_text",
    "query_pairs",
    "text",
    "texts",
    "tokens",
    "whole",
]

#: the longest text field the app reads (paths, names, addresses, amounts)
MAX_FIELD_CHARS = 4096
_DECIMALS = 18


class Fields(Protocol):
    """What Starlette's ``FormData`` and ``QueryParams`` both offer."""

    def getlist(self, key: Any) -> list[Any]: ...


def _values(fields: Fields, name: str) -> list[str]:
    out = []
    for value in fields.getlist(name):
        if not isinstance(value, str):
            raise InvalidInputError(
                f"the field {name!r} must be text, but a file was sent: type the value instead"
            )
        if len(value) > MAX_FIELD_CHARS:
            raise InvalidInputError(
                f"the field {name!r} has {len(value)} characters, more than the "
                f"{MAX_FIELD_CHARS} allowed: shorten it"
            )
        if "\0" in value:
            raise InvalidInputError(f"the field {name!r} contains a NUL character: remove it")
        out.append(value)
    return out


def optional_text(fields: Fields, name: str) -> str | None:
    """The field's single value, stripped; ``None`` when absent or blank."""
    values = [v.strip() for v in _values(fields, name) if v.strip()]
    if len(values) > 1:
        raise InvalidInputError(f"the field {name!r} was sent {len(values)} times: send it once")
    return values[0] if values else None


def text(fields: Fields, name: str, *, what: str | None = None) -> str:
    """The field's value; an error naming the field when it is missing or blank."""
    value = optional_text(fields, name)
    if value is None:
        raise InvalidInputError(f"the field {what or name!r} is empty: fill it in")
    return value


def texts(fields: Fields, name: str) -> tuple[str, ...]:
    """Every non-blank value of a repeated field (checkboxes, multi-selects)."""
    return tuple(v.strip() for v in _values(fields, name) if v.strip())


def integer(
    fields: Fields, name: str, *, minimum: int | None = None, required: bool = True
) -> int | None:
    """A whole number (``None`` when blank and not ``required``)."""
    value = optional_text(fields, name) if not required else text(fields, name)
    if value is None:
        return None
    try:
        number_ = int(value, 10)
    except ValueError:
        raise InvalidInputError(
            f"the field {name!r} must be a whole number, got {value[:40]!r}"
        ) from None
    if minimum is not None and number_ < minimum:
        raise InvalidInputError(f"the field {name!r} must be at least {minimum}, got {number_}")
    return number_


def whole(fields: Fields, name: str, *, minimum: int | None = None) -> int:
    """A required whole number."""
    value = integer(fields, name, minimum=minimum)
    if value is None:  # integer() with required=True never returns None
        raise InvalidInputError(f"the field {name!r} is empty: fill it in")
    return value


def number(fields: Fields, name: str) -> float | None:
    """A finite decimal number, or ``None`` when blank."""
    value = optional_text(fields, name)
    if value is None:
        return None
    try:
        parsed = float(value)
    except ValueError:
        raise InvalidInputError(
            f"the field {name!r} must be a number, got {value[:40]!r}"
        ) from None
    if not math.isfinite(parsed):
        raise InvalidInputError(f"the field {name!r} must be a finite number, got {value[:40]!r}")
    return parsed


def boolean(fields: Fields, name: str) -> bool:
    """A checkbox: present and not ``0``/``false``/``off``."""
    value = optional_text(fields, name)
    return value is not None and value.lower() not in ("0", "false", "off", "no")


def tokens(fields: Fields, name: str) -> int:
    """An amount in tokens (up to 18 decimals) as wei, like the CLI's ``--offer``."""
    value = text(fields, name)
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidInputError(
            f"the field {name!r} must be an amount in tokens such as 2.5, got {value[:40]!r}"
        ) from None
    wei = amount * 10**_DECIMALS
    if not amount.is_finite() or amount < 0 or wei != wei.to_integral_value():
        raise InvalidInputError(
            f"the field {name!r} must be a non-negative amount with at most {_DECIMALS} "
            f"decimals, got {value[:40]!r}"
        )
    return int(wei)


#: the search form's fields, in the order the page shows them
FILTER_FIELDS = (
    "label",
    "min_resolution",
    "max_resolution",
    "format",
    "min_brightness",
    "max_brightness",
    "min_contrast",
    "max_contrast",
    "min_sharpness",
    "max_sharpness",
    "max_duplicate_links",
    "duplicate_distance",
    "max_cluster_size",
    "min_score",
    "include_unscored",
    "exclude_flag",
    "region",
    "purpose",
    "consumer",
    "include_expired",
    "provider",
    "asset",
    "include_withdrawn",
)


def filters_from(fields: Fields) -> SearchFilters:
    """The search filters a query string or form describes (the CLI's ``market search``
    options, one field each, repeatable where the option is)."""
    low: tuple[int | None, int | None] = (None, None)
    high: tuple[int | None, int | None] = (None, None)
    if (value := optional_text(fields, "min_resolution")) is not None:
        low = parse_resolution(value, option="min_resolution")
    if (value := optional_text(fields, "max_resolution")) is not None:
        high = parse_resolution(value, option="max_resolution")
    assets = []
    for value in texts(fields, "asset"):
        if not value.isdigit():
            raise InvalidInputError(f"the field 'asset' must be an asset id, got {value[:40]!r}")
        assets.append(int(value))
    return SearchFilters(
        labels=texts(fields, "label"),
        min_width=low[0],
        min_height=low[1],
        max_width=high[0],
        max_height=high[1],
        formats=texts(fields, "format"),
        min_brightness=number(fields, "min_brightness"),
        max_brightness=number(fields, "max_brightness"),
        min_contrast=number(fields, "min_contrast"),
        max_contrast=number(fields, "max_contrast"),
        min_sharpness=number(fields, "min_sharpness"),
        max_sharpness=number(fields, "max_sharpness"),
        max_duplicate_links=integer(fields, "max_duplicate_links", minimum=0, required=False),
        duplicate_distance=integer(fields, "duplicate_distance", minimum=0, required=False),
        max_cluster_size=integer(fields, "max_cluster_size", minimum=1, required=False),
        min_score=number(fields, "min_score"),
        include_unscored=boolean(fields, "include_unscored"),
        exclude_flags=texts(fields, "exclude_flag"),
        regions=texts(fields, "region"),
        purposes=texts(fields, "purpose"),
        consumer=optional_text(fields, "consumer"),
        include_expired=boolean(fields, "include_expired"),
        providers=texts(fields, "provider"),
        asset_ids=tuple(assets),
        include_withdrawn=boolean(fields, "include_withdrawn"),
    )


def query_pairs(fields: Fields, names: Sequence[str]) -> list[tuple[str, str]]:
    """The non-blank ``(name, value)`` pairs of ``names``, to rebuild a query string."""
    return [(n, v) for n in names for v in _values(fields, n) if v.strip()]


def csv_list(value: str | None) -> list[str] | None:
    """``a, b`` as ``["a", "b"]`` (``None`` stays ``None``), as the CLI splits its lists."""
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]
