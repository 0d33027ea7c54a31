"""The demo's scoring round: a newcomer's unscored samples earn a place in a search by value.

Before the first proposal governance publishes the pool's public reference (Fashion-MNIST test
images score, further ones are anchors) and sets a scoring fee, which the market takes from the
price of every proposal made from then on that completes (:meth:`ScoringRound.open_pool`).
After the rounds ``zoe`` (:data:`~._cast.NEWCOMER`) registers an asset of correctly labelled
images that no round has scored; a consumer who takes the third of the market with the best
expected value (``search_index(..., rank="expected-value")``) passes her samples over, since an
unscored sample is worth the market's mean (:meth:`ScoringRound.newcomer_arrives`). The node
then claims her asset from the pool, which the fee funded, scores it in its sandbox exactly as
``visdm node serve --score`` does (:class:`~visdm.compute.ScoringWorker`), publishes the scores
and is paid; the index syncs, and the same search takes her samples as it takes those of honest
providers whose samples a round has scored (:meth:`ScoringRound.score`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from visdm import scoring, session
from visdm.errors import VisdmError
from visdm.storage import ContentStore
from visdm.types import Role

from ._cast import COPIER, NEWCOMER, NOISY, REJECTER, class_names, prepare_newcomer
from ._report import newcomer_line
from ._settle import tokens
from ._stage import Collect, Stage

__all__ = [
    "BEST_PART",
    "REFERENCE_SAMPLES",
    "SCORING_FEE_BPS",
    "ScoringRound",
    "share_chosen",
]

#: the market's scoring fee on the price of a completed proposal (basis points; at most 1,000)
SCORING_FEE_BPS = 200
#: reference images that score a batch, and as many anchors valued beside it (the default)
REFERENCE_SAMPLES = 500
#: the consumer takes the best 1/BEST_PART of the market by expected value: fewer samples than
#: are worth more than the market's mean, so that no choice falls among the unscored samples,
#: which all sit at the mean and would be told apart only by their asset ids
BEST_PART = 3


def share_chosen(chosen: Iterable[str], held: Mapping[str, int], who: Iterable[str]) -> float:
    """The share of the samples ``who`` hold (``held``: samples per provider) that a choice
    takes (``chosen``: the provider of each chosen sample); 0 when they hold none."""
    names = set(who)
    total = sum(held.get(n, 0) for n in names)
    return sum(1 for c in chosen if c in names) / total if total else 0.0


class ScoringRound:
    """Opens the scoring pool, brings the newcomer in and scores her asset
    (``report.scoring``)."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.figures: dict[str, Any] = {}

    def fee_of(self, pid: int) -> int:
        """What proposal ``pid`` paid (or pays) the scoring pool from its price."""
        conn = session.connect_deployed(self.stage.settings)
        return scoring.fee_contract(conn.client, conn.deployment).scoring_fee(pid).amount

    def open_pool(self) -> None:
        """Governance publishes the reference and sets the scoring fee."""
        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        admin = stage.people["admin"].local_account
        with stage.step("scoring pool") as info:
            published = scoring.publish_reference(
                conn.client,
                conn.deployment,
                session.open_store(stage.settings),
                admin,
                classes=class_names(),
                validation_samples=REFERENCE_SAMPLES,
                anchor_samples=REFERENCE_SAMPLES,
            )
            fee = scoring.set_fee(conn.client, conn.deployment, admin, SCORING_FEE_BPS)
            terms = scoring.pool(conn.client, conn.deployment).terms()
            info["gas"] = sum(t.gas_used for t in (*published.transactions, *fee.transactions))
            reference = published.reference
            info["detail"] = (
                f"governance publishes the scoring reference ({reference.validation.samples} "
                f"Fashion-MNIST test images score, {reference.anchors.samples} are anchors) "
                f"and a {SCORING_FEE_BPS / 100:g}% scoring fee on proposals made from now on"
            )
            info["notes"].append(
                f"the pool pays a node {tokens(terms.rate_per_sample)} tokens per sample it "
                f"scores, for assets with fewer than {terms.max_rounds} paid scoring rounds"
            )
        self.figures = {
            "referenceHash": "0x" + reference.reference_hash.hex(),
            "referenceCid": reference.cid,
            "validationSamples": reference.validation.samples,
            "anchorSamples": reference.anchors.samples,
            "feeBps": SCORING_FEE_BPS,
            "ratePerSampleWei": terms.rate_per_sample,
        }
        stage.report.scoring = self.figures

    def newcomer_arrives(self) -> None:
        """The newcomer registers and adds an asset; the node attests it; a search by expected
        value passes it over."""
        from visdm.assets import add_asset

        stage = self.stage
        with stage.step("newcomer") as info:
            zoe = stage.new_account(NEWCOMER)
            _, registered = session.register(
                stage.as_(NEWCOMER), zoe.local_account, Role.PROVIDER, zoe.x25519_public
            )
            provider = prepare_newcomer(Path(stage.settings.home) / "photos", stage.config)
            added = add_asset(stage.as_(NEWCOMER), zoe, provider.folders[0])
            stage.assets[NEWCOMER] = [added.asset_id]
            stage.owner_of[added.asset_id] = NEWCOMER
            outcome = stage.attest().get(added.asset_id)
            if outcome != "attested":
                raise VisdmError(f"the node did not attest {NEWCOMER}'s asset: {outcome}")
            info["gas"] = added.gas_used + (registered.gas_used if registered else 0)
            info["detail"] = (
                f"{NEWCOMER} registers {provider.images} correctly labelled images as asset "
                f"{added.asset_id}; the node attests them; no round has scored them"
            )
        self.figures["newcomer"] = {
            "name": NEWCOMER,
            "address": zoe.address,
            "assetId": added.asset_id,
            "samples": provider.images,
        }
        with stage.step("search by value") as info:
            self.figures["before"] = self._best_part(info)

    def score(self) -> None:
        """The node scores the newcomer's asset for the pool; the same search runs again."""
        from visdm.compute import ScoringConfig, ScoringWorker
        from visdm.index import sync_index

        stage = self.stage
        conn = session.connect_deployed(stage.settings)
        client, deployment = conn.client, conn.deployment
        store = session.open_store(stage.settings)
        node = stage.people["node1"]
        asset_id = self.figures["newcomer"]["assetId"]
        with stage.step("scoring round") as info:
            collected = scoring.collect_fees(client, deployment, node.local_account)
            # the pool would let the node score any asset with few paid rounds; it takes the
            # newcomer's, as `visdm scoring claim --asset ID` does
            claimed = scoring.claim(
                client, deployment, store, node.local_account, asset_ids=[asset_id]
            )
            if claimed is None:
                raise VisdmError(f"the pool let node1 claim nothing: asset {asset_id} unscorable")
            worker = ScoringWorker(
                client, deployment, store, node, ScoringConfig(workdir=stage.settings.node_dir)
            )
            started = time.perf_counter()
            try:
                with (
                    Collect(logging.WARNING).on(logging.getLogger("visdm")) as warned,
                    stage.progress.task(
                        f"node scores {NEWCOMER}'s batch in the sandbox", 1.0
                    ) as advance,
                ):
                    worker.poll(idle=False)
                    advance(1.0)
                row = worker.journal.row(claimed.batch_id) or {}
            finally:
                worker.close()
            seconds = round(time.perf_counter() - started, 2)
            if row.get("state") != "published":
                raise VisdmError(
                    f"scoring batch {claimed.batch_id} ended {row.get('state')}: "
                    f"{row.get('message') or '; '.join(warned.messages)}"
                )
            view = scoring.batch_view(client, deployment, claimed.batch_id)
            document = _scores(store, view, node.address)
            copied = sum(1 for r in document.rows if "copied" in r.flags)
            paid = scoring.withdraw(client, deployment, node.local_account)
            published = client.w3.eth.get_transaction_receipt(row["txHash"])
            sent = [*collected.transactions, *claimed.transactions, *paid.transactions]
            info["gas"] = sum(t.gas_used for t in sent) + int(published["gasUsed"])
            sync_index(stage.settings)
            info["detail"] = (
                f"node1 claims {NEWCOMER}'s asset from the pool, scores its {view.record.scored} "
                f"samples in the sandbox ({seconds} s) against the reference, publishes the "
                f"scores and withdraws {tokens(view.paid_wei or 0)} tokens; the index syncs"
            )
            info["notes"] += [
                f"the pool collected {tokens(collected.amount_wei)} tokens of scoring fees from "
                "the market; the node's seed is committed by hash "
                f"{view.seed_hash[:10] if view.seed_hash else 'none'}…",
                f"{document.players} players valued ({document.players - len(document.rows)} "
                f"anchors); the scores flag {copied} of {NEWCOMER}'s samples as copies, worth 0",
                *(f"node: {w}" for w in warned.messages),
            ]
        self.figures.update(
            feesCollectedWei=collected.amount_wei,
            batchId=claimed.batch_id,
            scored=view.record.scored,
            paidWei=view.paid_wei or 0,
            scoresCid=view.scores_cid,
            seedHash=view.seed_hash,
            players=document.players,
            flaggedCopied=copied,
            scoringSeconds=seconds,
        )
        with stage.step("search again") as info:
            self.figures["after"] = self._best_part(info)
            info["notes"].append(newcomer_line(stage.report))

    def _best_part(self, info: dict[str, Any]) -> dict[str, Any]:
        """Sync the index and take the best part of the market by expected value."""
        from visdm.index import search_index, sync_index

        stage = self.stage
        sync_index(stage.settings)
        total = search_index(stage.settings, limit=1).total
        ranked = search_index(stage.settings, limit=total, rank="expected-value").samples
        by_address = {stage.people[n].address.lower(): n for n in stage.assets}
        owners = [by_address.get(h.provider.lower(), h.provider) for h in ranked]
        held: dict[str, int] = {}
        for who in owners:
            held[who] = held.get(who, 0) + 1
        chosen = owners[: total // BEST_PART]
        honest = [n for n in stage.config.cast if n not in NOISY and n not in (COPIER, REJECTER)]
        mine = [h for h in ranked if h.asset_id in stage.assets[NEWCOMER]]
        figures = {
            "matches": total,
            "chosen": len(chosen),
            # the least expected value chosen: a sample worth less is not chosen
            "cutExpectedValue": ranked[len(chosen) - 1].expected_value if chosen else None,
            "newcomerChosen": sum(1 for c in chosen if c == NEWCOMER),
            "newcomerShare": share_chosen(chosen, held, [NEWCOMER]),
            "honestShare": share_chosen(chosen, held, honest),
            "newcomerExpectedValue": _mean(h.expected_value or 0.0 for h in mine),
            "newcomerConfidence": _mean(h.confidence for h in mine),
            "newcomerScoringRounds": min((h.scoring_rounds for h in mine), default=0),
        }
        info["detail"] = (
            f"bob takes the best third of the market by expected value ({len(chosen)} of "
            f"{total} samples, from {figures['cutExpectedValue'] or 0:.2f} up): "
            f"{figures['newcomerChosen']} of {NEWCOMER}'s {held.get(NEWCOMER, 0)} "
            f"({figures['newcomerShare']:.0%}; honest scored providers' "
            f"{figures['honestShare']:.0%})"
        )
        info["notes"].append(
            f"{NEWCOMER}'s samples: expected value {figures['newcomerExpectedValue']:.2f} on "
            f"average, confidence {figures['newcomerConfidence']:.2f}"
            + ("" if figures["newcomerConfidence"] else " (unscored: the market's mean)")
        )
        return figures


def _scores(store: ContentStore, view: scoring.BatchView, node: str) -> scoring.ScoresDocument:
    """The batch's published scores, checked against what the chain commits."""
    if view.scores_cid is None or view.scores_hash is None or view.seed_hash is None:
        raise VisdmError(f"batch {view.record.batch_id} has no published scores")
    return scoring.parse_scores(
        store.get(view.scores_cid),
        scores_hash=bytes.fromhex(view.scores_hash[2:]),
        batch_id=view.record.batch_id,
        node=node,
        reference_hash=view.record.reference_hash,
        seed_hash=bytes.fromhex(view.seed_hash[2:]),
        scored=view.record.scored,
        batch_assets=view.asset_ids,
    )


def _mean(values: Iterable[float]) -> float:
    seen: Sequence[float] = list(values)
    return sum(seen) / len(seen) if seen else 0.0
