"""The demo's cheating round: a compute node lies, a ``--verify`` node catches it.

:class:`CheatingTrainingWorker` trains exactly like :class:`~visdm.compute.TrainingWorker`,
then alters what it will commit before ``submitResult`` — an accuracy above what its model
reached (:data:`OVERSTATE_ACCURACY`) or a payout root that pays the first selected asset's
owner the whole amount (:data:`PAY_ONE_OWNER`) — or leaves an asset out claiming no key was
wrapped for it (:data:`DENY_KEY`). No command line builds it: the demo and the
verification tests construct it by name.

:class:`CheatingRound` plays it last in the demo (DESIGN §7): governance opens a short challenge
window before the court, ``node1`` and two more admitted nodes bond, a small round is voted
through and ``node1`` posts a payout root that pays one owner everything; ``node2`` — what
``visdm node serve --verify`` runs (:class:`~visdm.verify.VerifyWorker`) — re-executes the job
in its own sandbox and challenges, ``node3``, drawn to the committee, re-executes on its own
and votes, the challenge resolves: ``node1`` loses its bond and ``bob`` gets the price and the
training cost back. No one calls the court by hand.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from visdm import session
from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import CourtParameters, ProposalRecord
from visdm.chain.deployment import Deployment
from visdm.compute import TrainingConfig, TrainingWorker
from visdm.compute._training import NO_KEY_WRAPPED
from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object
from visdm.market import build_payout_tree, workflow
from visdm.proposals import SelectedAsset
from visdm.storage import ContentStore

from ._cast import class_names, demo_spec, validation_arrays
from ._settle import tokens
from ._stage import TOKEN, Collect, Stage

__all__ = [
    "DENY_KEY",
    "LIES",
    "OVERSTATE_ACCURACY",
    "PAY_ONE_OWNER",
    "CheatingRound",
    "CheatingTrainingWorker",
]

log = logging.getLogger("visdm.demo")

OVERSTATE_ACCURACY = "overstate-accuracy"
PAY_ONE_OWNER = "pay-one-owner"
#: leave the first usable asset out, saying no key was wrapped for the node (its owner is
#: paid nothing, the rest share its part); the whole job is consistent with the lie
DENY_KEY = "deny-key"
LIES = (OVERSTATE_ACCURACY, PAY_ONE_OWNER, DENY_KEY)
#: how far the overstated accuracy lies (basis points, capped at 100 %)
_OVERSTATED_BY_BPS = 1500
_MAX_RESULT_BYTES = 64 << 20
#: the demo court: a short window (the demo advances the chain's clock), one committee member
_WINDOW_S = 300
_COURT = CourtParameters(bond=10 * TOKEN, committee_size=1, ruling_period=600)
_VOTING_S = 3600
#: a threshold any trained model meets: the lie is about a delivered result's payouts
_WTP_BPS = 100


class CheatingTrainingWorker(TrainingWorker):
    """A training node that lies (``lie``, one of :data:`LIES`) in every result it posts."""

    def __init__(  # noqa: PLR0917 - the worker's arguments and the lie
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: TrainingConfig,
        lie: str,
    ) -> None:
        if lie not in LIES:
            raise InvalidInputError(f"lie {lie!r} is not one of {', '.join(LIES)}")
        super().__init__(client, deployment, store, account, config)
        self.lie = lie

    def _asset_keys(
        self, checked: Any, spec: Any
    ) -> tuple[dict[int, bytes], dict[int, tuple[str, str]], set[int]]:
        keys, reasons, by_terms = super()._asset_keys(checked, spec)
        if self.lie == DENY_KEY and keys:
            denied = min(keys)
            del keys[denied]
            reasons[denied] = ("no-key", NO_KEY_WRAPPED)
        return keys, reasons, by_terms

    def _run(self, proposal_id: int, record: ProposalRecord) -> dict[str, Any]:
        honest = super()._run(proposal_id, record)
        if self.lie == DENY_KEY:  # the lie is in the job itself
            log.info("proposal %d: posting a lying result (%s)", proposal_id, self.lie)
            return honest
        lied = dict(honest)
        if self.lie == OVERSTATE_ACCURACY:
            lied["accuracyBps"] = min(int(honest["accuracyBps"]) + _OVERSTATED_BY_BPS, 10_000)
        else:
            lied["payoutRoot"] = "0x" + self._one_owner_root(proposal_id, record, honest).hex()
        log.info("proposal %d: posting a lying result (%s)", proposal_id, self.lie)
        return lied

    def _one_owner_root(
        self, proposal_id: int, record: ProposalRecord, honest: dict[str, Any]
    ) -> bytes:
        """A payout root that pays everything the honest tree shares to the first asset."""
        document = load_untrusted_object(
            self.store.get(str(honest["resultCid"])),
            what="the node's own result document",
            max_bytes=_MAX_RESULT_BYTES,
        )
        payouts = document.get("payouts") or {}
        total = sum(int(v) for v in (payouts.get("assets") or {}).values())
        if total == 0:
            raise InvalidInputError(f"proposal {proposal_id} pays nobody: nothing to misdirect")
        ids = [self.market.selected_asset(proposal_id, i) for i in range(record.asset_count)]
        tree = build_payout_tree({ids[0]: total}, {a: i for i, a in enumerate(ids)})
        return bytes(tree.root)


class CheatingRound:
    """The demo's last round: a lying node challenged by a verifying node and slashed."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def play(self, selection: list[SelectedAsset]) -> None:
        self._court()
        pid = self._round(selection)
        self._lie(pid)
        self._caught(pid)

    def _court(self) -> None:
        from visdm.governance import admit_node

        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        admin = stage.people["admin"].local_account
        court = conn.deployment.result_court(conn.client)
        market = conn.deployment.training_market(conn.client)
        with stage.step("court") as info:
            gas = court.set_parameters(admin, _COURT).gas_used
            params = replace(market.parameters(), challenge_window=_WINDOW_S, court=court.address)
            gas += market.set_parameters(admin, params).gas_used
            for name in ("node2", "node3"):
                node = stage.new_account(name)
                conn.client.fund_from_dev_faucet(node.address)
                _, tx = admit_node(
                    stage.settings,
                    admin,
                    node.address,
                    region="local",
                    endpoint="http://127.0.0.1:9/",
                    encryption_key=node.x25519_public.hex(),
                )
                gas += tx.gas_used
            token = conn.deployment.payment_token(conn.client)
            for name in ("node1", "node2", "node3"):
                account = stage.people[name].local_account
                token.faucet(account, 2 * _COURT.bond)
                gas += token.approve(account, court.address, 2 * _COURT.bond).gas_used
                gas += court.deposit(account, 2 * _COURT.bond).gas_used
            info["gas"] = gas
            info["detail"] = (
                f"governance opens a {_WINDOW_S // 60}-minute challenge window before the "
                f"court (bond {tokens(_COURT.bond)} tokens, committee of "
                f"{_COURT.committee_size}); node2 and node3 are admitted; all three nodes bond"
            )

    def _round(self, selection: list[SelectedAsset]) -> int:
        stage = self.stage
        bob = stage.people["bob"]
        config = stage.config
        # one epoch: this round is about the court, not the model
        spec = {**demo_spec(config), "epochs": 1}
        with stage.step("cheating round") as info:
            created = workflow.propose(
                stage.as_("bob"),
                bob,
                selection=selection,
                model_spec=spec,
                validation=validation_arrays(config),
                classes=class_names(),
                offer=config.offer_tokens * TOKEN,
                wtp_bps=_WTP_BPS,
                node=stage.people["node1"].address,
                voting_period_s=_VOTING_S,
                min_share_bps=config.min_share_bps,
            )
            pid = created.proposal_id
            offer, gas = stage.approve_and_start(pid, _VOTING_S)
            info["gas"] = gas + sum(t.gas_used for t in created.transactions)
            info["detail"] = (
                f"proposal {pid}: every owner accepts {config.offer_tokens} tokens; bob pays "
                f"{offer.quote.training_cost / TOKEN:.6f} tokens for one epoch on node1"
            )
        return pid

    def _lie(self, pid: int) -> None:
        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        with stage.step("node lies") as info:
            worker = CheatingTrainingWorker(
                conn.client,
                conn.deployment,
                session.open_store(stage.settings),
                stage.people["node1"],
                TrainingConfig(workdir=stage.settings.node_dir, price_per_gflop=10**15),
                PAY_ONE_OWNER,
            )
            try:
                with Collect(logging.WARNING).on(logging.getLogger("visdm")):
                    worker.poll()
                job = worker.journal.get(pid)
                if job is None or job.state != "submitted":
                    raise VisdmError(f"node1 did not post proposal {pid}'s result: {job}")
            finally:
                worker.close()
            market = conn.deployment.training_market(conn.client)
            record = market.proposal(pid)
            first = market.selected_asset(pid, 0)
            info["detail"] = (
                f"node1 trains honestly, then commits a payout root paying all "
                f"{tokens(record.unclaimed)} tokens to {stage.names([first])}; claims wait "
                f"for the {_WINDOW_S // 60}-minute window"
            )

    def _caught(self, pid: int) -> None:
        from visdm.verify import VerifyConfig, VerifyWorker

        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        court = conn.deployment.result_court(conn.client)
        market = conn.deployment.training_market(conn.client)
        bob = stage.people["bob"].address
        record = market.proposal(pid)
        before = market.credit_of(bob)
        node1 = stage.people["node1"].address

        def verify(name: str, share: float) -> int:
            home = stage.settings.home / name
            worker = VerifyWorker(
                conn.client,
                conn.deployment,
                session.open_store(stage.settings),
                stage.people[name],
                VerifyConfig(workdir=home, share=share, training=TrainingConfig(workdir=home)),
            )
            try:
                with Collect(logging.WARNING).on(logging.getLogger("visdm")):
                    return worker.poll()
            finally:
                worker.close()

        with stage.step("verify node challenges") as info:
            verify("node2", 1.0)
            challenge = court.challenge_of(pid)
            if challenge.challenger != stage.people["node2"].address:
                raise VisdmError(f"node2 did not challenge proposal {pid}'s lying result")
            info["detail"] = (
                "node2 (visdm node serve --verify) opens the secrets node1 sealed to it, "
                "re-executes the job in its own sandbox: the payout root differs, it "
                f"challenges; the court draws {', '.join(self._names(challenge.committee))}"
            )
        with stage.step("committee votes") as info:
            verify("node3", 0.0)  # it samples nothing: it checks because the court drew it
            challenge = court.challenge_of(pid)
            if not challenge.settled or challenge.overturned <= challenge.upheld:
                raise VisdmError(f"the committee did not overturn proposal {pid}'s result")
            info["detail"] = (
                f"node3 re-executes on its own and votes the result wrong "
                f"({challenge.overturned} of {len(challenge.committee)}); the challenge "
                "resolves: overturned"
            )
        with stage.step("slashed") as info:
            refund = market.credit_of(bob) - before
            stake = court.stake_of(node1)[0]
            amount, tx = workflow.withdraw(stage.as_("bob"), stage.people["bob"])
            info["gas"] = tx.gas_used if tx else 0
            fee = record.price - record.unclaimed  # what the market paid the scoring pool
            info["detail"] = (
                f"node1 loses a {tokens(_COURT.bond)}-token bond ({tokens(stake)} left): "
                f"{tokens(fee)} tokens repay bob the scoring fee, the rest goes to node2; the "
                f"market credits bob the {tokens(refund)} tokens it held (price less the fee, "
                f"and the training cost) and bob withdraws {tokens(amount)}"
            )

    def _names(self, addresses: tuple[str, ...]) -> list[str]:
        by_address = {str(a.address): n for n, a in self.stage.people.items()}
        return [by_address.get(str(a), str(a)) for a in addresses]
