"""Turning ``TrainingMarket`` events into rows: proposals and their documents, votes, tallies,
training, results with their payouts and scores, claims, sweeps and delegations.

The same rules as :mod:`._apply` hold: every write is an idempotent function of the event and
the rows it finds, and a document is fetched while its event is applied — ``missing`` ones are
fetched again by later syncs (:meth:`MarketApplier.retry_missing`), ``rejected`` ones keep the
reason.

Payouts follow the market's rule that it pays assets, never accounts: a payout row is a leaf
``(position, assetId, amount)`` of the node's payout tree with the asset's owner beside it, and
the leaves of each owner must add up to what the result document says that provider earns. A
claim row is a ``Claimed`` event, which credits the asset's owner (tokens move at
``withdraw``). Whether a leaf can still be paid is read later, from these facts
(:mod:`._payouts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._db import Database
from ._documents import (
    KNOWN_FLAGS,
    DocumentError,
    DocumentUnavailableError,
    check_proposal,
    parse_result,
    parse_scores,
)
from ._events import ChainEvent
from ._scoring import scoring_fee

__all__ = ["PROPOSAL_STATUSES", "MarketApplier"]

log = logging.getLogger("visdm.index")

_ZERO_ADDRESS = "0x" + "00" * 20
#: ``TrainingMarket.Status`` names by value, as :class:`visdm.chain.contracts.ProposalStatus`
#: spells them (kept here so that reading the index never imports web3)
PROPOSAL_STATUSES = (
    "none",
    "voting",
    "approved",
    "countered",
    "failed",
    "rejected",
    "training",
    "completed",
    "wtp_missed",
    "cancelled",
)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class MarketApplier:
    """Applies ``TrainingMarket`` events; call inside a write transaction.

    ``fetch`` reads a document (raising :class:`DocumentUnavailableError` or
    :class:`DocumentError`); ``exclusions`` answers which selection positions of a tallied
    proposal left the round.
    """

    def __init__(
        self,
        db: Database,
        fetch: Callable[[str], bytes],
        *,
        chain_id: int,
        market: str,
        exclusions: Callable[[int], set[int]],
    ) -> None:
        self.db = db
        self.fetch = fetch
        self.chain_id = chain_id
        self.market = market
        self.exclusions = exclusions

    def handlers(self) -> dict[str, Callable[[ChainEvent], None]]:
        """The handler of each event name this applier follows."""
        return {
            "ProposalCreated": self._proposal_created,
            "VoteCast": self._vote_cast,
            "ProposalTallied": self._proposal_tallied,
            "CounterAccepted": self._counter_accepted,
            "TrainingStarted": self._training_started,
            "ResultSubmitted": self._result_submitted,
            "TrainingAbandoned": self._training_abandoned,
            "Claimed": self._claimed,
            "Reclaimed": self._reclaimed,
            "UnclaimedSwept": self._unclaimed_swept,
            "DelegateChanged": self._delegate_changed,
            "ParametersChanged": self._parameters_changed,
            "ResultSettled": self._result_settled,
        }

    # --- proposals --------------------------------------------------------------------------
    def _proposal_created(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO proposals (proposal_id, consumer, node, status, offer, price, wtp_bps, "
            "min_share_bps, voting_deadline, total_weight, assets_hash, assets_root, "
            "selection_root, model_spec_hash, validation_set_hash, proposal_cid, created_block, "
            "document_status, document_detail) VALUES (?, ?, ?, 'voting', ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?, ?, ?, 'pending', '') ON CONFLICT (proposal_id) DO NOTHING",
            (
                int(a["proposalId"]),
                a["consumer"],
                a["node"],
                str(a["offer"]),
                str(a["offer"]),
                int(a["wtpBps"]),
                int(a["minShareBps"]),
                int(a["votingDeadline"]),
                int(a["totalWeight"]),
                _hex(a["assetsHash"]),
                _hex(a["assetsRoot"]),
                _hex(a["selectionRoot"]),
                _hex(a["modelSpecHash"]),
                _hex(a["validationSetHash"]),
                str(a["proposalCid"]),
                e.block_number,
            ),
        )
        self.index_proposal(int(a["proposalId"]))

    def index_proposal(self, proposal_id: int) -> None:
        """Fetch and check the proposal document, and index its selection (if not done yet)."""
        row = self.db.query(
            "SELECT consumer, node, offer, wtp_bps, voting_deadline, total_weight, assets_hash, "
            "assets_root, selection_root, model_spec_hash, validation_set_hash, proposal_cid, "
            "document_status FROM proposals WHERE proposal_id = ?",
            (proposal_id,),
        )
        if not row or row[0][12] not in ("pending", "missing"):
            return
        names = (
            "consumer",
            "node",
            "offer",
            "wtpBps",
            "votingDeadline",
            "totalWeight",
            "assetsHash",
            "assetsRoot",
            "selectionRoot",
            "modelSpecHash",
            "validationSetHash",
        )
        committed = dict(zip(names, row[0][:11], strict=True))
        try:
            doc = check_proposal(
                self.fetch(str(row[0][11])),
                chain_id=self.chain_id,
                market=self.market,
                committed=committed,
            )
        except DocumentUnavailableError as exc:
            self._document_status(proposal_id, "missing", str(exc))
            return
        except DocumentError as exc:
            log.warning("proposal %d: document rejected: %s", proposal_id, exc)
            self._document_status(proposal_id, "rejected", str(exc))
            return
        self.db.executemany(
            "INSERT INTO proposal_assets (proposal_id, position, asset_id, sample_count) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (proposal_id, position) DO NOTHING",
            [
                (proposal_id, position, asset_id, count)
                for position, (asset_id, count) in enumerate(doc.selection)
            ],
        )
        self._document_status(proposal_id, "indexed", "")

    def _document_status(self, proposal_id: int, status: str, detail: str) -> None:
        self.db.execute(
            "UPDATE proposals SET document_status = ?, document_detail = ? WHERE proposal_id = ?",
            (status, detail, proposal_id),
        )

    def _vote_cast(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO votes (proposal_id, voter, ask, block_number) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (proposal_id, voter) DO UPDATE SET ask = excluded.ask, "
            "block_number = excluded.block_number",
            (int(a["proposalId"]), a["voter"], str(a["ask"]), e.block_number),
        )

    def _proposal_tallied(self, e: ChainEvent) -> None:
        a = e.args
        pid = int(a["proposalId"])
        outcome = PROPOSAL_STATUSES[int(a["outcome"])]
        refunded = outcome in ("failed", "rejected")
        self.db.execute(
            "UPDATE proposals SET status = ?, clearing_price = ?, participating_weight = ?, "
            "remaining_weight = ?, tallier = ?, tallied_block = ?, "
            "price = CASE WHEN ? = 1 THEN '0' ELSE price END WHERE proposal_id = ?",
            (
                outcome,
                str(a["clearingPrice"]),
                int(a["participatingWeight"]),
                int(a["remainingWeight"]),
                a["tallier"],
                e.block_number,
                int(refunded),
                pid,
            ),
        )
        # a REJECT (direct or delegated) or a withdrawal takes the asset out of the round: no
        # event names those positions, the market's bitmap does
        self.db.executemany(
            "INSERT INTO proposal_exclusions (proposal_id, position) VALUES (?, ?) "
            "ON CONFLICT (proposal_id, position) DO NOTHING",
            [(pid, position) for position in sorted(self.exclusions(pid))],
        )

    def _counter_accepted(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE proposals SET status = 'approved', price = ? WHERE proposal_id = ?",
            (str(e.args["price"]), int(e.args["proposalId"])),
        )

    def _training_started(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "UPDATE proposals SET status = 'training', training_cost = ?, training_deadline = ? "
            "WHERE proposal_id = ?",
            (str(a["trainingCost"]), int(a["deadline"]), int(a["proposalId"])),
        )

    def _training_abandoned(self, e: ChainEvent) -> None:
        # the consumer is credited the price and the training cost
        self.db.execute(
            "UPDATE proposals SET status = 'cancelled', price = '0', abandoned_reason = ? "
            "WHERE proposal_id = ?",
            (str(e.args["reason"]), int(e.args["proposalId"])),
        )

    def _reclaimed(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE proposals SET status = 'cancelled', price = '0', reclaimed = ? "
            "WHERE proposal_id = ?",
            (str(e.args["amount"]), int(e.args["proposalId"])),
        )

    # --- results ----------------------------------------------------------------------------
    def _parameters_changed(self, e: ChainEvent) -> None:
        # a result submitted while the market has a challenge window is held until settled
        # (a market deployed before results had a window has no such field: none)
        window = int(e.args["parameters"].get("challengeWindow", 0))
        self.db.execute(
            "INSERT INTO index_meta (key, value) VALUES ('challenge_window', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(window),),
        )

    def _result_settled(self, e: ChainEvent) -> None:
        pid = int(e.args["proposalId"])
        if bool(e.args["overturned"]):
            # the court found the result wrong: the consumer was refunded, no leaf is payable
            self.db.execute(
                "UPDATE proposals SET status = 'cancelled', price = '0', "
                "settlement = 'overturned' WHERE proposal_id = ?",
                (pid,),
            )
        else:
            self.db.execute(
                "UPDATE proposals SET settlement = 'released' WHERE proposal_id = ?", (pid,)
            )

    def _result_submitted(self, e: ChainEvent) -> None:
        a = e.args
        pid, met = int(a["proposalId"]), bool(a["wtpMet"])
        window = self.db.scalar("SELECT value FROM index_meta WHERE key = 'challenge_window'")
        held = window is not None and int(window) > 0
        self.db.execute(
            "UPDATE proposals SET status = ?, accuracy_bps = ?, wtp_met = ?, consumer_fault = ?, "
            "model_hash = ?, payout_root = ?, scores_hash = ?, seed_hash = ?, result_cid = ?, "
            "result_block = ?, price = CASE WHEN ? = 1 THEN price ELSE '0' END, "
            "settlement = ? WHERE proposal_id = ?",
            (
                "completed" if met else "wtp_missed",
                int(a["accuracyBps"]),
                int(met),
                int(bool(a["consumerFault"])),
                _hex(a["modelHash"]),
                _hex(a["payoutRoot"]),
                _hex(a["scoresHash"]),
                _hex(a["seedHash"]),
                str(a["resultCid"]),
                e.block_number,
                int(met),
                "held" if held else "released",
                pid,
            ),
        )
        self.db.execute(
            "INSERT INTO results (proposal_id, document_cid, status, detail, scores_status, "
            "scores_detail) VALUES (?, ?, 'pending', '', 'pending', '') "
            "ON CONFLICT (proposal_id) DO NOTHING",
            (pid, str(a["resultCid"])),
        )
        self.index_result(pid)

    def _owner_of(self, asset_id: int) -> str | None:
        owner = self.db.scalar("SELECT owner FROM assets WHERE asset_id = ?", (asset_id,))
        return None if owner is None else str(owner)

    def index_result(self, proposal_id: int) -> None:
        """Fetch and check the result document, its payouts and its scores (if not done)."""
        row = self.db.query(
            "SELECT r.document_cid, r.status, r.scores_status, r.scores_cid, p.accuracy_bps, "
            "p.wtp_met, p.consumer_fault, p.model_hash, p.payout_root, p.scores_hash, "
            "p.seed_hash, p.node, p.price FROM results r JOIN proposals p "
            "ON p.proposal_id = r.proposal_id WHERE r.proposal_id = ?",
            (proposal_id,),
        )
        if not row:
            return
        (cid, status, scores_status, scores_cid, accuracy, met, fault) = row[0][:7]
        (model, root, scores_hash, seed, node, price) = row[0][7:]
        if status in ("pending", "missing"):
            try:
                doc = parse_result(
                    self.fetch(cid),
                    proposal_id=proposal_id,
                    accuracy_bps=int(accuracy),
                    wtp_met=bool(met),
                    consumer_fault=bool(fault),
                    model_hash=bytes.fromhex(model[2:]),
                    payout_root=bytes.fromhex(root[2:]),
                    seed_hash=bytes.fromhex(seed[2:]),
                    node=node,
                    # the scoring fee came off the price before any payout (._scoring)
                    price=int(price) - scoring_fee(self.db, proposal_id),
                    owner_of=self._owner_of,
                )
            except DocumentUnavailableError as exc:
                self._result_status(proposal_id, "missing", str(exc))
                return
            except DocumentError as exc:
                log.warning("proposal %d: result document rejected: %s", proposal_id, exc)
                self._result_status(proposal_id, "rejected", str(exc), scores="none")
                return
            self.db.executemany(
                "INSERT INTO payouts (proposal_id, position, asset_id, owner, amount) VALUES "
                "(?, ?, ?, ?, ?) ON CONFLICT (proposal_id, position) DO NOTHING",
                [
                    (proposal_id, leaf.position, leaf.asset_id, leaf.owner, str(leaf.amount))
                    for leaf in doc.payouts
                ],
            )
            self.db.execute(
                "UPDATE results SET status = 'indexed', detail = '', epsilon_spent = ?, "
                "model_cid = ?, scores_cid = ?, scores_status = ?, fault_reason = ? "
                "WHERE proposal_id = ?",
                (
                    doc.epsilon_spent,
                    doc.model_cid,
                    doc.scores_cid,
                    "pending" if doc.scores_cid else "none",
                    doc.fault_reason,
                    proposal_id,
                ),
            )
            scores_cid, scores_status = doc.scores_cid, "pending" if doc.scores_cid else "none"
        if scores_status in ("pending", "missing") and scores_cid:
            self._index_scores(proposal_id, scores_cid, bytes.fromhex(scores_hash[2:]))

    def _index_scores(self, proposal_id: int, cid: str, scores_hash: bytes) -> None:
        try:
            rows = parse_scores(self.fetch(cid), proposal_id=proposal_id, scores_hash=scores_hash)
        except DocumentUnavailableError as exc:
            self._scores_status(proposal_id, "missing", str(exc))
            return
        except DocumentError as exc:
            log.warning("proposal %d: scores rejected: %s", proposal_id, exc)
            self._scores_status(proposal_id, "rejected", str(exc))
            return
        self.db.executemany(
            "INSERT INTO sample_scores (proposal_id, asset_id, sample_index, sample_id, "
            "provider, value, cluster_founder, cluster_size, flags, flag_noisy, flag_copied, "
            "flag_duplicate, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (proposal_id, asset_id, sample_index) DO NOTHING",
            [
                (
                    proposal_id,
                    r.asset_id,
                    r.index,
                    r.sample_id,
                    r.provider,
                    r.value,
                    r.cluster_founder,
                    r.cluster_size,
                    ",".join(r.flags),
                    # a noisy flag counts only with its evidence (._evidence)
                    *(
                        int(flag in r.flags and (flag != "noisy" or r.evidence is not None))
                        for flag in KNOWN_FLAGS
                    ),
                    None if r.evidence is None else r.evidence.to_json(),
                )
                for r in rows
            ],
        )
        self.db.execute(
            "UPDATE results SET scores_status = 'indexed', scores_detail = '', "
            "scored_samples = ? WHERE proposal_id = ?",
            (len(rows), proposal_id),
        )

    def _result_status(
        self, proposal_id: int, status: str, detail: str, *, scores: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE results SET status = ?, detail = ? WHERE proposal_id = ?",
            (status, detail, proposal_id),
        )
        if scores is not None:
            self._scores_status(proposal_id, scores, "")

    def _scores_status(self, proposal_id: int, status: str, detail: str) -> None:
        self.db.execute(
            "UPDATE results SET scores_status = ?, scores_detail = ? WHERE proposal_id = ?",
            (status, detail, proposal_id),
        )

    # --- payouts ----------------------------------------------------------------------------
    def _claimed(self, e: ChainEvent) -> None:
        a = e.args
        self.db.execute(
            "INSERT INTO claims (proposal_id, position, asset_id, owner, amount, block_number) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (proposal_id, position) DO NOTHING",
            (
                int(a["proposalId"]),
                int(a["position"]),
                int(a["assetId"]),
                a["owner"],
                str(a["amount"]),
                e.block_number,
            ),
        )

    def _unclaimed_swept(self, e: ChainEvent) -> None:
        self.db.execute(
            "UPDATE proposals SET swept = ?, treasury = ? WHERE proposal_id = ?",
            (str(e.args["amount"]), e.args["treasury"], int(e.args["proposalId"])),
        )

    # --- delegations ------------------------------------------------------------------------
    def _delegate_changed(self, e: ChainEvent) -> None:
        a = e.args
        previous = None if a["previousDelegate"] == _ZERO_ADDRESS else a["previousDelegate"]
        delegate = None if a["delegatee"] == _ZERO_ADDRESS else a["delegatee"]
        self.db.execute(
            "INSERT INTO delegations (delegator, delegate, block_number) VALUES (?, ?, ?) "
            "ON CONFLICT (delegator) DO UPDATE SET delegate = excluded.delegate, "
            "block_number = excluded.block_number",
            (a["delegator"], delegate, e.block_number),
        )
        self.db.execute(
            "INSERT INTO delegation_changes (block_number, log_index, delegator, "
            "previous_delegate, delegate) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (block_number, log_index) DO NOTHING",
            (e.block_number, e.log_index, a["delegator"], previous, delegate),
        )

    # --- retries ----------------------------------------------------------------------------
    def retry_missing(self) -> int:
        """Fetch again every proposal and result document (or scores) recorded as
        ``missing``; returns how many were tried."""
        tried = 0
        for (pid,) in self.db.query(
            "SELECT proposal_id FROM proposals WHERE document_status = 'missing' "
            "ORDER BY proposal_id"
        ):
            self.index_proposal(int(pid))
            tried += 1
        for (pid,) in self.db.query(
            "SELECT proposal_id FROM results WHERE status = 'missing' OR scores_status = "
            "'missing' ORDER BY proposal_id"
        ):
            self.index_result(int(pid))
            tried += 1
        return tried
