"""The evidence published with a ``noisy`` flag, as the index reads, keeps and counts it.

A valuation flags a sample ``noisy`` only when three witnesses agree — the consumer's validation
set, other providers' labels and the provider's other samples (:mod:`visdm.valuation._evidence`)
— and publishes them in the sample's scores row under ``evidence``. The index checks that
object field by field (:func:`read_evidence`) and keeps it as canonical JSON beside the row.

A ``noisy`` flag keeps a sample out of every search that excludes noisy samples, so the index
counts it only when its row carries the evidence: a flag published without it is kept verbatim
in ``flags`` but does not count. And no single round decides: across the rounds that scored a
sample, it counts as noisy while more rounds flagged it (with evidence) than gave it a positive
value (``_search``), so a later round in which the sample earned something outvotes one hostile
or unlucky round, and a tie goes to the provider.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ._db import Database

__all__ = ["FlagEvidence", "RoundScore", "read_evidence", "sample_rounds"]

_FLOATS = ("t", "value_se", "peer_agreement")
_COUNTS = ("peers", "provider_suspects", "provider_players")
_SHARES = ("provider_p", "base_rate")


@dataclass(frozen=True, slots=True)
class FlagEvidence:
    """The witnesses for one sample's ``noisy`` flag (``None``: the witness could not speak)."""

    #: the value's t-statistic over the validation points, and its standard error
    t: float | None
    value_se: float | None
    #: the share of the nearest players of other providers that carry the sample's label
    peer_agreement: float | None
    peers: int
    #: the provider's players that carry the first two witnesses, of all its players
    provider_suspects: int
    provider_players: int
    #: the binomial tail of that count at the market's share of suspects ``base_rate``
    provider_p: float
    base_rate: float

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), as the index stores it."""
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> FlagEvidence:
        """Read back what :meth:`to_json` wrote."""
        evidence = read_evidence(json.loads(text))
        if evidence is None:
            raise ValueError("stored evidence is null")
        return evidence


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer past the largest float
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValueError(f"{key} must be a finite number or null, got {str(value)[:40]!r}")


def read_evidence(value: Any) -> FlagEvidence | None:
    """Check a scores row's ``evidence`` (``None`` stays ``None``); raises :class:`ValueError`
    saying which field is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("evidence must be an object or null")
    floats = {key: _number(value, key) for key in _FLOATS}
    counts: dict[str, int] = {}
    for key in _COUNTS:
        count = value.get(key)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 2**63:
            raise ValueError(f"{key} must be a whole number ≥ 0, got {count!r}")
        counts[key] = count
    shares: dict[str, float] = {}
    for key in _SHARES:
        share = _number(value, key)
        if share is None or not 0.0 <= share <= 1.0:
            raise ValueError(f"{key} must be a number in [0, 1], got {value.get(key)!r}")
        shares[key] = share
    agreement = floats["peer_agreement"]
    if agreement is not None and not 0.0 <= agreement <= 1.0:
        raise ValueError(f"peer_agreement must be in [0, 1] or null, got {agreement!r}")
    if floats["value_se"] is not None and floats["value_se"] < 0:
        raise ValueError(f"value_se must not be negative, got {floats['value_se']!r}")
    if counts["provider_suspects"] > counts["provider_players"]:
        raise ValueError(
            f"provider_suspects ({counts['provider_suspects']}) exceeds provider_players "
            f"({counts['provider_players']})"
        )
    return FlagEvidence(
        t=floats["t"],
        value_se=floats["value_se"],
        peer_agreement=agreement,
        peers=counts["peers"],
        provider_suspects=counts["provider_suspects"],
        provider_players=counts["provider_players"],
        provider_p=shares["provider_p"],
        base_rate=shares["base_rate"],
    )


@dataclass(frozen=True, slots=True)
class RoundScore:
    """One round's score of a sample: its value, its flags as published, whether the ``noisy``
    flag counts (it came with evidence), and the evidence."""

    proposal_id: int
    value: float
    flags: tuple[str, ...]
    noisy_counts: bool
    evidence: FlagEvidence | None


def sample_rounds(db: Database, asset_id: int, index: int) -> list[RoundScore]:
    """Every round that scored sample ``index`` of ``asset_id``, oldest proposal first."""
    rows = db.query(
        "SELECT proposal_id, value, flags, flag_noisy, evidence FROM sample_scores "
        "WHERE asset_id = ? AND sample_index = ? ORDER BY proposal_id",
        (asset_id, index),
    )
    return [
        RoundScore(
            proposal_id=int(r[0]),
            value=float(r[1]),
            flags=tuple(f for f in str(r[2]).split(",") if f),
            noisy_counts=bool(r[3]),
            evidence=None if r[4] is None else FlagEvidence.from_json(str(r[4])),
        )
        for r in rows
    ]
