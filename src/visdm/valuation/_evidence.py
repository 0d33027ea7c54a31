r"""Evidence for a ``noisy`` flag: three witnesses, each controlled by someone else.

A flag keeps a sample out of later searches (``exclude_flags=noisy``), so a false flag costs an
honest provider future sales. A negative value alone is no evidence: on the demo market (20
providers, two of whom mislabel 40 % of their images; a DP-trained MLP of about 70 % accuracy;
about 440 validation images after the screen) 9–12 % of the correctly labelled samples have a
negative copy-robust KNN-Shapley value, and flagging them gave a precision of 0.25–0.30. A
player (a cluster's founder, see :mod:`._robust`) is flagged only when three witnesses agree:

1. **The consumer's validation set: a consistently negative value.** A KNN-Shapley value is the
   mean of one Shapley value per validation point, each positive when the point's label matches
   the sample's and never positive otherwise (:mod:`._knn_shapley`). The witness is the
   t-statistic :math:`t_i = v_i / \mathrm{se}_i` over the validation points, at most ``max_t``:
   the value is negative by more than its noise, not by the luck of a few near points.
2. **Other providers' labels: the sample's neighbours disagree.** Of the ``neighbours`` nearest
   players in the same embedding space that belong to *other* providers, at most
   ``max_agreement`` carry the sample's label. The embeddings come from the model trained on the
   selection, never on the validation set, so a consumer cannot move this witness with its
   validation labels; and a provider cannot vouch for its own labels with more of its own
   samples.
3. **The provider's other samples: its labels disagree more often than the market's.** Label
   noise is a property of whoever labelled. Let a provider own :math:`n` players of which
   :math:`k` carry witnesses 1 and 2, and let :math:`r` be the median of that share over the
   providers of the selection (at least ``min_base_rate``). The provider is a suspect when
   :math:`P(X \ge k) < \alpha` for :math:`X \sim \mathrm{Binomial}(n, r)` (one-sided binomial
   test; the tail is the regularised incomplete beta function :math:`I_r(k, n - k + 1)`).

A player is flagged when it carries witnesses 1 and 2 and its provider is a suspect. Everything
the rule used is published with the flag (:meth:`NoiseEvidence.row`), so anyone can check it.

**Measured** on the demo market, 15 trainings (9 job seeds; ε = 3 and 8; 500 and 2,000
validation images; the demo's MLP and a DP CNN, 68–73 % accurate): witnesses 1 and 2 alone flag
with a precision of 0.42–0.54 at a recall of 0.75–0.83; with witness 3 the precision is
0.93–1.00, the recall 0.75–0.83, and 0.0–0.3 % of the correctly labelled samples are flagged
(``benchmarks/valuation.py`` repeats this). The thresholds were chosen on these runs: a looser
``max_t`` of -0.5 gained 2–5 points of recall at up to 3 points of precision; ``max_t = -2``
lost 10–15 points of recall.

**What it costs an attacker.** A consumer who mislabels its validation set near a rival's
samples moves witness 1 only. A provider who uploads look-alikes of a rival's images under
other labels moves witness 2 only (and its own look-alikes carry witnesses 1 and 2, so they are
the ones flagged). A consumer raising everyone's share of suspects raises the median too, which
only flags less. Known limits: a consumer and a provider acting together in one round can move
witnesses 1 and 2 at once, and then witness 3 for a provider they target with enough samples;
the index therefore lets a later round's positive value outvote a flag
(:mod:`visdm.index._search`). A noisy provider that splits its samples over many identities
makes witness 3 weaker and is flagged less; the ``"net"`` payout rule still pays it nothing for
its harmful samples. A provider whose honest images are unusually hard (witnesses 1 and 2 fire
often) can be flagged; the binomial test at :math:`\alpha = 10^{-3}` asks for a large excess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.special import betainc  # type: ignore[import-untyped]

from visdm.errors import InvalidInputError
from visdm.types import Address
from visdm.valuation._neighbours import distance_keys, index_bits

__all__ = ["NoiseEvidence", "NoiseRule", "binomial_tail", "noise_evidence", "peer_agreement"]

_KEY_MAX = torch.iinfo(torch.int64).max
_BATCH_BYTES = 64 * 1024 * 1024
#: a t-statistic is published clipped to this magnitude (a zero standard error gives infinity)
_T_LIMIT = 1e9


@dataclass(frozen=True, slots=True)
class NoiseRule:
    """When a player is flagged ``noisy`` (see the module docstring for each witness)."""

    #: witness 1: the value's t-statistic over the validation points is at most this
    max_t: float = -1.0
    #: witness 2: how many nearest players of other providers are compared
    neighbours: int = 10
    #: witness 2: at most this share of them carries the sample's label (1: witness 2 is off)
    max_agreement: float = 0.2
    #: witness 3: significance of the provider's excess of suspects
    alpha: float = 1e-3
    #: witness 3: the market's share of suspects is taken as at least this
    min_base_rate: float = 0.01

    def __post_init__(self) -> None:
        if not math.isfinite(self.max_t):
            raise InvalidInputError(f"max_t must be a finite number, got {self.max_t}")
        if self.neighbours < 1:
            raise InvalidInputError(f"neighbours must be at least 1, got {self.neighbours}")
        if not 0.0 <= self.max_agreement <= 1.0:
            raise InvalidInputError(f"max_agreement must be in [0, 1], got {self.max_agreement}")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 < self.min_base_rate < 1.0:
            raise InvalidInputError(f"min_base_rate must be in (0, 1), got {self.min_base_rate}")


@dataclass(frozen=True, slots=True, eq=False)
class NoiseEvidence:
    """The three witnesses for every player, and the verdict.

    Per player (arrays of the players' length): ``t`` and ``stderr`` (NaN where the method has no
    standard error), ``agreement`` and ``peers`` (asked only where witness 1 spoke; NaN and 0
    elsewhere and without another provider's player),
    ``suspect`` (witnesses 1 and 2) and ``noisy`` (all three). Per provider: ``provider_players``,
    ``provider_suspects`` and ``provider_p`` (the binomial tail); ``base_rate`` is :math:`r`.
    """

    rule: NoiseRule
    owners: tuple[Address, ...]
    t: NDArray[np.float64]
    stderr: NDArray[np.float64]
    agreement: NDArray[np.float64]
    peers: NDArray[np.int64]
    suspect: NDArray[np.bool_]
    noisy: NDArray[np.bool_]
    provider_players: dict[Address, int]
    provider_suspects: dict[Address, int]
    provider_p: dict[Address, float]
    base_rate: float

    def row(self, player: int) -> dict[str, Any]:
        """What a scores row publishes for a sample of ``player`` (JSON-ready, ``None`` for
        NaN)."""
        owner = self.owners[player]
        return {
            "t": _finite(self.t[player]),
            "value_se": _finite(self.stderr[player]),
            "peer_agreement": _finite(self.agreement[player]),
            "peers": int(self.peers[player]),
            "provider_suspects": self.provider_suspects[owner],
            "provider_players": self.provider_players[owner],
            "provider_p": float(self.provider_p[owner]),
            "base_rate": float(self.base_rate),
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, as the regularised incomplete beta function."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(betainc(k, n - k + 1, p))


def peer_agreement(
    features: NDArray[np.float64],
    labels: NDArray[np.int64],
    owners: Sequence[str],
    *,
    neighbours: int,
    metric: str = "euclidean",
    rows: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """For each row, the share of its ``neighbours`` nearest rows owned by someone else that
    carry its label, and how many such rows there were (ties by the lower index, as in
    :mod:`._neighbours`; NaN and 0 when every row has the same owner). With ``rows``, only
    those rows are asked (the others get NaN and 0): the search costs ``O(rows x N x d)``."""
    n = features.shape[0]
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64))
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    sq = (x * x).sum(dim=1)
    _, owner_code = np.unique(np.asarray(owners, dtype=object), return_inverse=True)
    code = torch.from_numpy(owner_code.astype(np.int64))
    index = torch.arange(n, dtype=torch.int64)
    bits = index_bits(n)
    m = min(neighbours, n)
    y = torch.from_numpy(labels)
    agreement = np.full(n, np.nan)
    peers = np.zeros(n, dtype=np.int64)
    asked = torch.from_numpy(np.flatnonzero(rows) if rows is not None else np.arange(n))
    batch = max(1, _BATCH_BYTES // (16 * max(n, 1)))
    for start in range(0, len(asked), batch):
        query = asked[start : start + batch]
        keys = distance_keys(x[query], x, sq, bits=bits, index=index)
        keys.masked_fill_(code[query, None] == code[None, :], _KEY_MAX)  # own rows
        nearest = torch.topk(keys, m, dim=1, largest=False, sorted=True).values
        valid = nearest != _KEY_MAX
        found = torch.where(valid, nearest & ((1 << bits) - 1), 0)
        same = (y[found] == y[query, None]) & valid
        count = valid.sum(dim=1)
        peers[query.numpy()] = count.numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            agreement[query.numpy()] = (same.sum(dim=1).double() / count).numpy()
    return agreement, peers


def noise_evidence(
    features: NDArray[np.float64],
    labels: NDArray[np.int64],
    owners: Sequence[Address],
    values: NDArray[np.float64],
    stderr: NDArray[np.float64] | None,
    *,
    rule: NoiseRule | None = None,
    metric: str = "euclidean",
) -> NoiseEvidence:
    """Weigh the three witnesses for every player (see the module docstring).

    ``features``, ``labels``, ``owners``, ``values`` and ``stderr`` describe the players (one row
    each); without ``stderr`` witness 1 cannot speak and nothing is flagged.
    """
    rule = rule if rule is not None else NoiseRule()
    n = len(owners)
    if not features.shape[0] == labels.shape[0] == values.shape[0] == n:
        raise InvalidInputError(
            f"{features.shape[0]} feature rows, {labels.shape[0]} labels, {values.shape[0]} "
            f"values and {n} owners: one of each per player"
        )
    se = np.full(n, np.nan) if stderr is None else np.asarray(stderr, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(values / se, -_T_LIMIT, _T_LIMIT)
    t[np.isnan(se)] = np.nan
    t[(se == 0) & (values == 0)] = 0.0
    with np.errstate(invalid="ignore"):  # NaN compares False: no witness, no suspicion
        suspect = t <= rule.max_t
    # witness 2 is asked only where witness 1 spoke: the others cannot be suspects
    agreement, peers = peer_agreement(
        features, labels, owners, neighbours=rule.neighbours, metric=metric, rows=suspect
    )
    if rule.max_agreement < 1.0:
        with np.errstate(invalid="ignore"):
            suspect &= agreement <= rule.max_agreement
    owner_arr = np.asarray(owners, dtype=object)
    players: dict[Address, int] = {}
    suspects: dict[Address, int] = {}
    for owner, hit in zip(owners, suspect.tolist(), strict=True):
        players[owner] = players.get(owner, 0) + 1
        suspects[owner] = suspects.get(owner, 0) + int(hit)
    shares = [suspects[o] / players[o] for o in players]
    base = max(float(np.median(shares)) if shares else 0.0, rule.min_base_rate)
    p_values = {o: binomial_tail(suspects[o], players[o], base) for o in players}
    guilty = {o for o, p in p_values.items() if p < rule.alpha}
    noisy = suspect & np.isin(owner_arr, list(guilty))
    return NoiseEvidence(
        rule=rule,
        owners=tuple(owners),
        t=t,
        stderr=se,
        agreement=agreement,
        peers=peers,
        suspect=suspect,
        noisy=noisy,
        provider_players=players,
        provider_suspects=suspects,
        provider_p=p_values,
        base_rate=base,
    )
