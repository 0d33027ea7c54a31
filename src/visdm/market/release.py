"""A submitted result's challenge window, and releasing the result once it is over.

With a court, a result opens claims and the node's fee only when someone calls
``ResultCourt.release`` after its window (``proposal.deadline`` holds the window's end until
then, 0 after). A ``--verify`` node does it on its own; without one, anybody may: ``visdm
release``, the web page's button, or ``visdm claim``, which releases a payee's due results
before claiming them. Every refusal here is the one the court would give, said before sending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from visdm.accounts import UnlockedAccount
from visdm.chain.client import TxResult
from visdm.chain.contracts import ProposalRecord, ProposalStatus, ResultCourt
from visdm.config import Settings
from visdm.errors import InvalidInputError
from visdm.session import Connection, connect_deployed

from . import _next

__all__ = [
    "ResultWindow",
    "market_court",
    "release",
    "release_due",
    "require_releasable",
    "result_window",
    "window_at",
]

_SUBMITTED = (ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED)


@dataclass(frozen=True, slots=True)
class ResultWindow:
    """Where a submitted result stands with the court: ``ends`` is the window's end (0 once
    released); ``challenged`` whether a challenge of it is open or was made."""

    proposal_id: int
    status: ProposalStatus
    ends: int
    challenged: bool

    @property
    def released(self) -> bool:
        return self.ends == 0

    def open_at(self, now: int) -> bool:
        """Whether the result can still be challenged at chain time ``now``."""
        return not self.released and now < self.ends

    def releasable_at(self, now: int) -> bool:
        return not self.released and not self.challenged and now >= self.ends

    def note(self, now: int) -> str:
        """One clause for a provider or a page: why claims wait, or what to do now."""
        if self.released:
            return "released"
        return _next.held_step(
            self.proposal_id, self.status, self.ends, now, challenged=self.challenged
        )


def market_court(conn: Connection) -> ResultCourt | None:
    """The court the market names now (``None``: it has none)."""
    address = conn.deployment.training_market(conn.client).parameters().court
    return ResultCourt(conn.client, address) if address else None


def result_window(conn: Connection, record: ProposalRecord) -> ResultWindow | None:
    """The court's view of ``record``'s result: ``None`` when it has no submitted result or
    the market has no court (results are released as they are submitted)."""
    if record.status not in _SUBMITTED:
        return None
    return window_at(market_court(conn), record)


def window_at(court: ResultCourt | None, record: ProposalRecord) -> ResultWindow | None:
    """:func:`result_window` with the market's court already read (once for many records)."""
    if court is None or record.status not in _SUBMITTED:
        return None
    challenged = record.deadline != 0 and (
        court.challenge_of(record.proposal_id).challenger is not None
    )
    return ResultWindow(record.proposal_id, record.status, record.deadline, challenged)


def require_releasable(record: ProposalRecord, window: ResultWindow | None, now: int) -> None:
    """Refuse a release the court would refuse, saying what stands in the way."""
    pid = record.proposal_id
    if record.status not in _SUBMITTED:
        raise InvalidInputError(f"there is no result to release: {_next._state(record, now)}")
    if window is None:
        raise InvalidInputError(
            f"proposal {pid}'s result needs no release: this market has no court, so a result "
            "opens its claims when it is submitted"
        )
    if window.released:
        raise InvalidInputError(f"proposal {pid}'s result is already released")
    if window.challenged or window.open_at(now):
        raise InvalidInputError(f"proposal {pid} cannot be released yet: {window.note(now)}")


def release(settings: Settings, caller: UnlockedAccount, proposal_id: int) -> TxResult:
    """Release ``proposal_id``'s result after its challenge window (anyone may): claims open
    and the node is credited its training cost."""
    conn = connect_deployed(settings)
    market = conn.deployment.training_market(conn.client)
    if not 0 < proposal_id <= market.proposal_count():
        raise InvalidInputError(f"proposal {proposal_id} does not exist on this market")
    record = market.proposal(proposal_id)
    court = market_court(conn)
    require_releasable(record, window_at(court, record), _next.chain_now(conn.client))
    assert court is not None  # a window exists only with a court
    waiting = court.proof_of(proposal_id).blocks_release()
    if waiting is not None and record.status is ProposalStatus.COMPLETED:
        raise InvalidInputError(f"proposal {proposal_id} cannot be released yet: {waiting}")
    conn.client.fund_from_dev_faucet(caller.address)
    return court.release(caller.local_account, proposal_id)


def release_due(conn: Connection, caller: LocalAccount, proposal_ids: Sequence[int]) -> list[int]:
    """Release those of ``proposal_ids`` whose window is over and unchallenged; returns them."""
    market = conn.deployment.training_market(conn.client)
    now = _next.chain_now(conn.client)
    court = market_court(conn)
    done: list[int] = []
    for pid in proposal_ids if court is not None else ():
        window = window_at(court, market.proposal(pid))
        if court is not None and window is not None and window.releasable_at(now):
            if window.status is ProposalStatus.COMPLETED and court.proof_of(pid).blocks_release():
                continue  # its accuracy proof decides first
            court.release(caller, pid)
            done.append(pid)
    return done
