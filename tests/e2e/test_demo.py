"""`visdm demo --quick` end to end, as `make demo` runs it (at the smaller size), under the
market's default parameters and licences: the market's outcomes are asserted, not just that it
ran — the rounds, the collective that votes for its members, and the scoring round that gets a
newcomer's samples chosen."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from visdm.chain.contracts import MarketParameters
from visdm.cli import main
from visdm.cli._json import scheme_problems
from visdm.collectives import weighted_lower_median
from visdm.compute import _scoring, _training

pytestmark = pytest.mark.e2e

TOKEN = 10**18
RULES = MarketParameters()  # the defaults the demo plays under, never relaxed


def wei(amount: str) -> int:
    """An amount of the report: a decimal string of wei, exact past 2^53."""
    assert isinstance(amount, str) and amount.isdigit(), amount
    return int(amount)


class _FixedSeeds:
    """Stands in for :mod:`secrets` in the node's training and scoring modules: the node draws
    each job's seed from the OS; fixed here so that a failing run can be replayed."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.drawn = 0

    def token_bytes(self, n: int) -> bytes:
        self.drawn += 1
        return hashlib.sha256(f"demo-{self.label}-{self.drawn}".encode()).digest()[:n]


def test_quick_demo_plays_the_whole_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds, scoring_seeds = _FixedSeeds("job"), _FixedSeeds("scoring")
    monkeypatch.setattr(_training, "secrets", seeds)
    monkeypatch.setattr(_scoring, "secrets", scoring_seeds)
    report_dir = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "demo",
                "--quick",
                "--data-dir",
                str(tmp_path / "home"),
                "--report-dir",
                str(report_dir),
            ]
        )
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None), out
    # the node drew one seed for each of its three training jobs (the last one a lie); the
    # nodes that re-executed it used the seed sealed to them
    assert seeds.drawn == 3
    assert scoring_seeds.drawn == 1  # and one for the scoring batch
    report = json.loads((report_dir / "report.json").read_text())
    assert scheme_problems(report) == []  # the language of every --json
    assert (report_dir / "values.png").stat().st_size > 10_000
    assert (report_dir / "payouts.png").stat().st_size > 10_000

    steps = [s["name"] for s in report["steps"]]
    for name in ("deploy", "scoring pool", "asset add", "node attests", "collective", "delegate",
                 "index and search", "propose", "vote", "collective votes", "tally",
                 "accept counter", "train", "node trains", "model get", "compare specs", "claim",
                 "propose again",
                 "vote and tally", "propose third", "reject", "refund", "sweep",
                 "collective stats", "newcomer", "search by value", "scoring round",
                 "search again", "court", "cheating round", "node lies",
                 "verify node challenges", "committee votes", "slashed"):  # fmt: skip
        assert name in steps, steps
    _cheating_round({s["name"]: s["detail"] for s in report["steps"]})

    first, second, third = report["rounds"]
    providers = {p["name"]: p for p in report["providers"]}
    _first_round(report, first, providers)
    _claims_and_sweep(report, first, providers)
    _refunds(report, second, third)
    _collective(report, providers)
    _scoring_round(report, first)

    gas = {g["step"]: g["gasUsed"] for g in report["gasByStep"]}
    assert gas["claim"] > 0 and gas["tally"] > 0 and gas["sweep"] > 0
    # what the user reads: who left which round, the screen and the seed's commitment
    assert "rejected, out of the round: tom's asset" in out
    assert re.search(r"seed: drawn by the node, hash 0x[0-9a-f]{8}", out), out
    assert "validation screen" in out
    assert re.search(r"noisy flags: \d+ samples, \d+ of the \d+ mislabelled: precision", out)
    assert "proposal 3: rejected" in out
    assert "tailors votes accept on proposal 1" in out
    assert re.search(r"tailors votes ask [\d.]+ tokens on proposal 2 \(floor [\d.]+ × \d+", out)
    assert re.search(r"collective tailors \(2 members\) voted on 3 proposals .* accepted 2", out)
    assert re.search(
        r"zoe's 48 samples in the best-expected-value third of the market: 0 \(0%\) before her "
        r"scoring round, [1-9]\d* \(\d+%\) after",
        out,
    )
    assert "demo finished" in out
    # the demo stops the chain it started
    assert not (tmp_path / "home" / "chain" / "anvil.json").exists()


def _first_round(report: dict[str, Any], first: dict[str, Any], providers: dict[str, Any]) -> None:
    config = report["config"]
    # liquid democracy: the delegated weight behind ivy's higher ask counters the offer
    assert first["outcome"] == "countered"
    assert wei(first["clearingPriceWei"]) == wei(first["offerWei"]) * 12 // 10
    assert first["status"] == "completed"
    assert first["accuracyBps"] >= config["wtpBps"]
    assert report["model"]["accuracyBps"] == first["accuracyBps"]
    # the consumer gets the model card, checked against the chain's accuracy
    card = report["model"]["card"]
    assert card["accuracy"]["bps"] == first["accuracyBps"]
    assert 0 < card["privacy"]["epsilonSpent"] <= config["dpEpsilon"]
    # the old and the new default on the same images: the better features pay
    before, now = report["specComparison"]
    assert (before["architecture"], now["architecture"]) == ("mlp", "scatter_linear")
    assert now["trainImages"] == before["trainImages"] > 0
    assert now["accuracy"] > before["accuracy"]
    # DP by default: the spend stays within the spec's ε, itself within the default licence's 8
    assert config["dpEpsilon"] <= 8
    assert config["batchSize"] >= RULES.min_batch_size
    assert 0 < first["epsilonSpent"] <= config["dpEpsilon"] * 1.05

    # tom rejected: his samples left the round, which went on with what remained
    tom = providers["tom"]
    assert first["outOfRound"] == ["tom"]
    assert [(o["provider"], o["assetId"]) for o in first["leftOut"]] == [("tom", tom["assets"][0])]
    assert first["remainingWeight"] == first["totalWeight"] - tom["selected"]
    assert first["remainingWeight"] >= RULES.min_selection_samples
    assert first["remainingWeight"] * 10_000 >= first["minShareBps"] * first["totalWeight"]
    assert first["trainSamples"] == first["remainingWeight"]
    assert tom["samples"] == 0 and tom["payoutWei"] == "0" and tom["claimedWei"] == "0"

    # the node's seed: only its hash is published, the same in the document and on chain
    assert re.fullmatch(r"0x[0-9a-f]{64}", first["seedHash"])
    assert first["seedHash"] == first["onChainSeedHash"] != "0x" + "00" * 32
    # the screen dropped the copies of kai's images bob slipped into his validation set
    screen = first["validation"]
    assert screen["given"] == config["validationImages"]
    assert screen["used"] + screen["duplicates"] + screen["nearSelected"] == screen["given"]
    assert screen["duplicates"] + screen["nearSelected"] >= config["validationCopies"] > 0
    assert first["consumerFault"] is None  # the consumer's input was usable

    # the payouts and the scoring fee the market took sum to the price exactly
    paid = sum(wei(p["payoutWei"]) for p in providers.values())
    fee = wei(first["scoringFeeWei"])
    assert fee == wei(first["priceWei"]) * report["scoring"]["feeBps"] // 10_000 > 0
    assert paid + fee == wei(first["priceWei"]) == wei(first["clearingPriceWei"])
    assert sum(p["valueShare"] for p in providers.values()) == pytest.approx(1.0)
    # the copier gains nothing from its copies, which are flagged
    assert providers["sam"]["payoutWei"] == "0"
    assert providers["sam"]["flaggedCopied"] == providers["sam"]["samples"] > 0
    # noisy providers earn less per sample than every clean one, and their noise is flagged
    clean = [
        wei(p["payoutPerSampleWei"])
        for p in providers.values()
        if p["role"] not in ("noisy", "copier", "rejects")
    ]
    for name in ("gus", "hal"):
        assert wei(providers[name]["payoutPerSampleWei"]) < min(clean)
        assert providers[name]["flaggedNoisy"] > statistics.median(
            p["flaggedNoisy"] for p in providers.values()
        )


def _claims_and_sweep(
    report: dict[str, Any], first: dict[str, Any], providers: dict[str, Any]
) -> None:
    # payouts name assets: ben's two assets, both paid, in the one claimMany he sent
    ben = providers["ben"]
    assert len(ben["assets"]) == 2
    assert sorted(a["assetId"] for a in ben["assetPayouts"]) == sorted(ben["assets"])
    assert sum(wei(a["payoutWei"]) for a in ben["assetPayouts"]) == wei(ben["payoutWei"]) > 0
    assert ben["claimTransactions"] == 1
    # everyone owed something claimed it in one transaction, except lu
    for name, p in providers.items():
        if name == "lu":
            continue
        assert p["claimedWei"] == p["payoutWei"], name
        assert p["claimTransactions"] == (1 if wei(p["payoutWei"]) else 0), name
    lu = providers["lu"]
    assert wei(lu["payoutWei"]) > 0 and lu["claimedWei"] == "0"
    # after the claim period lu's payout went to the treasury, and nothing else did
    settled = report["settlement"]
    assert settled["sweptProposal"] == first["proposalId"]
    assert settled["sweptWei"] == lu["payoutWei"]
    assert wei(settled["treasuryCreditWei"]) >= wei(settled["sweptWei"])


def _refunds(report: dict[str, Any], second: dict[str, Any], third: dict[str, Any]) -> None:
    # the second proposal could not reach its threshold: the data price came back
    assert second["outcome"] == "approved"
    assert second["status"] == "wtp_missed"
    assert second["outOfRound"] == ["tom"]
    assert second["remainingWeight"] >= RULES.min_selection_samples
    matches = {s["name"]: s["matches"] for s in report["search"]}
    assert matches["round-2"] < matches["round-1"]
    # the third lost ivy and everyone who delegates to her: below bob's minimum share, it was
    # rejected without training
    assert third["outcome"] == third["status"] == "rejected"
    assert {"ivy", "jo", "kai", "lu", "tom"} <= set(third["outOfRound"])
    assert third["remainingWeight"] * 10_000 < third["minShareBps"] * third["totalWeight"]
    assert "accuracyBps" not in third
    # bob withdrew both refunds in one go
    assert second["refundWei"] == second["offerWei"] and third["refundWei"] == third["offerWei"]
    refunded = wei(report["settlement"]["refundedWei"])
    assert refunded == wei(second["offerWei"]) + wei(third["offerWei"])


def _collective(report: dict[str, Any], providers: dict[str, Any]) -> None:
    collective = report["collective"]
    members = {m["name"]: m for m in collective["members"]}
    # the quick cast's members; ben's weight is both his assets
    assert list(members) == ["ada", "ben"] and collective["steward"] == "ada"
    for name, m in members.items():
        assert m["weight"] == providers[name]["selected"]
        assert providers[name]["vote"] == "via tailors"
    # the policy is the weighted lower median of the members' floors, counted after the delay
    assert collective["policyDelay"] > 0
    assert wei(collective["policyFloorWei"]) == weighted_lower_median(
        (wei(m["floorWei"]), m["weight"]) for m in members.values()
    )
    assert collective["policyWeight"] == sum(m["weight"] for m in members.values())
    # one cast per proposal, from the policy: the offer per selected sample against the floor
    casts = collective["casts"]
    assert [c["proposalId"] for c in casts] == [r["proposalId"] for r in report["rounds"]]
    for c, r in zip(casts, report["rounds"], strict=True):
        floor, offer = wei(c["floorWei"]), wei(c["offerWei"])
        assert offer == wei(r["offerWei"]) and c["selectedSamples"] == r["totalWeight"]
        need = floor * c["selectedSamples"]
        assert c["accepted"] == (offer >= need)
        assert wei(c["askWei"]) == (0 if c["accepted"] else need)
    # the second proposal pays half as much per sample: the collective asks more, while ivy's
    # delegated weight still approves it
    assert [c["accepted"] for c in casts] == [True, False, True]
    assert wei(casts[1]["askWei"]) > wei(casts[1]["offerWei"])
    # the statistics read back from the chain's events
    stats = collective["stats"]
    assert (stats["proposalsVoted"], stats["accepted"]) == (3, 2)
    assert stats["acceptanceRate"] == pytest.approx(2 / 3, abs=1e-4)
    assert {o["outcome"]: o["proposals"] for o in stats["outcomes"]} == {
        "countered": 1,
        "approved": 1,
        "rejected": 1,
    }
    # what the members earned through it: their round-1 payouts, over their selected samples
    earned = sum(wei(providers[n]["payoutWei"]) for n in members)
    assert wei(stats["earningsWei"]) == earned > 0
    assert stats["pricedSamples"] == sum(providers[n]["samples"] for n in members)
    assert wei(stats["earningsPerSampleWei"]) == earned // stats["pricedSamples"]
    assert wei(stats["feesChargedWei"]) == 0  # a collective without a fee


def _scoring_round(report: dict[str, Any], first: dict[str, Any]) -> None:
    figures = report["scoring"]
    newcomer = figures["newcomer"]
    assert newcomer["name"] == "zoe"
    assert newcomer["samples"] == report["config"]["imagesPerProvider"]
    # the fee of the one completed round funded the pool, which paid for every scored sample
    assert figures["feesCollectedWei"] == first["scoringFeeWei"]
    assert figures["batchId"] == 1 and figures["scored"] == newcomer["samples"]
    assert wei(figures["paidWei"]) == figures["scored"] * wei(figures["ratePerSampleWei"])
    assert figures["players"] == figures["scored"] + figures["anchorSamples"]
    before, after = figures["before"], figures["after"]
    # unscored, her samples sit at the market's mean, below the least value the search takes
    assert before["newcomerConfidence"] == 0 and before["newcomerScoringRounds"] == 0
    assert before["newcomerChosen"] == 0 == before["newcomerShare"]
    assert before["newcomerExpectedValue"] < before["cutExpectedValue"]
    # one scoring round later the same search chooses some of them
    assert after["newcomerScoringRounds"] == 1 and after["newcomerConfidence"] > 0
    assert after["newcomerChosen"] > 0 and after["newcomerShare"] > 0
    assert after["matches"] == before["matches"] and after["chosen"] == before["chosen"]
    assert 0 < before["honestShare"] <= 1 and 0 < after["honestShare"] <= 1


def _cheating_round(detail: dict[str, str]) -> None:
    """The last round's lie is caught by the verifying node, not by anyone calling the court."""
    assert "payout root paying all" in detail["node lies"]
    assert (
        "the payout root differs, it challenges; the court draws node3"
        in detail["verify node challenges"]
    )
    assert detail["committee votes"].endswith("resolves: overturned")
    assert "node1 loses a 10-token bond" in detail["slashed"]


def test_demo_refuses_a_non_empty_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "keep.txt").write_text("precious")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--data-dir", str(tmp_path / "home")])
    assert exit_info.value.code == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "home" / "keep.txt").read_text() == "precious"
