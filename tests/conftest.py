"""Shared fixtures: one anvil per test session, snapshot/revert isolation, role accounts.

Chain tests ask for ``chain`` (a :class:`ChainClient` on the session's anvil, reverted to a
snapshot after each test) and for role accounts (``provider``, ``consumer``, ``node``,
``governance``, ``stranger``), each a funded ``LocalAccount`` derived from a fixed seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from visdm.chain.anvil import AnvilNode, start_anvil
from visdm.chain.client import ChainClient
from visdm.chain.contracts import MarketParameters
from visdm.chain.deployment import Deployment, deploy_marketplace
from visdm.types import Role


@pytest.fixture(scope="session")
def anvil_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """One anvil for the whole session, on a free loopback port, stopped by PID at the end."""
    workdir = tmp_path_factory.mktemp("anvil")
    node = start_anvil(state_file=None, log_file=workdir / "anvil.log")
    yield node
    node.stop()


@pytest.fixture(scope="session")
def session_chain(anvil_node: AnvilNode) -> ChainClient:
    return ChainClient(anvil_node.rpc_url, timeout_s=10, tx_timeout_s=30)


def role_account(name: str) -> LocalAccount:
    """A deterministic test account per role name."""
    account: LocalAccount = Account.from_key(keccak(text=f"visdm-test-account/{name}"))
    return account


ROLES = ("deployer", "provider", "provider2", "consumer", "node", "governance", "stranger")


def fund_roles(session_chain: ChainClient) -> dict[str, LocalAccount]:
    """Every role account, topped up from the dev faucet of ``session_chain``."""
    accounts = {name: role_account(name) for name in ROLES}
    for account in accounts.values():
        session_chain.fund_from_dev_faucet(account.address)
    return accounts


@pytest.fixture(scope="session")
def funded_roles(session_chain: ChainClient) -> dict[str, LocalAccount]:
    return fund_roles(session_chain)


NODE_KEY = bytes(range(100, 132))
RELAXED_PARAMETERS = MarketParameters(
    min_batch_size=1, min_selection_samples=1, min_selection_providers=1
)
CONSUMER_TOKENS = 10**9 * 10**18


@pytest.fixture(scope="session")
def deployment(session_chain: ChainClient, funded_roles: dict[str, LocalAccount]) -> Deployment:
    """The marketplace, deployed once per session (before any snapshot), with its cast:
    ``governance`` holds the governance role, ``provider``/``provider2`` are providers,
    ``consumer`` is a consumer holding DevTokens approved to the market, ``node`` is an admitted
    compute node (its own signer) in region ``local``; ``stranger`` is nobody."""
    return deploy_cast(session_chain, funded_roles)


def deploy_cast(session_chain: ChainClient, funded_roles: dict[str, LocalAccount]) -> Deployment:
    """Deploy the marketplace on ``session_chain`` and give the roles their parts (see
    :func:`deployment`)."""
    r = funded_roles
    # the market minimums are relaxed so that small test markets can trade; the tests of the
    # minimums (and of the attacks they stop) raise them inside their own snapshot
    dep = deploy_marketplace(session_chain, r["deployer"], parameters=RELAXED_PARAMETERS)
    registry = dep.stakeholder_registry(session_chain)
    registry.grant_governance(r["deployer"], r["governance"].address)
    for name in ("provider", "provider2"):
        registry.register(r[name], Role.PROVIDER, keccak(text=name))
    registry.register(r["consumer"], Role.CONSUMER, keccak(text="consumer"))
    registry.admit_node(
        r["governance"],
        r["node"].address,
        signer=r["node"].address,
        region="local",
        encryption_key=NODE_KEY,
        endpoint="http://127.0.0.1:9/",
    )
    token = dep.payment_token(session_chain)
    token.faucet(r["consumer"], 10**6 * 10**18)
    token.approve(r["consumer"], dep.address_of("TrainingMarket"), 2**256 - 1)
    return dep


@pytest.fixture
def chain(session_chain: ChainClient, deployment: Deployment) -> Iterator[ChainClient]:
    """The session chain, reverted to its state before the test when the test ends."""
    w3 = session_chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield session_chain
    reverted = w3.provider.make_request("evm_revert", [snapshot])["result"]  # type: ignore[arg-type]
    assert reverted, "evm_revert failed: later tests would see this test's state"
    session_chain.reset_nonces()  # a revert rewinds nonces too


@pytest.fixture
def provider(funded_roles: dict[str, LocalAccount]) -> LocalAccount:
    return funded_roles["provider"]


@pytest.fixture
def consumer(funded_roles: dict[str, LocalAccount]) -> LocalAccount:
    return funded_roles["consumer"]


@pytest.fixture
def node(funded_roles: dict[str, LocalAccount]) -> LocalAccount:
    return funded_roles["node"]


@pytest.fixture
def governance(funded_roles: dict[str, LocalAccount]) -> LocalAccount:
    return funded_roles["governance"]


@pytest.fixture
def stranger(funded_roles: dict[str, LocalAccount]) -> LocalAccount:
    return funded_roles["stranger"]


@pytest.fixture
def visdm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory that the CLI and SDK use for this test only."""
    home = tmp_path / "visdm-home"
    monkeypatch.setenv("VISDM_HOME", str(home))
    monkeypatch.delenv("VISDM_RPC_URL", raising=False)
    monkeypatch.delenv("VISDM_ACCOUNT", raising=False)
    return home
