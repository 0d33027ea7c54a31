"""Loss-threshold membership inference (Yeom et al., 2018): the AUC and a toy attack."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.training.conftest import SEED, Data, make_spec
from visdm.errors import InvalidInputError
from visdm.training import loss_threshold_mia, mia_auc, train

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
