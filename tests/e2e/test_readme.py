"""The README's CLI walk-through, executed as written (the commands a new user types)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from visdm.chain.anvil import chain_down
from visdm.chain.contracts import MarketParameters
from visdm.manifest import Licence

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"no ```sh block under '## {heading}'"
    return match.group(1)


def test_quick_start_is_exactly_two_commands() -> None:
    lines = [ln for ln in readme_block("Quick start").splitlines() if ln.strip()]
    assert lines == ["make demo", "make test"]


def test_step_by_step_walkthrough_runs(tmp_path: Path) -> None:
    script = readme_block("Step by step with the CLI")
    # the README calls the venv's entry point; run the one installed beside this interpreter
    script = script.replace(".venv/bin/visdm", str(Path(sys.executable).parent / "visdm"))
    # a walkthrough that fails half-way must not leave its background node running
    script = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISDM_")}
    env["TMPDIR"] = str(tmp_path)  # so `mktemp -d` lands where cleanup can find it
    try:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        for home in tmp_path.iterdir():
            chain_down(home / "chain")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "local chain started at http://127.0.0.1:" in out
    assert "StakeholderRegistry" in out
    assert re.search(r"roles\s+provider", out), out
    assert re.search(r"keyMatches\s+True", out), out
    # three providers, 100 photos each: the smallest market the default minimums let train
    for asset_id in (1, 2, 3):
        assert f"asset {asset_id} registered: 100 samples" in out
    assert re.search(r"status\s+active", out), out
    assert re.search(r"acceptedCount\s+100", out), out
    proposed = re.search(r"samples\s+(\d+)\nassets\s+1, 2, 3\n", out)
    assert proposed, out
    selected = int(proposed.group(1))
    assert MarketParameters().min_selection_samples <= selected < 300  # the search curated
    assert "proposal created" in out
    assert "delegated to" in out
    assert out.count("voted accept on proposal 1") == 2
    assert re.search(r"outcome\s+approved", out), out
    # cy's delegation to ada: every selected sample took part in the vote
    weights = rf"participatingWeight\s+{selected}\nremainingWeight\s+{selected}\n"
    assert re.search(rf"{weights}totalWeight\s+{selected}\n", out), out
    assert "training started" in out
    assert re.search(r"status\s+completed", out), out
    assert re.search(r"accuracyBps\s+\d{4}", out), out
    # each provider claimed its asset's payout in one transaction
    claimed = r"│ 1\s+│ [0-9.]+ tokens \(\d+ wei\)\s+│ claimed\s+│ 0x[0-9a-f]{64}"
    assert len(re.findall(claimed, out)) == 3
    assert "earnings (wei)" in out
    (home,) = tmp_path.glob("tmp.*")  # the walkthrough's `mktemp -d`
    assert (home / "model.safetensors").stat().st_size > 0
    # the spec `data model-spec` wrote meets the default licence and the market's batch minimum
    spec = json.loads((home / "spec.json").read_text())
    assert spec["dp"]["target_epsilon"] <= Licence(("training",)).max_epsilon
    assert spec["batch_size"] >= MarketParameters().min_batch_size
    assert "seed" not in spec
    assert "local chain stopped" in out
