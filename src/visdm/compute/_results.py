"""What a compute node publishes after a training job (design 3.4 step 4): the result
document, and when the WTP is met the sealed model, the per-sample scores and the payouts.

The payouts share the price less the scoring fee the market credits to the scoring pool when
the result is submitted (fixed when the proposal was made), so that leaves and fee add up to
the price. The result document is stored first; :meth:`ResultPublisher.publish` returns
exactly what ``submitResult`` will commit (accuracy, consumer fault, model, payout root,
scores and seed hashes, the document's CID), which the node journals before it sends the
transaction.

Every result of a model that was trained (WTP met or not) carries its model card under
``modelCard`` (:mod:`visdm.training._card`): what the consumer bought, built from the node's
own counts and the sandboxed job's figures, and checked as every reader checks it before it is
published. A result for a consumer's fault trained nothing and has no card.

When the market has a court, the result document also lists the job's secrets sealed to each
node allowed to re-execute it (``verifierSecrets``, :func:`visdm.verify.publish_job_secrets`):
its CID is what ``submitResult`` commits, so verifiers find them from the event they follow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import (
    ProposalRecord,
    ResultCourt,
    StakeholderRegistry,
    TrainingMarket,
)
from visdm.errors import CryptoError, InvalidInputError, VisdmError
from visdm.jsonsafe import load_untrusted_object, read_untrusted_file
from visdm.proposals import CheckedProposal
from visdm.scoring import ScoringFee
from visdm.storage import ContentStore
from visdm.training._card import AssetUse, ExcludedSamples, ModelCard, WallTime, build_model_card
from visdm.training._spec import canonical_spec_json, parse_model_spec
from visdm.verify import (
    JobSecrets,
    SettledAsset,
    determinism_envelope,
    publish_job_secrets,
    settle,
)

from .delivery import seal_model

__all__ = ["RESULT_KIND", "ConsumerFaultError", "JobFailedError", "ResultPublisher"]

log = logging.getLogger("visdm.node.training")

RESULT_KIND = "visdm-training-result"


class JobFailedError(VisdmError):
    """A training job that cannot succeed as proposed (the consumer reclaims after the deadline)."""


class ConsumerFaultError(JobFailedError):
    """The consumer's own input (validation set, spec, classes) is unusable: the node posts a
    result that misses the WTP, so the data price is refunded and the node is still paid."""


@dataclass
class ResultPublisher:
    """Stores a node's result documents and everything they point to."""

    client: ChainClient
    market: TrainingMarket
    registry: StakeholderRegistry
    store: ContentStore
    account: UnlockedAccount

    def fault(self, proposal_id: int, record: ProposalRecord, reason: str) -> dict[str, Any]:
        """A result that refunds the data price because the consumer's input was unusable."""
        return self._store(
            proposal_id, record, 0, {"consumerFault": reason}, {"consumerFault": True}
        )

    def publish(  # noqa: PLR0917 - one call site
        self,
        proposal_id: int,
        record: ProposalRecord,
        checked: CheckedProposal,
        out_dir: Path,
        outcome: Mapping[str, Any],
        counts: Mapping[str, Any],
        *,
        job_secrets: JobSecrets | None = None,
    ) -> dict[str, Any]:
        accuracy = int(outcome["accuracy_bps"])
        details: dict[str, Any] = {
            "epsilonSpent": outcome.get("epsilon_spent"),
            "specHash": outcome.get("spec_hash"),
            "seedHash": outcome.get("seed_hash"),
            "trainSamples": counts["used"],
            "excludedSamples": counts["excluded"],
            "leftOut": {str(a): why for a, why in counts.get("leftOut", {}).items()},
            "validation": outcome.get("validation"),
            "modelCard": _model_card(checked, outcome, counts).to_document(),
            # what a verifier's machine must share to re-execute this result bit for bit
            "envelope": determinism_envelope(dict(outcome.get("versions") or {})),
        }
        if job_secrets is not None:
            details |= self._seal_for_verifiers(proposal_id, checked, job_secrets)
        commitments: dict[str, Any] = {}
        if outcome.get("seed_hash"):
            commitments["seedHash"] = str(outcome["seed_hash"])
        if accuracy >= record.wtp_bps:
            commitments |= self._deliver(proposal_id, record, checked, out_dir, outcome, details)
        return self._store(proposal_id, record, accuracy, details, commitments)

    def _seal_for_verifiers(
        self,
        proposal_id: int,
        checked: CheckedProposal,
        job_secrets: JobSecrets,
    ) -> dict[str, Any]:
        """The job's secrets sealed to each node allowed to re-execute it, indexed in the result
        document (nothing without a court: no one may challenge then)."""
        court = self.market.parameters().court
        if not court:
            return {}
        used = [checked.public[a] for a in sorted(job_secrets.asset_keys)]
        return publish_job_secrets(
            job_secrets,
            proposal_id=proposal_id,
            node=self.account.address,
            consumer=checked.document.consumer,
            used=used,
            court=ResultCourt(self.client, court),
            registry=self.registry,
            store=self.store,
        )

    def _deliver(  # noqa: PLR0917 - one private call site
        self,
        proposal_id: int,
        record: ProposalRecord,
        checked: CheckedProposal,
        out_dir: Path,
        outcome: Mapping[str, Any],
        details: dict[str, Any],
    ) -> dict[str, str]:
        """WTP met: seal and store the model, settle the payouts, publish the scores; fills
        ``details`` for the result document and returns the hashes ``submitResult`` commits."""
        model = (out_dir / "model.safetensors").read_bytes()
        if "0x" + keccak(model).hex() != outcome.get("model_hash"):
            raise JobFailedError("the model file differs from the hash the job reported")
        consumer_key = self.registry.stakeholder(checked.document.consumer).encryption_key
        try:
            sealed = seal_model(
                model,
                proposal_id=proposal_id,
                consumer_key=consumer_key,
                node=self.account,
                chain_id=self.client.chain_id,
                market=self.market.address,
            )
        except (InvalidInputError, CryptoError) as exc:
            raise ConsumerFaultError(
                f"the consumer's registered encryption key cannot receive the model: {exc}"
            ) from None
        # the sandboxed job wrote it from untrusted images: read with the guard of any input
        what, hint = "the job's valuation.json", "the sandboxed job wrote a broken file"
        path, most = out_dir / "valuation.json", 1 << 30
        valuation = load_untrusted_object(
            read_untrusted_file(path, what=what, max_bytes=most, error=JobFailedError, hint=hint),
            what=what,
            max_bytes=most,
            error=JobFailedError,
            hint=hint,
        )
        # the market credits the scoring pool its fee before any payout: leaves sum to the rest
        fee = ScoringFee(self.client, self.market.address).scoring_fee(proposal_id).amount
        # the same function a verifier re-executes with, so both commit the same bytes
        try:
            settled = settle(
                valuation,
                proposal_id=proposal_id,
                amount=record.price - fee,
                sample_assets={
                    "0x" + s.sample_id.hex(): (s.asset_id, s.index) for s in checked.samples
                },
                assets=selected_assets(checked),
            )
        except InvalidInputError as exc:
            raise JobFailedError(str(exc)) from None
        payout, scores = settled.payout, settled.scores
        model_hash = "0x" + sealed.model_hash.hex()
        scores_hash = "0x" + settled.scores_hash.hex()
        details["model"] = {
            "cid": self.store.put(sealed.envelope, pin=True),
            "modelHash": model_hash,
        }
        details["scores"] = {"cid": self.store.put(scores, pin=True), "hash": scores_hash}
        details["payouts"] = {
            "root": "0x" + payout.root.hex(),
            "scoringFee": str(fee),
            "basis": payout.basis,
            "amounts": {a: str(v) for a, v in payout.amounts.items()},
            "assets": {str(a): str(v) for a, v in payout.asset_amounts.items()},
            "tree": payout.tree.dump() if payout.tree is not None else None,
        }
        return {
            "modelHash": model_hash,
            "payoutRoot": "0x" + payout.root.hex(),
            "scoresHash": scores_hash,
        }

    def _store(
        self,
        proposal_id: int,
        record: ProposalRecord,
        accuracy: int,
        details: Mapping[str, Any],
        commitments: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store the result document; return exactly what ``submitResult`` will carry."""
        fault = bool((commitments or {}).get("consumerFault", False))
        met = not fault and accuracy >= record.wtp_bps
        document = {
            "version": 1,
            "kind": RESULT_KIND,
            "proposalId": proposal_id,
            "node": self.account.address,
            "accuracyBps": accuracy,
            "wtpBps": record.wtp_bps,
            "wtpMet": met,
            "consumerFault": None,
            "model": None,
            "scores": None,
            "payouts": None,
            **details,
        }
        result_cid = self.store.put(json.dumps(document, sort_keys=True).encode(), pin=True)
        log.info(
            "proposal %d: accuracy %.2f%% (WTP %.2f%%), %s; result %s",
            proposal_id,
            accuracy / 100,
            record.wtp_bps / 100,
            "met" if met else "missed",
            result_cid,
        )
        zero = "0x" + bytes(32).hex()
        return {
            "accuracyBps": accuracy,
            "consumerFault": fault,
            "modelHash": zero,
            "payoutRoot": zero,
            "scoresHash": zero,
            "seedHash": zero,
            **(commitments or {}),
            "resultCid": result_cid,
        }


def _model_card(
    checked: CheckedProposal, outcome: Mapping[str, Any], counts: Mapping[str, Any]
) -> ModelCard:
    """The card of the model the job trained: the node's counts (``decrypted``: asset →
    (owner, samples written); ``cardLeftOut``; ``cardExcluded``) with the job's figures."""
    try:
        spec = json.loads(canonical_spec_json(parse_model_spec(checked.document.model_spec_json)))
        decrypted: Mapping[int, tuple[str, int]] = counts["decrypted"]
        unreadable: dict[int, int] = {}
        for row in outcome.get("unreadable_assets") or []:
            asset_id, samples = int(row["asset_id"]), int(row["samples"])
            if not 0 < samples <= decrypted.get(asset_id, ("", 0))[1] - unreadable.get(asset_id, 0):
                raise ValueError(f"{samples} undecodable images of asset {asset_id}")
            unreadable[asset_id] = unreadable.get(asset_id, 0) + samples
        timings = outcome["timings"]
        return build_model_card(
            spec=spec,
            accuracy_bps=int(outcome["accuracy_bps"]),
            validation=outcome["validation"],
            epsilon_spent=outcome.get("epsilon_spent"),
            noise_multiplier=outcome.get("noise_multiplier"),
            assets=[
                AssetUse(asset_id, owner, written - unreadable.get(asset_id, 0))
                for asset_id, (owner, written) in decrypted.items()
                if written > unreadable.get(asset_id, 0)
            ],
            left_out=counts["cardLeftOut"],
            excluded=[
                *counts["cardExcluded"],
                *(ExcludedSamples(a, "unreadable", n) for a, n in unreadable.items()),
            ],
            wall_time=WallTime(
                job_s=float(timings["job_s"]),
                train_s=float(timings["train_s"]),
                eval_s=float(timings["eval_s"]),
                embed_s=float(timings["embed_s"]),
            ),
            versions=outcome["versions"],
        )
    except (VisdmError, KeyError, TypeError, ValueError) as exc:
        raise JobFailedError(f"the job's figures cannot make a true model card: {exc}") from None


def selected_assets(checked: CheckedProposal) -> dict[int, SettledAsset]:
    """Each asset of the proposal's selection: its position there and its owner."""
    return {
        asset_id: SettledAsset(position=i, owner=checked.public[asset_id].record.owner)
        for i, asset_id in enumerate(checked.document.asset_ids)
        if asset_id in checked.public
    }
