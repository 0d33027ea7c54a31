"""Collectives: data owners who vote together on a standing price policy (paper 4.1 (2)).

A collective is a ``Collective`` contract created by the marketplace's ``CollectiveFactory``.
Members delegate their market vote to it and vote a floor price per sample, weighted by their
attested samples; anyone can make it vote on a proposal from the weighted median floor, so
pricing no longer waits for each owner. A member's own vote still overrides it for its own
assets, and a capped steward fee is charged on payouts against members' deposits. See
``docs/collectives.md``.

Depends only on :mod:`visdm.chain` and below: every call takes a client, the deployment and,
for writes, the acting account.
"""

from ._contracts import (
    MAX_FEE_BPS,
    MAX_FLOOR,
    MAX_MEMBER_ASSETS,
    MAX_POLICY_DELAY,
    Collective,
    CollectiveFactory,
    FeeCharge,
    MemberRecord,
    Policy,
)
from ._fees import ChargeReport, ChargeRow, Withdrawal, charge_fees, deposit, set_fee, withdraw
from ._policy import fee_of, policy_ask, weighted_lower_median
from ._sdk import (
    DEFAULT_POLICY_DELAY,
    CastReceipt,
    Created,
    MemberReceipt,
    SettleReceipt,
    cast_vote,
    create,
    factory,
    join,
    leave,
    listed_assets,
    members,
    resolve,
    set_assets,
    settle,
    vote_floor,
)
from ._views import (
    CollectiveStats,
    CollectiveSummary,
    CollectiveView,
    SelectedSamples,
    collective_stats,
    list_collectives,
    show,
)

__all__ = [
    "DEFAULT_POLICY_DELAY",
    "MAX_FEE_BPS",
    "MAX_FLOOR",
    "MAX_MEMBER_ASSETS",
    "MAX_POLICY_DELAY",
    "CastReceipt",
    "ChargeReport",
    "ChargeRow",
    "Collective",
    "CollectiveFactory",
    "CollectiveStats",
    "CollectiveSummary",
    "CollectiveView",
    "Created",
    "FeeCharge",
    "MemberReceipt",
    "MemberRecord",
    "Policy",
    "SelectedSamples",
    "SettleReceipt",
    "Withdrawal",
    "cast_vote",
    "charge_fees",
    "collective_stats",
    "create",
    "deposit",
    "factory",
    "fee_of",
    "join",
    "leave",
    "list_collectives",
    "listed_assets",
    "members",
    "policy_ask",
    "resolve",
    "set_assets",
    "set_fee",
    "settle",
    "show",
    "vote_floor",
    "weighted_lower_median",
    "withdraw",
]
