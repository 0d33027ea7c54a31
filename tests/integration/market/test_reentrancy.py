"""Value never moves twice: a token that re-enters the market during a withdrawal is refused."""

from __future__ import annotations

import pytest

from tests.integration.market.conftest import Market
from visdm.chain.contracts import DevToken, MarketParameters, TrainingMarket

pytestmark = pytest.mark.integration


def test_reentrant_token_cannot_withdraw_twice(mk: Market) -> None:
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
        MarketParameters(
            min_batch_size=1,
            min_selection_samples=1,
            min_selection_providers=1,
            treasury=deployer.address,
        ).as_tuple(),
    )
    market = TrainingMarket(mk.chain, market_address)
    mk.chain.transact(deployer, evil.functions.mint(consumer.address, 10_000))
    DevToken(mk.chain, token_address).approve(consumer, market_address, 10_000)
    mk.market = market  # play the usual moves on this market
    ids = [mk.add_asset(p1, 10), mk.add_asset(p2, 10)]
    pid = mk.approved([(a, 10) for a in ids], offer=1000)
    tree = mk.payout(pid, {ids[0]: 700, ids[1]: 300}, ids)  # credits the node 50
    claim = mk.claim(pid, tree, ids[0], ids)
    market.claim(p1, claim)  # credits p1 700

    # arm: the next transfer out of the market calls market.withdraw() again from inside it
    calldata = market._contract.encode_abi("withdraw", [])
    mk.chain.transact(deployer, evil.functions.arm(market_address, calldata))
    market.withdraw(p1)
    assert evil.functions.callbacks().call() == 1
    assert evil.functions.lastCallbackSucceeded().call() is False  # the guard refused it
    token = DevToken(mk.chain, token_address)
    assert token.balance_of(p1.address) == 700
    assert market.credit_of(p1.address) == 0
    # the others' money is untouched and still withdraws exactly once
    market.withdraw(node)
    assert token.balance_of(node.address) == 50
    assert token.balance_of(market_address) == 300
