"""`visdm demo` end to end, as `make demo` runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visdm.cli import main

pytestmark = pytest.mark.e2e


def test_demo_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report_dir = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--data-dir", str(tmp_path / "home"), "--report-dir", str(report_dir)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, out
    report = json.loads((report_dir / "report.json").read_text())
    assert [s["name"] for s in report["steps"]] == [
        "account new",
        "chain up",
        "deploy",
        "admit node",
        "register ada",
        "register cy",
        "register bob",
        "photos",
        "asset add ada",
        "node attests",
        "asset add cy",
        "node attests",
        "seal sample",
    ]
    assert report["accounts"]["ada"]["roles"] == ["provider"]
    ada, cy = report["assets"]
    assert (ada["owner"], ada["samples"]) == ("ada", 24)
    assert (cy["owner"], cy["samples"]) == ("cy", 18)
    assert [r["file"] for r in cy["rejected"]] == ["not-an-image.png"]
    assert report["copies_linked"] >= 6
    assert report["accounts"]["bob"]["roles"] == ["consumer"]
    assert all(a["key_matches"] for a in report["accounts"].values())
    assert report["sample_cid"].startswith("bafkrei")
    assert "demo finished" in out
    # the demo stops the chain it started
    assert not (tmp_path / "home" / "chain" / "anvil.json").exists()


def test_demo_refuses_a_non_empty_data_dir(tmp_path: Path, capsys) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "keep.txt").write_text("precious")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--data-dir", str(tmp_path / "home")])
    assert exit_info.value.code == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "home" / "keep.txt").read_text() == "precious"
