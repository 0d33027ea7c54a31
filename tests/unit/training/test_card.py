"""The model card: built from a job's figures, read back by every reader, and each lie a hostile
node could tell in it refused with a one-line error."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from tests.unit.training.conftest import make_spec
from visdm.errors import InvalidInputError
from visdm.training import canonical_spec_json, parse_model_spec, spec_hash
from visdm.training._card import (
    CARD_VERSION,
    AssetUse,
    ExcludedSamples,
    LeftOutAsset,
    ModelCard,
    WallTime,
    build_model_card,
    card_from_result,
    correct_from_bps,
    read_model_card,
    wilson_interval_bps,
)

pytestmark = pytest.mark.unit

PROVIDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
DP = {"target_epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0}
#: 243 of 300 screened validation images correct
ACCURACY_BPS = 8100


def canonical(**overrides: Any) -> dict[str, Any]:
    """A spec document as the node puts it in a card: parsed, defaults filled."""
    loaded: dict[str, Any] = json.loads(
        canonical_spec_json(parse_model_spec(make_spec(**overrides)))
    )
    return loaded


def card(**overrides: Any) -> ModelCard:
    facts: dict[str, Any] = {
        "spec": canonical(dp=DP),
        "accuracy_bps": ACCURACY_BPS,
        "validation": {"given": 310, "duplicates": 4, "nearSelected": 6, "used": 300},
        "epsilon_spent": 2.99,
        "noise_multiplier": 1.1,
        "assets": [AssetUse(2, PROVIDER2, 57), AssetUse(1, PROVIDER, 60)],
        "left_out": [LeftOutAsset(5, "dp-terms", "its licence caps epsilon at 1", 20)],
        "excluded": [ExcludedSamples(2, "unreadable", 3)],
        "wall_time": WallTime(job_s=12.5, train_s=10.0, eval_s=0.25, embed_s=0.5),
        "versions": {"python": "3.11.9", "torch": "2.13.0+cpu", "opacus": "1.6.0"},
    }
    facts.update(overrides)
    return build_model_card(**facts)


def document(**overrides: Any) -> dict[str, Any]:
    return card(**overrides).to_document()


def result(card_doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of a result document a card is checked against."""
    privacy = card_doc["privacy"] or {}
    return {
        "accuracyBps": card_doc["accuracy"]["bps"],
        "trainSamples": card_doc["samples"]["used"],
        "excludedSamples": 23,
        "epsilonSpent": privacy.get("epsilonSpent"),
        "specHash": card_doc["specHash"],
        "validation": card_doc["validation"],
        "modelCard": card_doc,
    }


# --- building and reading back ----------------------------------------------------------------
def test_a_card_states_what_was_bought() -> None:
    built = card()
    assert built.architecture == "small_cnn"
    assert (built.selected_samples, built.train_samples, built.not_used) == (140, 117, 23)
    assert (len(built.assets), built.providers) == (2, 2)
    assert [a.asset_id for a in built.assets] == [1, 2]  # in asset order
    assert (built.correct, built.validation_samples) == (243, 300)
    assert built.interval_bps[0] < ACCURACY_BPS < built.interval_bps[1]
    assert (built.epsilon_spent, built.epsilon_budget, built.delta) == (2.99, 3.0, 1e-5)
    # the spec is hashed as the chain commits it, whatever knobs the spec has
    assert built.spec_hash == "0x" + spec_hash(make_spec(dp=DP)).hex()
    assert set(built.spec) == set(parse_model_spec(make_spec(dp=DP)).model_dump())


def test_a_card_reads_back_as_it_was_built() -> None:
    built = card()
    again = read_model_card(json.loads(json.dumps(built.to_document())))
    assert again == built
    assert card_from_result(result(built.to_document()), accuracy_bps=ACCURACY_BPS) == built


def test_a_card_without_dp_states_no_privacy() -> None:
    built = card(spec=canonical(), epsilon_spent=None, noise_multiplier=None)
    assert built.to_document()["privacy"] is None
    assert built.epsilon_budget is None
    assert "no differential privacy" in "\n".join(built.summary())


def test_the_summary_names_every_fact() -> None:
    text = "\n".join(card().summary())
    for fact in (
        "small_cnn",
        "width=16",
        "117 used of 140 selected, from 2 assets of 2 providers",
        "81.00 % (243/300 validation images; 95% wilson interval",
        "epsilon 2.99 spent of 3 asked, delta 1e-05",
        "asset 5 (20 samples): dp-terms, its licence caps epsilon at 1",
        "3 samples of asset 2: unreadable",
        "torch 2.13.0+cpu",
    ):
        assert fact in text


def test_knobs_the_spec_gains_appear_without_a_change() -> None:
    spec = {**canonical(), "augmentation_multiplicity": 4}
    built = card(spec=spec, epsilon_spent=None)
    assert built.spec["augmentation_multiplicity"] == 4
    assert "augmentation_multiplicity=4" in built.summary()[0]


# --- the statistics ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 300, 9_999, 10_000])
def test_the_count_of_correct_images_is_recovered_exactly(n: int) -> None:
    for correct in range(n + 1):
        bps = (correct * 10_000 + n // 2) // n
        assert correct_from_bps(bps, n) == correct


def test_an_accuracy_no_count_gives_is_none() -> None:
    assert correct_from_bps(5_000, 3) is None  # 1/3 and 2/3 only
    assert correct_from_bps(10_001, 10) is None
    assert correct_from_bps(5_000, 0) is None
    # past 10,000 images several counts share a basis point: the nearest one
    assert correct_from_bps(5_000, 20_000) == 10_000


@pytest.mark.parametrize(("correct", "n"), [(0, 10), (243, 300), (10, 10), (1, 2), (9_871, 10_000)])
def test_the_interval_is_wilsons_rounded_outwards(correct: int, n: int) -> None:
    reference = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval_bps(correct, n)
    assert low == max(0, math.floor(reference.low * 10_000 + 1e-9))
    assert high == min(10_000, math.ceil(reference.high * 10_000 - 1e-9))
    assert low <= (correct * 10_000) // n <= high


# --- the lies a node could tell, each refused -------------------------------------------------
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


LIES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "epsilon spent over the budget": (
        _set("privacy.epsilonSpent", 3.5),
        r"ε spent 3.5 is not within the budget \(0, 3\] asked",
    ),
    "a budget the spec did not ask": (
        _set("privacy.epsilonBudget", 8.0),
        "budget ε=8, δ=1e-05 is not the spec's ε=3.0",
    ),
    "no privacy stated for a DP spec": (
        _set("privacy", None),
        "privacy is missing, but the spec asked for differential privacy",
    ),
    "an accuracy that is no count of the images": (
        _set("accuracy.bps", 8_105),
        "accuracy 8105 bps is not 243 correct of 300 validation images",
    ),
    "more correct images than were scored": (
        _set("accuracy.correct", 301),
        "accuracy 8100 bps is not 301 correct of 300",
    ),
    "a narrower interval": (
        _set("accuracy.interval.lowBps", 8_000),
        r"accuracy.interval \[8000, .*\] bps is not the wilson interval of 243/300",
    ),
    "another interval method": (
        _set("accuracy.interval.method", "wald"),
        "accuracy.interval must be the 95% wilson interval",
    ),
    "selected samples that do not add up": (
        _set("samples.selected", 150),
        "150 selected is not 117 used \\+ 23 left out or excluded",
    ),
    "a used count that is not its assets'": (
        _set("samples.used", 120),
        "samples.used 120 is not the 117 of its assets",
    ),
    "more providers than its assets have": (
        _set("samples.providers", 3),
        "samples.providers is not the number of distinct providers",
    ),
    "an asset used and left out": (
        _set("samples.leftOut.0.assetId", 1),
        "asset 1 is listed as used and as left out",
    ),
    "a reason nobody defined": (
        _set("samples.leftOut.0.reason", "felt like it"),
        "reason must be one of tally, withdrawn, own-asset, licence, dp-terms, no-key",
    ),
    "a screen that does not add up": (
        _set("validation.duplicates", 0),
        "310 given is not 0 duplicates \\+ 6 near-copies \\+ 300 used",
    ),
    "an accuracy over other images than the screen kept": (
        _set("validation", {"given": 400, "duplicates": 0, "nearSelected": 0, "used": 400}),
        "accuracy is over 300 validation images, the screen kept 400",
    ),
    "a spec that is not the one hashed": (
        _set("spec.epochs", 50),
        "specHash '0x.*' is not its spec's hash",
    ),
    "an architecture that is not the spec's": (
        _set("architecture", "resnet"),
        "architecture 'resnet' is not its spec's 'small_cnn'",
    ),
    "phases longer than the job": (
        _set("wallTimeS.train", 100.0),
        "the phases take longer than the whole job",
    ),
    "a negative time": (_set("wallTimeS.eval", -1.0), "wallTimeS.eval must be finite and ≥ 0"),
    "an endless time": (_set("wallTimeS.job", 10**400), "wallTimeS.job must be finite"),
    "a version that is no version": (
        _set("versions.0.version", "2.0\nforged line"),
        "is not a library's version",
    ),
    "no versions": (_set("versions", []), "versions must name 1 to 32 libraries"),
    "another card version": (_set("version", 2), f"version must be {CARD_VERSION}, got 2"),
    "a provider that is not an address": (
        _set("samples.assets.0.provider", "alice"),
        r"samples.assets\[\].provider must be a 0x address",
    ),
    "a count that is not a whole number": (
        _set("samples.assets.0.samples", 1.5),
        r"samples.assets\[\].samples must be a whole number ≥ 0, got 1.5",
    ),
}


@pytest.mark.attack
@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_card_is_refused_in_one_line(lie: str) -> None:
    change, message = LIES[lie]
    doc = document()
    change(doc)
    with pytest.raises(InvalidInputError, match=message) as info:
        read_model_card(json.loads(json.dumps(doc)))
    assert "\n" not in str(info.value)
    assert str(info.value).endswith("report it to governance")


def test_privacy_stated_for_a_spec_without_dp_is_refused() -> None:
    doc = document(spec=canonical(), epsilon_spent=None)
    doc["privacy"] = document()["privacy"]
    with pytest.raises(InvalidInputError, match="privacy is stated, but the spec asked for no"):
        read_model_card(doc)


@pytest.mark.attack
def test_a_card_that_disagrees_with_the_chain_or_its_document_is_refused() -> None:
    doc = document()
    honest = result(doc)
    assert card_from_result(honest, accuracy_bps=ACCURACY_BPS) is not None
    with pytest.raises(InvalidInputError, match="accuracy 8100 bps is not the 8200 bps on chain"):
        card_from_result(honest, accuracy_bps=8_200)
    other = spec_hash(make_spec(epochs=7))
    with pytest.raises(InvalidInputError, match=r"its spec hashes to 0x.*, the proposal committed"):
        card_from_result(honest, accuracy_bps=ACCURACY_BPS, model_spec_hash=other)
    for key, value in (
        ("trainSamples", 130),
        ("excludedSamples", 0),
        ("epsilonSpent", 1.0),
        ("validation", {"given": 300, "duplicates": 0, "nearSelected": 0, "used": 300}),
    ):
        with pytest.raises(InvalidInputError, match=f"the document disagrees with it: {key} "):
            card_from_result({**honest, key: value}, accuracy_bps=ACCURACY_BPS)
    # a document without a card has none to check (a consumer-fault result trained nothing)
    assert card_from_result({"accuracyBps": 0}, accuracy_bps=0) is None


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"accuracy_bps": 8_105}, "accuracy 8105 bps is no count of 300 validation images"),
        ({"epsilon_spent": 3.2}, "ε spent 3.2 is not within the budget"),
        ({"epsilon_spent": None}, "ε spent None for a spec that asks for it"),
        ({"assets": []}, "no sample was used, yet a model was trained"),
        ({"excluded": [ExcludedSamples(5, "unreadable", 1)]}, "asset 5 is left out whole"),
    ],
)
def test_the_builder_refuses_figures_no_reader_would_accept(
    facts: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        card(**facts)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    path=st.sampled_from(
        [
            "version",
            "spec",
            "samples",
            "samples.assets",
            "samples.selected",
            "accuracy",
            "accuracy.interval",
            "privacy",
            "validation",
            "wallTimeS",
            "versions",
            "specHash",
        ]
    ),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=8,
    ),
)
def test_any_broken_field_is_a_one_line_refusal(path: str, value: Any) -> None:
    doc = copy.deepcopy(DOCUMENT)
    _set(path, value)(doc)
    try:
        read_model_card(doc)
    except InvalidInputError as exc:
        assert "\n" not in str(exc)


DOCUMENT = document()
