"""A result a court holds in its challenge window: what the status says, and which releases
are refused before anything is sent."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.market.test_next import RECORD, T0
from visdm.chain.contracts import ProposalStatus
from visdm.errors import InvalidInputError
from visdm.market._next import next_step
from visdm.market.release import ResultWindow, require_releasable

pytestmark = pytest.mark.unit

ENDS = T0 + 600
HELD = replace(RECORD, status=ProposalStatus.COMPLETED, deadline=ENDS, claim_deadline=T0 + 9000)


def window(*, ends: int = ENDS, challenged: bool = False) -> ResultWindow:
    return ResultWindow(3, ProposalStatus.COMPLETED, ends, challenged)


def test_the_status_says_when_claims_open_and_who_opens_them() -> None:
    text = next_step(HELD, T0)
    assert "can be challenged until 2027-01-15 08:10:00 UTC (in 10 min)" in text
    assert "`visdm release 3`, which opens claims and the node's fee" in text
    assert "window closed at" in next_step(HELD, ENDS)
    assert "challenged: the court's committee" in next_step(HELD, T0, challenged=True)
    # a missed threshold refunded the price at once: only the node's fee waits
    missed = replace(HELD, status=ProposalStatus.WTP_MISSED)
    assert "which opens the node's fee" in next_step(missed, T0)
    # released: the claim period as before
    assert "providers claim with `visdm claim 3`" in next_step(replace(HELD, deadline=0), T0)


def test_a_window_is_releasable_only_once_over_and_unchallenged() -> None:
    assert window().open_at(T0) and not window().releasable_at(T0)
    assert window().releasable_at(ENDS) and not window().open_at(ENDS)
    assert not window(challenged=True).releasable_at(ENDS + 10**6)
    assert window(ends=0).released and not window(ends=0).releasable_at(ENDS)
    assert window(ends=0).note(T0) == "released"


def test_refusals_name_what_stands_in_the_way() -> None:
    require_releasable(HELD, window(), ENDS)  # over and unchallenged: goes through
    with pytest.raises(InvalidInputError, match=r"cannot be released yet: .*until 2027-01-15"):
        require_releasable(HELD, window(), T0)
    with pytest.raises(InvalidInputError, match="cannot be released yet: its result is challenged"):
        require_releasable(HELD, window(challenged=True), ENDS)
    with pytest.raises(InvalidInputError, match="already released"):
        require_releasable(replace(HELD, deadline=0), window(ends=0), ENDS)
    with pytest.raises(InvalidInputError, match="this market has no court"):
        require_releasable(HELD, None, ENDS)
    training = replace(HELD, status=ProposalStatus.TRAINING)
    with pytest.raises(InvalidInputError, match="there is no result to release: proposal 3 is"):
        require_releasable(training, None, T0)
