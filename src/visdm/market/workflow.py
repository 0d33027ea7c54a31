"""The marketplace's workflows as SDK calls, one per CLI command (design 3.3–3.4).

Consumer: :func:`propose`, :func:`accept_counter`, :func:`request_quote`,
:func:`start_training`, :func:`get_model`, :func:`reclaim`. Providers: :func:`vote`,
:func:`delegate`, :func:`undelegate`, :func:`claim`. Anyone: :func:`tally`,
:func:`proposal_status`, :func:`training_result`. For a browser wallet, which signs each step
itself: :func:`prepare_propose` (the unsigned proposal document) and :func:`next_tally` (the
tally's next batch). What a finished round leaves (the model, payouts, credits) lives in
:mod:`.results` and is re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from eth_utils.address import to_checksum_address

from visdm.accounts import UnlockedAccount
from visdm.chain.client import TxResult
from visdm.chain.contracts import ProposalStatus, Quote
from visdm.config import Settings
from visdm.errors import InvalidInputError, SignatureError, VisdmError
from visdm.jsonsafe import load_untrusted_object
from visdm.proposals import (
    CreatedProposal,
    PreparedProposal,
    SelectedAsset,
    load_labelled_directory,
    pack_arrays,
    prepare_proposal,
    sign_proposal,
    submit_proposal,
)
from visdm.session import Connection, connect_deployed, open_store, top_up_dev_tokens

from . import _next
from ._federated import federation_quote, is_federation
from ._next import parse_ask
from ._views import ask_view, rows
from .quotes import (
    NodeRequest,
    job_status_headers,
    quote_request_body,
    recover_quote_signer,
    sign_job_status_request,
    sign_quote_request,
)
from .release import release, result_window
from .results import (
    ClaimReceipt,
    _proposal,
    _result_document,
    _signed_proposal,
    claim,
    claimable,
    get_model,
    model_bytes,
    sweep_unclaimed,
    training_result,
    withdraw,
)
from .tally import (
    TallyBatch,
    TallyOutcome,
    TallyReceipt,
    next_batch,
    submit_tally,
    tally_outcome,
    tally_progress,
)

__all__ = [
    "ClaimReceipt",
    "NodeUnreachableError",
    "QuoteOffer",
    "accept_counter",
    "ask_view",
    "claim",
    "claimable",
    "delegate",
    "fetch_quote",
    "get_model",
    "model_bytes",
    "next_tally",
    "parse_ask",
    "prepare_propose",
    "proposal_status",
    "propose",
    "reclaim",
    "release",
    "request_quote",
    "start_training",
    "sweep_unclaimed",
    "tally",
    "training_result",
    "undelegate",
    "vote",
    "voting_weight",
    "withdraw",
]

_HTTP_TIMEOUT_S = 180.0
_CONNECT_PATIENCE_S = 30.0
#: a quote or a job's status is a few hundred bytes
_MAX_NODE_ANSWER_BYTES = 1 << 20


class NodeUnreachableError(VisdmError):
    """The compute node's HTTP API did not answer, or answered with an error."""

    exit_code = 9


# --- consumer: proposing ------------------------------------------------------------------
def propose(
    settings: Settings,
    consumer: UnlockedAccount,
    *,
    selection: Sequence[SelectedAsset | int],
    model_spec: Path | dict[str, Any],
    validation: Path | tuple[Any, Any],
    classes: Sequence[str] | None,
    offer: int,
    wtp_bps: int,
    node: str,
    voting_period_s: int,
    min_share_bps: int = 0,
) -> CreatedProposal:
    """Curate, seal the validation set for ``node``, sign, store and propose (escrows ``offer``).

    ``validation`` is a directory of images with ``labels.csv`` (as ``visdm asset add`` reads;
    ``classes`` default to its labels) or ``(images, labels)`` arrays with class indexes. The
    result's notes say how many of the directory's files score the model and how the node's
    limits were checked.
    """
    # the browser wallet's steps, signed with the local key here
    prepared = prepare_propose(
        settings,
        consumer.address,
        selection=selection,
        model_spec=model_spec,
        validation=validation,
        classes=classes,
        offer=offer,
        wtp_bps=wtp_bps,
        node=node,
        voting_period_s=voting_period_s,
        min_share_bps=min_share_bps,
    )
    signed = sign_proposal(prepared.document, bytes(consumer.local_account.key))
    conn = connect_deployed(settings)
    store = open_store(settings)
    return submit_proposal(
        conn.client, conn.deployment, store, consumer, prepared=prepared, signed=signed
    )


def prepare_propose(
    settings: Settings,
    consumer: str,
    *,
    selection: Sequence[SelectedAsset | int],
    model_spec: Path | dict[str, Any],
    validation: Path | tuple[Any, Any],
    classes: Sequence[str] | None,
    offer: int,
    wtp_bps: int,
    node: str,
    voting_period_s: int,
    min_share_bps: int = 0,
    deadline_slack_s: int | None = None,
) -> PreparedProposal:
    """:func:`propose` up to the unsigned document of ``consumer``'s proposal (for a browser
    wallet to sign): every check, the validation set sealed and stored, nothing escrowed."""
    spec, names, archive, notes = _proposal_inputs(model_spec, validation, classes)
    conn = connect_deployed(settings)
    prepared = prepare_proposal(
        conn.client,
        conn.deployment,
        open_store(settings),
        selection=selection,
        model_spec=spec,
        classes=names,
        validation_archive=archive,
        offer=offer,
        wtp_bps=wtp_bps,
        node=node,
        voting_period_s=voting_period_s,
        min_share_bps=min_share_bps,
        consumer_address=consumer,
        deadline_slack_s=deadline_slack_s,
    )
    return replace(prepared, notes=(*notes, *prepared.notes))


def _proposal_inputs(
    model_spec: Path | dict[str, Any],
    validation: Path | tuple[Any, Any],
    classes: Sequence[str] | None,
) -> tuple[Any, tuple[str, ...], bytes, tuple[str, ...]]:
    """The spec, the class names, the packed validation archive and what the validation
    folder's reading noted."""
    spec: Any = model_spec
    if isinstance(model_spec, Path):
        try:
            spec = model_spec.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read the model spec {model_spec}: {exc}") from None
    from visdm.training import parse_model_spec  # pydantic only: no torch

    parsed = parse_model_spec(spec)
    notes: tuple[str, ...] = ()
    if isinstance(validation, Path):
        found = load_labelled_directory(validation, classes, parsed.input_shape)
        images, labels, names, notes = found.images, found.labels, found.classes, (found.summary(),)
    elif classes is None:
        raise InvalidInputError("name the classes that the validation labels index")
    else:
        (images, labels), names = validation, tuple(classes)
    return spec, tuple(names), pack_arrays(images, labels), notes


def accept_counter(settings: Settings, consumer: UnlockedAccount, proposal_id: int) -> TxResult:
    """Accept a counter offer: escrow the difference to the clearing price."""
    conn = connect_deployed(settings)
    record = _proposal(conn, proposal_id)
    _next.require_counter_open(record, _next.chain_now(conn.client))
    market = conn.deployment.training_market(conn.client)
    token = conn.deployment.payment_token(conn.client)
    top_up = record.clearing_price - record.price
    conn.client.fund_from_dev_faucet(consumer.address)
    top_up_dev_tokens(conn.client, conn.deployment, consumer.local_account, top_up)
    token.approve(consumer.local_account, market.address, top_up)
    return market.accept_counter(consumer.local_account, proposal_id)


# --- providers: voting --------------------------------------------------------------------
def vote(settings: Settings, voter: UnlockedAccount, proposal_id: int, ask: int) -> TxResult:
    """Vote the minimum price at which ``voter`` accepts (0 = accept, REJECT_ASK = reject)."""
    conn = connect_deployed(settings)
    _next.require_voting_open(_proposal(conn, proposal_id), _next.chain_now(conn.client))
    conn.client.fund_from_dev_faucet(voter.address)
    return conn.deployment.training_market(conn.client).vote(voter.local_account, proposal_id, ask)


def voting_weight(settings: Settings, proposal_id: int, voter: str) -> _next.VotingWeight:
    """The samples a vote of ``voter`` would carry now: its own selected assets', and those of
    owners who delegate to it. The market records any vote (one that carries nothing is
    harmless), so this is for warning a voter, not for refusing one."""
    conn = connect_deployed(settings)
    _proposal(conn, proposal_id)
    doc = _signed_proposal(conn, open_store(settings), proposal_id)
    return _next.voting_weight(
        conn.deployment.asset_registry(conn.client),
        conn.deployment.delegation_registry(conn.client),
        voter,
        list(zip(doc.asset_ids, doc.sample_counts, strict=True)),
    )


def delegate(settings: Settings, account: UnlockedAccount, to: str) -> TxResult:
    conn = connect_deployed(settings)
    conn.client.fund_from_dev_faucet(account.address)
    return conn.deployment.delegation_registry(conn.client).delegate(
        account.local_account, to_checksum_address(to)
    )


def undelegate(settings: Settings, account: UnlockedAccount) -> TxResult:
    conn = connect_deployed(settings)
    conn.client.fund_from_dev_faucet(account.address)
    return conn.deployment.delegation_registry(conn.client).undelegate(account.local_account)


def tally(settings: Settings, tallier: UnlockedAccount, proposal_id: int) -> TallyReceipt:
    """Compute the clearing price off chain and submit the verifying batches."""
    conn = connect_deployed(settings)
    _next.require_tally_open(_proposal(conn, proposal_id), _next.chain_now(conn.client))
    doc = _signed_proposal(conn, open_store(settings), proposal_id)
    conn.client.fund_from_dev_faucet(tallier.address)
    return submit_tally(
        conn.deployment.training_market(conn.client),
        conn.deployment.asset_registry(conn.client),
        conn.deployment.delegation_registry(conn.client),
        tallier.local_account,
        proposal_id,
        selection=list(zip(doc.asset_ids, doc.sample_counts, strict=True)),
    )


def next_tally(
    settings: Settings, proposal_id: int, tallier: str
) -> tuple[TallyOutcome, TallyBatch]:
    """The outcome of proposal ``proposal_id``'s tally and the batch ``tallier`` sends next
    after its progress on chain (what :func:`tally` sends, one transaction at a time)."""
    conn = connect_deployed(settings)
    _next.require_tally_open(_proposal(conn, proposal_id), _next.chain_now(conn.client))
    doc = _signed_proposal(conn, open_store(settings), proposal_id)
    selection = list(zip(doc.asset_ids, doc.sample_counts, strict=True))
    market = conn.deployment.training_market(conn.client)
    outcome = tally_outcome(
        market,
        conn.deployment.asset_registry(conn.client),
        conn.deployment.delegation_registry(conn.client),
        proposal_id,
        selection=selection,
    )
    progress = tally_progress(market, proposal_id, tallier)
    return outcome, next_batch(proposal_id, outcome, selection, progress)


# --- consumer: training -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuoteOffer:
    """A node's signed quote, checked against the chain."""

    quote: Quote
    signature: bytes
    signer: str
    design: dict[str, Any]
    node_url: str


def node_url(conn: Connection, node: str, override: str | None) -> str:
    """The node API to call: ``override``, else the endpoint registered on chain."""
    if override:
        return override.rstrip("/")
    endpoint = conn.deployment.stakeholder_registry(conn.client).compute_node(node).endpoint
    if not endpoint:
        raise NodeUnreachableError(f"node {node} registered no API endpoint: pass --node-url")
    return endpoint.rstrip("/")


def request_quote(
    settings: Settings,
    proposal_id: int,
    *,
    consumer: UnlockedAccount,
    node_url_override: str | None = None,
) -> QuoteOffer:
    """Ask the proposal's node for a quote, as its consumer, and check its signature and terms.

    The request is an EIP-712 ``QuoteRequest`` signed with ``consumer``'s key: a node quotes
    only for a proposal's own consumer.
    """
    conn = connect_deployed(settings)
    _next.require_consumer(_proposal(conn, proposal_id), consumer.address, "ask for its quote")
    market = conn.deployment.training_market(conn.client)
    request = NodeRequest(proposal_id, consumer.address, int(time.time()))
    request_signature = sign_quote_request(
        bytes(consumer.local_account.key), conn.client.chain_id, market.address, request
    )
    return fetch_quote(settings, request, request_signature, node_url_override=node_url_override)


def fetch_quote(
    settings: Settings,
    request: NodeRequest,
    request_signature: bytes,
    *,
    node_url_override: str | None = None,
) -> QuoteOffer:
    """Send a consumer's signed ``QuoteRequest`` to the proposal's node and check the quote's
    signature and terms (a browser wallet signs the request; :func:`request_quote` signs it
    with a local key)."""
    conn = connect_deployed(settings)
    proposal_id = request.proposal_id
    record = _proposal(conn, proposal_id)
    _next.require_consumer(record, request.consumer, "ask for its quote")
    if node_url_override is None and is_federation(conn, record.node):
        quote, signature, signer = federation_quote(conn, open_store(settings), record, proposal_id)
        return QuoteOffer(quote, signature, signer, {}, f"federation {record.node}")
    url = node_url(conn, record.node, node_url_override)
    market = conn.deployment.training_market(conn.client)
    deadline = time.monotonic() + _CONNECT_PATIENCE_S
    while True:
        try:
            response = httpx.post(
                f"{url}/quotes",
                json=quote_request_body(request, request_signature),
                timeout=_HTTP_TIMEOUT_S,
            )
            # the node's own chain or store away for a moment: it says when to ask again
            if response.status_code != 503 or "Retry-After" not in response.headers:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(_retry_after(response.headers["Retry-After"]))
        except httpx.ConnectError as exc:
            # a node that is starting up refuses connections for a few seconds
            if time.monotonic() > deadline:
                raise NodeUnreachableError(
                    f"node API {url} did not answer: {exc}; nothing was paid for training, and "
                    + _next.next_step(record, _next.chain_now(conn.client))
                ) from None
            time.sleep(0.5)
        except httpx.HTTPError as exc:
            raise NodeUnreachableError(
                f"node API {url} did not answer: {exc}; nothing was paid for training, and "
                + _next.next_step(record, _next.chain_now(conn.client))
            ) from None
    try:  # a node is a peer: its answer goes through the guard of every untrusted document
        body = load_untrusted_object(
            response.content, what=f"node {url}'s answer", max_bytes=_MAX_NODE_ANSWER_BYTES
        )
    except ValueError:
        body = {"detail": response.text[:500]}
    if response.status_code != 200:
        raise NodeUnreachableError(
            f"node {url} refused a quote for proposal {proposal_id} "
            f"({response.status_code} {body.get('error', '')}): {body.get('detail')}; nothing "
            f"was paid for training, and {_next.next_step(record, _next.chain_now(conn.client))}"
        )
    try:
        q = body["quote"]
        quote = Quote(
            proposal_id=int(q["proposalId"]),
            training_cost=int(q["trainingCostWei"]),
            max_duration=int(q["maxDuration"]),
            expiry=int(q["expiry"]),
        )
        signature = bytes.fromhex(str(body["signature"]).removeprefix("0x"))
    except (KeyError, ValueError, TypeError) as exc:
        raise NodeUnreachableError(f"node {url} sent a malformed quote: {exc}") from None
    signer = recover_quote_signer(signature, conn.client.chain_id, market.address, quote)
    expected = conn.deployment.stakeholder_registry(conn.client).compute_node(record.node).signer
    if signer != expected or quote.proposal_id != proposal_id:
        raise SignatureError(
            f"the quote is signed by {signer} for proposal {quote.proposal_id}; expected the "
            f"node's signer {expected} and proposal {proposal_id}"
        )
    return QuoteOffer(quote, signature, str(signer), dict(body.get("design", {})), url)


def _retry_after(value: str) -> float:
    """A node's ``Retry-After`` in seconds, bounded: a peer's header never stalls a caller."""
    try:
        return min(max(float(value), 0.1), 5.0)
    except ValueError:
        return 1.0


def start_training(
    settings: Settings,
    consumer: UnlockedAccount,
    proposal_id: int,
    *,
    node_url_override: str | None = None,
    max_cost: int | None = None,
) -> tuple[QuoteOffer, TxResult]:
    """Get a quote, escrow its training cost and start training (refuses above ``max_cost``)."""
    offer = request_quote(
        settings, proposal_id, consumer=consumer, node_url_override=node_url_override
    )
    if max_cost is not None:
        _next.require_cost_within(offer.quote.training_cost, max_cost)
    conn = connect_deployed(settings)
    market = conn.deployment.training_market(conn.client)
    token = conn.deployment.payment_token(conn.client)
    conn.client.fund_from_dev_faucet(consumer.address)
    top_up_dev_tokens(
        conn.client, conn.deployment, consumer.local_account, offer.quote.training_cost
    )
    token.approve(consumer.local_account, market.address, offer.quote.training_cost)
    tx = market.start_training(consumer.local_account, proposal_id, offer.quote, offer.signature)
    return offer, tx


def reclaim(settings: Settings, consumer: UnlockedAccount, proposal_id: int) -> TxResult:
    conn = connect_deployed(settings)
    record = _proposal(conn, proposal_id)
    _next.require_reclaimable(record, _next.chain_now(conn.client), consumer.address)
    return conn.deployment.training_market(conn.client).reclaim(consumer.local_account, proposal_id)


# --- anyone: status -----------------------------------------------------------------------
def proposal_status(
    settings: Settings,
    proposal_id: int,
    *,
    viewer: UnlockedAccount | None = None,
    node_url_override: str | None = None,
) -> dict[str, Any]:
    """One view of a proposal's life: terms, votes, outcome, training, result and payouts.

    The node shows anyone a job's state and progress; when ``viewer`` is the proposal's
    consumer the job query is signed with its key and the view adds the node's message.
    """
    conn = connect_deployed(settings)
    record = _proposal(conn, proposal_id)
    market = conn.deployment.training_market(conn.client)
    votes = [
        {"voter": e["args"]["voter"], **ask_view(int(e["args"]["ask"]))}
        for e in market.logs("VoteCast", where={"proposalId": proposal_id})
    ]
    tallied = market.logs("ProposalTallied", where={"proposalId": proposal_id})
    credit = market.credit_of(record.consumer)  # refunds wait here until withdrawn
    now = _next.chain_now(conn.client)
    window = result_window(conn, record)
    challenged = window is not None and window.challenged
    view: dict[str, Any] = {
        "proposalId": proposal_id,
        "status": record.status.name.lower(),
        "consumer": record.consumer,
        "node": record.node,
        "offerWei": str(record.offer),
        "priceWei": str(record.price),
        "clearingPriceWei": str(record.clearing_price),
        "wtpBps": record.wtp_bps,
        "votingDeadline": record.voting_deadline,
        "deadline": record.deadline,
        "totalWeight": record.total_weight,
        "next": _next.next_step(record, now, consumer_credit=credit, challenged=challenged),
        "consumerCreditWei": str(credit),
        "votes": votes,
        "tally": None,
        "job": None,
        "result": None,
        # a court's hold on the result: claims open once it is released after its window
        "court": None
        if window is None
        else {
            "windowEnds": window.ends or None,
            "challenged": window.challenged,
            "released": window.released,
            "releasable": window.releasable_at(now),
        },
    }
    if tallied:
        args = tallied[-1]["args"]
        view["tally"] = {
            "outcome": ProposalStatus(int(args["outcome"])).name.lower(),
            "clearingPriceWei": str(args["clearingPrice"]),
            "participatingWeight": int(args["participatingWeight"]),
            "totalWeight": int(args["totalWeight"]),
        }
    if record.status in (
        ProposalStatus.TRAINING,
        ProposalStatus.COMPLETED,
        ProposalStatus.WTP_MISSED,
    ):
        try:
            url = node_url(conn, record.node, node_url_override)
            headers: dict[str, str] = {}
            if viewer is not None and viewer.address.lower() == record.consumer.lower():
                request = NodeRequest(proposal_id, viewer.address, int(time.time()))
                headers = job_status_headers(
                    request,
                    sign_job_status_request(
                        bytes(viewer.local_account.key),
                        conn.client.chain_id,
                        market.address,
                        request,
                    ),
                )
            response = httpx.get(f"{url}/jobs/{proposal_id}", headers=headers, timeout=10.0)
            job = load_untrusted_object(
                response.content, what=f"node {url}'s answer", max_bytes=_MAX_NODE_ANSWER_BYTES
            )
            if response.status_code == 200:
                view["job"] = {k: job.get(k) for k in ("state", "progress", "message", "attempts")}
            elif response.status_code != 404:  # 404: the node has not journaled the job yet
                view["job"] = {
                    "state": f"unknown (the node refused: {job.get('error')}: {job.get('detail')})"
                }
        except (httpx.HTTPError, VisdmError, ValueError):
            view["job"] = {"state": "unknown (node API unreachable)"}
    document = _result_document(conn, open_store(settings), proposal_id)
    if document is not None:
        payouts = document.get("payouts") or {}
        view["result"] = {
            "accuracyBps": document.get("accuracyBps"),
            "wtpMet": document.get("wtpMet"),
            "epsilonSpent": document.get("epsilonSpent"),
            "trainSamples": document.get("trainSamples"),
            "consumerFault": document.get("consumerFault"),
            "seedHash": document.get("seedHash"),
            "validation": document.get("validation"),
            # maps keyed by addresses and asset ids become rows, as everywhere in --json
            "leftOut": rows(document.get("leftOut"), "assetId", "reason"),
            "payouts": rows(payouts.get("amounts"), "provider", "amountWei"),
            "assetPayouts": rows(payouts.get("assets"), "assetId", "amountWei"),
            "unclaimedWei": str(record.unclaimed),
            "claimDeadline": record.claim_deadline or None,
        }
    return view
