"""The steward's fee: scheduling it, members' deposits, charging proven payouts, withdrawals.

The market pays each asset's owner directly, so a collective cannot withhold its fee from a
payout; it charges the fee against the deposit members keep with it, on payout leaves proven
against the proposal's payout root (``docs/collectives.md`` says why and what that covers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from visdm.chain.client import ChainClient, TxResult
from visdm.chain.contracts import DelegationRegistry, ProposalStatus, TrainingMarket
from visdm.chain.deployment import Deployment
from visdm.errors import InvalidInputError
from visdm.merkle import StandardMerkleTree
from visdm.types import Address

from ._contracts import Collective, FeeCharge
from ._policy import fee_of
from ._sdk import MemberReceipt, _check_fee, _pay_deposit, resolve

__all__ = [
    "ChargeReport",
    "ChargeRow",
    "Withdrawal",
    "charge_fees",
    "deposit",
    "set_fee",
    "withdraw",
]


@dataclass(frozen=True, slots=True)
class ChargeRow:
    """One payout leaf: the fee charged on it, or why none was."""

    position: int
    asset_id: int
    member: Address
    amount_wei: int
    fee_wei: int
    status: str


@dataclass(frozen=True, slots=True)
class ChargeReport:
    """The fee charged on a completed proposal's payouts."""

    collective: Address
    proposal_id: int
    fee_bps: int
    charged_wei: int
    rows: tuple[ChargeRow, ...]
    transactions: tuple[TxResult, ...]


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """Tokens withdrawn from a collective: a former member's deposit or the steward's fees."""

    collective: Address
    deposit_wei: int
    fees_wei: int
    transactions: tuple[TxResult, ...] = field(default=())


def set_fee(
    client: ChainClient, deployment: Deployment, steward: LocalAccount, ref: str, *, fee_bps: int
) -> MemberReceipt:
    """The steward schedules a new fee; it takes effect after the policy delay."""
    collective = resolve(client, deployment, ref)
    _check_fee(fee_bps)
    if collective.steward() != Address(steward.address):
        raise InvalidInputError(
            f"{steward.address} is not the steward of {collective.name()} "
            f"({collective.steward()}): only the steward sets the fee"
        )
    client.fund_from_dev_faucet(steward.address)
    tx = collective.set_fee(steward, fee_bps)
    _, effective = collective.latest_fee()
    return MemberReceipt(
        collective.address,
        Address(steward.address),
        0,
        None,
        effective,
        (tx,),
        (f"the fee becomes {fee_bps} bps at unix {effective}",),
    )


def deposit(
    client: ChainClient,
    deployment: Deployment,
    payer: LocalAccount,
    ref: str,
    *,
    amount_wei: int,
    member: str | None = None,
) -> MemberReceipt:
    """Add ``amount_wei`` to ``member``'s fee deposit (default: the payer's own); arrears are
    paid first and lift a suspension."""
    collective = resolve(client, deployment, ref)
    who = Address(to_checksum_address(member) if member else payer.address)
    if not 0 < amount_wei < 2**128:
        raise InvalidInputError(f"deposit {amount_wei} wei must be between 1 and 2^128 - 1")
    record = collective.member(who)
    if record.joined_at == 0:
        raise InvalidInputError(f"{who} never joined {collective.name()}: join first")
    client.fund_from_dev_faucet(payer.address)
    sent = _pay_deposit(client, deployment, payer, collective, member=who, amount=amount_wei)
    after = collective.member(who)
    notes = (f"{who} still owes {after.arrears} wei",) if after.arrears else ()
    return MemberReceipt(
        collective.address, who, after.weight, after.floor, None, tuple(sent), notes
    )


def charge_fees(
    client: ChainClient,
    deployment: Deployment,
    sender: LocalAccount,
    ref: str,
    *,
    proposal_id: int,
    tree: StandardMerkleTree,
) -> ChargeReport:
    """Charge the steward's fee on ``proposal_id``'s payouts to members the collective priced
    for; ``tree`` is the proposal's published payout tree (checked against the chain). Anyone
    may run it; each leaf is charged once."""
    collective = resolve(client, deployment, ref)
    market = deployment.training_market(client)
    record = market.proposal(proposal_id)
    if record.status != ProposalStatus.COMPLETED:
        raise InvalidInputError(
            f"proposal {proposal_id} is {record.status.name.lower()}, not completed: only "
            "payouts carry a fee"
        )
    if tree.root != record.payout_root:
        raise InvalidInputError(
            f"the payout tree given does not match proposal {proposal_id}'s payout root"
        )
    deadline = record.voting_deadline
    bps = collective.fee_at(deadline)
    voted = collective.cast_of(proposal_id) is not None
    excluded = market.excluded_positions(proposal_id, record.asset_count)
    registry = deployment.asset_registry(client)
    delegations = deployment.delegation_registry(client)
    rows: list[ChargeRow] = []
    charges: list[FeeCharge] = []
    for index, value in enumerate(tree.values):
        position, asset_id, amount = (int(v) for v in value)
        owner = registry.asset(asset_id).owner
        status = _charge_refusal(
            collective,
            market,
            delegations,
            proposal_id=proposal_id,
            deadline=deadline,
            position=position,
            owner=owner,
            voted=voted,
            excluded=position in excluded,
        )
        fee = fee_of(amount, bps) if status is None else 0
        rows.append(ChargeRow(position, asset_id, owner, amount, fee, status or "charged"))
        if status is None:
            proof = tuple(tree.proof(index))
            charges.append(FeeCharge(proposal_id, position, asset_id, amount, proof))
    sent: tuple[TxResult, ...] = ()
    if charges:
        client.fund_from_dev_faucet(sender.address)
        sent = (collective.charge_fees(sender, charges),)
    total = sum(r.fee_wei for r in rows)
    return ChargeReport(collective.address, proposal_id, bps, total, tuple(rows), sent)


def _charge_refusal(
    collective: Collective,
    market: TrainingMarket,
    delegations: DelegationRegistry,
    *,
    proposal_id: int,
    deadline: int,
    position: int,
    owner: Address,
    voted: bool,
    excluded: bool,
) -> str | None:
    """Why no fee is due on a leaf, mirroring ``Collective._charge`` (``None``: it is due)."""
    if not voted:
        return "the collective did not vote on this proposal"
    if excluded:
        return "left the round"
    if collective.is_charged(proposal_id, position):
        return "already charged"
    if market.vote_of(proposal_id, owner) is not None:
        return "its owner voted itself"
    if delegations.delegate_at(owner, deadline) != collective.address:
        return "its owner did not delegate to the collective at the deadline"
    m = collective.member(owner)
    if m.joined_at == 0 or m.joined_at > deadline or (m.left_at and m.left_at < deadline):
        return "its owner was not a member at the deadline"
    return None


def withdraw(
    client: ChainClient, deployment: Deployment, account: LocalAccount, ref: str
) -> Withdrawal:
    """Withdraw what the account can take out: its deposit once it left and its exit lock
    passed, and, for the steward, the fees charged."""
    collective = resolve(client, deployment, ref)
    me = account.address
    record = collective.member(me)
    now = client.latest_timestamp()
    is_steward = collective.steward() == Address(me)
    fees = collective.steward_balance() if is_steward else 0
    own = record.deposit if record.left_at and now >= record.unlock_at else 0
    if not fees and not own:
        if record.deposit and record.is_member:
            why = "a member's deposit stays while it is a member: leave first"
        elif record.deposit:
            why = f"your deposit is locked until unix {record.unlock_at}"
        else:
            why = "there is nothing to withdraw"
        raise InvalidInputError(f"nothing to withdraw from {collective.name()}: {why}")
    client.fund_from_dev_faucet(me)
    sent: list[TxResult] = []
    if own:
        sent.append(collective.withdraw_deposit(account))
    if fees:
        sent.append(collective.withdraw_fees(account))
    return Withdrawal(collective.address, own, fees, tuple(sent))
