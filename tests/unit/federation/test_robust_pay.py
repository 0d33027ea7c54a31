"""Copy-robust pay of federated values across regions: near-duplicates linked by the public
pHash metadata are paid as their earliest registered member, whichever region holds them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from visdm.federation.market_round import robust_provider_values
from visdm.proposals._selection import SelectedSample

ADA, BEN = "0x" + "a" * 40, "0x" + "b" * 40


def _sid(n: int) -> str:
    return "0x" + f"{n:064x}"


def _proposal(links: list[tuple[int, int]]) -> SimpleNamespace:
    """Ada's asset 1 (samples 1-3, region eu) and Ben's asset 2 (samples 4-6, region us);
    ``links`` are duplicate links published in Ben's metadata."""
    samples = [
        SelectedSample(
            1 if n <= 3 else 2,
            (n - 1) % 3,
            bytes.fromhex(_sid(n)[2:]),
            "cid",
            "x",
            ADA if n <= 3 else BEN,
        )
        for n in range(1, 7)
    ]
    doc = {
        "samples": [],
        "duplicateLinks": [{"sampleId": _sid(a), "otherId": _sid(b)} for a, b in links],
    }
    return SimpleNamespace(
        samples=samples,
        public={1: SimpleNamespace(metadata={"samples": []}), 2: SimpleNamespace(metadata=doc)},
    )


def test_without_copies_every_sample_keeps_its_value() -> None:
    values = {_sid(n): 0.1 * n for n in range(1, 7)}
    rows, providers, counts = robust_provider_values(_proposal([]), values)
    assert [r["value"] for r in rows] == pytest.approx([0.1 * n for n in range(1, 7)])
    assert providers == pytest.approx({ADA: 0.6, BEN: 1.5})
    assert counts == {ADA: 3, BEN: 3}
    assert all(r["flags"] == [] and r["cluster_size"] == 1 for r in rows)


def test_a_copy_in_another_region_takes_nothing_from_the_original() -> None:
    """Ben (region us) re-uploads Ada's sample 1 (region eu) as his sample 4: the TKNN value of
    his copy is high, but the cluster is paid as Ada's original; Ben's copy earns 0."""
    values = {_sid(1): 0.2, _sid(2): 0.1, _sid(3): 0.1, _sid(4): 0.9, _sid(5): 0.1, _sid(6): 0.1}
    rows, providers, _ = robust_provider_values(_proposal([(4, 1)]), values)
    by_id = {r["sample_id"]: r for r in rows}
    assert by_id[_sid(4)]["value"] == 0.0 and by_id[_sid(4)]["flags"] == ["copied"]
    assert by_id[_sid(4)]["raw"] == 0.9  # the TKNN value is published beside what is paid
    assert by_id[_sid(1)]["value"] == pytest.approx(0.2)  # the original's own value
    assert by_id[_sid(1)]["cluster_founder"] == by_id[_sid(4)]["cluster_founder"] == _sid(1)
    assert by_id[_sid(1)]["cluster_size"] == 2
    assert providers == pytest.approx({ADA: 0.4, BEN: 0.2})


def test_own_copies_share_the_original_s_value() -> None:
    """Ben's samples 5 and 6 are copies of his sample 4: the three are paid as one."""
    values = {_sid(n): 0.3 for n in range(1, 7)}
    rows, providers, _ = robust_provider_values(_proposal([(5, 4), (6, 5)]), values)
    ben = [r for r in rows if r["provider"] == BEN]
    assert [r["value"] for r in ben] == pytest.approx([0.1, 0.1, 0.1])
    assert providers[BEN] == pytest.approx(0.3) and providers[ADA] == pytest.approx(0.9)


def test_samples_the_round_did_not_value_are_left_out() -> None:
    """A killed region's samples have no values: they are neither paid nor counted."""
    values = {_sid(n): 0.1 for n in range(1, 4)}
    rows, providers, counts = robust_provider_values(_proposal([(4, 1)]), values)
    assert {r["sample_id"] for r in rows} == {_sid(n) for n in range(1, 4)}
    assert set(providers) == {ADA} and counts == {ADA: 3}
