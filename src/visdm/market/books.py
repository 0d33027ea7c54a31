"""The market's books: does every token the market took in sit where the contracts say it must?

``TrainingMarket`` takes tokens in only by ``transferFrom`` of a consumer (the offer at
``propose``, the top-up at ``acceptCounter``, the training cost at ``startTraining``) and lets
them out only by ``reclaim`` and ``withdraw``; everything else is a move between a proposal's
escrow and an account's credit (``Credited`` events, and ``Claimed``, which credits an asset's
owner). So, per proposal ``p`` and per account ``a``::

    in(p)  = offer + top-up + training cost
    in(p)  = credited(p) + claimed(p) + reclaimed(p) + held(p)          (conservation)
    credit(a) = credited(a) + claimed(a) − withdrawn(a)
    token.balanceOf(market) = Σ held(p) + Σ credit(a)                  (nothing unaccounted)

where ``held(p)`` is what the contract still keeps for ``p`` by its status: the price while it
negotiates or waits to start, price + training cost in training, the unclaimed remainder (and
the training cost until the result is released) of a completed one, the training cost of a
missed WTP until released, nothing once failed, rejected or cancelled. ``credited(p)`` splits
into refunds (to the consumer), the node's fee, the scoring pool's fee and a sweep to the
treasury. Besides: no selection position is claimed twice; every proposal is final, or pending
with its deadline still ahead (a passed deadline means someone must still act — tally, reclaim,
release, sweep — and escrow would otherwise sit); and, with a ``ResultCourt``, the court holds
exactly its nodes' stakes and no stake is below what it has locked.

:func:`read_ledger` reads a :class:`Ledger` from the chain, :func:`audit` checks it (pure, so a
doctored ledger can be checked without a chain), :func:`check_books` does both and raises
:class:`BooksError` naming the first violated invariant. :func:`index_differences` compares an
index synced along the way with one rebuilt from block 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from visdm.chain.contracts import DevToken, ProposalRecord, ProposalStatus, TrainingMarket
from visdm.errors import ChainError

if TYPE_CHECKING:
    from visdm.chain._court import ResultCourt
    from visdm.index import Database

__all__ = [
    "BooksError",
    "BooksReport",
    "CourtLedger",
    "Ledger",
    "ProposalBooks",
    "ProposalFlows",
    "audit",
    "check_books",
    "index_differences",
    "read_ledger",
]

_S = ProposalStatus
# statuses whose escrow is the price alone, and whose deadline field says until when
_PRICE_HELD = {_S.VOTING, _S.APPROVED, _S.COUNTERED}
_CLOSED = {_S.FAILED, _S.REJECTED, _S.CANCELLED}


class BooksError(ChainError, AssertionError):
    """The market's books do not balance: an invariant named in the message is violated."""


@dataclass(frozen=True, slots=True)
class ProposalFlows:
    """Token movements of one proposal, summed from the market's events."""

    offer: int = 0
    top_up: int = 0
    training_cost: int = 0
    credited: int = 0
    credited_consumer: int = 0
    credited_node: int = 0
    scoring_fee: int = 0
    swept: int = 0
    claimed: int = 0
    reclaimed: int = 0
    #: (position, amount) of every ``Claimed`` event, in chain order
    claims: tuple[tuple[int, int], ...] = ()

    @property
    def escrowed(self) -> int:
        return self.offer + self.top_up + self.training_cost


@dataclass(frozen=True, slots=True)
class CourtLedger:
    """A ``ResultCourt``'s token balance and each bonded node's (stake, locked)."""

    balance: int
    stakes: Mapping[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Ledger:
    """Everything the books are checked against, read at one block."""

    block: int
    now: int
    market_balance: int
    proposals: Sequence[ProposalRecord]
    flows: Mapping[int, ProposalFlows]
    #: per account: (creditOf, Σ Credited, Σ Claimed as owner, Σ Withdrawn)
    accounts: Mapping[str, tuple[int, int, int, int]]
    court: CourtLedger | None = None


@dataclass(frozen=True, slots=True)
class ProposalBooks:
    """One proposal's line in the books."""

    proposal_id: int
    status: ProposalStatus
    escrowed: int
    paid: int  # to providers' owners, the node, the scoring pool and the treasury
    refunded: int
    held: int
    claimable: int
    final: bool
    #: the deadline a pending proposal waits for (``None`` once final)
    pending_until: int | None


@dataclass(frozen=True, slots=True)
class BooksReport:
    """The checked books: totals, one line per proposal and every violation found."""

    block: int
    market_balance: int
    escrowed: int
    paid: int
    refunded: int
    held: int
    claimable: int
    credits: int
    proposals: tuple[ProposalBooks, ...]
    violations: tuple[str, ...] = field(default=())

    @property
    def balanced(self) -> bool:
        return not self.violations

    @property
    def pending(self) -> int:
        return sum(1 for p in self.proposals if not p.final)

    def raise_if_unbalanced(self) -> None:
        """Raise :class:`BooksError` naming the first violation (and how many there are)."""
        if self.violations:
            more = len(self.violations) - 1
            tail = f" (and {more} more)" if more else ""
            raise BooksError(
                f"the market's books do not balance at block {self.block}: "
                f"{self.violations[0]}{tail}; `visdm status ID` shows a proposal's escrow and "
                "payouts, and the market's events say where each token went"
            )


def held_by(record: ProposalRecord) -> int:
    """What the market still keeps for ``record`` by its status (see the module docstring)."""
    s = record.status
    if s in _PRICE_HELD:
        return record.price
    if s is _S.TRAINING:
        return record.price + record.training_cost
    if s is _S.COMPLETED:
        return record.unclaimed + record.training_cost
    if s is _S.WTP_MISSED:
        return record.training_cost
    return 0


def _pending_until(record: ProposalRecord) -> int | None:
    """The deadline a non-final proposal waits for; ``None`` when it is final."""
    s = record.status
    if s is _S.VOTING:
        return record.voting_deadline
    if s in {_S.APPROVED, _S.COUNTERED, _S.TRAINING}:
        return record.deadline
    if s in {_S.COMPLETED, _S.WTP_MISSED} and record.deadline != 0:
        return record.deadline  # the challenge window: claims and the fee are not open yet
    if s is _S.COMPLETED and record.unclaimed > 0:
        return record.claim_deadline  # claims open; then the remainder is swept
    return None


def _audit_proposal(
    record: ProposalRecord, flows: ProposalFlows, now: int, out: list[str]
) -> ProposalBooks:
    pid, s = record.proposal_id, record.status
    held = held_by(record)
    paid = flows.claimed + flows.credited_node + flows.scoring_fee + flows.swept
    refunded = flows.credited_consumer + flows.reclaimed
    left = flows.credited + flows.claimed + flows.reclaimed + held
    if s is _S.NONE:
        out.append(f"proposal {pid} is counted by proposalCount but has no record")
    if flows.escrowed != left:
        out.append(
            f"proposal {pid} ({s.name}) escrowed {flows.escrowed} but credited "
            f"{flows.credited} + claimed {flows.claimed} + reclaimed {flows.reclaimed} + held "
            f"{held} = {left}"
        )
    if flows.credited != flows.credited_consumer + flows.credited_node + flows.scoring_fee + (
        flows.swept
    ):
        out.append(
            f"proposal {pid} credited {flows.credited} to accounts other than its consumer, "
            "node, scoring pool and treasury"
        )
    twice = [pos for pos, n in Counter(pos for pos, _ in flows.claims).items() if n > 1]
    if twice:
        out.append(f"proposal {pid} paid selection position {twice[0]} more than once")
    if flows.claims and s is not _S.COMPLETED:
        out.append(f"proposal {pid} paid claims but is {s.name}, not COMPLETED")
    claimable = record.unclaimed if s is _S.COMPLETED else 0
    if s is _S.COMPLETED:
        payable = record.price - flows.scoring_fee
        if flows.claimed + flows.swept + record.unclaimed != payable:
            out.append(
                f"proposal {pid} claimed {flows.claimed} + swept {flows.swept} + unclaimed "
                f"{record.unclaimed} ≠ price {record.price} − scoring fee {flows.scoring_fee}"
            )
    until = _pending_until(record)
    if until is not None and until < now:
        out.append(
            f"proposal {pid} is stuck in {s.name}: its deadline {until} passed (chain time "
            f"{now}) and no one has moved it on"
        )
    return ProposalBooks(
        proposal_id=pid,
        status=s,
        escrowed=flows.escrowed,
        paid=paid,
        refunded=refunded,
        held=held,
        claimable=claimable,
        final=until is None,
        pending_until=until,
    )


def audit(ledger: Ledger) -> BooksReport:
    """Check every invariant of the module docstring on ``ledger``; never raises for a
    violation — they are listed in the report, most basic first."""
    out: list[str] = []
    lines = [
        _audit_proposal(r, ledger.flows.get(r.proposal_id, ProposalFlows()), ledger.now, out)
        for r in ledger.proposals
    ]
    known = {r.proposal_id for r in ledger.proposals}
    strays = sorted(set(ledger.flows) - known)
    if strays:
        out.append(f"events name proposal {strays[0]}, which the market does not count")
    for account, (credit, credited, claimed, withdrawn) in sorted(ledger.accounts.items()):
        if credit != credited + claimed - withdrawn:
            out.append(
                f"account {account} holds a credit of {credit} but was credited {credited} + "
                f"claimed {claimed} − withdrew {withdrawn} = {credited + claimed - withdrawn}"
            )
    held = sum(p.held for p in lines)
    credits = sum(c for c, _, _, _ in ledger.accounts.values())
    if ledger.market_balance != held + credits:
        gap = ledger.market_balance - (held + credits)
        kind = "holds more than it owes" if gap > 0 else "owes more than it holds"
        out.append(
            f"the market {kind}: token balance {ledger.market_balance} ≠ held in proposals "
            f"{held} + credits {credits} (difference {gap})"
        )
    if ledger.court is not None:
        stakes = ledger.court.stakes
        total = sum(s for s, _ in stakes.values())
        if ledger.court.balance != total:
            out.append(
                f"the court's token balance {ledger.court.balance} ≠ the sum of its nodes' "
                f"stakes {total}"
            )
        for node, (stake, locked) in sorted(stakes.items()):
            if locked > stake:
                out.append(f"node {node} has {locked} locked but only {stake} staked")
    return BooksReport(
        block=ledger.block,
        market_balance=ledger.market_balance,
        escrowed=sum(p.escrowed for p in lines),
        paid=sum(p.paid for p in lines),
        refunded=sum(p.refunded for p in lines),
        held=held,
        claimable=sum(p.claimable for p in lines),
        credits=credits,
        proposals=tuple(lines),
        violations=tuple(out),
    )


def _flows(
    market: TrainingMarket, records: Sequence[ProposalRecord], from_block: int, to: int
) -> tuple[dict[int, ProposalFlows], dict[str, list[int]]]:
    """Per-proposal flows and per-account [credited, claimed, withdrawn] from the events."""
    by_id = {r.proposal_id: r for r in records}
    acc: dict[int, dict[str, int]] = {}
    claims: dict[int, list[tuple[int, int]]] = {}
    accounts: dict[str, list[int]] = {}

    def add(pid: int, key: str, amount: int) -> None:
        row = acc.setdefault(pid, {})
        row[key] = row.get(key, 0) + amount

    def logs(name: str) -> list[tuple[str, int, dict[str, Any]]]:
        found = market.logs(name, from_block=from_block, to_block=to)
        return [(e["transactionHash"].hex(), int(e["logIndex"]), dict(e["args"])) for e in found]

    def num(args: dict[str, Any], key: str) -> int:
        return int(args[key])

    for _, _, a in logs("ProposalCreated"):
        add(num(a, "proposalId"), "offer", num(a, "offer"))
    for _, _, a in logs("CounterAccepted"):
        pid = num(a, "proposalId")
        add(pid, "top_up", num(a, "price") - acc.get(pid, {}).get("offer", 0))
    for _, _, a in logs("TrainingStarted"):
        add(num(a, "proposalId"), "training_cost", num(a, "trainingCost"))
    # a fee or a sweep is emitted right before the Credited event that carries it
    carried: dict[tuple[str, int], str] = {}
    for name, key in (("ScoringFeeTaken", "scoring_fee"), ("UnclaimedSwept", "swept")):
        for tx, index, a in logs(name):
            add(num(a, "proposalId"), key, num(a, "amount"))
            carried[(tx, index + 1)] = key
    for tx, index, a in logs("Credited"):
        pid, who, amount = num(a, "proposalId"), str(a["account"]), num(a, "amount")
        add(pid, "credited", amount)
        accounts.setdefault(who, [0, 0, 0])[0] += amount
        record = by_id.get(pid)
        if (tx, index) in carried or record is None:
            continue
        if who == record.consumer:
            add(pid, "credited_consumer", amount)
        elif who == record.node:
            add(pid, "credited_node", amount)
    for _, _, a in logs("Claimed"):
        pid, amount = num(a, "proposalId"), num(a, "amount")
        add(pid, "claimed", amount)
        claims.setdefault(pid, []).append((num(a, "position"), amount))
        accounts.setdefault(str(a["owner"]), [0, 0, 0])[1] += amount
    for _, _, a in logs("Reclaimed"):
        add(num(a, "proposalId"), "reclaimed", num(a, "amount"))
    for _, _, a in logs("Withdrawn"):
        accounts.setdefault(str(a["account"]), [0, 0, 0])[2] += num(a, "amount")
    flows = {
        pid: ProposalFlows(**row, claims=tuple(claims.get(pid, ()))) for pid, row in acc.items()
    }
    return flows, accounts


def read_ledger(
    market: TrainingMarket,
    token: DevToken,
    *,
    court: ResultCourt | None = None,
    from_block: int = 0,
    attempts: int = 3,
) -> Ledger:
    """Read the books at one block: proposals, balances, credits and the events since
    ``from_block`` (the market's deployment block or earlier). The chain should be quiet while
    this reads; when a block is mined meanwhile the read starts again, up to ``attempts``."""
    client = market.client
    for _ in range(attempts):
        block = int(client.rpc(lambda: client.w3.eth.block_number))
        now = client.latest_timestamp()
        count = market.proposal_count()
        records = [market.proposal(pid) for pid in range(1, count + 1)]
        flows, events = _flows(market, records, from_block, block)
        accounts = {
            who: (market.credit_of(who), c, k, w) for who, (c, k, w) in sorted(events.items())
        }
        balance = token.balance_of(market.address)
        court_ledger = None
        if court is not None:
            stakes = {str(n): court.stake_of(n) for n in court.bonded_nodes()}
            court_ledger = CourtLedger(balance=token.balance_of(court.address), stakes=stakes)
        if int(client.rpc(lambda: client.w3.eth.block_number)) == block:
            return Ledger(
                block=block,
                now=now,
                market_balance=balance,
                proposals=records,
                flows=flows,
                accounts=accounts,
                court=court_ledger,
            )
    raise BooksError(
        f"the chain at {client.rpc_url} kept mining while the books were read ({attempts} "
        "tries): check the books once the market is quiet"
    )


def check_books(
    market: TrainingMarket,
    token: DevToken,
    *,
    court: ResultCourt | None = None,
    from_block: int = 0,
) -> BooksReport:
    """Read and audit the books; raise :class:`BooksError` naming the first violation."""
    report = audit(read_ledger(market, token, court=court, from_block=from_block))
    report.raise_if_unbalanced()
    return report


def index_differences(
    synced: Database, fresh: Database, *, skip: Sequence[str] = ("index_meta",), limit: int = 5
) -> list[str]:
    """Where an index synced along the way differs from one rebuilt from block 0 (both synced
    to the same head): up to ``limit`` lines, empty when every table is equal. ``index_meta``
    (cursor and identity) is skipped by default."""
    from visdm.index import TABLES

    out: list[str] = []
    for table in TABLES:
        if table in skip:
            continue
        ours = Counter(tuple(r) for r in synced.query(f"SELECT * FROM {table}"))  # noqa: S608
        theirs = Counter(tuple(r) for r in fresh.query(f"SELECT * FROM {table}"))  # noqa: S608
        for row in sorted((ours - theirs).keys(), key=repr)[:limit]:
            out.append(f"table {table}: row {row!r} only in the incrementally synced index")
        for row in sorted((theirs - ours).keys(), key=repr)[:limit]:
            out.append(f"table {table}: row {row!r} only in the index rebuilt from block 0")
        if len(out) >= limit:
            return out[:limit]
    return out
