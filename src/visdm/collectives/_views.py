"""What a collective looks like from outside: its policy, its members and its statistics.

Statistics come from events, so anyone can recompute them:

* **proposals voted**: distinct proposals in the collective's ``CollectiveVoteCast`` events;
* **acceptance rate**: the share of them whose last cast accepted (the offer per selected
  sample met the floor);
* **outcomes**: how the market's tallies (``ProposalTallied``) ended those proposals;
* **earnings**: what the market paid (``Claimed``) for assets whose vote the collective cast —
  the owner delegated to it at the voting deadline and did not vote itself — and, given each
  proposal's selection, per selected sample of those assets;
* **fees**: what ``FeeCharged`` took from members' deposits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.errors import VisdmError
from visdm.types import Address

from ._contracts import Collective
from ._sdk import factory, members, resolve

__all__ = [
    "CollectiveStats",
    "CollectiveSummary",
    "CollectiveView",
    "SelectedSamples",
    "collective_stats",
    "list_collectives",
    "show",
]

#: proposal id → {asset id: samples selected from it}, from the proposal's document
SelectedSamples = Callable[[int], Mapping[int, int]]


@dataclass(frozen=True, slots=True)
class CollectiveStats:
    """How a collective has voted and what its members earned through it."""

    proposals_voted: int
    accepted: int
    acceptance_rate: float | None
    outcomes: list[dict[str, Any]]
    earnings_wei: int
    priced_samples: int | None
    earnings_per_sample_wei: int | None
    fees_charged_wei: int


@dataclass(frozen=True, slots=True)
class CollectiveSummary:
    """One row of ``visdm collective list``."""

    address: Address
    name: str
    steward: Address
    members: int
    fee_bps: int
    policy_floor_wei: int | None
    policy_weight: int
    proposals_voted: int
    acceptance_rate: float | None


@dataclass(frozen=True, slots=True)
class CollectiveView:
    """Everything ``visdm collective show`` prints."""

    address: Address
    name: str
    steward: Address
    steward_balance_wei: int
    fee_bps: int
    scheduled_fee_bps: int
    scheduled_fee_at: int
    policy_delay: int
    policy_floor_wei: int | None
    policy_weight: int
    levels: list[dict[str, Any]]
    members: list[dict[str, Any]]
    stats: CollectiveStats
    notes: list[str] = field(default_factory=list)


def _last_casts(collective: Collective) -> dict[int, int]:
    """Proposal id → the collective's last ask on it."""
    last: dict[int, tuple[tuple[int, int], int]] = {}
    for e in collective.logs("CollectiveVoteCast"):
        pid, order = int(e["args"]["proposalId"]), (e["blockNumber"], e["logIndex"])
        if pid not in last or last[pid][0] < order:
            last[pid] = (order, int(e["args"]["ask"]))
    return {pid: ask for pid, (_, ask) in last.items()}


def collective_stats(
    client: ChainClient,
    deployment: Deployment,
    collective: Collective,
    *,
    selected_samples: SelectedSamples | None = None,
    earnings: bool = True,
) -> CollectiveStats:
    """The collective's statistics from events; ``selected_samples`` gives earnings per sample
    (without it, or when a proposal's document cannot be read, only the total is known);
    ``earnings=False`` skips the payouts."""
    casts = _last_casts(collective)
    voted = sorted(casts)
    accepted = sum(1 for ask in casts.values() if ask == 0)
    market = deployment.training_market(client)
    outcomes: Counter[str] = Counter()
    total = 0
    samples: int | None = 0 if selected_samples is not None else None
    if voted:
        for e in market.logs("ProposalTallied", where={"proposalId": voted}):
            outcomes[ProposalStatus(int(e["args"]["outcome"])).name.lower()] += 1
    if voted and earnings:
        delegations = deployment.delegation_registry(client)
        deadlines: dict[int, int] = {}
        selections: dict[int, Mapping[int, int]] = {}
        for e in market.logs("Claimed", where={"proposalId": voted}):
            pid, owner = int(e["args"]["proposalId"]), str(e["args"]["owner"])
            if pid not in deadlines:
                deadlines[pid] = market.proposal(pid).voting_deadline
            if market.vote_of(pid, owner) is not None:
                continue  # its owner's own vote priced it
            if delegations.delegate_at(owner, deadlines[pid]) != collective.address:
                continue
            total += int(e["args"]["amount"])
            if selected_samples is not None and samples is not None:
                try:
                    if pid not in selections:
                        selections[pid] = selected_samples(pid)
                except VisdmError:
                    samples = None  # a document that cannot be read: per sample is unknown
                    continue
                samples += int(selections[pid].get(int(e["args"]["assetId"]), 0))
    fees = sum(int(e["args"]["paid"]) for e in collective.logs("FeeCharged"))
    return CollectiveStats(
        proposals_voted=len(voted),
        accepted=accepted,
        acceptance_rate=round(accepted / len(voted), 4) if voted else None,
        outcomes=[{"outcome": k, "proposals": v} for k, v in sorted(outcomes.items())],
        earnings_wei=total,
        priced_samples=samples,
        earnings_per_sample_wei=total // samples if samples else None,
        fees_charged_wei=fees,
    )


def show(
    client: ChainClient,
    deployment: Deployment,
    ref: str,
    *,
    selected_samples: SelectedSamples | None = None,
) -> CollectiveView:
    """A collective's terms, policy, members (with what waits for the delay) and statistics."""
    collective = resolve(client, deployment, ref)
    policy = collective.policy()
    delay = collective.policy_delay()
    now = client.latest_timestamp()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for m in members(collective):
        if not m.is_member and not m.deposit:
            continue
        counts_from = m.pending_since + delay if m.has_pending else None
        if counts_from is not None and counts_from <= now:
            notes.append(
                f"{m.address}'s vote is ready to count: `visdm collective policy --settle`"
            )
        status = "member" if m.is_member else "left"
        if m.arrears:
            status = "suspended (fees owed)"
        rows.append(
            {
                "member": m.address,
                "status": status,
                "weight": m.weight,
                "floor_wei": m.floor if m.weight else None,
                "pending_weight": m.pending_weight if m.has_pending else None,
                "pending_floor_wei": m.pending_floor if m.has_pending else None,
                "counts_from": counts_from,
                "deposit_wei": m.deposit,
                "arrears_wei": m.arrears,
                "unlock_at": m.unlock_at or None,
            }
        )
    bps, at = collective.latest_fee()
    return CollectiveView(
        address=collective.address,
        name=collective.name(),
        steward=collective.steward(),
        steward_balance_wei=collective.steward_balance(),
        fee_bps=collective.fee_bps(),
        scheduled_fee_bps=bps,
        scheduled_fee_at=at,
        policy_delay=delay,
        policy_floor_wei=policy.floor,
        policy_weight=policy.weight,
        levels=[{"floor_wei": f, "weight": w} for f, w in policy.levels],
        members=rows,
        stats=collective_stats(client, deployment, collective, selected_samples=selected_samples),
        notes=notes,
    )


def list_collectives(client: ChainClient, deployment: Deployment) -> list[CollectiveSummary]:
    """Every collective of the marketplace, in creation order."""
    out: list[CollectiveSummary] = []
    for address in factory(client, deployment).collectives():
        c = Collective(client, address)
        policy = c.policy()
        stats = collective_stats(client, deployment, c, earnings=False)
        out.append(
            CollectiveSummary(
                address=address,
                name=c.name(),
                steward=c.steward(),
                members=c.member_count(),
                fee_bps=c.fee_bps(),
                policy_floor_wei=policy.floor,
                policy_weight=policy.weight,
                proposals_voted=stats.proposals_voted,
                acceptance_rate=stats.acceptance_rate,
            )
        )
    return out
