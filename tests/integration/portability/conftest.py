"""The session's market on Hardhat's node instead of anvil.

Every test under this folder gets the same fixtures as anywhere else (``chain`` with
snapshot/revert, ``deployment``, the role accounts), but the chain behind them is a Hardhat node
started for this folder. Test modules here re-collect chosen tests of other folders, so the
same tests run on both EVMs without being copied.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount

from tests.conftest import deploy_cast, fund_roles
from tests.integration.compute.conftest import images_per_provider, rnd
from tests.integration.market.conftest import mk
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.chain.hardhat import HardhatNode, start_hardhat

__all__ = ["images_per_provider", "mk", "rnd"]


@pytest.fixture(scope="session")
def hardhat_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HardhatNode]:
    """One Hardhat node for this folder, on a free loopback port, stopped by PID at the end."""
    node = start_hardhat(log_file=tmp_path_factory.mktemp("hardhat") / "hardhat.log")
    yield node
    node.stop()


@pytest.fixture(scope="session")
def session_chain(hardhat_node: HardhatNode) -> ChainClient:
    return ChainClient(hardhat_node.rpc_url, timeout_s=10, tx_timeout_s=30)


@pytest.fixture(scope="session")
def funded_roles(session_chain: ChainClient) -> dict[str, LocalAccount]:
    return fund_roles(session_chain)


@pytest.fixture(scope="session")
def deployment(session_chain: ChainClient, funded_roles: dict[str, LocalAccount]) -> Deployment:
    return deploy_cast(session_chain, funded_roles)
