"""A node that checks other nodes' results by itself (``visdm node serve --verify``).

:class:`VerifyWorker` follows ``ResultSubmitted`` from a cursor journaled in its own SQLite
file (``verify.sqlite3`` in the node directory; :class:`VerifyJournal`), one row per result,
and on every poll moves each open row on:

1. **draw**: a result of another node is re-executed when :func:`~visdm.verify.sampled` draws
   it for this node's ``share`` (over the block hash it was posted in), or when the court drew
   this node to the committee of its challenge;
2. **re-execute**: fetch the result document, this node's sealed secrets from its
   ``verifierSecrets`` index, open them against the committed seed hash, re-run the job in this
   node's own sandbox (:class:`~visdm.verify._reexecute.Reexecutor`) and :func:`judge`;
3. **act** within the window: confirm or challenge (:meth:`ResultVerifier.act`); as a drawn
   committee member, vote (:meth:`ResultVerifier.vote`);
4. **settle**, anyone's right: release an unchallenged result after its window
   (``ResultCourt.release``) and resolve a challenge once its committee voted or its ruling
   deadline passed (``ResultCourt.resolve``; a tie is left to governance). Its own results are
   settled too, never checked;
5. **sample root**: once another node's accuracy claim is committed (a job the court holds for
   a proof), compare its sample root with the one the consumer's validation set gives under the
   claim's circuit settings (:func:`~visdm.verify._zk_root.claim_root_finding`, with the
   validation key sealed to this node) and challenge a mismatch; a re-execution (drawn, or as a
   committee member) makes the same comparison, so the committee votes on it too.

Every failure is one logged line and leaves the row for the next poll (an outage) or decided
(a result this node cannot check: it abstains); the loop never stops on one result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hexbytes import HexBytes

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ChallengeRecord, ProposalRecord, ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.compute import TrainingConfig
from visdm.compute._sqlite import DurableSqlite
from visdm.errors import (
    ChainError,
    ConfigError,
    ContractRevertError,
    InvalidInputError,
    SandboxUnavailableError,
    StorageUnavailableError,
    VisdmError,
)
from visdm.jsonsafe import load_untrusted_object, one_line
from visdm.storage import ContentStore
from visdm.verify._reexecute import FalseLeftOutError, Reexecutor
from visdm.verify._secrets import JobSecrets, open_job_secrets
from visdm.verify._verdict import Finding, Verdict, judge, sampled
from visdm.verify._verifier import PostedResult, ResultVerifier
from visdm.verify._zk_root import claim_root_finding

__all__ = ["Check", "VerifyConfig", "VerifyJournal", "VerifyWorker"]

log = logging.getLogger("visdm.node.verify")

#: failures of this node's machinery: the row waits for the next poll
_OUTAGES = (ChainError, StorageUnavailableError, SandboxUnavailableError)
_SUBMITTED = (ProposalStatus.COMPLETED, ProposalStatus.WTP_MISSED)
_MAX_RESULT_BYTES = 64 << 20
_MAX_SECRETS_BYTES = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    proposal_id INTEGER PRIMARY KEY,
    block_hash BLOB NOT NULL,   -- the block ResultSubmitted was posted in: the lottery's input
    result_cid TEXT NOT NULL,
    own INTEGER NOT NULL,       -- this node's own result: settled, never checked
    drawn INTEGER NOT NULL,     -- drawn by this node's share for re-execution
    verdict TEXT,               -- confirm / challenge / abstain, once decided
    differences TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    acted INTEGER NOT NULL DEFAULT 0,
    voted INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,        -- open until the result is settled on chain, then done
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS verify_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1), block INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Check:
    """One result as this verifier journals it."""

    proposal_id: int
    block_hash: bytes
    result_cid: str
    own: bool
    drawn: bool
    verdict: Verdict | None
    differences: tuple[str, ...]
    reason: str
    acted: bool
    voted: bool
    state: str

    @property
    def finding(self) -> Finding | None:
        if self.verdict is None:
            return None
        return Finding(self.verdict, self.differences, self.reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "proposalId": self.proposal_id,
            "own": self.own,
            "drawn": self.drawn,
            "verdict": None if self.verdict is None else self.verdict.value,
            "differences": list(self.differences),
            "reason": self.reason,
            "acted": self.acted,
            "voted": self.voted,
            "state": self.state,
        }


_COLUMNS = (
    "proposal_id, block_hash, result_cid, own, drawn, verdict, differences, reason, acted, "
    "voted, state"
)


class VerifyJournal(DurableSqlite):
    """SQLite journal of the results a verifier follows (one connection per thread)."""

    SCHEMA = _SCHEMA
    CURSOR_TABLE = "verify_cursor"

    def add(
        self, proposal_id: int, block_hash: bytes, result_cid: str, *, own: bool, drawn: bool
    ) -> bool:
        """Journal a posted result once; ``False`` when it was already known."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO checks (proposal_id, block_hash, result_cid, own, drawn, "
            "state, updated_at) VALUES (?, ?, ?, ?, ?, 'open', ?)",
            (proposal_id, block_hash, result_cid, int(own), int(drawn), time.time()),
        )
        return cur.rowcount == 1

    def get(self, proposal_id: int) -> Check | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM checks WHERE proposal_id = ?",  # noqa: S608 - fixed columns
            (proposal_id,),
        ).fetchone()
        return None if row is None else _check(row)

    def checks(self, *, open_only: bool = False) -> list[Check]:
        where = " WHERE state = 'open'" if open_only else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM checks{where} ORDER BY proposal_id"  # noqa: S608
        ).fetchall()
        return [_check(r) for r in rows]

    def update(self, proposal_id: int, **fields: Any) -> None:
        """Set ``verdict`` (a :class:`Finding`), ``acted``, ``voted`` or ``state``."""
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "finding":
                values |= {
                    "verdict": value.verdict.value,
                    "differences": ",".join(value.differences),
                    "reason": value.reason[:500],
                }
            elif name in ("acted", "voted"):
                values[name] = int(bool(value))
            elif name == "state":
                values[name] = str(value)
            else:
                raise ValueError(f"unknown check field {name!r}")
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self._db.execute(
                f"UPDATE checks SET {assignments} WHERE proposal_id = ?",  # noqa: S608 - allow-listed
                (*values.values(), proposal_id),
            )


def _check(row: tuple[Any, ...]) -> Check:
    return Check(
        proposal_id=int(row[0]),
        block_hash=bytes(row[1]),
        result_cid=str(row[2]),
        own=bool(row[3]),
        drawn=bool(row[4]),
        verdict=None if row[5] is None else Verdict(row[5]),
        differences=tuple(d for d in str(row[6]).split(",") if d),
        reason=str(row[7]),
        acted=bool(row[8]),
        voted=bool(row[9]),
        state=str(row[10]),
    )


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """What share of other nodes' results to re-execute, and how (``training``: the sandbox
    and valuation settings; its ``workdir`` is this worker's, apart from the node's jobs)."""

    workdir: Path
    share: float = 0.25
    training: TrainingConfig | None = None
    max_blocks: int = 2_000


class VerifyWorker:
    """Follows ``ResultSubmitted`` and checks, challenges, votes on and settles results."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ContentStore,
        account: UnlockedAccount,
        config: VerifyConfig,
    ) -> None:
        sampled(0, account.address, config.share, block_hash=bytes(32))  # refuse a bad share now
        if "ResultCourt" not in deployment.contracts:
            raise ConfigError(
                "this deployment has no ResultCourt: --verify needs a court to confirm, "
                "challenge and vote through; deploy one or run the node without --verify"
            )
        self.client = client
        self.market = deployment.training_market(client)
        if not self.market.parameters().court:
            raise ConfigError(
                "the market has no court (its challenge window is 0, results pay at once): "
                "--verify has nothing to check; governance sets a court and a window first"
            )
        self.court = deployment.result_court(client)
        self.store = store
        self.account = account
        self.config = config
        self.verifier = ResultVerifier(self.market, self.court, account.local_account, config.share)
        config.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.journal = VerifyJournal(config.workdir / "verify.sqlite3")
        base = config.training or TrainingConfig(workdir=config.workdir)
        training = replace(base, workdir=config.workdir / "reexecution")
        self.reexecutor = Reexecutor(client, deployment, store, account, training)
        #: results whose committed claim's sample root this worker has compared
        self._roots: set[int] = set()
        self.start_block = deployment.contracts["TrainingMarket"].block_number

    def close(self) -> None:
        self.journal.close()
        self.reexecutor.close()

    # --- following ------------------------------------------------------------------------
    def follow(self, *, confirmations: int = 0) -> int:
        """Journal every new ``ResultSubmitted``; returns how many were new."""
        head = int(self.client.rpc(lambda: self.client.w3.eth.block_number)) - confirmations
        new = 0
        me = self.account.address
        for start, end in self.journal.ranges(self.start_block, head, self.config.max_blocks):
            events = self.market.logs("ResultSubmitted", from_block=start, to_block=end)
            with self.journal.transaction():
                for event in events:
                    pid = int(event["args"]["proposalId"])
                    block = bytes(HexBytes(event["blockHash"]))
                    own = self.market.proposal(pid).node == me
                    drawn = not own and sampled(pid, me, self.config.share, block_hash=block)
                    cid = str(event["args"]["resultCid"])
                    if self.journal.add(pid, block, cid, own=own, drawn=drawn):
                        new += 1
                        if drawn:
                            log.info("proposal %d: drawn for re-execution", pid)
                self.journal.set_cursor(end)
        return new

    def poll(self, *, confirmations: int = 0, should_stop: Callable[[], bool] | None = None) -> int:
        """Follow the chain, then move every open result on; returns the transactions sent.
        One result's failure is logged and never stops the others; an outage propagates."""
        self.follow(confirmations=confirmations)
        sent = 0
        for check in self.journal.checks(open_only=True):
            if should_stop is not None and should_stop():
                break
            try:
                sent += self.step(check.proposal_id)
            except _OUTAGES:
                raise
            except Exception as exc:  # one result must never stop the others
                log.error(
                    "proposal %d: verification step failed, will retry: %s: %s",
                    check.proposal_id,
                    type(exc).__name__,
                    exc,
                )
        return sent

    # --- one result -----------------------------------------------------------------------
    def step(self, proposal_id: int) -> int:
        """Move one journaled result on as far as the chain allows; returns transactions sent."""
        check = self.journal.get(proposal_id)
        if check is None:
            raise InvalidInputError(f"proposal {proposal_id} has no result this verifier follows")
        record = self.market.proposal(proposal_id)
        if record.status not in _SUBMITTED or record.deadline == 0:
            self.journal.update(proposal_id, state="done")  # released or overturned
            return 0
        challenge = self.court.challenge_of(proposal_id)
        now = self.client.latest_timestamp()
        me = self.account.address
        member = me in challenge.committee and not challenge.settled
        in_window = now < record.deadline
        if check.verdict is None and (
            (check.drawn and in_window) or (member and now <= challenge.deadline)
        ):
            self.journal.update(proposal_id, finding=self._recheck(check, record))
            check = self.journal.get(proposal_id) or check
        sent = 0
        finding = check.finding
        if check.drawn and not check.acted and finding is not None and in_window:
            sent += self._act(proposal_id, finding, challenge)
        unchallenged = self.court.challenge_of(proposal_id).challenger is None
        if not check.own and in_window and unchallenged and proposal_id not in self._roots:
            sent += self._check_root(proposal_id, record)
        if member and not check.voted and finding is not None and now <= challenge.deadline:
            if self._send(lambda: self.verifier.vote(proposal_id, finding)):
                log.info(
                    "proposal %d: voted %s as a committee member",
                    proposal_id,
                    finding.verdict.value,
                )
                sent += 1
            self.journal.update(proposal_id, voted=True)
        return sent + self._settle(proposal_id, record, self.court.challenge_of(proposal_id), now)

    def _act(self, proposal_id: int, finding: Finding, challenge: ChallengeRecord) -> int:
        """Confirm or challenge once; a result another node already challenged is left to its
        committee (a confirmation is still an event worth sending)."""
        if finding.verdict is Verdict.CHALLENGE and challenge.challenger is not None:
            self.journal.update(proposal_id, acted=True)
            return 0
        sent = self._send(lambda: self.verifier.act(proposal_id, finding))
        self.journal.update(proposal_id, acted=True)
        if sent and finding.verdict is not Verdict.ABSTAIN:
            log.info("proposal %d: %s (%s)", proposal_id, finding.verdict.value, finding.reason)
            return 1
        return 0

    def _settle(
        self, proposal_id: int, record: ProposalRecord, challenge: ChallengeRecord, now: int
    ) -> int:
        """Release after an unchallenged window (or an upheld challenge) once an accuracy proof
        the job needs is accepted, overturn it when that proof failed, and resolve a challenge
        whose committee is done."""
        held = challenge.settled and record.deadline != 0  # upheld, waiting for its proof
        if challenge.challenger is None or held:
            if now < record.deadline:
                return 0
            proof = self.court.proof_of(proposal_id)
            if record.status is ProposalStatus.COMPLETED and proof.status != "accepted":
                if proof.required and proof.status == "pending":
                    return 0  # its node may still prove; a later poll settles it
                if proof.required:
                    return self._overturn_unproven(proposal_id, proof.status)
            sent = self._send(lambda: self.court.release(self.account.local_account, proposal_id))
            if sent:
                log.info("proposal %d: released after its window", proposal_id)
            self.journal.update(proposal_id, state="done")
            return int(sent)
        if challenge.settled:
            self.journal.update(proposal_id, state="done")
            return 0
        voted = challenge.upheld + challenge.overturned
        if voted < len(challenge.committee) and now <= challenge.deadline:
            return 0
        if challenge.upheld == challenge.overturned:
            log.warning(
                "proposal %d: the committee is split or silent: governance decides", proposal_id
            )
            self.journal.update(proposal_id, state="done")
            return 0
        sent = self._send(lambda: self.court.resolve(self.account.local_account, proposal_id))
        if sent:
            overturned = challenge.overturned > challenge.upheld
            log.info(
                "proposal %d: challenge resolved (%s)",
                proposal_id,
                "overturned" if overturned else "upheld",
            )
        self.journal.update(proposal_id, state="done")
        return int(sent)

    def _overturn_unproven(self, proposal_id: int, status: str) -> int:
        """Overturn a result whose accuracy proof was rejected, expired or never committed."""
        account = self.account.local_account
        sent = self._send(lambda: self.court.overturn_unproven(account, proposal_id))
        if sent:
            log.info("proposal %d: overturned, its accuracy proof is %s", proposal_id, status)
        self.journal.update(proposal_id, state="done")
        return int(sent)

    def _send(self, transaction: Callable[[], object]) -> bool:
        """Send one transaction; a revert (e.g. another node was first) is one logged line."""
        self.client.fund_from_dev_faucet(self.account.address)
        try:
            transaction()
        except ContractRevertError as exc:
            log.warning("transaction reverted, not retried: %s", exc)
            return False
        return True

    def _recheck(self, check: Check, record: ProposalRecord) -> Finding:
        """Re-execute the result and judge it; a result this node cannot check is an
        abstention with the reason (logged once)."""
        pid = check.proposal_id
        try:
            posted, result, secrets = self._secrets(pid, record)
            log.info("proposal %d: re-executing the job of node %s", pid, record.node)
            recomputed, ours = self.reexecutor.reexecute(
                pid, secrets, result, posted_in=posted.block_hash
            )
            theirs = result.get("envelope")
            finding = judge(
                posted.commitments,
                recomputed,
                theirs=theirs if isinstance(theirs, dict) else {},
                ours=ours,
            )
            if finding.verdict is Verdict.CONFIRM:  # a true result proven on other inputs
                root = claim_root_finding(self.reexecutor, self.court, pid, secrets)
                if root is not None:
                    self._roots.add(pid)
                    finding = root if root.verdict is Verdict.CHALLENGE else finding
        except _OUTAGES:
            raise
        except FalseLeftOutError as exc:  # provably wrong without re-executing anything
            finding = Finding(Verdict.CHALLENGE, ("leftOut",), one_line(str(exc))[:300])
        except VisdmError as exc:
            finding = Finding(Verdict.ABSTAIN, (), (str(exc).splitlines() or [""])[0][:300])
        except Exception as exc:  # a bug or an output nobody foresaw: abstain, say why
            finding = Finding(Verdict.ABSTAIN, (), f"re-execution failed: {type(exc).__name__}")
        log.info("proposal %d: %s: %s", pid, finding.verdict.value, finding.reason)
        return finding

    def _secrets(
        self, pid: int, record: ProposalRecord
    ) -> tuple[PostedResult, dict[str, Any], JobSecrets]:
        """The posted result, its document and the job's secrets the node sealed to this
        verifier (opened against the committed seed hash)."""
        posted = self.verifier.posted(pid)
        result = load_untrusted_object(
            self.store.get(posted.result_cid, max_bytes=_MAX_RESULT_BYTES),
            what=f"proposal {pid}'s result document",
            max_bytes=_MAX_RESULT_BYTES,
        )
        index = result.get("verifierSecrets")
        cid = index.get(self.account.address) if isinstance(index, dict) else None
        if not isinstance(cid, str):
            raise InvalidInputError(
                f"node {record.node} sealed no secrets to {self.account.address} for "
                f"proposal {pid}: this verifier cannot re-execute it"
            )
        secrets = open_job_secrets(
            self.store.get(cid, max_bytes=_MAX_SECRETS_BYTES),
            proposal_id=pid,
            verifier=self.account.address,
            unwrap=self.account.unwrap_key,
            seed_hash=posted.commitments.seed_hash,
        )
        return posted, result, secrets

    def _check_root(self, pid: int, record: ProposalRecord) -> int:
        """Once another node's claim is committed, compare its sample root with the
        consumer's validation set's (every verifier holding the secrets, drawn or not) and
        challenge a mismatch; returns the transactions sent."""
        proof = self.court.proof_of(pid)
        if not proof.required or proof.status == "none":
            return 0  # nothing committed yet: a later poll looks again
        self._roots.add(pid)
        try:
            _, _, secrets = self._secrets(pid, record)
            finding = claim_root_finding(self.reexecutor, self.court, pid, secrets)
        except _OUTAGES:
            self._roots.discard(pid)
            raise
        except VisdmError as exc:
            log.info("proposal %d: accuracy claim's sample root not checked: %s", pid, exc)
            return 0
        if finding is None or finding.verdict is not Verdict.CHALLENGE:
            if finding is not None:
                log.info("proposal %d: %s", pid, finding.reason)
            return 0
        sent = self._send(lambda: self.verifier.act(pid, finding))
        self.journal.update(pid, finding=finding, acted=True)
        if sent:
            log.info("proposal %d: challenged (%s)", pid, finding.reason)
        return int(sent)
