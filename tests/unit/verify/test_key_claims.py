"""A node's "no key" reasons for leaving an asset out, weighed against public facts (the
manifest's key recipients and the node's own attestations), and the time a re-execution
judges licences at."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from visdm.compute._training import NO_KEY_OPENS, NO_KEY_WRAPPED
from visdm.errors import InvalidInputError
from visdm.verify._reexecute import FalseLeftOutError, check_key_claims, licence_time

pytestmark = pytest.mark.unit

NODE = "0x" + "Ab" * 20
OTHER = "0x" + "cd" * 20


def asset(*recipients: str) -> Any:
    keys = [SimpleNamespace(recipient=r) for r in recipients]
    return SimpleNamespace(manifest=SimpleNamespace(keys=keys))


def test_a_claim_the_manifest_contradicts_is_refused() -> None:
    public = {7: asset(OTHER, NODE.upper().replace("0X", "0x"))}
    with pytest.raises(FalseLeftOutError, match="asset 7 out saying no key was wrapped"):
        check_key_claims({"7": NO_KEY_WRAPPED}, public, NODE, attested=set())
    # the node's word that a wrapped key does not open cannot be checked from the manifest
    check_key_claims({"7": NO_KEY_OPENS}, public, NODE, attested=set())


def test_any_key_claim_for_an_asset_the_node_attested_is_refused() -> None:
    public = {7: asset(NODE), 8: asset(OTHER)}
    with pytest.raises(FalseLeftOutError, match="attested that asset's samples itself"):
        check_key_claims({"7": NO_KEY_OPENS}, public, NODE, attested={7})
    with pytest.raises(FalseLeftOutError, match="attested"):
        check_key_claims({"8": NO_KEY_WRAPPED}, public, NODE, attested={8})


def test_true_claims_and_other_reasons_pass() -> None:
    public = {7: asset(OTHER), 8: asset(NODE)}
    check_key_claims(
        {"7": NO_KEY_WRAPPED, "8": "it left the round in the tally (rejected or withdrawn)"},
        public,
        NODE,
        attested={8},
    )


def test_licences_are_judged_at_the_result_unless_one_expired_while_the_job_could_run() -> None:
    voting, result = 1_000, 5_000
    at = datetime.fromtimestamp

    def expiring(ts: int) -> dict[int, datetime | None]:
        return {3: None, 4: at(ts, tz=UTC)}

    # expired before the job could start, or after the result: the node's answer is fixed
    assert licence_time(9, voting, result, expiring(voting - 1)) == result
    assert licence_time(9, voting, result, expiring(result)) == result
    assert licence_time(9, voting, result, expiring(result + 10**6)) == result
    with pytest.raises(InvalidInputError, match=r"asset 4's licence expired at .* proposal 9"):
        licence_time(9, voting, result, expiring(voting + 1))
