"""The server-drawn pictures say in words what they show, and never carry markup from data."""

from __future__ import annotations

import pytest

from visdm.web._facets import _linear, _log
from visdm.web._svg import Histogram, bars_svg, delegation_svg, histogram_svg

pytestmark = pytest.mark.unit

REJECT = str(2**256 - 1)


def test_a_histogram_counts_every_value_once() -> None:
    hist = _linear("brightness", [0.0, 1.0, 2.0, 3.0, 255.0])
    assert hist.total == 5 and len(hist.edges) == len(hist.counts) + 1
    assert hist.edges[0] == 0.0 and hist.edges[-1] == 255.0
    assert _linear("same", [7.0, 7.0]).counts == [2]
    assert _linear("none", []).counts == []
    # sharpness spans orders of magnitude: bins are even in log10, zeros are left out
    log = _log("sharpness", [0.0, 10.0, 100.0, 1000.0])
    assert log.total == 3 and log.edges[0] == pytest.approx(10.0)


def test_a_histogram_is_named_for_screen_readers() -> None:
    svg = str(histogram_svg(Histogram("contrast", [0.0, 1.0, 2.0], [3, 4])))
    assert 'aria-label="histogram of contrast: 7 samples"' in svg
    assert svg.count("<rect") == 2
    assert "no values of past value" in str(histogram_svg(Histogram("past value", [], [])))


def test_bars_escape_names_from_data() -> None:
    svg = str(bars_svg([("<script>x</script>", 2.0), ("bob", 1.0)], title="payouts"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'role="img"' in svg and svg.count("<rect") == 2


def test_the_delegation_graph_follows_chains_and_shows_votes() -> None:
    alice, bob, carol, dave = (f"0x{c * 40}" for c in "abcd")
    svg = str(
        delegation_svg(
            {alice: 30, bob: 20},
            [(alice, carol), (carol, dave)],
            {dave: "0", bob: REJECT},
        )
    )
    assert "2 owners of selected samples, 2 delegations, 2 votes" in svg
    assert svg.count("<line") == 2 and svg.count("<circle") == 4
    assert "30 samples" in svg and "accepts" in svg and "rejects" in svg
    assert "no selection indexed yet" in str(delegation_svg({}, [], {}))
