"""The compute node's durable job journal: one row per training round it must run.

A job moves ``queued → preparing → training → valuing → submitting → submitted``, or ends
``expired`` (the deadline passed: the consumer reclaims), ``cancelled`` (the consumer reclaimed),
``failed`` (a job that cannot succeed, e.g. a spec over the node's limits; the consumer
reclaims after the deadline) or ``abandoned`` (the sandbox crashed, ran out of memory or time
in every one of the node's attempts: the node gave the consumer everything back on chain).
``attempts`` counts the runs started, committed before each starts, so a run cut short by the
node itself being killed counts too. Every transition commits before the work it announces starts,
and the result the node will post is journaled (``submission``) *before* the transaction is
sent, so after a crash the node either re-runs the deterministic training from scratch (a job
found in ``preparing``/``training``/``valuing``) or re-sends exactly the journaled result after
checking the chain — a result is posted once.

A node running several jobs at once claims each before it starts (:meth:`JobJournal.claim`):
one conditional update names the run that holds it (``runner``), so no job runs twice. Only
one node process serves a data directory (its serve lock), so a claim held by another run id
is a killed predecessor's: it no longer holds, and the job is claimed again and re-run as
above.

The HTTP API reads the same file from another thread with its own connection (WAL mode). The
job's secret seed is kept in a column of its own that :class:`Job` never carries, so that no
reader of a job can publish it; :meth:`JobJournal.seed` hands it to verifiers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._sqlite import DurableSqlite

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "Job", "JobJournal"]

FINAL_STATES = frozenset({"submitted", "expired", "cancelled", "failed", "abandoned"})
ACTIVE_STATES = frozenset({"queued", "preparing", "training", "valuing", "submitting"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    proposal_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    deadline INTEGER NOT NULL,
    progress REAL,
    message TEXT NOT NULL DEFAULT '',
    result TEXT,          -- JSON: what the sandboxed training returned
    submission TEXT,      -- JSON: exactly what submitResult will carry
    tx_hash TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    seed BLOB,            -- the latest attempt's 32-byte seed: for verifiers, never published
    runner TEXT           -- the node run that claimed it while it runs (NULL when none)
);
CREATE TABLE IF NOT EXISTS market_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1), block INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Job:
    """One training round as the node journals it."""

    proposal_id: int
    state: str
    attempts: int
    deadline: int
    progress: float | None
    message: str
    result: dict[str, Any] | None
    submission: dict[str, Any] | None
    tx_hash: str | None
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "proposalId": self.proposal_id,
            "state": self.state,
            "attempts": self.attempts,
            "deadline": self.deadline,
            "progress": self.progress,
            "message": self.message,
            "result": self.result,
            "submission": self.submission,
            "txHash": self.tx_hash,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


_SELECT = (
    "SELECT proposal_id, state, attempts, deadline, progress, message, result, submission, "
    "tx_hash, created_at, updated_at FROM jobs"
)


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        proposal_id=int(row[0]),
        state=str(row[1]),
        attempts=int(row[2]),
        deadline=int(row[3]),
        progress=None if row[4] is None else float(row[4]),
        message=str(row[5]),
        result=None if row[6] is None else json.loads(row[6]),
        submission=None if row[7] is None else json.loads(row[7]),
        tx_hash=row[8],
        created_at=float(row[9]),
        updated_at=float(row[10]),
    )


class JobJournal(DurableSqlite):
    """SQLite journal of training jobs (one connection per thread)."""

    SCHEMA = _SCHEMA
    CURSOR_TABLE = "market_cursor"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        super().__init__(path, read_only=read_only)
        if read_only:
            return
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "seed" not in columns:  # a journal written before jobs had seeds
            self._db.execute("ALTER TABLE jobs ADD COLUMN seed BLOB")
        if "runner" not in columns:  # a journal written before jobs ran concurrently
            self._db.execute("ALTER TABLE jobs ADD COLUMN runner TEXT")

    # --- jobs -------------------------------------------------------------------------------
    def enqueue(self, proposal_id: int, deadline: int) -> bool:
        """Add a job once; ``False`` when it was already known (a replayed event)."""
        now = time.time()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO jobs (proposal_id, state, deadline, created_at, updated_at) "
            "VALUES (?, 'queued', ?, ?, ?)",
            (proposal_id, deadline, now, now),
        )
        return cur.rowcount == 1

    def get(self, proposal_id: int) -> Job | None:
        row = self._db.execute(_SELECT + " WHERE proposal_id = ?", (proposal_id,)).fetchone()
        return None if row is None else _job(row)

    def jobs(self) -> list[Job]:
        rows = self._db.execute(_SELECT + " ORDER BY proposal_id").fetchall()
        return [_job(r) for r in rows]

    def pending(self) -> list[Job]:
        """Jobs not yet in a final state, oldest first."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        rows = self._db.execute(
            _SELECT + f" WHERE state IN ({marks}) ORDER BY proposal_id",
            tuple(sorted(ACTIVE_STATES)),
        ).fetchall()
        return [_job(r) for r in rows]

    def claim(self, proposal_id: int, runner: str) -> bool:
        """Claim an unfinished job for ``runner`` (this node run); ``False`` when it is final
        or this run holds it already. One statement: two threads can never both claim it."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        cur = self._db.execute(
            f"UPDATE jobs SET runner = ? WHERE proposal_id = ? AND state IN ({marks}) "  # noqa: S608
            "AND (runner IS NULL OR runner != ?)",
            (runner, proposal_id, *sorted(ACTIVE_STATES), runner),
        )
        return cur.rowcount == 1

    def release(self, proposal_id: int, runner: str) -> None:
        """``runner`` no longer runs the job."""
        self._db.execute(
            "UPDATE jobs SET runner = NULL WHERE proposal_id = ? AND runner = ?",
            (proposal_id, runner),
        )

    def runner(self, proposal_id: int) -> str | None:
        row = self._db.execute(
            "SELECT runner FROM jobs WHERE proposal_id = ?", (proposal_id,)
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def set_seed(self, proposal_id: int, seed: bytes) -> None:
        """Keep the seed of the attempt about to run (it replaces an earlier attempt's)."""
        self._db.execute("UPDATE jobs SET seed = ? WHERE proposal_id = ?", (seed, proposal_id))

    def seed(self, proposal_id: int) -> bytes | None:
        """The seed of the job's latest attempt, for a verifier re-executing it."""
        row = self._db.execute(
            "SELECT seed FROM jobs WHERE proposal_id = ?", (proposal_id,)
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def update(self, proposal_id: int, **fields: Any) -> None:
        """Set ``state``, ``progress``, ``message``, ``result``, ``submission``, ``tx_hash`` or
        ``attempts`` (JSON columns take dicts)."""
        allowed = {"state", "progress", "message", "result", "submission", "tx_hash", "attempts"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        values = {
            k: json.dumps(v, sort_keys=True)
            if k in ("result", "submission") and v is not None
            else v
            for k, v in fields.items()
        }
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = ?" for k in values)
        self._db.execute(
            f"UPDATE jobs SET {assignments} WHERE proposal_id = ?",  # noqa: S608 - keys allow-listed
            (*values.values(), proposal_id),
        )
