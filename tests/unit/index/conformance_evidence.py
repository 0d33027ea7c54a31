"""What every index backend must do with the evidence behind a ``noisy`` flag.

:class:`EvidenceConformance` is mixed into :class:`~.conformance.IndexConformance`, so every
backend runs it; it relies on that class's ``new_db`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from visdm.config import Settings
from visdm.index import Database, SearchFilters, search_index
from visdm.index._evidence import FlagEvidence, sample_rounds

from ._world import EVIDENCE, NOW, PROVIDER, Image, World

NewDb = Callable[[], Database]


def _noisy(db: Database, tmp_path: Path) -> dict[int, bool]:
    """Sample index → whether a search excluding noisy samples leaves it out."""
    settings = Settings(home=tmp_path)
    every = search_index(settings, url=db.url.url, limit=100, now=NOW).samples
    kept = search_index(
        settings, SearchFilters(exclude_flags=("noisy",)), url=db.url.url, limit=100, now=NOW
    ).samples
    left = {s.index for s in every} - {s.index for s in kept}
    assert all(("noisy" in s.flags) == (s.index in left) for s in every)
    return {s.index: s.index in left for s in every}


class EvidenceConformance:
    """A noisy flag's evidence round-trips, and counts only with evidence and across rounds."""

    def test_the_evidence_of_a_flag_round_trips_through_the_index(
        self, new_db: Callable[[], Database]
    ) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat", "dog"])
        w.attest(a1, [Image("cat"), Image("dog")])
        pid = w.propose([(a1, (0, 1))])
        w.tally(pid)
        w.start(pid)
        sparse = {**EVIDENCE, "t": None, "value_se": None, "peer_agreement": None, "peers": 0}
        w.result(
            pid,
            [
                w.score(a1, 0, -0.25, PROVIDER, ["noisy"]),
                w.score(a1, 1, 0.5, PROVIDER, [], evidence=sparse),
            ],
            payouts={a1: 1000},
        )
        db = new_db()
        w.indexer(db).sync()
        (flagged,) = sample_rounds(db, a1, 0)
        assert flagged.proposal_id == pid and flagged.value == -0.25
        assert flagged.flags == ("noisy",) and flagged.noisy_counts
        assert flagged.evidence == FlagEvidence(**EVIDENCE)
        (clean,) = sample_rounds(db, a1, 1)
        assert clean.evidence == FlagEvidence(**sparse) and not clean.noisy_counts
        assert sample_rounds(db, a1, 2) == []

    def test_a_flag_counts_only_with_evidence_and_rounds_outvote_it(
        self, new_db: Callable[[], Database], tmp_path: Path
    ) -> None:
        w = World()
        w.setup()
        a1 = w.register(PROVIDER, ["cat"] * 4)
        w.attest(a1, [Image("cat")] * 4)
        bare = w.score(a1, 3, -0.2, PROVIDER, ["noisy"])
        bare["evidence"] = None  # a noisy flag published without its witnesses

        def round_(*rows: dict[str, Any]) -> None:
            pid = w.propose([(a1, (0, 1, 2, 3))])
            w.tally(pid)
            w.start(pid)
            w.result(pid, list(rows), payouts={a1: 1000})

        # round 1 flags samples 0, 1 and 2 with evidence and sample 3 without
        round_(
            w.score(a1, 0, -0.2, PROVIDER, ["noisy"]),
            w.score(a1, 1, -0.2, PROVIDER, ["noisy"]),
            w.score(a1, 2, -0.2, PROVIDER, ["noisy"]),
            bare,
        )
        # round 2: sample 1 earns something, sample 2 is flagged again
        round_(
            w.score(a1, 1, 0.3, PROVIDER),
            w.score(a1, 2, -0.1, PROVIDER, ["noisy"]),
        )
        db = new_db()
        w.indexer(db).sync()
        assert db.scalar("SELECT flags FROM sample_scores WHERE sample_index = 3") == "noisy"
        assert [r.noisy_counts for r in sample_rounds(db, a1, 3)] == [False]
        # 0: one flag, nothing against it; 1: one flag, one positive round (a tie goes to the
        # provider); 2: two flags; 3: a flag without evidence does not count
        assert _noisy(db, tmp_path) == {0: True, 1: False, 2: True, 3: False}

        # a third round values sample 2 positively: still outvoted, 2 flags to 1
        round_(w.score(a1, 2, 0.4, PROVIDER))
        w.indexer(db).sync()
        assert _noisy(db, tmp_path)[2]
