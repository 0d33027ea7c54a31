"""The accuracy proof counts in the market: a ``ZkAccuracyCheck`` bound to the market's results
and named on its ``ResultCourt``. A job started under it is released only once its node's claim
(the result's model hash and accuracy, committed by the result's node) is accepted, and is
overturned, the node's bond going to the consumer, when the claim is rejected, expires or never
comes. The small trained circuit of :mod:`tests.integration.verify.zkkit` (k = 4) proves."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from tests.integration.verify.conftest import BOND, WINDOW, Court, _stake
from tests.integration.verify.zkkit import K, Kit
from visdm.chain.contracts import ProposalStatus
from visdm.errors import ContractRevertError, ZkInputError
from visdm.market.release import release_due
from visdm.session import Connection
from visdm.storage import LocalStore
from visdm.verify import ZkProofRun, expected_sample_root, prove_result
from visdm.verify._zk import ZkCircuit
from visdm.verify._zk_chain import ZkAccuracyCheckClient, deploy_zk_check

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL_HASH = keccak(text="model")  # what ``Market.submit`` commits
OFFER, COST = 1000, 50


@dataclass
class Proving:
    """A court that waits for proofs, and a WTP-met result of ``node`` in its window."""

    ct: Court
    check: ZkAccuracyCheckClient
    pid: int

    @property
    def node(self) -> LocalAccount:
        return self.ct.node

    def commit(self, circuit: ZkCircuit, kit: Kit, **overrides: object) -> None:
        fields: dict[str, object] = {
            "circuit": circuit,
            "model_hash": MODEL_HASH,
            "tree": kit.tree,
            "accuracy_bps": self.ct.mk.market.proposal(self.pid).accuracy_bps,
            "circuit_cid": "bafkreicircuitsettings",
            **overrides,
        }
        account = fields.pop("account", self.node)
        assert isinstance(account, LocalAccount)
        self.check.commit(account, self.pid, **fields)  # type: ignore[arg-type]

    def prove(self, circuit: ZkCircuit, kit: Kit) -> str:
        """Mine past the draw, prove the drawn samples with ``circuit``; the claim's status."""
        chain = self.ct.mk.chain
        chain.advance_time(1)
        chain.advance_time(1)
        indices = self.check.drawn_indices(self.pid)
        proof = circuit.prove(kit.val_x[indices])
        self.check.prove(
            self.node, self.pid, proof, circuit=circuit, tree=kit.tree, indices=indices
        )
        return self.check.status_of(self.pid)


def proving(ct: Court, kit: Kit, *, accuracy_bps: int) -> Proving:
    """Deploy the check bound to the market (both kit circuits registered), name it on the
    court, then start and submit a job under it."""
    governance = ct.mk.roles["governance"]
    deployment = deploy_zk_check(
        ct.mk.chain, governance, kit.circuit, samples=K, market=ct.mk.market.address
    )
    _register(ct, deployment.verifier, kit.other)
    ct.court.set_zk_check(governance, deployment.check)
    assert ct.court.zk_check() == deployment.check
    mk = ct.mk
    asset = mk.add_asset(mk.roles["provider"], 10)
    pid = mk.approved([(asset, 10)], offer=OFFER)
    mk.start(pid, cost=COST)
    mk.submit(pid, accuracy_bps=accuracy_bps, payout_root=keccak(text=f"payout-{pid}"))
    return Proving(ct, ZkAccuracyCheckClient(mk.chain, deployment.check), pid)


def _register(ct: Court, verifier: str, circuit: ZkCircuit) -> None:
    """Register another circuit's verifying-key artifact with the deployed verifier."""
    from visdm.verify._zk import compile_verifier

    abi = compile_verifier(circuit.verifier_source())["abi"]
    contract = ct.mk.chain.w3.eth.contract(address=verifier, abi=abi)
    fn = contract.functions.registerVka(circuit.vka_words())
    ct.mk.chain.transact(ct.mk.roles["governance"], fn, action="register the vka")


def after_window(ct: Court) -> None:
    ct.mk.chain.advance_time(WINDOW + 1)


def mine_past_expiry(ct: Court) -> None:
    """Mine past the 256 blocks in which a committed claim's draw stays readable."""
    chain = ct.mk.chain
    chain.rpc(lambda: chain.w3.provider.make_request("anvil_mine", [hex(258)]))  # type: ignore[arg-type]


def revert_name(call: object) -> str:
    assert callable(call)
    with pytest.raises(ContractRevertError) as err:
        call()
    return str(err.value.error_name)


def test_an_accepted_proof_releases_the_result_and_pays(ct: Court, kit: Kit) -> None:
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    mk, court, stranger = ct.mk, ct.court, ct.mk.roles["stranger"]
    assert court.proof_of(p.pid).status == "none" and court.proof_of(p.pid).required
    p.commit(kit.circuit, kit)
    assert court.proof_of(p.pid).status == "pending"
    # a pending claim cannot be overturned while its node may still prove
    assert revert_name(lambda: court.overturn_unproven(stranger, p.pid)) == (
        "ZkAccuracyCheckNotDrawnYet"
    )
    after_window(ct)
    # the window is over, the proof is not: release refused, naming the claim's state
    with pytest.raises(ContractRevertError, match="waits for its accuracy proof") as err:
        court.release(stranger, p.pid)
    assert err.value.error_name == "ResultCourtProofNotAccepted"
    assert court.proof_of(p.pid).blocks_release() is not None
    conn = Connection(mk.chain, mk.deployment)
    assert release_due(conn, stranger, [p.pid]) == []  # a claim run leaves it held, unsent
    assert p.prove(kit.circuit, kit) == "accepted"
    assert court.proof_of(p.pid).blocks_release() is None
    assert revert_name(lambda: court.overturn_unproven(stranger, p.pid)) == (
        "ResultCourtProofNotFailed"
    )
    node_credit = mk.market.credit_of(p.node.address)
    assert release_due(conn, stranger, [p.pid]) == [p.pid]
    record = mk.market.proposal(p.pid)
    assert record.status is ProposalStatus.COMPLETED and record.deadline == 0  # claims open
    assert mk.market.credit_of(p.node.address) == node_credit + COST
    assert court.stake_of(p.node.address) == (2 * BOND, 0)  # bond unlocked, not slashed


def test_a_rejected_proof_overturns_the_result_refunds_and_slashes(ct: Court, kit: Kit) -> None:
    """An untrained model's circuit claimed at 100 %: a valid proof, too few correct samples;
    anyone overturns, the consumer gets price, training cost and the node's bond."""
    p = proving(ct, kit, accuracy_bps=10_000)
    mk, court = ct.mk, ct.court
    consumer = mk.roles["consumer"].address
    credit, tokens = mk.market.credit_of(consumer), mk.token.balance_of(consumer)
    p.commit(kit.other, kit)
    assert p.prove(kit.other, kit) == "rejected"
    assert revert_name(lambda: court.release(mk.roles["stranger"], p.pid)) == (
        "ResultCourtWindowOpen"
    )
    court.overturn_unproven(mk.roles["stranger"], p.pid)  # inside the window already
    assert mk.market.proposal(p.pid).status is ProposalStatus.CANCELLED
    assert mk.market.credit_of(consumer) == credit + OFFER + COST
    assert mk.token.balance_of(consumer) == tokens + BOND
    assert court.stake_of(p.node.address) == (BOND, 0)


def test_a_result_whose_proof_never_comes_is_overturned_after_the_window(
    ct: Court, kit: Kit
) -> None:
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    mk, court, stranger = ct.mk, ct.court, ct.mk.roles["stranger"]
    assert revert_name(lambda: court.overturn_unproven(stranger, p.pid)) == (
        "ResultCourtProofNotFailed"
    )
    after_window(ct)
    assert revert_name(lambda: court.release(stranger, p.pid)) == "ResultCourtProofNotAccepted"
    # too late to commit now: the window decided
    assert revert_name(lambda: p.commit(kit.circuit, kit)) == "ZkAccuracyCheckNoOpenResult"
    court.overturn_unproven(stranger, p.pid)
    assert mk.market.proposal(p.pid).status is ProposalStatus.CANCELLED
    assert court.stake_of(p.node.address) == (BOND, 0)
    assert revert_name(lambda: court.overturn_unproven(stranger, p.pid)) == (
        "ResultCourtNoProofRequired"
    )


def test_a_claim_that_expires_unproven_is_overturned(ct: Court, kit: Kit) -> None:
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    p.commit(kit.circuit, kit)
    mine_past_expiry(ct)
    ct.court.overturn_unproven(ct.mk.roles["stranger"], p.pid)  # expires the claim first
    assert p.check.status_of(p.pid) == "expired"
    assert ct.mk.market.proposal(p.pid).status is ProposalStatus.CANCELLED


@pytest.mark.attack
def test_a_stranger_cannot_commit_a_claim_for_another_nodes_result(
    ct: Court, kit: Kit, stranger: LocalAccount
) -> None:
    """With the defence off (an unbound check) the stranger's claim for the proposal stands;
    bound, it is refused, and the court accepts no unbound check."""
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    name = revert_name(lambda: p.commit(kit.circuit, kit, account=stranger))
    assert name == "ZkAccuracyCheckNotNode"
    assert p.check.status_of(p.pid) == "none"
    open_check = deploy_zk_check(ct.mk.chain, stranger, kit.circuit, samples=K)
    unbound = ZkAccuracyCheckClient(ct.mk.chain, open_check.check)
    assert unbound.market() is None
    p_open = replace(p, check=unbound)
    p_open.commit(kit.circuit, kit, account=stranger)
    assert unbound.claim(p.pid).node == stranger.address  # the attack, undefended
    governance = ct.mk.roles["governance"]
    name = revert_name(lambda: ct.court.set_zk_check(governance, open_check.check))
    assert name == "ResultCourtInvalidParameters"
    assert revert_name(lambda: ct.court.set_zk_check(stranger, None)) == "ResultCourtNotGovernance"


@pytest.mark.attack
def test_a_node_cannot_claim_another_model_or_accuracy_than_its_result(ct: Court, kit: Kit) -> None:
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    other_model = revert_name(lambda: p.commit(kit.circuit, kit, model_hash=keccak(text="x")))
    assert other_model == "ZkAccuracyCheckNotTheResult"
    with pytest.raises(ContractRevertError, match="accuracyBps"):
        p.commit(kit.circuit, kit, accuracy_bps=kit.accuracy_bps - 100)
    assert p.check.status_of(p.pid) == "none"
    p.commit(kit.circuit, kit)  # the result's own commitments are accepted
    assert p.check.status_of(p.pid) == "pending"


def test_an_upheld_challenge_still_waits_for_the_proof(ct: Court, kit: Kit) -> None:
    """A committee upholding the result pays the node the challenger's bond, but the result
    counts only with its proof: a claim left to expire then overturns it."""
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    court, stranger = ct.court, ct.mk.roles["stranger"]
    challenger = ct.verifiers[0]
    committee, _ = court.challenge(challenger, p.pid)
    for member in committee:
        court.vote(ct.account(member), p.pid, result_correct=True)
    p.commit(kit.circuit, kit)
    court.resolve(stranger, p.pid)
    assert court.stake_of(p.node.address) == (3 * BOND, BOND)  # won a bond, its own still held
    assert ct.mk.market.proposal(p.pid).deadline != 0  # not released
    after_window(ct)
    assert revert_name(lambda: court.release(stranger, p.pid)) == "ResultCourtProofNotAccepted"
    mine_past_expiry(ct)
    court.overturn_unproven(stranger, p.pid)
    assert p.check.status_of(p.pid) == "expired"
    assert ct.mk.market.proposal(p.pid).status is ProposalStatus.CANCELLED
    assert court.stake_of(p.node.address) == (2 * BOND, 0)


def test_jobs_started_without_a_check_or_missing_the_wtp_need_no_proof(ct: Court, kit: Kit) -> None:
    mk, court, stranger = ct.mk, ct.court, ct.mk.roles["stranger"]
    _stake(mk, court, ct.node, BOND)  # a third job
    before = ct.completed()  # started before the check was named
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    asset = mk.add_asset(mk.roles["provider"], 10)
    missed = mk.approved([(asset, 10)], offer=OFFER, wtp_bps=9500)
    mk.start(missed, cost=COST)
    mk.submit(missed, accuracy_bps=100)
    assert court.proof_of(before).check is None and court.proof_of(missed).required
    after_window(ct)
    court.release(stranger, before)
    court.release(stranger, missed)  # no accuracy to prove: its price went back already
    assert mk.market.proposal(before).deadline == mk.market.proposal(missed).deadline == 0
    assert mk.market.proposal(p.pid).deadline != 0


def test_the_node_proves_its_result_and_a_validation_holder_checks_the_root(
    ct: Court, kit: Kit, tmp_path: Path
) -> None:
    """``prove_result``, what the training node runs after ``submitResult``: circuit, settings
    file in the store, commit, draw, proof; the court then releases. A node holding the
    validation set recomputes the committed sample root from the stored settings."""
    p = proving(ct, kit, accuracy_bps=kit.accuracy_bps)
    mk, store = ct.mk, LocalStore(tmp_path / "store")

    def prove(workdir: Path) -> ZkProofRun:
        return prove_result(
            mk.chain,
            mk.market,
            ct.court,
            store,
            ct.node,
            proposal_id=p.pid,
            model=kit.model,
            input_shape=(1, 8, 8),
            num_classes=4,
            val_x=kit.val_x,
            val_y=kit.val_y,
            workdir=workdir,
            srs_dir=kit.circuit.srs_path.parent,
        )

    run = prove(tmp_path / "circuit")
    assert run.status == "accepted" and len(run.indices) == K
    assert p.check.circuit_cid(p.pid) == run.circuit_cid
    settings = store.get(run.circuit_cid)
    claim = p.check.claim(p.pid)
    assert expected_sample_root(settings, kit.val_x, kit.val_y) == claim.sample_root
    relabelled = [(int(y) + 1) % 4 for y in kit.val_y]  # another validation set's labels
    assert expected_sample_root(settings, kit.val_x, relabelled) != claim.sample_root
    after_window(ct)
    ct.court.release(mk.roles["stranger"], p.pid)
    assert mk.market.proposal(p.pid).deadline == 0
    with pytest.raises(ZkInputError, match="no held WTP-met result"):
        prove(tmp_path / "again")
