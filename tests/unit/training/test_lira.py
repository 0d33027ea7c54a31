"""LiRA's statistics (Carlini et al., 2022) on synthetic confidences: no model is trained here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm  # type: ignore[import-untyped]

from visdm.errors import InvalidInputError
from visdm.training._lira import (
    MembershipAudit,
    balanced_membership,
    lira_scores,
    logit_confidence,
    model_seed,
    run_membership_audit,
)
from visdm.training._mia import roc_auc, tpr_at_fpr
from visdm.training._spec import parse_model_spec

pytestmark = pytest.mark.unit


def _synthetic(
    shift: float, *, n_models: int = 16, n_examples: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """φ = per-example mean + model noise, plus ``shift`` where the model trained on it."""
    rng = np.random.default_rng(seed)
    keep = balanced_membership(n_models, n_examples, rng=rng)
    base = rng.normal(0.0, 3.0, size=n_examples)  # examples differ far more than models do
    phi = base + rng.normal(0.0, 1.0, size=(n_models, n_examples)) + shift * keep
    return phi, keep


def _auc(scores: np.ndarray, keep: np.ndarray) -> float:
    return roc_auc(scores[keep], scores[~keep])


def test_logit_confidence_is_the_log_odds_of_the_label() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, size=(50, 10))
    labels = rng.integers(0, 10, size=50)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p_y = p[np.arange(50), labels]
    expected = np.log(p_y / (1 - p_y))
    assert logit_confidence(logits, labels) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_logit_confidence_stays_finite_for_a_saturated_model() -> None:
    # p_y = 1 in float64: the naive log(p / (1 − p)) is inf, the logits still tell 80 from 40
    logits = np.array([[80.0, 0.0, 0.0], [40.0, 0.0, 0.0], [0.0, 0.0, 900.0]])
    phi = logit_confidence(logits, np.array([0, 0, 0]))
    assert np.isfinite(phi).all()
    assert phi[0] == pytest.approx(80.0 - np.log(2.0))
    assert phi[1] == pytest.approx(40.0 - np.log(2.0))
    assert phi[2] == pytest.approx(-900.0)


@pytest.mark.parametrize(
    ("logits", "labels"),
    [
        (np.zeros((3, 1)), np.zeros(3, dtype=int)),
        (np.zeros(3), np.zeros(3, dtype=int)),
        (np.zeros((3, 4)), np.zeros(2, dtype=int)),
    ],
)
def test_logit_confidence_refuses_bad_shapes(logits: np.ndarray, labels: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match="need logits of shape"):
        logit_confidence(logits, labels)


def test_balanced_membership_puts_each_example_in_half_the_models() -> None:
    keep = balanced_membership(10, 500, rng=np.random.default_rng(2))
    assert keep.shape == (10, 500) and keep.dtype == np.bool_
    assert (keep.sum(axis=0) == 5).all()
    # the halves differ between models and are reproducible from the generator
    assert len({row.tobytes() for row in keep}) == 10
    again = balanced_membership(10, 500, rng=np.random.default_rng(2))
    assert (again == keep).all()
    assert abs(keep.sum(axis=1).mean() - 250) < 1e-9


@pytest.mark.parametrize(("models", "examples"), [(3, 10), (4, 0)])
def test_balanced_membership_refuses_too_few(models: int, examples: int) -> None:
    with pytest.raises(InvalidInputError, match="need at least 4 models and 1 example"):
        balanced_membership(models, examples, rng=np.random.default_rng(0))


def test_without_membership_signal_every_variant_guesses() -> None:
    phi, keep = _synthetic(0.0)
    for online in (True, False):
        for fixed in (True, False):
            scores = lira_scores(phi, keep, online=online, fixed_variance=fixed)
            # an in-mean over one shadow fewer than the out-mean would tilt this below 0.5
            assert _auc(scores, keep) == pytest.approx(0.5, abs=0.015), (online, fixed)
            assert tpr_at_fpr(scores[keep], scores[~keep], 0.01) < 0.02


def test_a_small_per_example_shift_is_found_where_a_global_threshold_misses_it() -> None:
    # members gain 2 in φ: small beside the spread between examples (σ = 3), which a global
    # threshold on φ cannot undo, and that the per-example Gaussians factor out
    phi, keep = _synthetic(2.0)
    online = lira_scores(phi, keep)
    offline = lira_scores(phi, keep, online=False)
    assert _auc(phi, keep) < 0.7
    assert _auc(online, keep) > 0.88 and _auc(offline, keep) > 0.88
    # the Neyman–Pearson test of N(2, 1) against N(0, 1) reaches 13.8 % at 0.1 % FPR
    assert tpr_at_fpr(online[keep], online[~keep], 0.001) > 0.05
    assert tpr_at_fpr(phi[keep], phi[~keep], 0.001) < 0.01


def test_per_example_variances_help_when_examples_differ_in_spread() -> None:
    rng = np.random.default_rng(4)
    keep = balanced_membership(32, 1000, rng=rng)
    spread = rng.choice([0.1, 3.0], size=1000)  # some examples are stable, some are not
    phi = rng.normal(0.0, 3.0, size=1000) + spread * rng.normal(size=(32, 1000)) + 0.5 * keep
    fixed = lira_scores(phi, keep, fixed_variance=True)
    per_example = lira_scores(phi, keep, fixed_variance=False)
    # with enough shadows a per-example σ weighs the stable examples' small shift fully
    assert _auc(per_example, keep) > _auc(fixed, keep) + 0.1


def _reference_online(phi: np.ndarray, keep: np.ndarray, k: int, i: int) -> float:
    """Carlini et al.'s online score for target k and example i, written out."""
    shadows = [j for j in range(phi.shape[0]) if j != k]
    ins = [j for j in shadows if keep[j, i]]
    outs = [j for j in shadows if not keep[j, i]]
    size = min(len(ins), len(outs))  # as many out as in shadows, the lowest-numbered
    ins, outs = ins[:size], outs[:size]
    mu_in, sd_in = phi[ins, i].mean(), phi[ins, i].std(ddof=1)
    mu_out, sd_out = phi[outs, i].mean(), phi[outs, i].std(ddof=1)
    return float(norm.logpdf(phi[k, i], mu_in, sd_in) - norm.logpdf(phi[k, i], mu_out, sd_out))


def test_online_scores_match_the_written_out_likelihood_ratio() -> None:
    phi, keep = _synthetic(1.0, n_models=9, n_examples=40)
    scores = lira_scores(phi, keep, fixed_variance=False)
    for k in range(9):
        for i in range(40):
            assert scores[k, i] == pytest.approx(_reference_online(phi, keep, k, i), rel=1e-9)


def test_offline_scores_leave_the_target_out_of_its_shadows() -> None:
    phi, keep = _synthetic(1.0, n_models=8, n_examples=300)
    scores = lira_scores(phi, keep, online=False, fixed_variance=False)
    outs = ~keep[1:]
    mu = np.where(outs, phi[1:], 0).sum(axis=0) / outs.sum(axis=0)
    sd = np.sqrt(np.where(outs, (phi[1:] - mu) ** 2, 0).sum(axis=0) / (outs.sum(axis=0) - 1))
    assert scores[0] == pytest.approx((phi[0] - mu) / sd, rel=1e-9)
    moved = phi.copy()
    moved[0] += 10.0  # model 0's own φ is not among its shadows: only its z moves, by 10/σ
    assert lira_scores(moved, keep, online=False, fixed_variance=False)[0] == pytest.approx(
        scores[0] + 10.0 / sd, rel=1e-9
    )


def test_per_example_variance_needs_two_shadows_a_side() -> None:
    phi, keep = _synthetic(0.0, n_models=4, n_examples=20)
    lira_scores(phi, keep)  # fixed variance: one shadow a side is enough
    with pytest.raises(InvalidInputError, match=r"has 1 shadow models .* 2 needed"):
        lira_scores(phi, keep, fixed_variance=False)


@pytest.mark.parametrize(
    ("phi", "keep", "message"),
    [
        (np.zeros((4, 5)), np.zeros((4, 6), dtype=bool), "same shape"),
        (np.zeros((4, 5)), np.zeros((4, 5), dtype=int), "membership boolean"),
        (np.zeros(5), np.zeros(5, dtype=bool), "same shape"),
        (np.full((4, 5), np.nan), np.ones((4, 5), dtype=bool), "must be finite"),
        # nobody trained on the examples: no in shadows
        (np.zeros((4, 5)), np.zeros((4, 5), dtype=bool), "example 0 has 0 shadow models"),
    ],
)
def test_lira_scores_refuse_bad_input(phi: np.ndarray, keep: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        lira_scores(phi, keep)


def test_audit_scores_name_the_attack() -> None:
    phi, keep = _synthetic(2.0, n_models=8, n_examples=300)
    spec = parse_model_spec(
        {
            "architecture": "mlp",
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "epochs": 1,
            "batch_size": 8,
            "optimizer": "sgd",
            "learning_rate": 0.1,
        }
    )
    audit = MembershipAudit(
        spec=spec,
        membership=keep,
        confidences=phi,
        losses=-phi,
        accuracy_bps=(0,) * 8,
        epsilon_spent=(None,) * 8,
        seeds=tuple(model_seed(bytes(32), k) for k in range(8)),
        states=(),
    )
    assert audit.n_non_members == int((~keep).sum())
    assert (audit.scores("yeom") == phi).all()
    assert audit.auc("lira-online") > audit.auc("yeom")
    with pytest.raises(InvalidInputError, match="unknown attack 'lira'"):
        audit.scores("lira")  # type: ignore[arg-type]
    # each model has its own seed
    assert len(set(audit.seeds)) == 8


@pytest.mark.parametrize(
    ("images", "labels", "models", "seed", "message"),
    [
        (8, 7, 4, bytes(32), "8 pool images but 7 labels"),
        (8, 8, 3, bytes(32), "need at least 4 models"),
        (8, 8, 4, bytes(31), "a job seed must be 32 bytes"),
    ],
)
def test_membership_audit_refuses_bad_input_before_training(
    images: int, labels: int, models: int, seed: bytes, message: str
) -> None:
    spec = {
        "architecture": "mlp",
        "input_shape": [1, 8, 8],
        "num_classes": 2,
        "epochs": 1,
        "batch_size": 2,
        "optimizer": "sgd",
        "learning_rate": 0.1,
    }
    x = np.zeros((images, 8, 8), dtype=np.uint8)
    y = np.zeros(labels, dtype=np.int64)
    with pytest.raises(InvalidInputError, match=message):
        run_membership_audit(
            spec, x, y, x, np.zeros(images, dtype=np.int64), n_models=models, seed=seed
        )
