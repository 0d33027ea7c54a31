"""What a consumer can ask of the index: one typed, validated set of filters.

Consumers choose data by public metadata alone (design 3.3 step 1), so every field a node
attests — and every verdict of earlier training rounds — is a filter:

* **content**: labels (any of), image size (``min_width`` … ``max_height``; the CLI's
  ``--min-resolution 32x32``), container format, and the quality statistics of
  :mod:`visdm.metadata`: luma ``brightness`` and ``contrast`` (0–255) and ``sharpness``, the
  metadata's ``blur`` field (variance of the Laplacian: *higher is sharper*);
* **near-duplicates**: ``max_duplicate_links`` (how many links to samples still in the market a
  sample may have; 0 keeps only samples without near-duplicates), counted among links of at
  most ``duplicate_distance`` bits (default: every link the node recorded, i.e. within its
  radius), and ``max_cluster_size`` (the size of its connected component of links);
* **past value**: ``min_score`` on the mean of a sample's published values over the rounds
  that scored it (unscored samples pass only with ``include_unscored``) and ``exclude_flags``
  (``copied``, ``duplicate``: flagged in any round; ``noisy``: flagged, with evidence, in more
  rounds than gave it a positive value);
* **where and under which terms**: allowed ``regions`` (any of), licence ``purposes`` (all
  of), a ``consumer`` the licence must admit (not denied, and on the allow-list when the
  licence has one); expired licences are left out unless ``include_expired``;
* **who and which**: ``providers`` (asset owners) and ``asset_ids``; withdrawn assets only with
  ``include_withdrawn``.

Construction validates and normalises everything (labels trimmed, formats upper-cased,
addresses checksummed) and raises :class:`~visdm.errors.InvalidInputError` naming the option
and the value. Filters travel in saved searches as :meth:`SearchFilters.to_dict`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from visdm.errors import InvalidInputError

from ._documents import KNOWN_FLAGS

__all__ = ["MAX_LABEL_CHARS", "SearchFilters", "parse_resolution"]

#: longest label, in characters (as :data:`visdm.ingest.MAX_LABEL_CHARS`)
MAX_LABEL_CHARS = 64
_FORMAT_ALIASES = {"JPG": "JPEG"}
_RESOLUTION = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$")


_FLOAT_FILTERS = (
    "min_brightness",
    "max_brightness",
    "min_contrast",
    "max_contrast",
    "min_sharpness",
    "max_sharpness",
    "min_score",
)
_RANGES = (
    ("min_width", "max_width"),
    ("min_height", "max_height"),
    ("min_brightness", "max_brightness"),
    ("min_contrast", "max_contrast"),
    ("min_sharpness", "max_sharpness"),
)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_resolution(text: str, *, option: str = "--min-resolution") -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)``; a single number means a square (``"32"`` → 32×32)."""
    match = _RESOLUTION.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInputError(
            f"{option} {text!r} is not a resolution: write WIDTHxHEIGHT, e.g. 64x64"
        )
    width = int(match.group(1))
    height = int(match.group(2) or width)
    if width < 1 or height < 1:
        raise InvalidInputError(f"{option} {text!r}: width and height must be at least 1")
    return width, height


def check_label(label: object) -> str:
    """A label as the index stores it (trimmed), or an error naming what is wrong with it."""
    if not isinstance(label, str):
        raise InvalidInputError(f"--label must be text, got {type(label).__name__}")
    text = label.strip()
    if not text:
        raise InvalidInputError("--label is empty: give the label text, e.g. --label sneaker")
    if len(text) > MAX_LABEL_CHARS:
        raise InvalidInputError(
            f"--label {text[:20]!r}… is {len(text)} characters; labels have at most "
            f"{MAX_LABEL_CHARS}"
        )
    if any(unicodedata.category(c).startswith("C") for c in text):
        raise InvalidInputError(f"--label {text!r} contains control characters")
    return text


def _address(value: object, option: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidInputError(f"{option} {value!r} is not an Ethereum address (0x + 40 hex)")
    return str(to_checksum_address(value))


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Filters of a marketplace search (see the module docstring); all optional."""

    labels: tuple[str, ...] = ()
    min_width: int | None = None
    min_height: int | None = None
    max_width: int | None = None
    max_height: int | None = None
    formats: tuple[str, ...] = ()
    min_brightness: float | None = None
    max_brightness: float | None = None
    min_contrast: float | None = None
    max_contrast: float | None = None
    min_sharpness: float | None = None
    max_sharpness: float | None = None
    max_duplicate_links: int | None = None
    duplicate_distance: int | None = None
    max_cluster_size: int | None = None
    min_score: float | None = None
    include_unscored: bool = False
    exclude_flags: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    consumer: str | None = None
    include_expired: bool = False
    providers: tuple[str, ...] = ()
    asset_ids: tuple[int, ...] = ()
    include_withdrawn: bool = False

    def __post_init__(self) -> None:
        for name in ("labels", "formats", "exclude_flags", "regions", "purposes", "providers"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, tuple | list):
                raise InvalidInputError(
                    f"{_option(name)} must be a list of values, got {type(value).__name__}"
                )
        self._check_numbers()
        self._normalise_content()
        self._normalise_market()
        for name in ("include_unscored", "include_expired", "include_withdrawn"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{_option(name)} must be true or false")

    def _check_numbers(self) -> None:
        for name in ("min_width", "min_height", "max_width", "max_height"):
            self._check_int(name, low=1)
        self._check_int("max_duplicate_links", low=0)
        self._check_int("duplicate_distance", low=0, high=64)
        self._check_int("max_cluster_size", low=1)
        for name in _FLOAT_FILTERS:
            self._check_float(name)
        for low, high in _RANGES:
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise InvalidInputError(
                    f"{_option(low)} {a} is above {_option(high)} {b}: nothing could match"
                )

    def _normalise_content(self) -> None:
        put = object.__setattr__
        put(self, "labels", _unique(tuple(check_label(v) for v in self.labels)))
        put(self, "formats", _unique(tuple(self._format(v) for v in self.formats)))
        flags = []
        for flag in self.exclude_flags:
            text = str(flag).strip().lower()
            if text not in KNOWN_FLAGS:
                raise InvalidInputError(
                    f"--exclude-flag {flag!r} is not a flag: use {', '.join(KNOWN_FLAGS)}"
                )
            flags.append(text)
        put(self, "exclude_flags", _unique(tuple(flags)))

    def _normalise_market(self) -> None:
        put = object.__setattr__
        regions = []
        for region in self.regions:
            text = region.strip() if isinstance(region, str) else ""
            if not text or len(text.encode()) > 32:
                raise InvalidInputError(f"--region {region!r} must have 1 to 32 bytes")
            regions.append(text)
        put(self, "regions", _unique(tuple(regions)))
        purposes = []
        for purpose in self.purposes:
            text = purpose.strip() if isinstance(purpose, str) else ""
            if not text:
                raise InvalidInputError(f"--purpose {purpose!r} must be a non-empty word")
            purposes.append(text)
        put(self, "purposes", _unique(tuple(purposes)))
        if self.consumer is not None:
            put(self, "consumer", _address(self.consumer, "--consumer"))
        put(self, "providers", _unique(tuple(_address(p, "--provider") for p in self.providers)))
        if isinstance(self.asset_ids, str) or not isinstance(self.asset_ids, tuple | list):
            raise InvalidInputError("--asset must be a list of asset ids")
        for asset_id in self.asset_ids:
            if not isinstance(asset_id, int) or isinstance(asset_id, bool) or asset_id < 1:
                raise InvalidInputError(f"--asset {asset_id!r} is not an asset id (1, 2, …)")
        put(self, "asset_ids", _unique(tuple(self.asset_ids)))

    @staticmethod
    def _format(value: object) -> str:
        from visdm.ingest import ALLOWED_FORMATS

        text = value.strip().upper() if isinstance(value, str) else ""
        text = _FORMAT_ALIASES.get(text, text)
        if text not in ALLOWED_FORMATS:
            raise InvalidInputError(
                f"--format {value!r} is not an image format the marketplace accepts: use "
                f"{', '.join(sorted(ALLOWED_FORMATS))}"
            )
        return text

    def _check_int(self, name: str, *, low: int, high: int | None = None) -> None:
        value = getattr(self, name)
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidInputError(
                f"{_option(name)} must be a whole number ≥ {low}, got {value!r}"
            )
        if high is not None and value > high:
            raise InvalidInputError(f"{_option(name)} must be at most {high}, got {value}")

    def _check_float(self, name: str) -> None:
        value = getattr(self, name)
        if value is None:
            return
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise InvalidInputError(f"{_option(name)} must be a finite number, got {value!r}")
        object.__setattr__(self, name, float(value))

    # --- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The filters that differ from their defaults, JSON-ready (lists for tuples)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: object, *, source: str = "filters") -> SearchFilters:
        """Filters from :meth:`to_dict`'s form; unknown keys are an error naming ``source``."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"{source} must be a JSON object of filters")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"{source} has unknown filter(s): {', '.join(unknown)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        try:
            return cls(**values)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}: {exc}") from None
