"""A federated proposal end to end: the members' share of the selection, their fees, the
Flower round, exact federated values turned into one payout tree over every region, and the
result committed through the ``Federation`` contract (docs/federation.md).

Who does what:

* each **member** (a regional node) decrypts only the selected assets assigned to it, with its
  own wrapped keys, into its own private directory (:func:`prepare_region`), signs its
  SuperNode key for the round and runs a SuperNode whose ClientApp trains in its sandbox;
* the **coordinator** opens the consumer's validation set (sealed to it), registers exactly the
  members' bound keys with its SuperLink, runs FedAvg and the TKNN value rounds, settles the
  payouts, stores the result document and commits it with the members' fees.

Copy-robust pay across regions uses the public pHash links of the assets' metadata, which every
node has: a cluster of near-duplicates is paid as its earliest registered member (its value goes
to that sample's provider, split over that provider's copies; other providers' copies earn 0).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalRecord, Quote, ResultCommitment
from visdm.chain.deployment import Deployment
from visdm.compute._results import RESULT_KIND, selected_assets
from visdm.compute.delivery import seal_model
from visdm.errors import FederationRoundError, InvalidInputError
from visdm.ingest._decode import decode_image
from visdm.market.quotes import sign_quote
from visdm.metadata import selection_links
from visdm.proposals import CheckedProposal
from visdm.proposals._validation import image_to_array, open_validation_set, read_validation_set
from visdm.scoring import ScoringFee
from visdm.storage import ContentStore
from visdm.training._design import NodeLimits, check_design, training_cost
from visdm.training._spec import ModelSpec, parse_model_spec
from visdm.types import Address
from visdm.verify._settle import settle

from .membership import FederationView, assign_assets
from .processes import Federation

__all__ = [
    "Coordinator",
    "RegionShare",
    "RoundOutcome",
    "commit_outcome",
    "load_coordinator",
    "member_fees",
    "plan_shares",
    "prepare_region",
    "quote_federation",
    "robust_provider_values",
    "run_round",
    "settle_fees",
]

log = logging.getLogger("visdm.federation.round")


@dataclass(frozen=True, slots=True)
class RegionShare:
    """The part of a proposal's selection one member trains."""

    node: Address
    region: str
    asset_ids: tuple[int, ...]
    samples: int


@dataclass
class RoundOutcome:
    """What the Flower round produced, before it is committed."""

    status: str
    reason: str | None
    result: dict[str, Any]
    weights: dict[str, np.ndarray] | None
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    notes: list[str] = field(default_factory=list)


def plan_shares(
    view: FederationView, checked: CheckedProposal, excluded: set[int]
) -> list[RegionShare]:
    """Each member's assets and sample count, over the assets still in the round."""
    in_round = {a: p for a, p in checked.public.items() if a not in excluded}
    assigned = assign_assets(in_round, view.members)
    counts: dict[int, int] = {}
    for s in checked.samples:
        counts[s.asset_id] = counts.get(s.asset_id, 0) + 1
    return [
        RegionShare(
            m.address,
            view.region_of(m),
            tuple(assigned[m.address]),
            sum(counts.get(a, 0) for a in assigned[m.address]),
        )
        for m in view.members
    ]


def member_fees(
    spec: ModelSpec,
    shares: Sequence[RegionShare],
    price_per_gflop: int,
    limits: NodeLimits | None = None,
) -> list[int]:
    """Each member's fee, priced as a single node prices its own samples (training FLOPs per
    sample × samples × epochs); the federation's quote is their sum."""
    report = check_design(spec, limits or NodeLimits())
    return [training_cost(report, max(s.samples, 1), spec.epochs, price_per_gflop) for s in shares]


def prepare_region(
    member: UnlockedAccount,
    store: ContentStore,
    checked: CheckedProposal,
    share: RegionShare,
    workdir: Path,
) -> dict[str, str]:
    """The member's side: decrypt its share with its own keys, decode it into the spec's
    layout in its private ``workdir`` and return the SuperNode's node config. Samples whose
    label is not one of the proposal's classes, or that do not decrypt or decode, are left
    out (as a single node leaves them out)."""
    spec = parse_model_spec(checked.document.model_spec_json)
    class_of = {name: i for i, name in enumerate(checked.document.classes)}
    mine = set(share.asset_ids)
    keys = {
        a: member.unwrap_key(checked.public[a].manifest.key_for(member.address).wrapped)
        for a in mine
    }
    from visdm.ingest import decrypt_sample

    images, labels, ids = [], [], []
    for sample in checked.samples:
        if sample.asset_id not in mine or sample.label not in class_of:
            continue
        try:
            plain = decrypt_sample(
                store, sample.cid, index=sample.index, data_key=keys[sample.asset_id]
            )
            decoded = decode_image(plain, name=f"asset {sample.asset_id} sample {sample.index}")
            with decoded.image:
                images.append(image_to_array(decoded.image, spec.input_shape))
        except InvalidInputError as exc:
            log.warning("region %s: sample left out: %s", share.region, exc)
            continue
        labels.append(class_of[sample.label])
        ids.append("0x" + sample.sample_id.hex())
    if not images:
        raise FederationRoundError(f"region {share.region}: none of its selected samples is usable")
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = workdir / "region.npz"
    np.savez(
        path,
        images=np.stack(images),
        labels=np.asarray(labels, np.int64),
        sample_ids=np.asarray(ids),
    )
    return {"region": share.region, "data-path": str(path), "state-dir": str(workdir / "state")}


def open_validation(
    coordinator: UnlockedAccount, store: ContentStore, checked: CheckedProposal, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The coordinator opens the consumer's validation set, sealed to it, into ``path``."""
    doc = checked.document
    spec = parse_model_spec(doc.model_spec_json)
    archive = open_validation_set(
        store.get(doc.validation.cid),
        coordinator.unwrap_key(doc.validation.wrapped_key),
        doc.validation.plaintext_hash,
        aad=doc.validation_aad,
    )
    x, y = read_validation_set(archive, spec.input_shape, spec.num_classes)
    np.savez(path, images=x, labels=y)
    return x, y


def run_round(
    fed: Federation,
    checked: CheckedProposal,
    record: ProposalRecord,
    shares: Sequence[RegionShare],
    *,
    validation_path: Path,
    num_rounds: int = 2,
    strategy: str = "fedavg",
    timeout_s: float = 900.0,
) -> RoundOutcome:
    """Run the round on ``fed`` (its SuperNodes added) and read its result."""
    result_path = fed.workdir / "result.json"
    total = sum(s.samples for s in shares)
    spec_json = checked.document.model_spec_json
    run_config: dict[str, Any] = {
        "spec": spec_json.decode() if isinstance(spec_json, bytes) else str(spec_json),
        "regions": ",".join(f"{s.region}:{s.samples}" for s in shares if s.samples),
        "num-rounds": num_rounds,
        "local-epochs": 1,
        "strategy": strategy,
        "validation-path": str(validation_path),
        "result-path": str(result_path),
        "wait-nodes-s": 120.0,
        "node-timeout-s": 300.0,
        # the share of the selection the consumer accepted, over the assets still in the round
        "min-share": record.min_share_bps / 10_000 if total else 1.0,
    }
    status = fed.run(run_config, timeout_s=timeout_s)
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    weights = None
    if result.get("status") == "completed":
        with np.load(result_path.with_suffix(".npz")) as saved:
            weights = {k: saved[k] for k in saved.files}
    return RoundOutcome(
        status=str(result.get("status") or status.status),
        reason=result.get("reason"),
        result=result,
        weights=weights,
        seconds=status.elapsed_s,
        bytes_in=status.bytes_in,
        bytes_out=status.bytes_out,
    )


def robust_provider_values(
    checked: CheckedProposal, values: Mapping[str, float]
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, int]]:
    """Copy-robust shares of the federated per-sample values: per sample row (``sample_id``,
    ``value`` paid, ``raw`` TKNN value, ``cluster``), provider values and sample counts."""
    owner = {"0x" + s.sample_id.hex(): str(s.owner) for s in checked.samples}
    rank = {"0x" + s.sample_id.hex(): (s.asset_id << 32) | s.index for s in checked.samples}
    valued = [sid for sid in values if sid in owner]
    parent = {sid: sid for sid in valued}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    documents = [p.metadata for p in checked.public.values() if p.metadata is not None]
    for a, b in selection_links(documents, selected=set(valued)):
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb, key=lambda s: rank[s])] = min(ra, rb, key=lambda s: rank[s])
    clusters: dict[str, list[str]] = {}
    for sid in valued:
        clusters.setdefault(find(sid), []).append(sid)
    rows: list[dict[str, Any]] = []
    provider_values: dict[str, float] = {}
    counts: dict[str, int] = {}
    for members in clusters.values():
        founder = min(members, key=lambda s: rank[s])
        paid_to = owner[founder]
        own = [s for s in members if owner[s] == paid_to]
        share = float(values[founder]) / len(own)
        for sid in members:
            paid = share if owner[sid] == paid_to else 0.0
            rows.append(
                {
                    "sample_id": sid,
                    "provider": owner[sid],
                    "value": paid,
                    "raw": float(values[sid]),
                    "cluster_founder": founder,
                    "cluster_size": len(members),
                    # another provider's copy of an earlier sample: paid nothing (as one node)
                    "flags": [] if owner[sid] == paid_to else ["copied"],
                }
            )
            provider_values[owner[sid]] = provider_values.get(owner[sid], 0.0) + paid
            counts[owner[sid]] = counts.get(owner[sid], 0) + 1
    rows.sort(key=lambda r: rank[r["sample_id"]])
    return rows, provider_values, counts


@dataclass(frozen=True, slots=True)
class Coordinator:
    """The coordinator's handles on one federated proposal."""

    client: ChainClient
    deployment: Deployment
    store: ContentStore
    account: UnlockedAccount
    view: FederationView
    checked: CheckedProposal
    record: ProposalRecord


def commit_outcome(
    ctx: Coordinator, shares: Sequence[RegionShare], fees: Sequence[int], outcome: RoundOutcome
) -> dict[str, Any]:
    """Set the members' fees and commit the round through the federation: a failed round (too
    few regions left) gives the job up, which refunds the consumer in full; otherwise the
    result document is stored and its commitments submitted. Returns the result document."""
    checked, record, view = ctx.checked, ctx.record, ctx.view
    pid = checked.proposal_id
    fed, me = view.contract, ctx.account.local_account
    if outcome.status != "completed" or outcome.weights is None:
        # fewer regions left than the consumer accepted: the market refunds it everything
        reason = f"federated round failed: {outcome.reason or outcome.status}"
        fed.abandon_training(me, pid, reason[:200])
        return {"status": "failed", "reason": reason}
    fed.set_fees(me, pid, settle_fees(fees, shares, outcome))
    accuracy = round(float(outcome.result["accuracy"]) * 10_000)
    regions = outcome.result.get("regions") or {}
    spent = [float(r["epsilon"]) for r in regions.values() if r.get("epsilon") is not None]
    document: dict[str, Any] = {
        "version": 1,
        "kind": RESULT_KIND,
        "proposalId": pid,
        "node": str(fed.address),
        "coordinator": str(view.record.coordinator),
        "accuracyBps": accuracy,
        "wtpBps": record.wtp_bps,
        "wtpMet": accuracy >= record.wtp_bps,
        "consumerFault": None,
        # each region spent its own ε on its own samples: the largest is the round's
        "epsilonSpent": max(spent) if spent else None,
        "trainSamples": sum(
            int(r.get("samples") or 0) for r in regions.values() if not r.get("dropped")
        ),
        "federation": {
            "regions": outcome.result.get("regions"),
            "shares": [
                {
                    "node": s.node,
                    "region": s.region,
                    "assets": list(s.asset_ids),
                    "samples": s.samples,
                    "fee": str(f),
                }
                for s, f in zip(shares, fees, strict=True)
            ],
            "strategy": outcome.result.get("strategy"),
            "rounds": len(outcome.result.get("rounds") or []),
            "seconds": outcome.seconds,
            "bytesIn": outcome.bytes_in,
            "bytesOut": outcome.bytes_out,
        },
        "model": None,
        "scores": None,
        "payouts": None,
    }
    # no seed commitment: each member draws its own secret seed, which no verifier receives
    commitment = ResultCommitment(accuracy_bps=accuracy, result_cid="")
    if accuracy >= record.wtp_bps:
        commitment = _deliver(ctx, outcome, document, commitment)
    cid = ctx.store.put(json.dumps(document, sort_keys=True, default=str).encode(), pin=True)
    fed.submit_result(me, pid, _with_cid(commitment, cid))
    return document


def _deliver(
    ctx: Coordinator, outcome: RoundOutcome, document: dict[str, Any], commitment: ResultCommitment
) -> ResultCommitment:
    """WTP met: seal the global model to the consumer, settle one payout tree over every
    region, publish the scores."""
    import io

    assert outcome.weights is not None
    client, store, checked, record = ctx.client, ctx.store, ctx.checked, ctx.record
    buffer = io.BytesIO()
    np.savez(buffer, **outcome.weights)  # type: ignore[arg-type]
    registry = ctx.deployment.stakeholder_registry(client)
    market = ctx.deployment.training_market(client)
    sealed = seal_model(
        buffer.getvalue(),
        proposal_id=checked.proposal_id,
        consumer_key=registry.stakeholder(checked.document.consumer).encryption_key,
        node=ctx.account,
        chain_id=client.chain_id,
        market=market.address,
    )
    values = (outcome.result.get("valuation") or {}).get("values") or {}
    rows, provider_values, counts = robust_provider_values(checked, values)
    fee = ScoringFee(client, market.address).scoring_fee(checked.proposal_id).amount
    settled = settle(
        {"samples": rows, "providerValues": provider_values, "sampleCounts": counts},
        proposal_id=checked.proposal_id,
        amount=record.price - fee,
        sample_assets={"0x" + s.sample_id.hex(): (s.asset_id, s.index) for s in checked.samples},
        assets=selected_assets(checked),
    )
    payout = settled.payout
    document["model"] = {
        "cid": store.put(sealed.envelope, pin=True),
        "modelHash": "0x" + sealed.model_hash.hex(),
        "format": "npz",
    }
    document["scores"] = {
        "cid": store.put(settled.scores, pin=True),
        "hash": "0x" + settled.scores_hash.hex(),
    }
    document["payouts"] = {
        "root": "0x" + payout.root.hex(),
        "scoringFee": str(fee),
        "basis": payout.basis,
        "amounts": {a: str(v) for a, v in payout.amounts.items()},
        "assets": {str(a): str(v) for a, v in payout.asset_amounts.items()},
        "tree": payout.tree.dump() if payout.tree is not None else None,
    }
    return ResultCommitment(
        accuracy_bps=commitment.accuracy_bps,
        result_cid="",
        model_hash=sealed.model_hash,
        payout_root=payout.root,
        scores_hash=settled.scores_hash,
        seed_hash=commitment.seed_hash,
    )


def _with_cid(commitment: ResultCommitment, cid: str) -> ResultCommitment:
    from dataclasses import replace

    return replace(commitment, result_cid=cid)


def load_coordinator(
    client: ChainClient,
    deployment: Deployment,
    store: ContentStore,
    account: UnlockedAccount,
    proposal_id: int,
) -> Coordinator:
    """The coordinator's view of ``proposal_id``, whose node must be a federation it
    coordinates."""
    from visdm.proposals import load_checked_proposal

    from .membership import load_federation

    market = deployment.training_market(client)
    record = market.proposal(proposal_id)
    view = load_federation(client, deployment, record.node)
    if view.record.coordinator != account.address:
        raise FederationRoundError(
            f"proposal {proposal_id}'s federation {record.node} is coordinated by "
            f"{view.record.coordinator}, not {account.address}"
        )
    checked = load_checked_proposal(market, deployment, client, store, proposal_id)
    return Coordinator(client, deployment, store, account, view, checked, record)


def quote_federation(
    ctx: Coordinator, *, price_per_gflop: int, max_duration: int = 3600, valid_s: int = 600
) -> tuple[Quote, bytes, list[RegionShare], list[int]]:
    """The federation's quote (the sum of its members' fees), signed by the coordinator, with
    each member's share of the selection and fee."""
    market = ctx.deployment.training_market(ctx.client)
    positions = market.excluded_positions(ctx.checked.proposal_id, ctx.record.asset_count)
    excluded = {ctx.checked.document.asset_ids[p] for p in positions}
    shares = plan_shares(ctx.view, ctx.checked, excluded)
    spec = parse_model_spec(ctx.checked.document.model_spec_json)
    fees = member_fees(spec, shares, price_per_gflop)
    quote = Quote(
        ctx.checked.proposal_id,
        sum(fees),
        max_duration,
        ctx.client.latest_timestamp() + valid_s,
    )
    signature = sign_quote(
        bytes(ctx.account.local_account.key), ctx.client.chain_id, market.address, quote
    )
    return quote, signature, shares, fees


def settle_fees(
    fees: Sequence[int], shares: Sequence[RegionShare], outcome: RoundOutcome
) -> list[int]:
    """The quoted fees with a member that dropped out paid nothing: its fee goes to the members
    that finished, in proportion to their own (the sum is what the consumer paid)."""
    regions = outcome.result.get("regions") or {}
    finished = [not (regions.get(s.region) or {}).get("dropped") and s.samples > 0 for s in shares]
    if not any(finished):
        return list(fees)
    kept = [f if ok else 0 for f, ok in zip(fees, finished, strict=True)]
    spare, base = sum(fees) - sum(kept), sum(kept)
    if not spare:
        return kept
    if not base:
        kept = [1 if ok else 0 for ok in finished]
        base = sum(kept)
    extra = [spare * k // base for k in kept]
    extra[max(range(len(kept)), key=lambda i: kept[i])] += spare - sum(extra)
    return [k + e if ok else 0 for k, e, ok in zip(kept, extra, finished, strict=True)]
