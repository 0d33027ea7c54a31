"""Loss-threshold membership inference (Yeom et al., 2018), the AUC and the TPR at low FPR."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.training.conftest import SEED, Data, make_spec
from visdm.errors import InvalidInputError
from visdm.training import loss_threshold_mia, mia_auc, train
from visdm.training._mia import per_sample_logits, per_sample_losses, roc_auc, tpr_at_fpr

pytestmark = pytest.mark.unit


def _pairwise_auc(members: np.ndarray, others: np.ndarray) -> float:
    wins = (members[:, None] < others[None, :]).sum() + 0.5 * (
        members[:, None] == others[None, :]
    ).sum()
    return float(wins / (members.size * others.size))


def test_auc_equals_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(3)
    members = rng.integers(0, 20, size=137).astype(float)  # many ties
    others = rng.integers(3, 25, size=91).astype(float)
    assert mia_auc(members, others) == pytest.approx(_pairwise_auc(members, others), abs=1e-12)


def test_auc_extremes() -> None:
    assert mia_auc(np.array([0.1, 0.2]), np.array([0.3, 0.9, 2.0])) == 1.0
    assert mia_auc(np.array([3.0, 4.0]), np.array([0.3, 0.9])) == 0.0
    assert mia_auc(np.ones(5), np.ones(7)) == 0.5


@pytest.mark.parametrize(
    ("members", "others", "message"),
    [
        (np.array([]), np.ones(3), "got 0 and 3"),
        (np.array([np.nan]), np.ones(3), "finite"),
    ],
)
def test_auc_refuses_degenerate_input(
    members: np.ndarray, others: np.ndarray, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        mia_auc(members, others)


def test_an_overfit_model_leaks_membership(fmnist: Data) -> None:
    x, y, xv, yv = fmnist
    members, others = (x[:128], y[:128]), (xv[:128], yv[:128])
    overfit = train(
        make_spec(architecture="mlp", hidden=[256], epochs=30, batch_size=16),
        *members,
        xv,
        yv,
        seed=SEED,
    )
    auc = loss_threshold_mia(overfit.model, members, others)
    assert auc > 0.75
    # the attack is symmetric: swapping the roles mirrors the AUC
    assert loss_threshold_mia(overfit.model, others, members) == pytest.approx(1 - auc)


def test_roc_auc_is_the_loss_auc_of_the_negated_score() -> None:
    rng = np.random.default_rng(5)
    members, others = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    assert roc_auc(members, others) == pytest.approx(mia_auc(-members, -others), abs=1e-12)
    assert roc_auc(members, others) == pytest.approx(_pairwise_auc(-members, -others))


def test_tpr_at_fpr_counts_members_above_the_allowed_false_positives() -> None:
    others = np.arange(1000.0)  # the largest, 999, is the one false positive 0.1 % allows
    members = np.array([998.5, 999.0, 999.5, 1000.0, 5.0])
    # a threshold above 998 lets 999 through (1 of 1000): members above 998 pass
    assert tpr_at_fpr(members, others, 0.001) == pytest.approx(4 / 5)
    # FPR 0.2 % allows 2: threshold above 997
    assert tpr_at_fpr(members, others, 0.002) == pytest.approx(4 / 5)
    # ties with the threshold cannot be split: all at 999.5 count as non-members
    tied = np.full(1000, 999.5)
    assert tpr_at_fpr(members, tied, 0.001) == pytest.approx(1 / 5)
    # a perfect score separates everything at any FPR
    assert tpr_at_fpr(np.full(10, 2.0), np.zeros(1000), 0.001) == 1.0


def test_tpr_at_fpr_of_a_random_score_is_about_the_fpr() -> None:
    rng = np.random.default_rng(11)
    members, others = rng.normal(size=100_000), rng.normal(size=100_000)
    assert tpr_at_fpr(members, others, 0.01) == pytest.approx(0.01, abs=0.002)
    assert tpr_at_fpr(members, others, 0.001) == pytest.approx(0.001, abs=0.0005)


@pytest.mark.parametrize(
    ("members", "others", "fpr", "message"),
    [
        (np.ones(3), np.zeros(999), 0.001, "needs at least 1,000 non-member scores, got 999"),
        (np.ones(3), np.zeros(99), 0.01, "report the TPR at FPR 0.0101"),
        (np.ones(3), np.zeros(1000), 0.0, r"fpr must be in \(0, 1\)"),
        (np.ones(3), np.zeros(1000), 1.0, r"fpr must be in \(0, 1\)"),
        (np.array([]), np.zeros(1000), 0.01, "need member scores"),
        (np.array([np.inf]), np.zeros(1000), 0.01, "member scores must be finite"),
        (np.ones(3), np.full(1000, np.nan), 0.01, "non-member scores must be finite"),
    ],
)
def test_tpr_at_fpr_refuses_what_cannot_support_it(
    members: np.ndarray, others: np.ndarray, fpr: float, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        tpr_at_fpr(members, others, fpr)


def test_logits_refuse_labels_the_model_does_not_have(fmnist: Data) -> None:
    x, y, xv, yv = fmnist
    model = train(make_spec(architecture="mlp", hidden=[8]), x[:64], y[:64], xv, yv, seed=SEED)
    logits, labels = per_sample_logits(model.model, x[:4], y[:4])
    assert logits.shape == (4, 10) and logits.dtype == np.float64
    assert labels.tolist() == y[:4].tolist()
    with pytest.raises(InvalidInputError, match=r"labels span 0\.\.10 but the model has 10"):
        per_sample_logits(model.model, x[:2], np.array([0, 10]))
    with pytest.raises(InvalidInputError, match="labels must be integers"):
        per_sample_logits(model.model, x[:2], np.array([0.0, 1.0]))
    with pytest.raises(InvalidInputError, match="4 images but labels of shape"):
        per_sample_losses(model.model, x[:4], y[:3])
