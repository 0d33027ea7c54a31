"""Value never moves twice: a token that re-enters the market during a transfer is refused."""

from __future__ import annotations

import pytest

from tests.integration.market.conftest import Market
from visdm.chain.contracts import DevToken, MarketParameters, TrainingMarket
from visdm.market import claim_for

pytestmark = pytest.mark.integration


def test_reentrant_token_cannot_claim_during_a_withdrawal(mk: Market) -> None:
    deployer, consumer, node = mk.roles["deployer"], mk.roles["consumer"], mk.roles["node"]
    p1, p2 = mk.roles["provider"], mk.roles["provider2"]
    token_address, _ = mk.chain.deploy(deployer, "ReentrantToken")
    evil = mk.chain.contract(token_address, "ReentrantToken")
    market_address, _ = mk.chain.deploy(
        deployer,
        "TrainingMarket",
        mk.stakeholders.address,
        mk.assets.address,
        token_address,
        MarketParameters().as_tuple(),
    )
    market = TrainingMarket(mk.chain, market_address)
    mk.chain.transact(deployer, evil.functions.mint(consumer.address, 10_000))
    DevToken(mk.chain, token_address).approve(consumer, market_address, 10_000)
    mk.market = market  # play the usual moves on this market
    selection = [(mk.add_asset(p1, 10), 10), (mk.add_asset(p2, 10), 10)]
    pid = mk.approved(selection, offer=1000)
    tree = mk.payout(pid, {p1.address: 700, p2.address: 300})  # credits the node 50
    claim = claim_for(tree, pid, p1.address)

    # arm: the next transfer out of the market calls market.claim(p1's claim) from inside it
    calldata = market._contract.encode_abi("claim", claim.as_tuple())
    mk.chain.transact(deployer, evil.functions.arm(market_address, calldata))
    market.withdraw(node)
    assert evil.functions.callbacks().call() == 1
    assert evil.functions.lastCallbackSucceeded().call() is False  # the guard refused it
    assert DevToken(mk.chain, token_address).balance_of(node.address) == 50
    assert not market.is_claimed(pid, claim.index)
    # the honest claim still works, exactly once
    market.claim(p1, claim)
    assert DevToken(mk.chain, token_address).balance_of(p1.address) == 700
    assert DevToken(mk.chain, token_address).balance_of(market_address) == 300
