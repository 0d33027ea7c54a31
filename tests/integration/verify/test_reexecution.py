"""Nodes check each other's results by themselves, with real sandboxed re-execution on anvil.

A training node (:class:`~visdm.compute.TrainingWorker`) runs a real round in the bubblewrap
sandbox and seals the job's secrets to the bonded nodes the assets allow. A ``--verify`` node
(:class:`~visdm.verify.VerifyWorker`, share 1) follows ``ResultSubmitted``, opens its secrets,
re-runs the job in its own sandbox and confirms or challenges; the committee member drawn by
the court (a second verify worker, share 0) re-executes on its own and votes; whoever polls
next settles. Nobody in these tests calls the court by hand: an honest result is released
after its window and claimed; a node that lies (:mod:`visdm.demo._cheat`) is challenged,
slashed, and the consumer refunded. Each round trains once per node that checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.compute.roundkit import MLP_SPEC, PASSWORD, VAL_X, VAL_Y, Round
from visdm.accounts import UnlockedAccount, import_account, load_account
from visdm.chain.client import ChainClient
from visdm.chain.contracts import CourtParameters, ProposalStatus, ResultCourt
from visdm.chain.deployment import Deployment
from visdm.compute import TrainingConfig, TrainingWorker
from visdm.demo._cheat import OVERSTATE_ACCURACY, PAY_ONE_OWNER, CheatingTrainingWorker
from visdm.market import workflow
from visdm.verify import Verdict, VerifyConfig, VerifyWorker

pytestmark = pytest.mark.integration

WINDOW = 600
BOND = 100 * 10**18
# one committee member keeps a challenge to three trainings (node, challenger, member)
COURT = CourtParameters(bond=BOND, committee_size=1, ruling_period=900)
SPEC = {**MLP_SPEC, "epochs": 1, "optimizer": "sgd", "learning_rate": 0.1}
VALIDATION = (VAL_X[:120], VAL_Y[:120])
PER_PROVIDER = 40


@dataclass
class Checked:
    """A round with a court: the training node, a ``--verify`` node and a committee member."""

    rnd: Round
    court: ResultCourt
    checker: UnlockedAccount
    member: UnlockedAccount
    tmp: Path

    def verify_worker(self, account: UnlockedAccount, share: float) -> VerifyWorker:
        home = self.tmp / f"verify-{account.address}"
        config = VerifyConfig(workdir=home, share=share, training=TrainingConfig(workdir=home))
        return VerifyWorker(self.rnd.chain, self.rnd.deployment, self.rnd.store, account, config)

    def trained(self, trainer: TrainingWorker) -> int:
        """A round of ``SPEC`` approved, started and posted by ``trainer``."""
        rnd = self.rnd
        pid = rnd.propose(wtp_bps=1000, spec=SPEC, validation=VALIDATION)
        rnd.approve(pid)
        rnd.start(pid)
        try:
            assert trainer.poll() == 1
            job = trainer.journal.get(pid)
            assert job is not None and job.state == "submitted", job
        finally:
            trainer.close()
        return pid


def _bonded_node(rnd: Round, governance: LocalAccount, name: str, key: bytes) -> UnlockedAccount:
    """An admitted node in region ``local`` with two bonds staked (admitted after the assets
    were added: no asset wraps its key, so it re-executes only with sealed data keys)."""
    import_account(rnd.settings.keystore_dir, name, key, PASSWORD, scrypt_n=1024)
    account = load_account(rnd.settings.keystore_dir, name, PASSWORD)
    rnd.chain.fund_from_dev_faucet(account.address)
    rnd.registry.admit_node(
        governance,
        account.address,
        signer=account.address,
        region="local",
        encryption_key=account.x25519_public,
        endpoint="http://127.0.0.1:9/",
    )
    _stake(rnd, rnd.deployment.result_court(rnd.chain), account.local_account)
    return account


def _stake(rnd: Round, court: ResultCourt, account: LocalAccount) -> None:
    rnd.token.faucet(account, 2 * BOND)
    rnd.token.approve(account, court.address, 2 * BOND)
    court.deposit(account, 2 * BOND)


@pytest.fixture
def vr(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
) -> Checked:
    roles = dict(funded_roles)
    rnd = Round(chain, deployment, tmp_path / "home", roles)
    rnd.add_assets(tmp_path, per_provider=PER_PROVIDER)
    court = deployment.result_court(chain)
    court.set_parameters(roles["deployer"], COURT)
    params = replace(rnd.market.parameters(), challenge_window=WINDOW, court=court.address)
    rnd.market.set_parameters(roles["governance"], params)
    _stake(rnd, court, roles["node"])
    checker = _bonded_node(rnd, roles["governance"], "checker", bytes([7]) * 32)
    member = _bonded_node(rnd, roles["governance"], "member", bytes([8]) * 32)
    return Checked(rnd, court, checker, member, tmp_path)


def test_an_honest_result_is_confirmed_then_released_after_its_window_and_claimed(
    vr: Checked,
) -> None:
    rnd, court = vr.rnd, vr.court
    pid = vr.trained(rnd.trainer())
    result = rnd.result(pid)
    # the node sealed the secrets to both bonded nodes and listed where each finds its copy
    assert set(result["verifierSecrets"]) == {vr.checker.address, vr.member.address}
    assert result["verifiersLeftOut"] == {}

    checker = vr.verify_worker(vr.checker, share=1.0)
    try:
        assert checker.poll() == 1  # re-executed, reproduced every field, confirmed
        check = checker.journal.get(pid)
        assert check is not None and check.verdict is Verdict.CONFIRM, check
        confirmed = court.logs("ResultConfirmed", where={"proposalId": pid})
        assert [e["args"]["verifier"] for e in confirmed] == [vr.checker.address]
        # claims wait for the window; nothing more to do until it ends
        assert checker.poll() == 0
        assert rnd.market.proposal(pid).deadline != 0
        rnd.chain.advance_time(WINDOW)
        assert checker.poll() == 1  # anyone's right, taken by the verifier: released
        assert checker.journal.get(pid).state == "done"  # type: ignore[union-attr]
    finally:
        checker.close()
    record = rnd.market.proposal(pid)
    assert (record.status, record.deadline) == (ProposalStatus.COMPLETED, 0)
    assert court.stake_of(rnd.accounts["node"].address) == (2 * BOND, 0)
    paid = 0
    for who in ("provider", "provider2"):
        (receipt,) = workflow.claim(rnd.as_(who), rnd.accounts[who], [pid])
        paid += receipt.amount
    assert paid > 0 and rnd.market.proposal(pid).unclaimed == 0


@pytest.mark.attack
@pytest.mark.parametrize(
    ("lie", "differs"),
    [(PAY_ONE_OWNER, ("payout_root",)), (OVERSTATE_ACCURACY, ("accuracy_bps",))],
)
def test_a_lying_node_is_challenged_by_a_verify_node_slashed_and_the_consumer_refunded(
    vr: Checked, lie: str, differs: tuple[str, ...]
) -> None:
    rnd, court = vr.rnd, vr.court
    node = rnd.accounts["node"]
    consumer = rnd.accounts["consumer"].address
    liar = CheatingTrainingWorker(
        rnd.chain, rnd.deployment, rnd.store, node, rnd.training_config(), lie
    )
    pid = vr.trained(liar)
    record = rnd.market.proposal(pid)
    before = rnd.market.credit_of(consumer)

    checker = vr.verify_worker(vr.checker, share=1.0)
    member = vr.verify_worker(vr.member, share=0.0)  # checks only when the court draws it
    try:
        assert member.poll() == 0 and not member.journal.get(pid).drawn  # type: ignore[union-attr]
        assert checker.poll() == 1
        check = checker.journal.get(pid)
        assert check is not None and check.verdict is Verdict.CHALLENGE, check
        assert check.differences == differs
        challenge = court.challenge_of(pid)
        assert challenge.challenger == vr.checker.address
        assert challenge.committee == (vr.member.address,)
        # drawn to the committee, the member re-executes on its own, votes and resolves
        assert member.poll() == 2
        assert member.journal.get(pid).verdict is Verdict.CHALLENGE  # type: ignore[union-attr]
        assert checker.poll() == 0  # settled: nothing left
    finally:
        checker.close()
        member.close()
    assert court.challenge_of(pid).overturned == 1
    assert rnd.market.proposal(pid).status is ProposalStatus.CANCELLED
    assert rnd.market.credit_of(consumer) == before + record.price + record.training_cost
    assert court.stake_of(node.address) == (BOND, 0)
    assert court.stake_of(vr.checker.address)[1] == 0
    assert court.stake_of(vr.checker.address)[0] > 2 * BOND
