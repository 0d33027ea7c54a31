"""A market whose results wait out a challenge window before a ResultCourt, with bonded
verifier nodes."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.conftest import role_account
from tests.integration.market.conftest import Market
from visdm.chain.client import ChainClient
from visdm.chain.contracts import CourtParameters, ResultCourt
from visdm.chain.deployment import Deployment

WINDOW = 600
BOND = 100 * 10**18
COURT = CourtParameters(bond=BOND, committee_size=3, ruling_period=900)
VERIFIERS = ("verifier-a", "verifier-b", "verifier-c", "verifier-d")


@dataclass
class Court:
    """The market with its court wired in, the bonded nodes and the moves tests make."""

    mk: Market
    court: ResultCourt
    verifiers: list[LocalAccount]

    @property
    def node(self) -> LocalAccount:
        return self.mk.roles["node"]

    def completed(self, *, offer: int = 1000, cost: int = 50) -> int:
        """A proposal whose node submitted a WTP-met result, now in its challenge window."""
        mk = self.mk
        owner = mk.roles["provider"]
        asset = mk.add_asset(owner, 10)
        pid = mk.approved([(asset, 10)], offer=offer)
        mk.start(pid, cost=cost)
        tree_root = keccak(text=f"payout-{pid}")
        mk.submit(pid, payout_root=tree_root)
        return pid

    def account(self, address: str) -> LocalAccount:
        for account in (self.node, *self.verifiers):
            if account.address == address:
                return account
        raise KeyError(address)


def _bonded_node(mk: Market, court: ResultCourt, name: str, index: int) -> LocalAccount:
    account = role_account(name)
    mk.chain.fund_from_dev_faucet(account.address)
    mk.stakeholders.admit_node(
        mk.roles["governance"],
        account.address,
        signer=account.address,
        region="local",
        encryption_key=bytes([index]) * 32,
        endpoint=f"http://127.0.0.1:{9100 + index}/",
    )
    _stake(mk, court, account, 2 * BOND)
    return account


def _stake(mk: Market, court: ResultCourt, account: LocalAccount, amount: int) -> None:
    mk.token.faucet(account, amount)
    mk.token.approve(account, court.address, amount)
    court.deposit(account, amount)


@pytest.fixture
def ct(chain: ChainClient, deployment: Deployment, funded_roles: dict[str, LocalAccount]) -> Court:
    mk = Market(chain, deployment, dict(funded_roles))
    court = deployment.result_court(chain)
    court.set_parameters(mk.roles["deployer"], COURT)
    params = replace(mk.market.parameters(), challenge_window=WINDOW, court=court.address)
    mk.market.set_parameters(mk.roles["governance"], params)
    _stake(mk, court, mk.roles["node"], 2 * BOND)
    verifiers = [_bonded_node(mk, court, name, i + 1) for i, name in enumerate(VERIFIERS)]
    return Court(mk, court, verifiers)
