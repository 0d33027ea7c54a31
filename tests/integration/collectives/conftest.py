"""Collectives on the session anvil: the market cast of ``tests/integration/market`` plus
helpers that create a collective and bring members into it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.market.conftest import Market
from visdm import collectives
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.collectives import Collective
from visdm.errors import ContractRevertError

_names = itertools.count()


@pytest.fixture
def mk(chain: ChainClient, deployment: Deployment, funded_roles: dict[str, LocalAccount]) -> Market:
    return Market(chain, deployment, dict(funded_roles))


@contextmanager
def reverts(name: str) -> Iterator[None]:
    """The block must revert with the custom error ``name``."""
    with pytest.raises(ContractRevertError) as info:
        yield
    assert info.value.error_name == name, str(info.value)


def new_collective(
    mk: Market, *, fee_bps: int = 0, delay: int = 0, steward: str | None = None
) -> Collective:
    """A fresh collective, created by ``deployer`` (its steward unless told otherwise)."""
    created = collectives.create(
        mk.chain,
        mk.deployment,
        mk.roles["deployer"],
        name=f"collective-{next(_names)}",
        steward=steward,
        fee_bps=fee_bps,
        policy_delay=delay,
    )
    return collectives.resolve(mk.chain, mk.deployment, created.address)


def new_member(
    mk: Market,
    c: Collective,
    *,
    samples: int = 100,
    floor: int = 10,
    deposit: int = 0,
    label: str | None = None,
) -> tuple[LocalAccount, int]:
    """A new provider with one Active asset of ``samples``, joined (through the SDK) with
    ``floor`` wei per sample; returns the account and its asset id."""
    account = mk.new_provider(label)
    asset_id = mk.add_asset(account, samples)
    collectives.join(mk.chain, mk.deployment, account, c.address, floor=floor, deposit_wei=deposit)
    return account, asset_id


def settle(mk: Market, c: Collective) -> collectives.SettleReceipt:
    return collectives.settle(mk.chain, mk.deployment, mk.roles["stranger"], c.address)


def cast(mk: Market, c: Collective, pid: int) -> collectives.CastReceipt:
    return collectives.cast_vote(mk.chain, mk.deployment, mk.roles["stranger"], c.address, pid)
