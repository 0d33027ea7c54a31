"""`visdm data model-spec`, which the README's walkthrough pipes into `propose`: by default its
spec trains on data under the default licence and meets the market's batch minimum."""

from __future__ import annotations

import json
from typing import Any

import pytest

from visdm.chain.contracts import MarketParameters
from visdm.cli import main
from visdm.manifest import Licence, privacy_refusal

pytestmark = pytest.mark.e2e

DEFAULT_LICENCE = Licence(("training",))
SMALLEST_ROUND = MarketParameters().min_selection_samples


def _spec(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "model-spec", *args])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    spec: dict[str, Any] = json.loads(captured.out)
    return spec


def _refusal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "model-spec", *args])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def _budget(spec: dict[str, Any]) -> tuple[float, float] | None:
    dp = spec.get("dp")
    return None if dp is None else (dp["target_epsilon"], dp["delta"])


def test_the_default_spec_trains_under_the_default_licence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = _spec(capsys)
    assert spec["dp"]["target_epsilon"] <= DEFAULT_LICENCE.max_epsilon
    assert spec["batch_size"] >= MarketParameters().min_batch_size
    assert "seed" not in spec  # the node draws each job's randomness
    assert privacy_refusal(DEFAULT_LICENCE, _budget(spec), SMALLEST_ROUND) is None


def test_a_spec_without_dp_needs_an_owner_who_allows_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = _spec(capsys, "--no-dp")
    assert spec["dp"] is None
    refusal = privacy_refusal(DEFAULT_LICENCE, _budget(spec), SMALLEST_ROUND)
    assert refusal is not None and "requires differentially private training" in refusal
    allowing = Licence(("training",), dp_required=False)
    assert privacy_refusal(allowing, _budget(spec), SMALLEST_ROUND) is None


def test_an_epsilon_past_the_licence_cap_is_written_but_refused_by_the_licence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = _spec(capsys, "--dp-epsilon", "9")
    assert spec["dp"]["target_epsilon"] == 9
    refusal = privacy_refusal(DEFAULT_LICENCE, _budget(spec), SMALLEST_ROUND)
    assert refusal is not None and "ε ≤ 8" in refusal


def test_contradicting_privacy_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = _refusal(capsys, "--no-dp", "--dp-epsilon", "2")
    assert "--no-dp" in line and "--dp-epsilon 2" in line


@pytest.mark.parametrize("epsilon", ["0", "-1", "101"])
def test_an_epsilon_out_of_range_is_refused(
    capsys: pytest.CaptureFixture[str], epsilon: str
) -> None:
    line = _refusal(capsys, "--dp-epsilon", epsilon)
    assert "target_epsilon" in line
