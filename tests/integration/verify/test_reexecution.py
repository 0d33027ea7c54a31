"""Nodes check each other's results by themselves, with real sandboxed re-execution on anvil.

A training node (:class:`~visdm.compute.TrainingWorker`) runs a real round in the bubblewrap
sandbox and seals the job's secrets to the bonded nodes the assets allow. A ``--verify`` node
(:class:`~visdm.verify.VerifyWorker`, share 1) follows ``ResultSubmitted``, opens its secrets,
re-runs the job in its own sandbox and confirms or challenges; the committee member drawn by
the court (a second verify worker, share 0) re-executes on its own and votes; whoever polls
next settles. Nobody in these tests calls the court by hand: an honest result is released
after its window and claimed; a node that lies (:mod:`visdm.demo._cheat`) is challenged,
slashed, and the consumer refunded. Each round trains once per node that checks it.
"""

from __future__ import annotations

import pytest

from tests.integration.verify.conftest import BOND, WINDOW, Checked
from visdm.chain.contracts import ProposalStatus
from visdm.demo._cheat import (
    DENY_KEY,
    OVERSTATE_ACCURACY,
    PAY_ONE_OWNER,
    CheatingTrainingWorker,
)
from visdm.market import workflow
from visdm.verify import Verdict

pytestmark = pytest.mark.integration


def test_an_honest_result_is_confirmed_then_released_after_its_window_and_claimed(
    vr: Checked,
) -> None:
    rnd, court = vr.rnd, vr.court
    pid = vr.trained(rnd.trainer())
    result = rnd.result(pid)
    # the node sealed the secrets to both bonded nodes and listed where each finds its copy
    assert set(result["verifierSecrets"]) == {vr.checker.address, vr.member.address}
    assert result["verifiersLeftOut"] == {}

    checker = vr.verify_worker(vr.checker, share=1.0)
    try:
        assert checker.poll() == 1  # re-executed, reproduced every field, confirmed
        check = checker.journal.get(pid)
        assert check is not None and check.verdict is Verdict.CONFIRM, check
        confirmed = court.logs("ResultConfirmed", where={"proposalId": pid})
        assert [e["args"]["verifier"] for e in confirmed] == [vr.checker.address]
        # claims wait for the window; nothing more to do until it ends
        assert checker.poll() == 0
        assert rnd.market.proposal(pid).deadline != 0
        rnd.chain.advance_time(WINDOW)
        assert checker.poll() == 1  # anyone's right, taken by the verifier: released
        assert checker.journal.get(pid).state == "done"  # type: ignore[union-attr]
    finally:
        checker.close()
    record = rnd.market.proposal(pid)
    assert (record.status, record.deadline) == (ProposalStatus.COMPLETED, 0)
    assert court.stake_of(rnd.accounts["node"].address) == (2 * BOND, 0)
    paid = 0
    for who in ("provider", "provider2"):
        (receipt,) = workflow.claim(rnd.as_(who), rnd.accounts[who], [pid])
        paid += receipt.amount
    assert paid > 0 and rnd.market.proposal(pid).unclaimed == 0


@pytest.mark.attack
@pytest.mark.parametrize(
    ("lie", "differs"),
    [
        (PAY_ONE_OWNER, ("payout_root",)),
        (OVERSTATE_ACCURACY, ("accuracy_bps",)),
        # the verifiers hold no key for the asset either, but its manifest names the node
        (DENY_KEY, ("leftOut",)),
    ],
)
def test_a_lying_node_is_challenged_by_a_verify_node_slashed_and_the_consumer_refunded(
    vr: Checked, lie: str, differs: tuple[str, ...]
) -> None:
    rnd, court = vr.rnd, vr.court
    node = rnd.accounts["node"]
    consumer = rnd.accounts["consumer"].address
    liar = CheatingTrainingWorker(
        rnd.chain, rnd.deployment, rnd.store, node, rnd.training_config(), lie
    )
    pid = vr.trained(liar)
    record = rnd.market.proposal(pid)
    before = rnd.market.credit_of(consumer)

    checker = vr.verify_worker(vr.checker, share=1.0)
    member = vr.verify_worker(vr.member, share=0.0)  # checks only when the court draws it
    try:
        assert member.poll() == 0 and not member.journal.get(pid).drawn  # type: ignore[union-attr]
        assert checker.poll() == 1
        check = checker.journal.get(pid)
        assert check is not None and check.verdict is Verdict.CHALLENGE, check
        assert check.differences == differs
        challenge = court.challenge_of(pid)
        assert challenge.challenger == vr.checker.address
        assert challenge.committee == (vr.member.address,)
        # drawn to the committee, the member re-executes on its own, votes and resolves
        assert member.poll() == 2
        assert member.journal.get(pid).verdict is Verdict.CHALLENGE  # type: ignore[union-attr]
        assert checker.poll() == 0  # settled: nothing left
    finally:
        checker.close()
        member.close()
    assert court.challenge_of(pid).overturned == 1
    assert rnd.market.proposal(pid).status is ProposalStatus.CANCELLED
    assert rnd.market.credit_of(consumer) == before + record.price + record.training_cost
    assert court.stake_of(node.address) == (BOND, 0)
    assert court.stake_of(vr.checker.address)[1] == 0
    assert court.stake_of(vr.checker.address)[0] > 2 * BOND
