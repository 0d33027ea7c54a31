"""The demo knows which samples are mislabelled, and its report measures the noisy flags
against that truth: in ``report.json``, in one printable line and in the values plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from visdm.datasets import load_fashion_mnist
from visdm.demo import DemoConfig, DemoReport, write_report
from visdm.demo._cast import (
    NOISY,
    REJECTER,
    class_names,
    demo_market,
    demo_spec,
    prepare_folders,
)
from visdm.demo._report import flag_quality, flag_quality_line
from visdm.demo._settle import provider_rows

pytestmark = pytest.mark.unit


def _row(value: float, flags: list[str], mislabelled: bool) -> dict[str, Any]:
    return {"provider": "gus", "value": value, "flags": flags, "mislabelled": mislabelled}


VALUES = [
    _row(-0.02, ["noisy"], True),
    _row(-0.01, ["noisy"], True),
    _row(-0.01, [], True),  # missed
    _row(-0.005, ["noisy"], False),  # a false flag
    _row(-0.001, [], False),  # negative, rightly not flagged
    _row(0.01, [], False),
    _row(0.02, [], False),
    _row(0.0, ["copied", "duplicate"], False),  # a copy: not a candidate
]


def test_flag_quality_counts_against_the_truth() -> None:
    q = flag_quality(VALUES)
    assert (q["samples"], q["mislabelled"], q["flagged"], q["truePositives"]) == (7, 3, 3, 2)
    assert q["precision"] == pytest.approx(2 / 3) and q["recall"] == pytest.approx(2 / 3)
    assert (q["honestFlagged"], q["honestFlagRate"]) == (1, 0.25)
    old = q["negativeValue"]
    assert (old["flagged"], old["truePositives"], old["honestFlagged"]) == (5, 3, 2)
    assert old["recall"] == 1.0 and old["honestFlagRate"] == 0.5
    line = flag_quality_line(DemoReport(home="", values=VALUES))
    assert line == (
        "noisy flags: 3 samples, 2 of the 3 mislabelled: precision 0.67, recall 0.67, 1 correctly "
        "labelled flagged (25.0%); a negative value alone would flag 2 (50.0%), precision 0.60"
    )
    empty = flag_quality([])
    assert empty["precision"] is None and empty["recall"] is None
    assert empty["honestFlagRate"] is None


def test_the_report_carries_the_flag_quality_and_plots_by_truth(tmp_path: Path) -> None:
    report = DemoReport(home=str(tmp_path), values=VALUES)
    written = write_report(report, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["flagQuality"]["truePositives"] == 2
    assert data["values"][0]["mislabelled"] is True
    plot = tmp_path / "values.png"
    assert plot in written and plot.stat().st_size > 10_000


def test_the_cast_knows_which_of_its_files_are_mislabelled(tmp_path: Path) -> None:
    config = DemoConfig.for_size(quick=True)
    providers = prepare_folders(tmp_path, config)
    _, y = load_fashion_mnist("train", limit=config.images_per_provider * len(config.cast))
    names = class_names()
    for who, p in providers.items():
        assert len(p.wrong) == len(p.folders)
        assert p.mislabelled == sum(len(w) for w in p.wrong)
        assert (p.mislabelled > 0) == (who in NOISY)
        for folder, wrong in zip(p.folders, p.wrong, strict=True):
            with (folder / "labels.csv").open() as f:
                rows = sorted(csv.DictReader(f), key=lambda r: r["filename"])
            truth = [int(y[int(r["filename"].split("-")[1].split(".")[0])]) for r in rows]
            assert wrong == {i for i, r in enumerate(rows) if names.index(r["label"]) != truth[i]}
    # the arrays hold the same market, labels and truth alike
    market = demo_market(config, leave_out=frozenset({REJECTER}))
    assert REJECTER not in market.owners
    for who in NOISY:
        mine = [i for i, o in enumerate(market.owners) if o == who]
        assert market.mislabelled[mine].sum() == providers[who].mislabelled


def test_each_valued_sample_says_whether_it_is_mislabelled(tmp_path: Path) -> None:
    config = DemoConfig.for_size(quick=True)
    providers = prepare_folders(tmp_path, config)
    wrong = sorted(providers["gus"].wrong[0])
    address = "0x" + "11" * 20

    class Person:
        def __init__(self, address: str) -> None:
            self.address = address

    people = {
        n: Person(address if n == "gus" else f"0x{i + 1:040x}") for i, n in enumerate(config.cast)
    }
    assets = {n: [i + 1] for i, n in enumerate(config.cast)}
    gus = assets["gus"][0]
    samples = [
        {"provider": address, "asset_id": gus, "index": i, "value": -0.1, "flags": []}
        for i in (wrong[0], wrong[1], 47 if 47 not in wrong else 46)
    ]
    _, values = provider_rows(
        config,
        people,  # type: ignore[arg-type]
        assets,
        providers,
        {},
        json.dumps({"samples": samples}).encode(),
        {},
        lambda _who: "",
        payable=1,
    )
    assert [v["mislabelled"] for v in values] == [True, True, False]
    assert values[0]["provider"] == "gus"


def test_the_demo_spec_is_a_valid_dp_spec() -> None:
    from visdm.training import parse_model_spec

    spec = parse_model_spec(demo_spec(DemoConfig()))
    assert spec.dp is not None and spec.dp.target_epsilon == DemoConfig().dp_epsilon
