"""The dev token's faucet, region limits, and where the dev token may be deployed."""

from __future__ import annotations

import pytest

from tests.integration.market.conftest import Market
from tests.integration.market.test_asset_registry import reverts
from visdm.chain.client import ChainClient
from visdm.chain.deployment import deploy_marketplace
from visdm.errors import ConfigError

pytestmark = pytest.mark.integration


def test_faucet_mints_up_to_its_limit(mk: Market) -> None:
    stranger = mk.roles["stranger"]
    mk.token.faucet(stranger, 5 * 10**18)
    assert mk.token.balance_of(stranger.address) == 5 * 10**18
    with reverts("DevTokenFaucetLimit"):
        mk.token.faucet(stranger, 10**6 * 10**18 + 1)


def test_at_most_256_regions(mk: Market) -> None:
    gov = mk.roles["governance"]
    for i in range(255):  # "local" is the first
        mk.stakeholders.add_region(gov, f"r{i}")
    assert len(mk.stakeholders.regions()) == 256
    with reverts("StakeholderRegistryTooManyRegions"):
        mk.stakeholders.add_region(gov, "one-too-many")


def test_dev_token_is_refused_outside_dev_chains(
    chain: ChainClient, monkeypatch: pytest.MonkeyPatch, funded_roles
) -> None:
    monkeypatch.setattr(ChainClient, "is_dev_chain", property(lambda self: False))
    with pytest.raises(ConfigError, match="--payment-token"):
        deploy_marketplace(chain, funded_roles["deployer"])


def test_deploy_against_an_existing_token(chain: ChainClient, funded_roles, mk: Market) -> None:
    deployment = deploy_marketplace(
        chain, funded_roles["deployer"], payment_token=mk.token.address, regions=("eu",)
    )
    market = deployment.training_market(chain)
    assert market.payment_token() == mk.token.address
    assert deployment.stakeholder_registry(chain).regions() == ["eu"]
    assert deployment.address_of("DelegationRegistry") == market.address
