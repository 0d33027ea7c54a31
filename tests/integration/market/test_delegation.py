"""DelegationRegistry: transitive delegation, cycles and depth refused, checkpoints by time."""

from __future__ import annotations

import pytest

from tests.integration.market.conftest import Market
from tests.integration.market.test_asset_registry import reverts

pytestmark = pytest.mark.integration


def test_delegate_undelegate_and_history(mk: Market) -> None:
    a, b, c = (mk.new_account(f"deleg-{x}") for x in "abc")
    d = mk.delegations

    def stamp(tx) -> int:  # type: ignore[no-untyped-def]
        return int(mk.chain.w3.eth.get_block(tx.block_number)["timestamp"])

    tx = d.delegate(a, b.address)
    (event,) = d.events("DelegateChanged", tx.receipt)
    assert (event["args"]["previousDelegate"], event["args"]["delegatee"]) == (
        "0x" + "00" * 20,
        b.address,
    )
    assert d.delegate_of(a.address) == b.address
    t_b = stamp(tx)
    mk.advance(100)
    t_c = stamp(d.delegate(a, c.address))
    mk.advance(100)
    t_none = stamp(d.undelegate(a))
    assert d.delegate_of(a.address) is None
    # as of each past moment, the delegate then
    assert d.delegate_at(a.address, t_b - 1) is None
    assert d.delegate_at(a.address, t_b) == b.address
    assert d.delegate_at(a.address, t_c - 1) == b.address
    assert d.delegate_at(a.address, t_c) == c.address
    assert d.delegate_at(a.address, t_none - 1) == c.address
    assert d.delegate_at(a.address, t_none) is None


def test_refuses_self_zero_unchanged_and_not_delegating(mk: Market) -> None:
    a, b = mk.new_account("deleg-x"), mk.new_account("deleg-y")
    with reverts("DelegationRegistryInvalidDelegate"):
        mk.delegations.delegate(a, a.address)
    with reverts("DelegationRegistryInvalidDelegate"):
        mk.delegations.delegate(a, "0x" + "00" * 20)
    with reverts("DelegationRegistryNotDelegating"):
        mk.delegations.undelegate(a)
    mk.delegations.delegate(a, b.address)
    with reverts("DelegationRegistryUnchanged"):
        mk.delegations.delegate(a, b.address)


def test_refuses_cycles(mk: Market) -> None:
    a, b, c = (mk.new_account(f"cyc-{x}") for x in "abc")
    mk.delegations.delegate(a, b.address)
    mk.delegations.delegate(b, c.address)
    with reverts("DelegationRegistryCycle"):
        mk.delegations.delegate(c, a.address)
    with reverts("DelegationRegistryCycle"):
        mk.delegations.delegate(b, a.address)
    # breaking the chain makes the same delegation legal
    mk.delegations.undelegate(a)
    mk.delegations.delegate(c, a.address)


def test_refuses_chains_deeper_than_max_depth(mk: Market) -> None:
    depth = mk.delegations.max_depth()
    chain = [mk.new_account(f"deep-{i}") for i in range(depth + 2)]
    # chain[1] -> chain[2] -> ... -> chain[depth + 1]: depth hops from chain[1]
    for i in range(depth, 0, -1):
        mk.delegations.delegate(chain[i], chain[i + 1].address)
    with reverts("DelegationRegistryTooDeep") as _:
        mk.delegations.delegate(chain[0], chain[1].address)  # would make depth + 1 hops


def test_delegate_gas(mk: Market) -> None:
    a, b, c = (mk.new_account(f"gas-{x}") for x in "abc")
    first = mk.delegations.delegate(a, b.address).gas_used
    mk.advance(10)
    change = mk.delegations.delegate(a, c.address).gas_used
    print(f"\ndelegate gas: first {first}, change {change}")
    assert first <= 80_000
