"""The scoring fee on completed proposals: fixed when a proposal is made, credited to the pool
before any payout, and the node's payout tree shares the rest, so payouts + fee = price."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import Round
from visdm import scoring
from visdm.index import open_database, sync_index
from visdm.index._api import default_index_url
from visdm.market import workflow

pytestmark = pytest.mark.integration

PRICE = 10**18
FEE_BPS = 500


def test_the_fee_comes_off_the_price_before_payouts_and_the_rest_is_claimed(
    rnd: Round, governance: LocalAccount
) -> None:
    scoring.set_fee(rnd.chain, rnd.deployment, governance, FEE_BPS)
    pid = rnd.propose(wtp_bps=1000, offer=PRICE)
    fees = scoring.fee_contract(rnd.chain, rnd.deployment)
    # a later change does not touch a proposal already made
    scoring.set_fee(rnd.chain, rnd.deployment, governance, 900)
    assert fees.scoring_fee(pid).proposal_bps == FEE_BPS
    fee = PRICE * FEE_BPS // 10_000
    rnd.approve(pid)
    rnd.start(pid)
    worker = rnd.trainer()
    try:
        assert worker.poll() == 1
    finally:
        worker.close()
    pool = scoring.pool(rnd.chain, rnd.deployment)
    assert fees.scoring_fee(pid).amount == fee
    assert pool.balances().uncollected == fee
    assert rnd.market.proposal(pid).unclaimed == PRICE - fee

    result = rnd.result(pid)
    assert result["payouts"]["scoringFee"] == str(fee)
    assert sum(int(v) for v in result["payouts"]["assets"].values()) == PRICE - fee
    paid = 0
    for who in ("provider", "provider2"):
        (receipt,) = workflow.claim(rnd.as_(who), rnd.accounts[who], [pid])
        assert receipt.note == "claimed"
        paid += receipt.amount
    assert paid + fee == PRICE
    assert rnd.market.proposal(pid).unclaimed == 0

    # the index checks the leaves against the price less the fee it saw taken
    sync_index(rnd.settings)
    with open_database(default_index_url(rnd.settings)) as db:
        assert db.scalar("SELECT status FROM results WHERE proposal_id = ?", (pid,)) == "indexed"
        assert db.scalar("SELECT amount FROM scoring_fees WHERE proposal_id = ?", (pid,)) == str(
            fee
        )
    received = scoring.collect_fees(
        rnd.chain, rnd.deployment, rnd.accounts["stranger"].local_account
    )
    assert received.amount_wei == fee
    assert pool.balances() == scoring.PoolBalances(fee, 0, 0, 0)
