"""The tally's next batch from a tallier's progress on chain: batches of 256 from its cursor,
the last one completing the tally, a reset when its progress claimed another price, and a
refusal for a cursor past the selection."""

from __future__ import annotations

import pytest

from visdm.chain.contracts import ProposalStatus
from visdm.errors import InvalidInputError
from visdm.market.tally import TallyOutcome, TallyProgress, next_batch

pytestmark = pytest.mark.unit

SELECTION = [(asset, 1 + asset % 7) for asset in range(1, 601)]  # 600 assets: 256, 256, 88
OUTCOME = TallyOutcome(ProposalStatus.APPROVED, 5, 10, 10, 10)


def test_batches_follow_the_cursor_and_the_last_completes() -> None:
    first = next_batch(9, OUTCOME, SELECTION, TallyProgress())
    assert (first.start, len(first.asset_ids), first.last, first.reset) == (0, 256, False, False)
    assert first.asset_ids == tuple(range(1, 257))
    assert first.sample_counts == tuple(1 + a % 7 for a in range(1, 257))
    assert (first.proposal_id, first.clearing_price) == (9, 5)
    second = next_batch(9, OUTCOME, SELECTION, TallyProgress(256, 5))
    assert (second.start, second.asset_ids[0], second.last) == (256, 257, False)
    third = next_batch(9, OUTCOME, SELECTION, TallyProgress(512, 5))
    assert (third.start, len(third.asset_ids), third.last) == (512, 88, True)
    small = next_batch(9, OUTCOME, SELECTION[:3], TallyProgress())
    assert small.last and small.asset_ids == (1, 2, 3)


def test_progress_at_another_price_starts_over_with_a_reset() -> None:
    batch = next_batch(9, OUTCOME, SELECTION, TallyProgress(256, 4))
    assert (batch.reset, batch.start, batch.clearing_price) == (True, 0, 5)


def test_a_cursor_past_the_selection_or_a_bad_batch_size_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="at asset 600 of 600: reset it"):
        next_batch(9, OUTCOME, SELECTION, TallyProgress(600, 5))
    with pytest.raises(InvalidInputError, match="multiple of 256"):
        next_batch(9, OUTCOME, SELECTION, TallyProgress(), batch_size=100)
