"""Where a proposal stands on the chain's clock, and what each party can do next.

The workflows call these before sending a transaction the market would refuse (a vote after
the deadline, a tally before it, a reclaim too early), so the refusal names the deadline and
the time left instead of a bare revert; ``status`` shows :func:`next_step` for every state, a
refund waiting in the consumer's credit included.

Where the escrow can still wait (the market's default periods; governance may change them):
a countered proposal the consumer neither accepts nor wants waits out the reply period (3 days)
before ``reclaim``; an approved proposal whose node never quotes waits out the start period
(7 days); training whose node neither posts nor abandons waits out the quote's duration (at
most the market's maxTrainingPeriod, 7 days). The consumer's client checks at ``propose`` what
would make the node refuse (see :mod:`visdm.proposals._feasibility`), so these are left to a
node that goes away, not to a proposal that could never run.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from visdm.chain.client import ChainClient
from visdm.chain.contracts import (
    REJECT_ASK,
    AssetRegistry,
    DelegationRegistry,
    ProposalRecord,
    ProposalStatus,
)
from visdm.errors import InvalidInputError
from visdm.proposals._consumer import next_block_time

__all__ = [
    "VotingWeight",
    "chain_now",
    "check_model_path",
    "human_time",
    "next_step",
    "parse_ask",
    "require_consumer",
    "require_cost_within",
    "require_counter_open",
    "require_model_ready",
    "require_reclaimable",
    "require_tally_open",
    "require_voting_open",
    "voting_weight",
    "write_model",
]

_REFUNDED = {
    ProposalStatus.FAILED: "too few votes for quorum: the offer was credited back to the consumer",
    ProposalStatus.REJECTED: (
        "too little of the selection stayed in the round: the offer was credited back to the "
        "consumer"
    ),
    ProposalStatus.WTP_MISSED: (
        "the price was credited back to the consumer (the training cost paid the node)"
    ),
    ProposalStatus.CANCELLED: "its escrow went back to the consumer",
}


def chain_now(client: ChainClient) -> int:
    """The time the chain's next transaction will see (see ``next_block_time``)."""
    return next_block_time(client)


def human_time(deadline: int, now: int) -> str:
    """``2026-05-01 12:00:00 UTC (in 3 min 20 s)`` or ``(... ago)``."""
    try:
        stamp = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        stamp = f"unix time {deadline}"
    delta = deadline - now
    return (
        f"{stamp} ({'in ' if delta >= 0 else ''}{_span(abs(delta))}{'' if delta >= 0 else ' ago'})"
    )


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{v} {unit}" for v, unit in parts if v][:2]
    return " ".join(shown) or "0 s"


def _tokens(amount: int) -> str:
    return f"{Decimal(amount) / 10**18:f} tokens"


def next_step(
    record: ProposalRecord, now: int, *, consumer_credit: int = 0, challenged: bool = False
) -> str:
    """One sentence: where proposal ``record`` stands at ``now`` and who can do what next
    (``challenged``: a court's challenge of its result is open)."""
    pid, status = record.proposal_id, record.status
    if status in (ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED) and record.deadline:
        # a court holds the result in its challenge window
        text = held_step(pid, status, record.deadline, now, challenged=challenged)
    elif status == ProposalStatus.VOTING:
        if now <= record.voting_deadline:
            text = (
                f"voting is open until {human_time(record.voting_deadline, now)}: providers "
                f"vote with `visdm vote {pid} accept|reject|PRICE`, then anyone may "
                f"`visdm tally {pid}`"
            )
        else:
            text = (
                f"voting closed at {human_time(record.voting_deadline, now)}: anyone may "
                f"`visdm tally {pid}` now"
            )
    elif status in (ProposalStatus.APPROVED, ProposalStatus.COUNTERED, ProposalStatus.TRAINING):
        text = _waiting(record, now)
    elif status == ProposalStatus.COMPLETED:
        if now <= record.claim_deadline:
            text = (
                f"providers claim with `visdm claim {pid}` until "
                f"{human_time(record.claim_deadline, now)}; the consumer fetches the model "
                f"with `visdm model get {pid}`"
            )
        elif record.unclaimed:
            text = (
                f"the claim period ended at {human_time(record.claim_deadline, now)}: anyone "
                f"may `visdm sweep {pid}` the {_tokens(record.unclaimed)} left unclaimed"
            )
        else:
            text = "every payout was claimed: nothing is left to do"
    else:
        text = _REFUNDED.get(status, "nothing is left to do")
    if consumer_credit:
        text += (
            f"; {_tokens(consumer_credit)} wait in the consumer's credit on the market (this "
            "proposal's refund and any other): the consumer runs `visdm withdraw`"
        )
    return text


def held_step(pid: int, status: ProposalStatus, ends: int, now: int, *, challenged: bool) -> str:
    """Where a result held by a court stands: challenged, in its window until ``ends``, or
    waiting for anyone to release it."""
    opens = "claims and the node's fee" if status == ProposalStatus.COMPLETED else "the node's fee"
    if challenged:
        return (
            f"its result is challenged: the court's committee re-executes it and votes; {opens} "
            "wait for the ruling (a wrong result refunds the consumer)"
        )
    if now < ends:
        return (
            f"its result can be challenged until {human_time(ends, now)}; then anyone may "
            f"`visdm release {pid}`, which opens {opens}"
        )
    return (
        f"its challenge window closed at {human_time(ends, now)}: anyone may "
        f"`visdm release {pid}` to open {opens}"
    )


def _waiting(record: ProposalRecord, now: int) -> str:
    pid, when = record.proposal_id, human_time(record.deadline, now)
    if now > record.deadline:
        what = {
            ProposalStatus.APPROVED: "the start deadline passed without training",
            ProposalStatus.COUNTERED: "the counter offer lapsed",
            ProposalStatus.TRAINING: "the training deadline passed without a result",
        }[record.status]
        return f"{what} at {when}: the consumer can `visdm reclaim {pid}` everything escrowed"
    return {
        ProposalStatus.APPROVED: (
            f"the consumer starts training with `visdm train {pid}` before {when}; after that "
            f"it can `visdm reclaim {pid}`"
        ),
        ProposalStatus.COUNTERED: (
            f"the counter price is {_tokens(record.clearing_price)}: the consumer accepts with "
            f"`visdm accept-counter {pid}` before {when}, or lets it lapse and then "
            f"`visdm reclaim {pid}`"
        ),
        ProposalStatus.TRAINING: (
            f"the node posts its result by {when}; without one the consumer can "
            f"`visdm reclaim {pid}` after that"
        ),
    }[record.status]


def parse_ask(text: str) -> int:
    """``accept`` (any price), ``reject``, or a price in token units."""
    lowered = text.strip().lower()
    if lowered == "accept":
        return 0
    if lowered == "reject":
        return REJECT_ASK
    try:
        value = int(lowered)
    except ValueError:
        raise InvalidInputError(
            f"ask {text!r} is not 'accept', 'reject' or a price in token units"
        ) from None
    if not 0 <= value < REJECT_ASK:
        raise InvalidInputError(f"ask {text!r} is outside 0..2^256-2")
    return value


def require_consumer(record: ProposalRecord, address: str, doing: str) -> None:
    """Refuse ``address`` unless it is the proposal's consumer, the only one who may ``doing``."""
    if record.consumer.lower() != address.lower():
        raise InvalidInputError(
            f"proposal {record.proposal_id} is consumer {record.consumer}'s, not {address}'s: "
            f"only a proposal's consumer can {doing}"
        )


def require_voting_open(record: ProposalRecord, now: int) -> None:
    """Refuse a vote the market would refuse, saying why and what is left to do."""
    if record.status != ProposalStatus.VOTING:
        raise InvalidInputError(f"votes are closed: {_state(record, now)}")
    if now > record.voting_deadline:
        raise InvalidInputError(
            f"voting on proposal {record.proposal_id} closed at "
            f"{human_time(record.voting_deadline, now)}: votes can no longer change it; anyone "
            f"may `visdm tally {record.proposal_id}`"
        )


def require_tally_open(record: ProposalRecord, now: int) -> None:
    """Refuse a tally before the voting deadline (with the time left) or after the outcome."""
    pid = record.proposal_id
    if record.status != ProposalStatus.VOTING:
        raise InvalidInputError(f"the tally is done: {_state(record, now)}")
    if now <= record.voting_deadline:
        left = record.voting_deadline - now + 1
        raise InvalidInputError(
            f"voting on proposal {pid} is open until {human_time(record.voting_deadline, now)}: "
            f"tally after that (on a local dev chain, `visdm chain advance {left}` ends it now)"
        )


def require_counter_open(record: ProposalRecord, now: int) -> None:
    """Refuse to accept a counter offer that is not open (another state, or its reply
    deadline passed), saying what is left to do."""
    if record.status != ProposalStatus.COUNTERED or now > record.deadline:
        raise InvalidInputError(f"no counter offer to accept: {next_step(record, now)}")


def require_cost_within(training_cost: int, max_cost: int, *, what: str = "--max-cost") -> None:
    """Refuse a quoted training cost above ``max_cost``, the most the consumer agreed to pay
    (``what`` names where that limit came from)."""
    if training_cost > max_cost:
        raise InvalidInputError(
            f"the node quotes {training_cost} for training, above {what} {max_cost}: nothing "
            "was paid"
        )


def require_reclaimable(record: ProposalRecord, now: int, consumer: str) -> None:
    """Refuse a reclaim the market would refuse: another consumer's proposal, a state with
    nothing to reclaim, or a deadline still ahead (with the time left)."""
    pid = record.proposal_id
    if record.consumer.lower() != consumer.lower():
        raise InvalidInputError(
            f"proposal {pid} is consumer {record.consumer}'s: only its consumer can reclaim it"
        )
    if record.status not in (
        ProposalStatus.APPROVED,
        ProposalStatus.COUNTERED,
        ProposalStatus.TRAINING,
    ):
        raise InvalidInputError(f"there is nothing to reclaim: {_state(record, now)}")
    if now <= record.deadline:
        meanwhile = {
            ProposalStatus.APPROVED: f"its consumer can still start training (`visdm train {pid}`)",
            ProposalStatus.COUNTERED: (
                f"its consumer can still accept the counter price (`visdm accept-counter {pid}`)"
            ),
            ProposalStatus.TRAINING: "the node may still post its result",
        }[record.status]
        raise InvalidInputError(
            f"proposal {pid} can be reclaimed only after {human_time(record.deadline, now)}: "
            f"until then {meanwhile}"
        )


_LABELS = {
    ProposalStatus.VOTING: "is in voting",
    ProposalStatus.APPROVED: "is approved",
    ProposalStatus.COUNTERED: "is countered",
    ProposalStatus.FAILED: "failed",
    ProposalStatus.REJECTED: "was rejected",
    ProposalStatus.TRAINING: "is training",
    ProposalStatus.COMPLETED: "is completed",
    ProposalStatus.WTP_MISSED: "missed its accuracy threshold",
    ProposalStatus.CANCELLED: "was cancelled",
}


def _state(record: ProposalRecord, now: int) -> str:
    """``proposal 3 is countered: <what next>``."""
    label = _LABELS.get(record.status, f"is {record.status.name.lower()}")
    return f"proposal {record.proposal_id} {label}: {next_step(record, now)}"


# --- vote weight --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VotingWeight:
    """What a vote of ``voter`` would carry now: samples of its own selected assets, and of
    selected assets whose owners delegate to it (directly or along a chain, as of now)."""

    voter: str
    own: int
    delegated: int
    assets: int

    @property
    def total(self) -> int:
        return self.own + self.delegated

    def warning(self, proposal_id: int) -> str | None:
        """Why the vote would count for nothing now (``None`` when it counts)."""
        if self.total:
            return None
        return (
            f"{self.voter} owns none of the {self.assets} assets in proposal {proposal_id}'s "
            "selection and no owner of one delegates to it: the vote was recorded but carries "
            "no weight unless a provider delegates to it before the voting deadline"
        )


def voting_weight(
    assets: AssetRegistry,
    delegations: DelegationRegistry,
    voter: str,
    selection: list[tuple[int, int]],
) -> VotingWeight:
    """The weight ``voter`` would carry on a selection of ``(assetId, sampleCount)``."""
    me = voter.lower()
    depth = delegations.max_depth()
    owners = {asset_id: str(assets.asset(asset_id).owner) for asset_id, _ in selection}
    reaches: dict[str, bool] = {}

    def delegates_to_me(owner: str) -> bool:
        if owner not in reaches:
            cursor: str | None = owner
            found = False
            for _ in range(depth):
                cursor = delegations.delegate_of(str(cursor))
                if cursor is None:
                    break
                if cursor.lower() == me:
                    found = True
                    break
            reaches[owner] = found
        return reaches[owner]

    own = sum(c for a, c in selection if owners[a].lower() == me)
    delegated = sum(
        c for a, c in selection if owners[a].lower() != me and delegates_to_me(owners[a])
    )
    return VotingWeight(voter, own, delegated, len(selection))


# --- the model file -------------------------------------------------------------------------
def check_model_path(out: Path, *, force: bool) -> Path:
    """Refuse, before the model is fetched, an ``out`` that is a directory, an existing file
    (unless ``force``) or a place that cannot be written."""
    target = Path(out)
    if target.is_dir():
        raise InvalidInputError(
            f"--out {target} is a directory: name a file in it, e.g. {target / 'model.safetensors'}"
        )
    if target.exists() and not force:
        raise InvalidInputError(
            f"{target} already exists: pass --force to overwrite it, or choose another --out"
        )
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot create the folder {parent} for --out: {exc.strerror or exc}; choose "
            "another --out"
        ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"cannot write into {parent}: permission denied; choose another --out"
        )
    return target


def require_model_ready(record: ProposalRecord, consumer: str) -> None:
    """Refuse to open a proposal's model for anyone but its consumer, or before it completed."""
    pid = record.proposal_id
    if record.consumer.lower() != consumer.lower():
        raise InvalidInputError(f"proposal {pid} belongs to {record.consumer}, not to {consumer}")
    if record.status != ProposalStatus.COMPLETED:
        raise InvalidInputError(
            f"proposal {pid} is {record.status.name.lower()}: there is no model to get"
        )


def write_model(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` whole or not at all (a temporary file renamed over it)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write the model to {out}: {exc.strerror or exc}; choose another --out"
        ) from None
