"""What a proposal's state says next, on the chain's clock, and where a model may be written."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from visdm.chain.contracts import ProposalRecord, ProposalStatus
from visdm.errors import InvalidInputError
from visdm.market._next import (
    check_model_path,
    human_time,
    next_step,
    require_reclaimable,
    require_tally_open,
    require_voting_open,
    write_model,
)
from visdm.types import Address

pytestmark = pytest.mark.unit

T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC
CONSUMER = Address("0x" + "12" * 20)
RECORD = ProposalRecord(
    proposal_id=3,
    consumer=CONSUMER,
    voting_deadline=T0 + 120,
    wtp_bps=1000,
    status=ProposalStatus.VOTING,
    min_share_bps=0,
    node=Address("0x" + "34" * 20),
    deadline=0,
    asset_count=2,
    total_weight=40,
    remaining_weight=0,
    claim_deadline=0,
    accuracy_bps=0,
    tallier=None,
    offer=10**18,
    price=10**18,
    clearing_price=0,
    training_cost=0,
    unclaimed=0,
    assets_hash=bytes(32),
    selection_root=bytes(32),
    model_spec_hash=bytes(32),
    validation_set_hash=bytes(32),
    payout_root=bytes(32),
    model_hash=bytes(32),
    seed_hash=bytes(32),
)


def test_times_read_as_dates_with_the_time_left() -> None:
    assert human_time(T0 + 130, T0) == "2027-01-15 08:02:10 UTC (in 2 min 10 s)"
    assert human_time(T0, T0 + 7 * 86_400 + 5) == "2027-01-15 08:00:00 UTC (7 d 5 s ago)"
    assert human_time(2**70, 0).startswith("unix time ")


def test_a_tally_before_the_deadline_says_the_time_left_and_the_way_to_end_it() -> None:
    with pytest.raises(InvalidInputError) as info:
        require_tally_open(RECORD, T0)
    assert str(info.value) == (
        "voting on proposal 3 is open until 2027-01-15 08:02:00 UTC (in 2 min): tally after "
        "that (on a local dev chain, `visdm chain advance 121` ends it now)"
    )
    require_tally_open(RECORD, T0 + 121)  # open
    done = replace(RECORD, status=ProposalStatus.FAILED)
    with pytest.raises(InvalidInputError, match="the tally is done: proposal 3 failed: too few"):
        require_tally_open(done, T0 + 121)


def test_a_late_vote_says_the_deadline_and_what_is_left() -> None:
    require_voting_open(RECORD, T0 + 120)
    with pytest.raises(InvalidInputError) as info:
        require_voting_open(RECORD, T0 + 121)
    assert str(info.value) == (
        "voting on proposal 3 closed at 2027-01-15 08:02:00 UTC (1 s ago): votes can no longer "
        "change it; anyone may `visdm tally 3`"
    )
    approved = replace(RECORD, status=ProposalStatus.APPROVED, deadline=T0 + 7 * 86_400)
    with pytest.raises(InvalidInputError, match=r"votes are closed: proposal 3 is approved: the "):
        require_voting_open(approved, T0)


def test_reclaim_says_when_it_opens_and_refuses_what_has_nothing_to_reclaim() -> None:
    approved = replace(RECORD, status=ProposalStatus.APPROVED, deadline=T0 + 3600)
    with pytest.raises(InvalidInputError) as info:
        require_reclaimable(approved, T0, CONSUMER)
    assert str(info.value) == (
        "proposal 3 can be reclaimed only after 2027-01-15 09:00:00 UTC (in 1 h): until then "
        "its consumer can still start training (`visdm train 3`)"
    )
    require_reclaimable(approved, T0 + 3601, CONSUMER.lower())
    with pytest.raises(InvalidInputError, match="only its consumer can reclaim it"):
        require_reclaimable(approved, T0 + 3601, "0x" + "99" * 20)
    with pytest.raises(InvalidInputError, match="nothing to reclaim: proposal 3 is in voting"):
        require_reclaimable(RECORD, T0, CONSUMER)


@pytest.mark.parametrize(
    ("changes", "now", "says"),
    [
        ({}, T0, "voting is open until 2027-01-15 08:02:00 UTC (in 2 min): providers vote"),
        ({}, T0 + 500, "voting closed at 2027-01-15 08:02:00 UTC (6 min 20 s ago): anyone may"),
        (
            {"status": ProposalStatus.COUNTERED, "deadline": T0 + 60, "clearing_price": 2 * 10**18},
            T0,
            "the counter price is 2 tokens: the consumer accepts with `visdm accept-counter 3`",
        ),
        (
            {"status": ProposalStatus.COUNTERED, "deadline": T0 - 1},
            T0,
            "the counter offer lapsed at 2027-01-15 07:59:59 UTC (1 s ago): the consumer can "
            "`visdm reclaim 3`",
        ),
        (
            {"status": ProposalStatus.TRAINING, "deadline": T0 + 60},
            T0,
            "the node posts its result by 2027-01-15 08:01:00 UTC (in 1 min); without one",
        ),
        (
            {"status": ProposalStatus.TRAINING, "deadline": T0 - 60},
            T0,
            "the training deadline passed without a result at",
        ),
        (
            {"status": ProposalStatus.COMPLETED, "claim_deadline": T0 + 10},
            T0,
            "providers claim with `visdm claim 3` until",
        ),
        (
            {
                "status": ProposalStatus.COMPLETED,
                "claim_deadline": T0 - 10,
                "unclaimed": 5 * 10**17,
            },
            T0,
            "anyone may `visdm sweep 3` the 0.5 tokens left unclaimed",
        ),
        ({"status": ProposalStatus.CANCELLED}, T0, "its escrow went back to the consumer"),
    ],
)
def test_every_state_says_what_comes_next(changes: dict[str, object], now: int, says: str) -> None:
    assert says in next_step(replace(RECORD, **changes), now)  # type: ignore[arg-type]


def test_a_refund_waiting_in_the_credit_is_named() -> None:
    failed = replace(RECORD, status=ProposalStatus.REJECTED)
    text = next_step(failed, T0, consumer_credit=10**18)
    assert text == (
        "too little of the selection stayed in the round: the offer was credited back to the "
        "consumer; 1 tokens wait in the consumer's credit on the market (this proposal's refund "
        "and any other): the consumer runs `visdm withdraw`"
    )


def test_the_model_path_is_checked_before_anything_is_fetched(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_model_path(tmp_path, force=True)
    assert str(info.value) == (
        f"--out {tmp_path} is a directory: name a file in it, e.g. {tmp_path / 'model.safetensors'}"
    )
    existing = tmp_path / "model.safetensors"
    existing.write_bytes(b"old")
    with pytest.raises(InvalidInputError, match="already exists: pass --force to overwrite it"):
        check_model_path(existing, force=False)
    assert check_model_path(existing, force=True) == existing
    with pytest.raises(InvalidInputError, match=r"cannot create the folder .* for --out"):
        check_model_path(existing / "inside" / "m.safetensors", force=False)
    nested = check_model_path(tmp_path / "a" / "b" / "m.safetensors", force=False)
    assert nested.parent.is_dir()


def test_the_model_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"old")
    write_model(out, b"new model")
    assert out.read_bytes() == b"new model"
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]  # no temporary file left
    gone = tmp_path / "gone" / "m.safetensors"
    with pytest.raises(InvalidInputError, match=re.escape(f"cannot write the model to {gone}: ")):
        write_model(gone, b"x")
