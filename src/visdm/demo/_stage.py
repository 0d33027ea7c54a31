"""What every part of the demo shares: who plays, what they own, and the report's steps.

:class:`Stage` is the state the rounds (:mod:`._play`), the collective (:mod:`._collective`) and
the scoring round (:mod:`._newcomer`) play on; each part records its steps through
:meth:`Stage.step`, which times them and hands them to the report and the progress display.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from visdm import session
from visdm.accounts import UnlockedAccount, create_account, load_account
from visdm.config import Settings
from visdm.proposals import CreatedProposal

from ._cast import DemoConfig
from ._report import DemoReport, DemoStep, Progress

__all__ = ["TOKEN", "Collect", "Stage", "job_progress"]

TOKEN = 10**18
_PASSWORD = "visdm-demo"  # noqa: S105 - throw-away keystores in the demo's own directory
_FAST_SCRYPT_N = 2**12  # demo keystores only: real accounts use the default cost


class Stage:
    """The demo's accounts, assets and report, and the bookkeeping of its steps."""

    def __init__(
        self, settings: Settings, config: DemoConfig, report: DemoReport, progress: Progress
    ) -> None:
        self.settings, self.config, self.report, self.progress = settings, config, report, progress
        self.people: dict[str, UnlockedAccount] = {}
        self.assets: dict[str, list[int]] = {}
        self.owner_of: dict[int, str] = {}
        self.proposals: dict[int, CreatedProposal] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a step; what it sets in the yielded ``detail``, ``gas`` and ``notes`` is
        reported when it ends."""
        t0 = time.perf_counter()
        info: dict[str, Any] = {"detail": "", "gas": 0, "notes": []}
        yield info
        seconds = round(time.perf_counter() - t0, 2)
        item = DemoStep(name, info["detail"], seconds, info["gas"] or None, list(info["notes"]))
        self.report.steps.append(item)
        self.progress.step(item)

    def as_(self, name: str) -> Settings:
        return replace(self.settings, account=name)

    def new_account(self, name: str) -> UnlockedAccount:
        """A keystore for ``name`` in the demo's directory, unlocked."""
        create_account(self.settings.keystore_dir, name, _PASSWORD, scrypt_n=_FAST_SCRYPT_N)
        self.people[name] = load_account(self.settings.keystore_dir, name, _PASSWORD)
        return self.people[name]

    def attest(self) -> dict[int, str]:
        """The node attests every asset registered since it last looked; returns what it did
        with each asset so far (``attested``, or why not)."""
        from visdm.compute import AssetWorker, NodeConfig

        conn = session.connect_deployed(self.settings)
        worker = AssetWorker(
            conn.client,
            conn.deployment,
            session.open_store(self.settings),
            self.people["node1"],
            NodeConfig(workdir=self.settings.node_dir),
        )
        try:
            worker.poll()
            outcomes = worker.outcomes()
        finally:
            worker.close()
        return {o.asset_id: o.outcome for o in outcomes}

    def approve_and_start(self, pid: int, voting_s: int) -> tuple[Any, int]:
        """Every owner of the cast accepts proposal ``pid``, the voting period passes, admin
        tallies it (refused unless approved), and bob pays for its training; returns bob's
        offer and the gas of those transactions."""
        from visdm.chain.contracts import ProposalStatus
        from visdm.errors import VisdmError
        from visdm.market import workflow

        gas = 0
        for who in self.config.cast:
            gas += workflow.vote(self.as_(who), self.people[who], pid, 0).gas_used
        session.connect(self.settings).advance_time(voting_s + 60)
        receipt = workflow.tally(self.as_("admin"), self.people["admin"], pid)
        if receipt.outcome.status != ProposalStatus.APPROVED:
            raise VisdmError(
                f"proposal {pid} was {receipt.outcome.status.name.lower()}, expected approved"
            )
        offer, tx = workflow.start_training(self.as_("bob"), self.people["bob"], pid)
        return offer, gas + receipt.gas_used + tx.gas_used

    def round_of(self, pid: int) -> dict[str, Any]:
        """The report's entry of proposal ``pid``."""
        return next(r for r in self.report.rounds if r["proposalId"] == pid)

    def names(self, asset_ids: list[int]) -> str:
        """``"tom's asset 20"``, ``"ben's assets 2, 3"``; past three owners, only their names."""
        by_owner: dict[str, list[int]] = {}
        for a in sorted(asset_ids):
            by_owner.setdefault(self.owner_of.get(a, "?"), []).append(a)
        if len(by_owner) > 3:
            return f"{len(asset_ids)} assets of {', '.join(by_owner)}"
        return ", ".join(
            f"{who}'s asset{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"
            for who, ids in by_owner.items()
        )


class Collect(logging.Handler):
    """Keeps the messages of the log records it is handed: the node's warnings, which the demo
    shows with its step instead of letting them cut through the output."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().splitlines()[0])

    @contextmanager
    def on(self, logger: logging.Logger) -> Iterator[Collect]:
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)


def job_progress(journal_path: Path, pid: int) -> float:
    """A training job's progress as its journal says (0 until the worker wrote it)."""
    from visdm.compute import JobJournal

    journal = JobJournal(journal_path, read_only=True)
    try:
        job = journal.get(pid)
    except sqlite3.Error:  # the worker is still creating its tables
        return 0.0
    finally:
        journal.close()
    return job.progress if job is not None and job.progress is not None else 0.0
