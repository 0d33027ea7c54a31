"""The demo's collective and scoring round without a chain: the cast's floors give the policy
the story needs at both sizes, the newcomer's images are her own, and the report says what the
collective and the scoring round did in the CLI's JSON language and in one line each."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from visdm.cli._json import scheme_problems
from visdm.collectives import policy_ask, weighted_lower_median
from visdm.datasets import load_fashion_mnist
from visdm.demo import DemoConfig, DemoReport, DemoStep, Progress, report_json, write_report
from visdm.demo._cast import (
    COLLECTIVE,
    MEMBERS,
    NEWCOMER,
    class_names,
    first_ask,
    member_floor,
    prepare_folders,
    prepare_newcomer,
    vote_text,
)
from visdm.demo._collective import cast_text
from visdm.demo._newcomer import share_chosen
from visdm.demo._report import collective_line, newcomer_line
from visdm.demo._stage import Stage

pytestmark = pytest.mark.unit

TOKEN = 10**18


@pytest.mark.parametrize("quick", [True, False])
def test_the_members_floors_accept_the_first_offer_and_ask_more_of_the_second(
    quick: bool,
) -> None:
    config = DemoConfig.for_size(quick)
    members = [m for m in MEMBERS if m in config.cast]
    assert len(members) >= 2
    market = config.images_per_provider * len(config.cast)
    floor = weighted_lower_median(
        (member_floor(config, m), config.images_per_provider) for m in members
    )
    assert floor is not None and floor > 0
    offer = config.offer_tokens * TOKEN
    # the first and third proposals select the whole market at the full offer
    assert policy_ask(offer=offer, total_weight=market, floor=floor) == 0
    # the second offers half for what is left once flagged samples are searched out: even
    # with a tenth of the market flagged (the demo flags about 5%), the offer per sample is
    # below the floor
    for selected in (market, market * 9 // 10):
        ask = policy_ask(offer=offer // 2, total_weight=selected, floor=floor)
        assert ask == floor * selected > offer // 2


def test_members_vote_only_through_the_collective() -> None:
    cast = DemoConfig().cast
    for who in MEMBERS:
        assert first_ask(who, 100 * TOKEN) is None
        assert vote_text(who, cast) == f"via {COLLECTIVE}"
    assert vote_text("ivy", cast) == "+20%"
    assert vote_text("tom", cast) == "reject"
    assert vote_text("gus", cast) == "abstains"
    with pytest.raises(KeyError):
        member_floor(DemoConfig(), "ivy")  # not a member: no floor vote


def test_the_newcomer_holds_correctly_labelled_images_no_one_else_holds(tmp_path: Path) -> None:
    config = DemoConfig.for_size(quick=True)
    cast = prepare_folders(tmp_path, config)
    zoe = prepare_newcomer(tmp_path, config)
    assert zoe.name == NEWCOMER and zoe.mislabelled == 0 and zoe.images == 48
    (folder,) = zoe.folders
    with (folder / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == zoe.images
    start = config.images_per_provider * len(config.cast)
    x, y = load_fashion_mnist("train", limit=start + zoe.images)
    names = class_names()
    theirs = {
        Image.open(path).tobytes()
        for p in cast.values()
        for f in p.folders
        for path in f.iterdir()
        if path.suffix == ".png"
    }
    for k, row in enumerate(rows):
        index = int(row["filename"].split("-")[1].split(".")[0])
        assert index == start + k
        assert row["label"] == names[int(y[index])]
        pixels = Image.open(folder / row["filename"])
        assert np.array_equal(np.asarray(pixels), x[index])
        assert pixels.tobytes() not in theirs


def test_share_chosen_counts_each_owner_against_what_it_holds() -> None:
    held = {"zoe": 4, "ada": 2, "ben": 2}
    chosen = ["ada", "zoe", "ada", "ben"]
    assert share_chosen(chosen, held, ["zoe"]) == 0.25
    assert share_chosen(chosen, held, ["ada", "ben"]) == 0.75
    assert share_chosen(chosen, held, ["nobody"]) == 0.0
    assert share_chosen([], held, ["zoe"]) == 0.0


def _cast(pid: int, ask: int, accepted: bool) -> dict[str, Any]:
    return {
        "proposalId": pid,
        "floorWei": 5 * 10**16,
        "offerWei": 100 * TOKEN if accepted else 50 * TOKEN,
        "selectedSamples": 1200,
        "askWei": ask,
        "accepted": accepted,
        "gasUsed": 116_000,
    }


COLLECTIVE_REPORT: dict[str, Any] = {
    "name": COLLECTIVE,
    "address": "0x" + "ab" * 20,
    "steward": "ada",
    "feeBps": 0,
    "policyDelay": 86_400,
    "members": [
        {"name": "ada", "address": "0x" + "01" * 20, "weight": 60, "floorWei": 5 * 10**16},
        {"name": "ben", "address": "0x" + "02" * 20, "weight": 60, "floorWei": 6 * 10**16},
    ],
    "policyFloorWei": 5 * 10**16,
    "policyWeight": 120,
    "casts": [_cast(1, 0, True), _cast(2, 60 * TOKEN, False)],
    "stats": {
        "proposalsVoted": 2,
        "accepted": 1,
        "acceptanceRate": 0.5,
        "outcomes": [
            {"outcome": "approved", "proposals": 1},
            {"outcome": "countered", "proposals": 1},
        ],
        "earningsWei": 36 * TOKEN,
        "pricedSamples": 120,
        "earningsPerSampleWei": 36 * TOKEN // 120,
        "feesChargedWei": 0,
    },
}

SCORING_REPORT: dict[str, Any] = {
    "feeBps": 200,
    "ratePerSampleWei": 10**15,
    "feesCollectedWei": 24 * 10**17,
    "paidWei": 48 * 10**15,
    "newcomer": {"name": "zoe", "address": "0x" + "03" * 20, "assetId": 12, "samples": 48},
    "before": {"newcomerChosen": 0, "newcomerShare": 0.0, "honestShare": 0.5},
    "after": {"newcomerChosen": 24, "newcomerShare": 0.5, "honestShare": 0.45},
}


def test_a_cast_says_what_the_policy_compared() -> None:
    assert cast_text(_cast(1, 0, True)) == (
        "tailors votes accept on proposal 1 (floor 0.05 × 1200 samples = 60 tokens ≤ offer 100)"
    )
    assert cast_text(_cast(2, 60 * TOKEN, False)) == (
        "tailors votes ask 60 tokens on proposal 2 (floor 0.05 × 1200 samples = 60 tokens > "
        "offer 50)"
    )


def test_one_line_each_for_the_collective_and_the_newcomer() -> None:
    report = DemoReport(home="", collective=COLLECTIVE_REPORT, scoring=SCORING_REPORT)
    assert collective_line(report) == (
        "collective tailors (2 members) voted on 2 proposals (1 approved, 1 countered) and "
        "accepted 1 (50%); its members earned 36 tokens through it, 0.3 per selected sample"
    )
    assert newcomer_line(report) == (
        "zoe's 48 samples in the best-expected-value third of the market: 0 (0%) before her "
        "scoring round, 24 (50%) after; honest scored providers' 50% → 45%"
    )
    # a report without them (a demo that stopped early) prints neither line
    assert collective_line(DemoReport(home="")) == newcomer_line(DemoReport(home="")) == ""
    half = DemoReport(home="", scoring={k: v for k, v in SCORING_REPORT.items() if k != "after"})
    assert newcomer_line(half) == ""


def test_report_json_carries_both_in_the_cli_language(tmp_path: Path) -> None:
    report = DemoReport(home=str(tmp_path), collective=COLLECTIVE_REPORT, scoring=SCORING_REPORT)
    report.rounds.append(
        {
            "proposalId": 1,
            "status": "completed",
            "priceWei": 120 * TOKEN,
            "scoringFeeWei": 2 * TOKEN,
        }
    )
    data = report_json(report)
    assert scheme_problems(data) == []
    assert data["collective"]["casts"][1]["askWei"] == str(60 * TOKEN)
    assert data["collective"]["stats"]["earningsWei"] == str(36 * TOKEN)
    assert data["scoring"]["feesCollectedWei"] == str(24 * 10**17)
    assert data["scoring"]["after"]["newcomerChosen"] == 24
    # the plots, their round-1 title saying where the fee went, draw beside it
    report.values = [{"provider": "ada", "value": 0.01, "flags": [], "mislabelled": False}]
    report.providers = [
        {"name": n, "role": "honest", "samples": 60, "payoutWei": p, "claimedWei": p}
        for n, p in (("ada", 70 * TOKEN), ("ben", 48 * TOKEN))
    ]
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["scoring"]["feeBps"] == 200
    assert (tmp_path / "payouts.png").stat().st_size > 10_000


def test_a_stage_times_its_steps_and_names_assets(tmp_path: Path) -> None:
    from visdm.config import Settings

    seen: list[DemoStep] = []

    class Seen(Progress):
        def step(self, item: DemoStep) -> None:
            seen.append(item)

    report = DemoReport(home=str(tmp_path))
    stage = Stage(Settings(home=tmp_path), DemoConfig.for_size(quick=True), report, Seen())
    with stage.step("collective") as info:
        info["detail"], info["gas"] = "formed", 21_000
        info["notes"].append("a note")
    with stage.step("collective stats"):
        pass
    assert (
        [s.name for s in report.steps]
        == ["collective", "collective stats"]
        == [s.name for s in seen]
    )
    first, second = report.steps
    assert (first.detail, first.gas_used, first.notes) == ("formed", 21_000, ["a note"])
    assert second.gas_used is None and second.seconds >= 0
    stage.owner_of.update({2: "ben", 3: "ben", 11: "tom"})
    assert stage.names([11]) == "tom's asset 11"
    assert stage.names([3, 2, 11]) == "ben's assets 2, 3, tom's asset 11"
    assert stage.as_("zoe").account == "zoe"
