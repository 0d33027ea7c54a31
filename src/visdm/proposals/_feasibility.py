"""Whether the chosen compute node can run a proposal at all, checked before any money moves.

A proposal its node can never run is not refused by the chain: ``propose`` escrows the offer,
providers vote, and only ``train`` (the node refuses to quote) or the job itself fails — and the
consumer waits out the start period (seven days under the default rules) before ``reclaim``.
So the consumer's client checks, before proposing, what the node would check later:

* **key coverage** — every selected asset's manifest wraps its data key for the node, to the
  X25519 key the node is registered with, and the asset allows the node's region: a node
  without a key cannot decrypt the data it was chosen to train on;
* **the node's limits** — the design check the node runs before quoting (parameters, FLOPs,
  epochs, batch size, DP) and its ``max_samples``, against the limits the node publishes at
  ``GET /limits`` or, when it does not answer, against the limits every node starts with
  (:class:`visdm.training.NodeLimits`); a node with larger limits must be running to say so;
* **the node's longest job** against the market's ``maxTrainingPeriod``: a quote promising
  more is refused by ``startTraining``.

The design check imports torch (on the ``meta`` device: no weights are allocated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from visdm.chain.contracts import ComputeNodeRecord
from visdm.errors import DesignLimitError, InvalidInputError, InvalidModelSpecError
from visdm.jsonsafe import load_untrusted_json

from ._selection import PublicAsset

__all__ = ["MAX_LIMITS_BYTES", "NodeTerms", "coverage_refusal", "node_refusals", "node_terms"]

#: the most bytes of a node's ``/limits`` answer read (it is a dozen numbers)
MAX_LIMITS_BYTES = 16 * 1024
_TIMEOUT_S = 5.0
_INT_LIMITS = (
    "max_params",
    "max_flops_per_sample",
    "max_epochs",
    "max_batch_size",
    "max_samples",
    "min_batch_size",
)
_GFLOP = 10**9


def coverage_refusal(asset: PublicAsset, node: ComputeNodeRecord) -> str | None:
    """Why ``node`` could not decrypt or may not process ``asset`` (or ``None``); for a
    federation, why none of its members could."""
    if node.members:
        refusals = [coverage_refusal(asset, m) for m in node.members]
        if any(r is None for r in refusals):
            return None
        return (
            f"no member of federation {node.address} may train it ("
            + "; ".join(str(r) for r in refusals)
            + ")"
        )
    if asset.record.region_mask & (1 << node.region) == 0:
        return f"it does not allow the region of compute node {node.address}"
    keys = [k for k in asset.manifest.keys if k.role == "node" and k.recipient == node.address]
    if not keys:
        holders = [str(k.recipient) for k in asset.manifest.keys if k.role == "node"]
        return (
            f"its data key is wrapped only for {', '.join(holders) or 'no node'}, not for "
            f"compute node {node.address}, which could not decrypt it: choose one of those "
            "nodes or leave the asset out"
        )
    if keys[0].x25519_public != node.encryption_key:
        return (
            f"its data key is wrapped to an X25519 key compute node {node.address} no longer "
            "holds (governance registered another since): leave the asset out"
        )
    return None


@dataclass(frozen=True, slots=True)
class NodeTerms:
    """What a node publishes about the jobs it takes; ``published`` is False when these are
    the defaults because the node did not say (``why`` then says why)."""

    limits: dict[str, Any]
    price_per_gflop: int | None
    max_duration: int | None
    published: bool
    why: str = ""


def _defaults() -> dict[str, Any]:
    from dataclasses import asdict

    from visdm.training import NodeLimits

    return asdict(NodeLimits())


def node_terms(node: ComputeNodeRecord, *, timeout_s: float = _TIMEOUT_S) -> NodeTerms:
    """The node's published limits, price and longest job (``GET /limits`` at its registered
    endpoint), or the defaults with the reason the node did not say."""
    url = node.endpoint.rstrip("/") + "/limits"

    def fallback(why: str) -> NodeTerms:
        return NodeTerms(_defaults(), None, None, published=False, why=why)

    if not node.endpoint.startswith(("http://", "https://")):
        return fallback(f"it registered no HTTP endpoint ({node.endpoint!r})")
    try:
        # raw bytes, uncompressed: a hostile node's answer is bounded as sent, not inflated
        with httpx.stream(
            "GET", url, timeout=timeout_s, headers={"Accept-Encoding": "identity"}
        ) as response:
            body = b""
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > MAX_LIMITS_BYTES:
                    return fallback(f"{url} sent more than {MAX_LIMITS_BYTES:,} bytes")
            status = response.status_code
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return fallback(f"{url} did not answer ({type(exc).__name__})")
    if status != 200:
        return fallback(f"{url} answered HTTP {status}")
    try:
        answer = load_untrusted_json(body, what=f"{url}'s answer", max_bytes=MAX_LIMITS_BYTES)
    except InvalidInputError as exc:
        return fallback(str(exc))
    problem, terms = _parse_terms(answer, node)
    return fallback(f"{url} {problem}") if terms is None else terms


def _parse_terms(answer: Any, node: ComputeNodeRecord) -> tuple[str, NodeTerms | None]:
    if not isinstance(answer, dict) or not isinstance(answer.get("limits"), dict):
        return "did not answer {'limits': {...}}", None
    if str(answer.get("node", "")).lower() != node.address.lower():
        return f"answers as node {str(answer.get('node'))[:42]!r}, not {node.address}", None
    limits = _defaults()
    given: Mapping[str, Any] = answer["limits"]
    for name in _INT_LIMITS:
        value = given.get(_camel(name), limits[name])
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"sent {_camel(name)}={str(value)[:20]!r}, not a count", None
        limits[name] = value
    if not isinstance(given.get("allowDp", True), bool):
        return "sent a non-boolean allowDp", None
    limits["allow_dp"] = given.get("allowDp", True)
    price = _count(answer.get("pricePerGflopWei"))
    duration = _count(answer.get("maxDuration"))
    return "", NodeTerms(limits, price, duration, published=True)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _count(value: Any) -> int | None:
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 78 else None


def node_refusals(
    spec: Any,
    node: ComputeNodeRecord,
    *,
    samples: int,
    min_batch_size: int,
    max_training_period: int,
    terms: NodeTerms,
) -> tuple[list[str], list[str]]:
    """Run the node's design check on ``spec`` (a parsed model spec) for ``samples`` samples.

    Returns ``(refusals, notes)``: why the node would refuse to train (empty when it would
    not), and what the consumer should know (the limits' source, an estimated training cost).
    """
    from visdm.training import NodeLimits, check_design

    source = (
        f"the limits compute node {node.address} publishes"
        if terms.published
        else f"the default node limits, as compute node {node.address} did not say its own: "
        f"{terms.why}"
    )
    notes = [f"checked the spec against {source}"]
    refusals: list[str] = []
    limits = NodeLimits(
        **{**terms.limits, "min_batch_size": max(terms.limits["min_batch_size"], min_batch_size)}
    )
    try:
        report = check_design(spec, limits)
    except (DesignLimitError, InvalidModelSpecError) as exc:
        refusals.append(str(exc))
        report = None
    if samples > limits.max_samples:
        refusals.append(
            f"the selection has {samples:,} samples, over the node's max_samples="
            f"{limits.max_samples:,}: select fewer"
        )
    if terms.max_duration is not None and terms.max_duration > max_training_period:
        refusals.append(
            f"the node promises jobs of up to {terms.max_duration:,} s but the market allows "
            f"at most {max_training_period:,} s, so startTraining would refuse its quotes: "
            "choose another node"
        )
    if report is not None and terms.price_per_gflop is not None:
        cost = -(
            -(report.train_flops_per_sample * samples * report.spec.epochs * terms.price_per_gflop)
            // _GFLOP
        )
        notes.append(
            f"the node would charge about {Decimal(cost) / 10**18:f} tokens ({cost} wei) for "
            "training at its published price; its signed quote at `visdm train` is binding"
        )
    if refusals and not terms.published:
        refusals.append(
            "start the node (`visdm node serve`) if its own limits are larger, and propose again"
        )
    return refusals, notes
