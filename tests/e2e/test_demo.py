"""`visdm demo --quick` end to end, as `make demo` runs it (at the smaller size): the market's
outcomes are asserted, not just that it ran."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from visdm.cli import main

pytestmark = pytest.mark.e2e

TOKEN = 10**18


def test_quick_demo_plays_the_whole_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    report = json.loads((report_dir / "report.json").read_text())
    assert (report_dir / "values.png").stat().st_size > 10_000
    assert (report_dir / "payouts.png").stat().st_size > 10_000

    steps = [s["name"] for s in report["steps"]]
    for name in ("deploy", "asset add", "node attests", "delegate", "index and search", "propose",
                 "vote", "tally", "accept counter", "train", "node trains", "model get", "claim",
                 "propose again", "refund"):  # fmt: skip
        assert name in steps, steps

    first, second = report["rounds"]
    # liquid democracy: the delegated weight behind ivy's higher ask counters the offer
    assert first["outcome"] == "countered"
    assert first["clearingPrice"] == first["offer"] * 12 // 10
    assert first["status"] == "completed"
    assert first["accuracyBps"] >= report["config"]["wtp_bps"]
    assert report["model"]["accuracyBps"] == first["accuracyBps"]
    assert 0 < first["epsilonSpent"] <= report["config"]["dp_epsilon"] * 1.05

    providers = {p["name"]: p for p in report["providers"]}
    # the payouts sum to the price exactly, and everything owed was claimed
    assert sum(p["payout"] for p in providers.values()) == first["price"] == first["clearingPrice"]
    assert all(p["claimed"] == p["payout"] for p in providers.values())
    # the copier gains nothing from its copies, which are flagged
    assert providers["sam"]["payout"] == 0
    assert providers["sam"]["flaggedCopied"] == providers["sam"]["samples"] > 0
    # noisy providers earn less per sample than every clean one, and their noise is flagged
    clean = [
        p["payoutPerSample"] for p in providers.values() if p["role"] not in ("noisy", "copier")
    ]
    for name in ("gus", "hal"):
        assert providers[name]["payoutPerSample"] < min(clean)
        assert providers[name]["flaggedNoisy"] > statistics.median(
            p["flaggedNoisy"] for p in providers.values()
        )

    # the second proposal could not reach its threshold: the data price came back
    assert second["outcome"] == "approved"
    assert second["status"] == "wtp_missed"
    assert second["refund"] == second["offer"]
    assert report["search"]["round-2"]["matches"] < report["search"]["round-1"]["matches"]

    gas = report["gas_by_step"]
    assert gas["claim"] > 0 and gas["tally"] > 0
    assert "demo finished" in out
    # the demo stops the chain it started
    assert not (tmp_path / "home" / "chain" / "anvil.json").exists()


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
