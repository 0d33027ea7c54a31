"""Stateful properties of the market on a real anvil, against plain-Python models.

(a) escrow conservation: after every step the market's token balance equals what the model says
    it owes (escrowed prices and training costs, unclaimed payouts, credited balances);
(b) no double claim, and claims never exceed a proposal's price; claims credit the owners;
(c) the on-chain tally equals the reference rules (``visdm.market.tally``) applied to the
    model's electorate, with delegation chains, direct-vote overrides, refused cycles, depth
    cut-offs, delegations changed after the deadline, and rejecting assets leaving the round.

Profiles: the default runs in CI in about a minute; ``VISDM_HYPOTHESIS_PROFILE=heavy`` runs many
more and longer sequences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.integration.market.conftest import Market
from visdm.chain.client import ChainClient
from visdm.chain.contracts import REJECT_ASK, ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.errors import ContractRevertError, InvalidInputError
from visdm.market import AssetVote, build_payout_tree, compute_outcome, resolve_ask

pytestmark = [pytest.mark.integration, pytest.mark.slow]

settings.register_profile(
    "visdm-default",
    max_examples=6,
    stateful_step_count=18,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "visdm-heavy",
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile(
    "visdm-heavy" if os.environ.get("VISDM_HYPOTHESIS_PROFILE") == "heavy" else "visdm-default"
)

S = ProposalStatus
VOTING_PERIOD = 3600


@dataclass
class ModelProposal:
    selection: list[tuple[int, int]]
    offer: int
    wtp: int
    status: S = S.VOTING
    price: int = 0  # escrowed data price
    cost: int = 0  # escrowed training cost
    unclaimed: int = 0
    tree: object | None = None
    paid: dict[str, int] = field(default_factory=dict)


def snapshot(chain: ChainClient) -> str:
    return str(chain.w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def revert(chain: ChainClient, snap: str) -> None:
    assert chain.w3.provider.make_request("evm_revert", [snap])["result"]  # type: ignore[arg-type]
    chain.reset_nonces()


# ---------------------------------------------------------------------------- (a) and (b)


def test_escrow_conservation_and_claims(
    session_chain: ChainClient, deployment: Deployment, funded_roles: dict[str, LocalAccount]
) -> None:
    class EscrowMachine(RuleBasedStateMachine):
        proposals = Bundle("proposals")

        def __init__(self) -> None:
            super().__init__()
            self.snap = snapshot(session_chain)
            self.mk = Market(session_chain, deployment, dict(funded_roles))
            self.model: dict[int, ModelProposal] = {}
            self.credits: dict[str, int] = {}
            self.base_balance = self.mk.escrow_balance()

        def teardown(self) -> None:
            revert(session_chain, self.snap)

        @initialize()
        def assets(self) -> None:
            mk = self.mk
            self.providers = [mk.roles["provider"], mk.roles["provider2"]]
            self.assets_ = [mk.add_asset(p, 50) for p in self.providers]

        def credit(self, account: str, amount: int) -> None:
            if amount:
                self.credits[account] = self.credits.get(account, 0) + amount

        @rule(
            target=proposals,
            offer=st.integers(1, 10**6),
            wtp=st.integers(0, 10_000),
            counts=st.tuples(st.integers(1, 50), st.integers(1, 50)),
        )
        def propose(self, offer: int, wtp: int, counts: tuple[int, int]) -> int:
            selection = list(zip(self.assets_, counts, strict=True))
            pid = self.mk.propose(selection, offer=offer, wtp_bps=wtp)
            self.model[pid] = ModelProposal(selection, offer, wtp, price=offer)
            return pid

        @rule(
            pid=proposals,
            who=st.sampled_from([0, 1]),
            ask=st.sampled_from([0, 10, 2_000_000, REJECT_ASK]),
        )
        def vote(self, pid: int, who: int, ask: int) -> None:
            try:
                self.mk.market.vote(self.providers[who], pid, ask)
            except ContractRevertError as exc:
                assert (
                    self.model[pid].status != S.VOTING
                    or exc.error_name == "TrainingMarketVotingClosed"
                )

        @rule(pid=proposals)
        def tally(self, pid: int) -> None:
            m = self.model[pid]
            if m.status != S.VOTING:
                return
            self.mk.advance(VOTING_PERIOD + 1)
            outcome = self.mk.tally(pid, m.selection).outcome
            event(f"tally: {outcome.status.name}")
            m.status = outcome.status
            if outcome.status in (S.FAILED, S.REJECTED):
                self.credit(self.mk.roles["consumer"].address, m.price)
                m.price = 0

        @rule(pid=proposals)
        def accept_counter(self, pid: int) -> None:
            m = self.model[pid]
            if m.status != S.COUNTERED:
                return
            self.mk.market.accept_counter(self.mk.roles["consumer"], pid)
            m.price = self.mk.market.proposal(pid).clearing_price
            m.status = S.APPROVED

        @rule(pid=proposals, cost=st.integers(0, 10**5))
        def start(self, pid: int, cost: int) -> None:
            m = self.model[pid]
            if m.status != S.APPROVED:
                return
            self.mk.start(pid, cost=cost, duration=10**6)
            m.cost, m.status = cost, S.TRAINING

        @rule(pid=proposals, accuracy=st.integers(0, 10_000), split=st.integers(0, 100))
        def submit(self, pid: int, accuracy: int, split: int) -> None:
            m = self.model[pid]
            if m.status != S.TRAINING:
                return
            node = self.mk.roles["node"].address
            met = accuracy >= m.wtp
            a0 = m.price * split // 100
            ids = [a for a, _ in m.selection]
            amounts = {ids[0]: a0, ids[1]: m.price - a0}
            tree = build_payout_tree(amounts, {a: i for i, a in enumerate(ids)}) if met else None
            self.mk.submit(
                pid,
                accuracy_bps=accuracy,
                payout_root=tree.root if tree else bytes(32),
            )
            self.credit(node, m.cost)
            m.cost = 0
            if met:
                m.status, m.tree, m.unclaimed = S.COMPLETED, tree, m.price
            else:
                m.status = S.WTP_MISSED
                self.credit(self.mk.roles["consumer"].address, m.price)
                m.price = 0

        @rule(pid=proposals, who=st.sampled_from([0, 1]))
        def claim(self, pid: int, who: int) -> None:
            m = self.model[pid]
            account = self.providers[who].address
            if m.status != S.COMPLETED or m.tree is None:
                return
            ids = [a for a, _ in m.selection]
            try:
                request = self.mk.claim(pid, m.tree, ids[who], ids)  # type: ignore[arg-type]
            except InvalidInputError:  # a zero payout is not in the tree
                return
            if account in m.paid:
                try:
                    self.mk.market.claim(self.mk.roles["stranger"], request)
                except ContractRevertError as exc:
                    assert exc.error_name == "TrainingMarketAlreadyClaimed"
                else:
                    raise AssertionError("a second claim went through")
                return
            self.mk.market.claim(self.mk.roles["stranger"], request)
            event("claim credited")
            m.paid[account] = request.amount
            m.unclaimed -= request.amount
            self.credit(account, request.amount)

        @rule(pid=proposals)
        def time_out_and_reclaim(self, pid: int) -> None:
            m = self.model[pid]
            if m.status not in (S.COUNTERED, S.APPROVED, S.TRAINING):
                return
            self.mk.advance(10**6 + 1)
            self.mk.market.reclaim(self.mk.roles["consumer"], pid)
            m.status, m.price, m.cost = S.CANCELLED, 0, 0

        @rule(who=st.sampled_from(["consumer", "node", "provider", "provider2"]))
        def withdraw(self, who: int) -> None:
            account = self.mk.roles[who]
            if self.credits.get(account.address, 0) == 0:
                return
            self.mk.market.withdraw(account)
            self.credits[account.address] = 0

        @invariant()
        def escrow_is_conserved(self) -> None:
            owed = sum(
                m.price + m.cost if m.status != S.COMPLETED else m.unclaimed
                for m in self.model.values()
            ) + sum(self.credits.values())
            assert self.mk.escrow_balance() - self.base_balance == owed
            for pid, m in self.model.items():
                record = self.mk.market.proposal(pid)
                assert record.status == m.status
                if m.status == S.COMPLETED:
                    assert sum(m.paid.values()) <= record.price
                    assert record.unclaimed == m.unclaimed

    run_state_machine_as_test(EscrowMachine, settings=PROFILE)


# ---------------------------------------------------------------------------- (c)


def test_onchain_tally_equals_reference(
    session_chain: ChainClient, deployment: Deployment, funded_roles: dict[str, LocalAccount]
) -> None:
    class TallyMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snap = snapshot(session_chain)
            self.mk = Market(session_chain, deployment, dict(funded_roles))
            self.depth = self.mk.delegations.max_depth()
            self.graph: dict[str, str] = {}  # delegator -> delegate (the model)

        def teardown(self) -> None:
            revert(session_chain, self.snap)

        @initialize(n=st.integers(3, 6), extra=st.integers(0, 4))
        def electorate(self, n: int, extra: int) -> None:
            mk = self.mk
            self.owners = [mk.new_provider(f"elector-{i}") for i in range(n)]
            self.others = [mk.new_account(f"delegate-{i}") for i in range(extra)]
            self.people = self.owners + self.others
            self.asset_of = {o.address: mk.add_asset(o, 100) for o in self.owners}

        def model_refusal(self, frm: str, to: str) -> str | None:
            if frm == to:
                return "DelegationRegistryInvalidDelegate"
            if self.graph.get(frm) == to:
                return "DelegationRegistryUnchanged"
            cursor, depth = to, 1
            while cursor in self.graph:
                cursor = self.graph[cursor]
                if cursor == frm:
                    return "DelegationRegistryCycle"
                depth += 1
                if depth > self.depth:
                    return "DelegationRegistryTooDeep"
            return None

        @rule(data=st.data())
        def delegate(self, data: st.DataObject) -> None:
            frm = data.draw(st.sampled_from(self.people))
            to = data.draw(st.sampled_from(self.people))
            expected = self.model_refusal(frm.address, to.address)
            try:
                self.mk.delegations.delegate(frm, to.address)
            except ContractRevertError as exc:
                assert exc.error_name == expected, (exc.error_name, expected)
                event(f"delegation refused: {expected}")
            else:
                assert expected is None, f"contract accepted a delegation refused by {expected}"
                self.graph[frm.address] = to.address

        @rule(data=st.data())
        def undelegate(self, data: st.DataObject) -> None:
            frm = data.draw(st.sampled_from(self.people))
            if frm.address not in self.graph:
                return
            self.mk.delegations.undelegate(frm)
            del self.graph[frm.address]

        @rule(data=st.data())
        def proposal_round(self, data: st.DataObject) -> None:
            mk = self.mk
            chosen = data.draw(st.lists(st.sampled_from(self.owners), min_size=1, unique=True))
            selection = sorted(
                (self.asset_of[o.address], data.draw(st.integers(1, 100), label="count"))
                for o in chosen
            )
            offer = data.draw(st.integers(1, 1000), label="offer")
            pid = mk.propose(selection, offer=offer)
            votes: dict[str, int] = {}
            for person in self.people:
                ask = data.draw(
                    st.one_of(st.none(), st.integers(0, 2000), st.just(REJECT_ASK)), label="ask"
                )
                if ask is not None:
                    mk.market.vote(person, pid, ask)
                    votes[person.address] = ask
            graph_at_deadline = dict(self.graph)
            mk.advance(VOTING_PERIOD + 1)
            # front-running: delegations changed after the deadline must not matter
            late = data.draw(
                st.lists(
                    st.tuples(st.sampled_from(self.people), st.sampled_from(self.people)),
                    max_size=3,
                )
            )
            for frm, to in late:
                if self.model_refusal(frm.address, to.address) is None:
                    mk.delegations.delegate(frm, to.address)
                    self.graph[frm.address] = to.address
            owner_of = {self.asset_of[o.address]: o.address for o in self.owners}
            weighted = [
                AssetVote(resolve_ask(owner_of[a], votes, graph_at_deadline.get, self.depth), c)
                for a, c in selection
            ]
            params = mk.market.parameters()
            expected = compute_outcome(
                weighted,
                offer=offer,
                quorum_bps=params.quorum_bps,
                min_samples=params.min_selection_samples,
            )
            done, _ = mk.market.tally(
                mk.roles["stranger"],
                pid,
                expected.clearing_price,
                [a for a, _ in selection],
                [c for _, c in selection],
            )
            assert done
            event(f"reference tally: {expected.status.name}, {len(self.graph)} delegations")
            record = mk.market.proposal(pid)
            assert (record.status, record.clearing_price, record.remaining_weight) == (
                expected.status,
                expected.clearing_price,
                expected.remaining_weight,
            )
            assert mk.market.excluded_positions(pid, len(selection)) == set(expected.excluded)

    run_state_machine_as_test(TallyMachine, settings=PROFILE)
