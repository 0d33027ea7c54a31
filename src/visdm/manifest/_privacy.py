"""Whether a training round's privacy satisfies an asset's licence (design section 7).

Owners state in their licence how private training on their data must be
(:class:`~visdm.manifest.Licence` ``dp_required``, ``max_epsilon``, ``max_delta``).
:func:`privacy_refusal` is the one place that compares those terms with a model spec's DP
budget, so that the consumer's proposal step and the compute node refuse the same rounds for the
same reasons. It needs no torch: it reads only the spec's ``(target_epsilon, delta)``.
"""

from __future__ import annotations

import math

from visdm.errors import InvalidInputError

from ._model import Licence

__all__ = ["privacy_refusal"]


def privacy_refusal(
    licence: Licence, dp: tuple[float, float] | None, training_samples: int
) -> str | None:
    """Why ``licence`` forbids training with ``dp`` on ``training_samples`` samples, or ``None``.

    ``dp`` is the model spec's ``(target_epsilon, delta)`` (``spec.dp.target_epsilon``,
    ``spec.dp.delta``), or ``None`` when the spec trains without differential privacy;
    ``training_samples`` is N, the number of training samples of the whole round (all selected
    assets), which fixes the default δ bound. The rules, checked in this order:

    1. no DP while the licence requires it (``dp_required``, the default) is refused; no DP
       while it does not is allowed, and the ε and δ caps do not apply;
    2. ``target_epsilon`` above ``max_epsilon`` is refused (the spec's target is the most the
       round may spend; Opacus stops the accountant there);
    3. ``delta`` above ``max_delta``, when the licence sets one, is refused;
    4. ``delta`` not below 1/N is refused whatever the licence says: with δ ≥ 1/N the
       guarantee allows publishing a whole record, so no licence can mean to allow it (the
       trainer refuses it too; this reports it before any work).

    Returns a one-line reason that starts with "its licence" or "δ", meant to follow the
    asset's name (``f"asset {asset_id}: {reason}"``), and ends with what to change.
    Raises :class:`~visdm.errors.InvalidInputError` when ``dp`` is not two finite positive
    numbers or ``training_samples`` is not a positive integer: a malformed spec is refused,
    never compared (NaN would compare as allowed).
    """
    if (
        isinstance(training_samples, bool)
        or not isinstance(training_samples, int)
        or training_samples < 1
    ):
        raise InvalidInputError(
            f"training_samples must be a positive integer (N, the round's training samples), "
            f"got {training_samples!r}"
        )
    if dp is None:
        if licence.dp_required:
            return (
                "its licence requires differentially private training (dp); the spec trains "
                f"without it: add a dp section with target_epsilon ≤ {_fmt(licence.max_epsilon)}"
            )
        return None
    epsilon, delta = _budget(dp)
    if epsilon > licence.max_epsilon:
        return (
            f"its licence asks for ε ≤ {_fmt(licence.max_epsilon)}, the spec spends up to "
            f"{_fmt(epsilon)}: lower dp.target_epsilon"
        )
    if licence.max_delta is not None and delta > licence.max_delta:
        return (
            f"its licence asks for δ ≤ {_fmt(licence.max_delta)}, the spec uses {_fmt(delta)}: "
            "lower dp.delta"
        )
    if delta >= 1.0 / training_samples:
        return (
            f"δ must be below 1/N = {1.0 / training_samples:.3g} for N = {training_samples} "
            f"training samples, the spec uses {_fmt(delta)}: lower dp.delta"
        )
    return None


def _budget(dp: object) -> tuple[float, float]:
    if not isinstance(dp, tuple) or len(dp) != 2:
        raise InvalidInputError(f"dp must be (target_epsilon, delta) or None, got {dp!r}")
    values = []
    for name, value in zip(("target_epsilon", "delta"), dp, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"dp {name} must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int past the float range
            number = math.inf
        if not (math.isfinite(number) and number > 0.0):
            raise InvalidInputError(f"dp {name} must be finite and positive, got {number!r}")
        values.append(number)
    return values[0], values[1]


def _fmt(value: float) -> str:
    """Short when that loses nothing (8, 1e-05), else every digit, so ε ≤ 8 vs 8.000001 shows."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)
