"""A sample's expected value from the scores it has had, and how much to trust it.

A consumer who ranks samples by their mean published score meets two problems: a sample
scored once is as noisy as its one KNN-Shapley estimate, and a sample never scored has no
mean at all. :func:`expected_values` answers both with the normal-normal model of empirical
Bayes (Efron & Morris, 1975; Gelman et al., *Bayesian Data Analysis*, 3rd ed., §5.4):

* each sample has a true relative value ``θ_i ~ N(μ, τ²)``, the market's prior;
* each round ``r`` that scored it observed ``v_ir ~ N(θ_i, s_ir²)``, where ``v`` is the
  :func:`~visdm.scoring.relative_value` (1 for a round's typical helpful sample) and ``s`` its
  standard error over the validation points, scaled alike (rounds that published none get
  the median of the others);
* the posterior mean is ``(μ/τ² + Σ v/s²) / (1/τ² + Σ 1/s²)`` — the **expected value** — and
  the **confidence** ``(Σ 1/s²) / (1/τ² + Σ 1/s²)`` is the share of it that rests on the
  sample's own scores: 0 for a sample never scored (its expected value is the market's mean),
  close to 1 after rounds that agree.

``μ`` is the mean of the scored samples' means and ``τ²`` their variance less the average
noise variance (method of moments, floored at a tenth of that variance so that a market of
equally good samples still ranks by its scores). Deviation from the textbook: the noise of a
round is the published standard error over validation points, which leaves out the variation
between models of different rounds; agreeing rounds therefore raise the confidence a little
faster than they should.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["MarketPrior", "Observation", "ValueEstimate", "expected_values", "market_prior"]

K = TypeVar("K", bound=Hashable)
#: the noise variance assumed when no round published a standard error
_DEFAULT_NOISE_SHARE = 0.5
_FLOOR_SHARE = 0.1
_TINY = 1e-12


@dataclass(frozen=True, slots=True)
class Observation:
    """One round's relative value of a sample, with its standard error when published."""

    value: float
    se: float | None = None


@dataclass(frozen=True, slots=True)
class MarketPrior:
    """The market's prior over relative values: mean ``mean``, variance ``between``, and the
    noise variance ``noise`` given to rounds that published no standard error."""

    mean: float
    between: float
    noise: float


@dataclass(frozen=True, slots=True)
class ValueEstimate:
    """A sample's expected relative value, its plain mean, rounds and confidence in [0, 1)."""

    expected: float
    mean: float | None
    rounds: int
    confidence: float


def _clean(observations: Sequence[Observation]) -> list[Observation]:
    return [o for o in observations if math.isfinite(o.value)]


def market_prior(observations: Mapping[K, Sequence[Observation]]) -> MarketPrior:
    """The prior fitted to every scored sample (a market with none gets mean 0, variance 1)."""
    means: list[float] = []
    ses: list[float] = []
    for obs in observations.values():
        kept = _clean(obs)
        if kept:
            means.append(statistics.fmean(o.value for o in kept))
            ses.extend(o.se for o in kept if o.se is not None and math.isfinite(o.se))
    if not means:
        return MarketPrior(0.0, 1.0, _DEFAULT_NOISE_SHARE)
    mean = statistics.fmean(means)
    spread = statistics.pvariance(means) if len(means) > 1 else 1.0
    spread = max(spread, _TINY)
    noise = statistics.median(s * s for s in ses) if ses else _DEFAULT_NOISE_SHARE * spread
    noise = max(noise, _TINY)
    between = max(spread - noise, _FLOOR_SHARE * spread)
    return MarketPrior(mean, between, noise)


def _estimate(observations: Sequence[Observation], prior: MarketPrior) -> ValueEstimate:
    kept = _clean(observations)
    if not kept:
        return ValueEstimate(prior.mean, None, 0, 0.0)
    own = 0.0
    weighted = 0.0
    for o in kept:
        var = o.se * o.se if o.se is not None and math.isfinite(o.se) else prior.noise
        precision = 1.0 / max(var, _TINY)
        own += precision
        weighted += precision * o.value
    base = 1.0 / prior.between
    total = base + own
    return ValueEstimate(
        expected=(base * prior.mean + weighted) / total,
        mean=statistics.fmean(o.value for o in kept),
        rounds=len(kept),
        confidence=own / total,
    )


def expected_values(
    observations: Mapping[K, Sequence[Observation]],
    *,
    prior: MarketPrior | None = None,
    keys: Sequence[K] = (),
) -> dict[K, ValueEstimate]:
    """The :class:`ValueEstimate` of every key of ``observations`` and of ``keys`` (samples
    never scored), under ``prior`` (default: fitted to ``observations``)."""
    chosen = prior if prior is not None else market_prior(observations)
    out = {key: _estimate(obs, chosen) for key, obs in observations.items()}
    for key in keys:
        if key not in out:
            out[key] = ValueEstimate(chosen.mean, None, 0, 0.0)
    return out
