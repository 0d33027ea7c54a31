"""A market whose results wait out a challenge window before a ResultCourt, with bonded
verifier nodes: ``ct`` plays the court's moves by hand; ``vr`` is a real round whose nodes
train and verify on their own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.conftest import role_account
from tests.integration.compute.roundkit import MLP_SPEC, PASSWORD, VAL_X, VAL_Y, Round
from tests.integration.market.conftest import Market
from tests.integration.verify.zkkit import Kit, build_kit
from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.chain.client import ChainClient
from visdm.chain.contracts import CourtParameters, ResultCourt
from visdm.chain.deployment import Deployment
from visdm.compute import TrainingConfig, TrainingWorker, _training
from visdm.verify import VerifyConfig, VerifyWorker

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


# --- a real round (real assets, a real training node) with a court and two verify nodes ---
# one committee member keeps a challenge to three trainings (node, challenger, member)
ONE_MEMBER_COURT = CourtParameters(bond=BOND, committee_size=1, ruling_period=900)
SPEC = {**MLP_SPEC, "epochs": 1, "optimizer": "sgd", "learning_rate": 0.1}
VALIDATION = (VAL_X[:120], VAL_Y[:120])
PER_PROVIDER = 40
WTP_BPS = 100


@dataclass
class Checked:
    """A round with a court: the training node, a ``--verify`` node and a committee member."""

    rnd: Round
    court: ResultCourt
    checker: UnlockedAccount
    member: UnlockedAccount
    governance: LocalAccount
    tmp: Path

    def verify_worker(self, account: UnlockedAccount, share: float) -> VerifyWorker:
        home = self.tmp / f"verify-{account.address}"
        config = VerifyConfig(workdir=home, share=share, training=TrainingConfig(workdir=home))
        return VerifyWorker(self.rnd.chain, self.rnd.deployment, self.rnd.store, account, config)

    def trained(self, trainer: TrainingWorker) -> int:
        """A round of ``SPEC`` approved, started and posted by ``trainer``."""
        rnd = self.rnd
        # a threshold any trained model meets: the lies below are about a delivered result
        pid = rnd.propose(wtp_bps=WTP_BPS, spec=SPEC, validation=VALIDATION)
        rnd.approve(pid)
        rnd.start(pid)
        try:
            assert trainer.poll() == 1
            job = trainer.journal.get(pid)
            assert job is not None and job.state == "submitted", job
        finally:
            trainer.close()
        return pid


def bonded_account(
    rnd: Round, governance: LocalAccount, name: str, key: bytes, *, region: str = "local"
) -> UnlockedAccount:
    """An admitted node in ``region`` with two bonds staked (admitted after the assets were
    added: no asset wraps its key, so it re-executes only with sealed data keys)."""
    import_account(rnd.settings.keystore_dir, name, key, PASSWORD, scrypt_n=1024)
    account = load_account(rnd.settings.keystore_dir, name, PASSWORD)
    rnd.chain.fund_from_dev_faucet(account.address)
    rnd.registry.admit_node(
        governance,
        account.address,
        signer=account.address,
        region=region,
        encryption_key=account.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    _stake_round(rnd, rnd.deployment.result_court(rnd.chain), account.local_account)
    return account


def _stake_round(rnd: Round, court: ResultCourt, account: LocalAccount) -> None:
    rnd.token.faucet(account, 2 * BOND)
    rnd.token.approve(account, court.address, 2 * BOND)
    court.deposit(account, 2 * BOND)


class FixedSeeds:
    """Stands in for :mod:`secrets` in the training node: each job's seed is fixed, so that a
    failing run can be replayed (the verifiers use the seed sealed to them)."""

    def __init__(self) -> None:
        self.drawn = 0

    def token_bytes(self, n: int) -> bytes:
        self.drawn += 1
        return hashlib.sha256(f"verify-job-{self.drawn}".encode()).digest()[:n]


@pytest.fixture
def vr(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> Checked:
    monkeypatch.setattr(_training, "secrets", FixedSeeds())
    roles = dict(funded_roles)
    rnd = Round(chain, deployment, tmp_path / "home", roles)
    rnd.add_assets(tmp_path, per_provider=PER_PROVIDER)
    court = deployment.result_court(chain)
    court.set_parameters(roles["deployer"], ONE_MEMBER_COURT)
    params = replace(rnd.market.parameters(), challenge_window=WINDOW, court=court.address)
    rnd.market.set_parameters(roles["governance"], params)
    _stake_round(rnd, court, roles["node"])
    checker = bonded_account(rnd, roles["governance"], "checker", bytes([7]) * 32)
    member = bonded_account(rnd, roles["governance"], "member", bytes([8]) * 32)
    return Checked(rnd, court, checker, member, roles["governance"], tmp_path)


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    """The accuracy-proof tests' trained model and circuits, built once per session."""
    return build_kit(tmp_path_factory.mktemp("zk"))
