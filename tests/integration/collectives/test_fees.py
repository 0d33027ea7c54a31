"""The steward's fee: capped on chain, changed only with notice, charged on proven payouts
against members' deposits, once per payout, only where the collective priced the asset."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.collectives.conftest import cast, new_collective, new_member, reverts
from tests.integration.market.conftest import Market
from visdm import collectives
from visdm.chain.contracts import REJECT_ASK
from visdm.collectives import Collective, FeeCharge
from visdm.errors import InvalidInputError
from visdm.market import build_payout_tree
from visdm.merkle import StandardMerkleTree

pytestmark = pytest.mark.integration


def test_creation_refuses_bad_terms(mk: Market) -> None:
    chain, dep, creator = mk.chain, mk.deployment, mk.roles["deployer"]
    made = collectives.factory(chain, dep)

    def create(**kw: object) -> None:
        collectives.create(chain, dep, creator, **{"name": "guild", **kw})  # type: ignore[arg-type]

    with pytest.raises(InvalidInputError, match=r"outside 0\.\.1000"):
        create(fee_bps=1001)
    with pytest.raises(InvalidInputError, match="1 to 32 bytes"):
        create(name="x" * 33)
    with pytest.raises(InvalidInputError, match="1 to 32 bytes"):
        create(name="  ")
    with pytest.raises(InvalidInputError, match="do not print"):
        create(name="a\nb")
    with pytest.raises(InvalidInputError, match="30 days"):
        create(policy_delay=30 * 86400 + 1)
    with pytest.raises(InvalidInputError, match="zero address"):
        create(steward="0x" + "00" * 20)
    with reverts("CollectiveFeeAboveCap"):
        made.create(creator, name="guild", steward=creator.address, fee_bps=1001, policy_delay=0)
    with reverts("CollectiveInvalidName"):
        made.create(creator, name="", steward=creator.address, fee_bps=0, policy_delay=0)
    with reverts("CollectivePolicyDelayTooLong"):
        made.create(creator, name="guild", steward=creator.address, fee_bps=0, policy_delay=2**31)
    with reverts("CollectiveInvalidSteward"):
        made.create(creator, name="guild", steward="0x" + "00" * 20, fee_bps=0, policy_delay=0)
    created = collectives.create(chain, dep, creator, name="guild", fee_bps=1000)
    assert made.is_collective(created.address) and made.by_name("guild") == created.address
    with pytest.raises(InvalidInputError, match="is taken by"):
        create()
    with reverts("CollectiveFactoryNameTaken"):
        made.create(creator, name="guild", steward=creator.address, fee_bps=0, policy_delay=0)
    rows = collectives.list_collectives(chain, dep)
    assert [(r.name, r.fee_bps, r.members) for r in rows] == [("guild", 1000, 0)]


def test_only_the_steward_changes_the_fee_within_the_cap_and_with_notice(mk: Market) -> None:
    c = new_collective(mk, fee_bps=100, delay=3600)
    steward, stranger = mk.roles["deployer"], mk.roles["stranger"]
    with reverts("CollectiveNotSteward"):
        c.set_fee(stranger, 200)
    with reverts("CollectiveFeeAboveCap"):
        c.set_fee(steward, collectives.MAX_FEE_BPS + 1)
    with pytest.raises(InvalidInputError, match="not the steward"):
        collectives.set_fee(mk.chain, mk.deployment, stranger, c.address, fee_bps=200)
    receipt = collectives.set_fee(mk.chain, mk.deployment, steward, c.address, fee_bps=1000)
    now = mk.now()
    assert receipt.effective_at == now + 3600 and c.latest_fee() == (1000, now + 3600)
    assert c.fee_bps() == 100 and c.fee_at(now + 3599) == 100 and c.fee_at(now + 3600) == 1000
    mk.advance(3600)
    assert c.fee_bps() == 1000
    with reverts("CollectiveNotSteward"):
        c.set_steward(stranger, stranger.address)
    with reverts("CollectiveInvalidSteward"):
        c.set_steward(steward, "0x" + "00" * 20)
    c.set_steward(steward, stranger.address)
    assert c.steward() == stranger.address


class Round:
    """A completed proposal that the collective voted on, with its payout tree."""

    def __init__(
        self,
        mk: Market,
        c: Collective,
        owners: list[LocalAccount],
        assets: list[int],
        amounts: list[int],
        *,
        extra: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        selection = [(a, 100) for a in assets]
        self.pid = mk.propose(selection, offer=sum(amounts))
        cast(mk, c, self.pid)
        self.before_tally(mk)
        mk.advance(3601)
        mk.tally(self.pid, selection)
        paid = dict(zip(assets, amounts, strict=True))
        positions = {a: i for i, a in enumerate(assets)}
        for asset_id, (position, amount) in (extra or {}).items():
            paid[asset_id], positions[asset_id] = amount, position
        mk.start(self.pid)
        self.tree: StandardMerkleTree = build_payout_tree(paid, positions)
        mk.submit(self.pid, payout_root=self.tree.root)
        self.owners = owners

    def before_tally(self, mk: Market) -> None:
        """Votes cast after the collective's, before the deadline (none by default)."""

    def leaf(self, asset_id: int) -> FeeCharge:
        for index, (position, asset, amount) in enumerate(self.tree.values):
            if int(asset) == asset_id:
                proof = tuple(self.tree.proof(index))
                return FeeCharge(self.pid, int(position), asset_id, int(amount), proof)
        raise KeyError(asset_id)


def test_fees_are_charged_once_on_proven_payouts_of_members_the_collective_priced(
    mk: Market,
) -> None:
    c = new_collective(mk, fee_bps=500)
    ada, a = new_member(mk, c, floor=1, deposit=1000)
    bob, b = new_member(mk, c, floor=1, deposit=10)  # too little for his fee
    carl, d = new_member(mk, c, floor=1, deposit=1000)  # votes himself
    dave = mk.new_provider()  # delegates without joining: no deposit, no fee
    e = mk.add_asset(dave, 100)
    mk.delegations.delegate(dave, c.address)

    class CarlVotes(Round):
        def before_tally(self, mk: Market) -> None:
            mk.market.vote(carl, self.pid, 0)

    r = CarlVotes(mk, c, [ada, bob, carl, dave], [a, b, d, e], [4000, 3000, 2000, 1000])
    stranger = mk.roles["stranger"]
    report = collectives.charge_fees(
        mk.chain, mk.deployment, stranger, c.address, proposal_id=r.pid, tree=r.tree
    )
    by_asset = {row.asset_id: (row.fee_wei, row.status) for row in report.rows}
    assert by_asset == {
        a: (200, "charged"),
        b: (150, "charged"),
        d: (0, "its owner voted itself"),
        e: (0, "its owner was not a member at the deadline"),
    }
    assert report.charged_wei == 350 and len(report.transactions) == 1
    assert c.member(ada.address).deposit == 800
    # bob's deposit covered 10 of 150: he owes the rest and his vote stops counting
    record = c.member(bob.address)
    assert (record.deposit, record.arrears, record.weight) == (0, 140, 0)
    assert c.policy().weight == 200  # ada and carl
    assert c.steward_balance() == 210
    with pytest.raises(InvalidInputError, match="owes the collective 140 wei"):
        collectives.vote_floor(mk.chain, mk.deployment, bob, c.address, floor=5)
    with reverts("CollectiveInArrears"):
        c.vote_floor(bob, 5)
    # charging again finds nothing due; the contract refuses the same leaf
    again = collectives.charge_fees(
        mk.chain, mk.deployment, stranger, c.address, proposal_id=r.pid, tree=r.tree
    )
    assert again.transactions == () and {row.status for row in again.rows} >= {"already charged"}
    with reverts("CollectiveAlreadyCharged"):
        c.charge_fees(stranger, [r.leaf(a)])
    with reverts("CollectiveOwnVote"):
        c.charge_fees(stranger, [r.leaf(d)])
    with reverts("CollectiveNotMemberThen"):
        c.charge_fees(stranger, [r.leaf(e)])
    forged = r.leaf(a)
    with reverts("CollectiveInvalidProof"):
        c.charge_fees(stranger, [FeeCharge(r.pid, forged.position, a, 40_000, forged.proof)])
    # anyone may pay bob's arrears; then he may list his assets again and count after it
    collectives.deposit(
        mk.chain, mk.deployment, stranger, c.address, amount_wei=500, member=bob.address
    )
    record = c.member(bob.address)
    assert (record.arrears, record.deposit) == (0, 360)
    assert c.steward_balance() == 350
    collectives.set_assets(mk.chain, mk.deployment, bob, c.address)
    assert c.policy().weight == 300
    # the steward withdraws the fees; nobody else can
    with reverts("CollectiveNotSteward"):
        c.withdraw_fees(stranger)
    steward = mk.roles["deployer"]
    before = mk.token.balance_of(steward.address)
    done = collectives.withdraw(mk.chain, mk.deployment, steward, c.address)
    assert done.fees_wei == 350 and mk.token.balance_of(steward.address) == before + 350
    with reverts("CollectiveNothingToWithdraw"):
        c.withdraw_fees(steward)
    stats = collectives.collective_stats(
        mk.chain, mk.deployment, c, selected_samples=lambda _pid: {a: 100, b: 100, d: 100, e: 100}
    )
    assert (stats.proposals_voted, stats.accepted, stats.acceptance_rate) == (1, 1, 1.0)
    assert stats.fees_charged_wei == 210
    assert stats.outcomes == [{"outcome": "approved", "proposals": 1}]
    assert stats.earnings_wei == 0  # nobody has claimed yet
    for asset_id in (a, b, d, e):
        mk.market.claim(stranger, mk.claim(r.pid, r.tree, asset_id, [a, b, d, e]))
    stats = collectives.collective_stats(
        mk.chain, mk.deployment, c, selected_samples=lambda _pid: {a: 100, b: 100, d: 100, e: 100}
    )
    # ada, bob and dave were priced by the collective (carl voted himself): 8,000 over 300
    assert (stats.earnings_wei, stats.priced_samples, stats.earnings_per_sample_wei) == (
        8000,
        300,
        26,
    )


def test_charges_refuse_leaves_the_market_would_not_pay(mk: Market) -> None:
    c = new_collective(mk, fee_bps=100)
    ada, a = new_member(mk, c, floor=1, deposit=1000)
    eve, e = new_member(mk, c, floor=1, deposit=1000)
    outsider = mk.new_provider()
    x = mk.add_asset(outsider, 100)

    class EveRejects(Round):
        def before_tally(self, mk: Market) -> None:
            mk.market.vote(eve, self.pid, REJECT_ASK)

    # a dishonest node pays eve although she left the round, and an asset never selected
    r = EveRejects(mk, c, [ada, eve], [a, e], [4000, 1000], extra={x: (7, 5)})
    stranger = mk.roles["stranger"]
    with reverts("CollectiveLeftRound"):
        c.charge_fees(stranger, [r.leaf(e)])
    with reverts("CollectiveNotSelected"):
        c.charge_fees(stranger, [r.leaf(x)])
    unvoted = mk.propose([(a, 100)], offer=100)
    with reverts("CollectiveNoPayouts"):
        c.charge_fees(stranger, [FeeCharge(unvoted, 0, a, 1, ())])
    with pytest.raises(InvalidInputError, match="not completed"):
        collectives.charge_fees(
            mk.chain, mk.deployment, stranger, c.address, proposal_id=unvoted, tree=r.tree
        )
    other = mk.propose([(a, 100)], offer=100)
    with pytest.raises(InvalidInputError, match="does not match"):
        collectives.charge_fees(
            mk.chain,
            mk.deployment,
            stranger,
            c.address,
            proposal_id=r.pid,
            tree=build_payout_tree({a: 1}, {a: 0}),
        )
    mk.market.vote(ada, other, 0)  # the collective stays out of this one
    mk.advance(3601)
    mk.tally(other, [(a, 100)])
    tree = mk.payout(other, {a: 100}, [a])
    with reverts("CollectiveDidNotVote"):
        c.charge_fees(stranger, [FeeCharge(other, 0, a, 100, tuple(tree.proof(0)))])
    report = collectives.charge_fees(
        mk.chain, mk.deployment, stranger, c.address, proposal_id=other, tree=tree
    )
    assert [row.status for row in report.rows] == ["the collective did not vote on this proposal"]


def test_deposits_refuse_bad_amounts_and_strangers(mk: Market) -> None:
    c = new_collective(mk)
    ada, _ = new_member(mk, c)
    stranger = mk.roles["stranger"]
    with reverts("CollectiveInvalidAmount"):
        c.deposit(ada, ada.address, 0)
    with reverts("CollectiveInvalidAmount"):
        c.deposit(ada, ada.address, 2**128)
    with reverts("CollectiveNotMember"):
        c.deposit(ada, stranger.address, 1)
    with pytest.raises(InvalidInputError, match="between 1 and 2"):
        collectives.deposit(mk.chain, mk.deployment, ada, c.address, amount_wei=0)
    with pytest.raises(InvalidInputError, match="never joined"):
        collectives.deposit(
            mk.chain, mk.deployment, ada, c.address, amount_wei=1, member=stranger.address
        )
    with pytest.raises(InvalidInputError, match="there is nothing to withdraw"):
        collectives.withdraw(mk.chain, mk.deployment, ada, c.address)
    collectives.deposit(mk.chain, mk.deployment, ada, c.address, amount_wei=7)
    with pytest.raises(InvalidInputError, match="stays while it is a member"):
        collectives.withdraw(mk.chain, mk.deployment, ada, c.address)
    with reverts("CollectiveNotMember"):
        c.withdraw_deposit(ada)
