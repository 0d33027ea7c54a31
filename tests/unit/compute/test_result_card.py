"""The node's model card: built from its own counts and the sandboxed job's figures, and a job
whose figures cannot describe one model is a failed job, never a published lie."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from visdm.compute._results import JobFailedError, _model_card
from visdm.training import canonical_spec_json, parse_model_spec
from visdm.training._card import ExcludedSamples, LeftOutAsset, read_model_card

pytestmark = pytest.mark.unit

OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SPEC = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 1e-3,
}
CHECKED: Any = SimpleNamespace(
    document=SimpleNamespace(model_spec_json=canonical_spec_json(parse_model_spec(SPEC)))
)


def outcome(**changes: Any) -> dict[str, Any]:
    return {
        "accuracy_bps": 7_500,
        "epsilon_spent": None,
        "noise_multiplier": None,
        "validation": {"given": 40, "duplicates": 0, "nearSelected": 0, "used": 40},
        "unreadable_assets": [{"asset_id": 2, "samples": 1}],
        "timings": {"job_s": 3.0, "train_s": 2.0, "eval_s": 0.1, "embed_s": 0.1},
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu"},
        **changes,
    }


def counts(**changes: Any) -> dict[str, Any]:
    return {
        "decrypted": {1: (OWNER, 10), 2: (OWNER, 5)},
        "cardLeftOut": [LeftOutAsset(4, "tally", "it left the round in the tally", 8)],
        "cardExcluded": [ExcludedSamples(2, "undecryptable", 2)],
        **changes,
    }


def test_the_card_joins_the_nodes_counts_and_the_jobs_figures() -> None:
    card = _model_card(CHECKED, outcome(), counts())
    assert [(a.asset_id, a.samples) for a in card.assets] == [(1, 10), (2, 4)]
    assert [(e.asset_id, e.reason, e.samples) for e in card.excluded] == [
        (2, "undecryptable", 2),
        (2, "unreadable", 1),
    ]
    assert (card.selected_samples, card.train_samples, card.providers) == (25, 14, 1)
    assert card.spec["hidden"] == list(parse_model_spec(SPEC).hidden or ())  # defaults filled
    assert card.correct == 30 and card.epsilon_budget is None
    assert read_model_card(card.to_document()) == card


def test_an_asset_whose_every_image_was_unreadable_is_excluded_not_used() -> None:
    card = _model_card(
        CHECKED, outcome(unreadable_assets=[{"asset_id": 2, "samples": 5}]), counts()
    )
    assert [a.asset_id for a in card.assets] == [1]
    assert (2, "unreadable", 5) in [(e.asset_id, e.reason, e.samples) for e in card.excluded]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"unreadable_assets": [{"asset_id": 3, "samples": 1}]}, "1 undecodable images of asset 3"),
        ({"unreadable_assets": [{"asset_id": 2, "samples": 6}]}, "6 undecodable images of asset 2"),
        ({"unreadable_assets": [{"asset_id": 2}]}, "'samples'"),
        ({"accuracy_bps": 7_510}, "accuracy 7510 bps is no count of 40 validation images"),
        ({"timings": None}, "'NoneType' object is not subscriptable"),
        ({"timings": {"job_s": 1.0, "train_s": 2.0, "eval_s": 0, "embed_s": 0}}, "phases take"),
        ({"versions": {"torch": "2.0\nforged"}}, "is not a library's version"),
        ({"epsilon_spent": 1.0}, "ε spent 1.0 for a spec without differential privacy"),
    ],
)
def test_figures_that_cannot_make_a_true_card_fail_the_job(
    job: dict[str, Any], message: str
) -> None:
    with pytest.raises(
        JobFailedError, match="the job's figures cannot make a true model card"
    ) as e:
        _model_card(CHECKED, outcome(**job), counts())
    assert message in str(e.value) and "\n" not in str(e.value)
