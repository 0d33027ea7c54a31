"""The compute node's HTTP API (design 3.4 step 1): signed quotes and job status.

``POST /quotes`` ``{"proposalId": 7, "consumer": "0x…", "issuedAt": <unix s>, "signature":
"0x…"}`` — an EIP-712 ``QuoteRequest`` (:mod:`visdm.market.quotes`) — is answered only for the
proposal's registered consumer, signed within :attr:`ApiLimits.freshness_s` of the node's
clock. The node then fetches the proposal's document, checks it against the chain, runs the
design check (parameters and FLOPs against its limits) in a worker process, prices it —
⌈train FLOPs/sample × samples × epochs × price per GFLOP / 10⁹⌉ — and returns an EIP-712
``Quote`` signed for the market with an expiry.

``GET /jobs/{proposalId}`` shows anyone a job's public fields (state, progress, attempts,
deadline); with the headers of a signed ``JobStatusRequest`` it shows the proposal's consumer
the whole job (messages, result). ``GET /jobs`` lists public fields, ``GET /health`` says who
the node is, ``GET /limits`` what it trains (design limits, price, longest job) so that a
consumer can check a proposal before paying.

What a stranger can make the node do is bounded before any work: bodies over a few KiB are
refused unread, JSON nesting is checked before parsing starts (:mod:`visdm.jsonsafe`), each
consumer has a token bucket per endpoint, concurrent requests for one proposal share one load
and one design check, and the caches of both are LRU-bounded.

Answers speak the CLI's JSON language (:mod:`visdm.cli._json`): camelCase keys, token
amounts in wei as decimal strings under keys ending in ``Wei``.

This module never imports torch: the design check runs as ``python -m
visdm.training.design_check`` and training in the sandbox. Errors are JSON
``{"error": kind, "detail": message}`` with 400 (malformed request), 401 (bad or stale
signature), 403 (not a registered consumer, or not this proposal's), 404 (unknown proposal or
job), 409 (a proposal this node cannot quote now), 413 (body too large), 422 (a spec it
refuses, or a job larger than the node's whole resource budget: ``OverBudget``) or 429 (too
many requests; ``Retry-After`` says when to try again).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalRecord, ProposalStatus, Quote
from visdm.chain.deployment import Deployment
from visdm.crypto import wrap_key
from visdm.errors import (
    ChainNotRunningError,
    ChainTimeoutError,
    ConfigError,
    CryptoError,
    DesignLimitError,
    InvalidInputError,
    InvalidModelSpecError,
    InvalidProposalError,
    SignatureError,
    StorageUnavailableError,
    VisdmError,
)
from visdm.jsonsafe import load_untrusted_json, one_line
from visdm.market.quotes import (
    CONSUMER_HEADER,
    ISSUED_AT_HEADER,
    MAX_PROPOSAL_ID,
    SIGNATURE_HEADER,
    NodeRequest,
    sign_quote,
    verify_job_status_request,
    verify_quote_request,
)
from visdm.proposals import CheckedProposal, load_checked_proposal
from visdm.storage import ContentStore
from visdm.training._spec import MAX_SPEC_BYTES
from visdm.types import Address, Role

from ._jobs import Job, JobJournal
from ._quoting import (
    QuoteError,
    _refusal,
    budget_refusal,
    price_training,
    proposal_requirement,
    run_design_check,
)
from ._serve import BodyLimit, OnceCache, TokenBuckets
from ._training import TrainingConfig
from .sandbox import sandbox_status as _sandbox_status

__all__ = [
    "ApiLimits",
    "QuoteError",
    "QuoteService",
    "create_app",
    "price_training",
]

log = logging.getLogger("visdm.node.api")

_CONCURRENT_DESIGN_CHECKS = 2
_QUOTABLE = (ProposalStatus.VOTING, ProposalStatus.APPROVED, ProposalStatus.COUNTERED)
_MAX_UINT64 = 2**64 - 1
#: past this, a JSON number loses digits in JavaScript and jq: such integers go out as strings
_MAX_SAFE_INT = 2**53 - 1
_ID_DIGITS = len(str(MAX_PROPOSAL_ID))
_PUBLIC_JOB_FIELDS = ("proposalId", "state", "progress", "attempts", "deadline")
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_UNIX_SECONDS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """What one request, one consumer and the node's caches may cost.

    ``freshness_s``: how far a signed request's ``issuedAt`` may be from the node's clock,
    either way. Rates are per consumer and endpoint; the bursts are what a bucket holds.
    """

    max_body_bytes: int = 4096
    max_json_depth: int = 8
    freshness_s: int = 300
    quotes_per_minute: float = 10.0
    quote_burst: int = 3
    job_queries_per_minute: float = 60.0
    job_query_burst: int = 10
    cached_proposals: int = 256
    cached_designs: int = 256
    #: consumers whose buckets are remembered (least recently seen forgotten first)
    tracked_accounts: int = 4096

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            wanted = float if f.name.endswith("_per_minute") else int
            if isinstance(value, bool) or not isinstance(value, wanted | int) or not value > 0:
                raise ConfigError(
                    f"ApiLimits.{f.name} must be a positive {wanted.__name__}, got {value!r}"
                )


@dataclass
class QuoteService:
    """Prices and signs quotes for proposals that name this node, for their consumers."""

    client: ChainClient
    deployment: Deployment
    store: ContentStore
    account: UnlockedAccount
    config: TrainingConfig
    limits: ApiLimits = field(default_factory=ApiLimits)
    #: the node's clock (unix seconds) that a request's ``issuedAt`` must be close to
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.market = self.deployment.training_market(self.client)
        self.registry = self.deployment.stakeholder_registry(self.client)
        # a proposal's document and a spec are immutable: an answer (a refusal too) holds for
        # as long as it is cached
        self._proposals: OnceCache[int, CheckedProposal | QuoteError] = OnceCache(
            self.limits.cached_proposals
        )
        self._designs: OnceCache[bytes, dict[str, Any] | QuoteError] = OnceCache(
            self.limits.cached_designs
        )
        self._quote_buckets = TokenBuckets(
            self.limits.quotes_per_minute,
            self.limits.quote_burst,
            accounts=self.limits.tracked_accounts,
        )
        self._job_buckets = TokenBuckets(
            self.limits.job_queries_per_minute,
            self.limits.job_query_burst,
            accounts=self.limits.tracked_accounts,
        )
        # each design check is a process that imports torch: a burst of requests must not fork
        # dozens of them
        self._checks = threading.BoundedSemaphore(_CONCURRENT_DESIGN_CHECKS)

    # --- the HTTP API's entry points ----------------------------------------------------------
    def signed_quote(self, request: NodeRequest, signature: bytes) -> dict[str, Any]:
        """:meth:`quote`, for a ``QuoteRequest`` that the proposal's registered consumer signed.

        The checks run cheapest first; nothing is fetched or forked for anyone else.
        """
        self._authenticate(request, signature, verify_quote_request)
        if not self.registry.has_roles(request.consumer, Role.CONSUMER):
            raise QuoteError(
                403,
                "NotAConsumer",
                f"{request.consumer} is not a registered consumer: register with the consumer "
                "role before asking for quotes",
            )
        self._spend(
            self._quote_buckets,
            request.consumer,
            f"{self.limits.quotes_per_minute:g} quote requests a minute "
            f"(bursts of {self.limits.quote_burst})",
        )
        record = self._record(request.proposal_id)
        self._check_owner(record, request)
        return self._quote(request.proposal_id, record)

    def check_job_viewer(self, request: NodeRequest, signature: bytes) -> None:
        """Refuse a ``JobStatusRequest`` unless the proposal's consumer signed it."""
        self._authenticate(request, signature, verify_job_status_request)
        self._check_owner(self._record(request.proposal_id), request)
        self._spend(
            self._job_buckets,
            request.consumer,
            f"{self.limits.job_queries_per_minute:g} job queries a minute "
            f"(bursts of {self.limits.job_query_burst})",
        )

    def quote(self, proposal_id: int) -> dict[str, Any]:
        """Price and sign a quote for ``proposal_id``. Nobody is checked here: the HTTP API
        calls :meth:`signed_quote`."""
        return self._quote(proposal_id, self._record(proposal_id))

    # --- checks ------------------------------------------------------------------------------
    def _authenticate(
        self,
        request: NodeRequest,
        signature: bytes,
        verify: Callable[[bytes, int, str, NodeRequest], None],
    ) -> None:
        now = self.clock()
        skew = request.issued_at - now
        if abs(skew) > self.limits.freshness_s:
            side = "ahead of" if skew > 0 else "behind"
            raise QuoteError(
                401,
                "StaleRequest",
                f"issuedAt {request.issued_at} is {abs(skew):,.0f} s {side} the node's clock "
                f"({int(now)}); requests are accepted within ±{self.limits.freshness_s} s: sign "
                "a fresh one (and check your clock)",
            )
        try:
            verify(signature, self.client.chain_id, self.market.address, request)
        except (SignatureError, InvalidInputError) as exc:
            raise QuoteError(401, "BadSignature", str(exc)) from None

    def _spend(self, buckets: TokenBuckets, consumer: str, allowance: str) -> None:
        wait = buckets.take(consumer)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise QuoteError(
                429,
                "RateLimited",
                f"{consumer} sent more than this node's {allowance}: try again in {seconds} s",
                retry_after=seconds,
            )

    def _record(self, proposal_id: int) -> ProposalRecord:
        if proposal_id <= 0 or proposal_id > self.market.proposal_count():
            raise QuoteError(404, "UnknownProposal", f"proposal {proposal_id} does not exist")
        return self.market.proposal(proposal_id)

    @staticmethod
    def _check_owner(record: ProposalRecord, request: NodeRequest) -> None:
        if str(record.consumer).lower() != str(request.consumer).lower():
            raise QuoteError(
                403,
                "NotYourProposal",
                f"proposal {request.proposal_id} is consumer {record.consumer}'s, not "
                f"{request.consumer}'s: only a proposal's consumer may ask the node about it",
            )

    # --- the quote ---------------------------------------------------------------------------
    def _quote(self, proposal_id: int, record: ProposalRecord) -> dict[str, Any]:
        if record.node != self.account.address:
            raise QuoteError(
                409, "NotThisNode", f"proposal {proposal_id} names node {record.node}, not this one"
            )
        if record.status not in _QUOTABLE:
            raise QuoteError(
                409,
                "WrongStatus",
                f"proposal {proposal_id} is {record.status.name}: only proposals in voting, "
                "approved or countered can be quoted",
            )
        checked = self._checked(proposal_id)
        design = self._design(checked.document.model_spec_hash, checked.document.model_spec_json)
        consumer_key = self.registry.stakeholder(record.consumer).encryption_key
        try:
            wrap_key(bytes(32), consumer_key)  # the model will be sealed to this key
        except (InvalidInputError, CryptoError) as exc:
            raise QuoteError(
                422,
                "UnusableConsumerKey",
                f"the consumer's registered X25519 key cannot receive a sealed model: {exc}",
            ) from None
        samples = self._round_samples(proposal_id, record, checked)
        limit = int(self.config.limits.get("max_samples", 1_000_000))
        if samples > limit:
            raise QuoteError(
                422,
                "DesignLimitError",
                f"the selection has {samples:,} samples, over this node's max_samples={limit:,}",
            )
        self._check_budget(checked, design, samples)
        cost = price_training(
            int(design["train_flops_per_sample"]),
            samples,
            int(design["epochs"]),
            self.config.price_per_gflop,
        )
        now = self.client.latest_timestamp()
        quote = Quote(
            proposal_id=proposal_id,
            training_cost=cost,
            max_duration=self.config.max_duration_s,
            expiry=now + self.config.quote_validity_s,
        )
        signature = sign_quote(
            bytes(self.account.local_account.key), self.client.chain_id, self.market.address, quote
        )
        return {
            "quote": {
                "proposalId": quote.proposal_id,
                "trainingCostWei": str(quote.training_cost),
                "maxDuration": quote.max_duration,
                "expiry": quote.expiry,
            },
            "signature": "0x" + signature.hex(),
            "signer": self.account.address,
            "market": self.market.address,
            "chainId": self.client.chain_id,
            "design": {
                **{_camel(k): v for k, v in design.items()},
                "samples": samples,
                "pricePerGflopWei": str(self.config.price_per_gflop),
            },
        }

    def _check_budget(
        self, checked: CheckedProposal, design: Mapping[str, Any], samples: int
    ) -> None:
        """Refuse a job that could never run within the node's resource budget."""
        budget = self.config.budget
        if budget is None:
            return
        spec = load_untrusted_json(
            checked.document.model_spec_json,
            what="the proposal's model spec",
            max_bytes=MAX_SPEC_BYTES,
            error=InvalidModelSpecError,
            hint="propose again with a spec from `visdm data model-spec`",
        )  # the design check passed it already; still read with the untrusted-input guard
        need = proposal_requirement(
            checked, spec, design, samples=samples, threads=budget.threads_per_job
        )
        why = budget_refusal(need, budget)
        if why is not None:
            raise QuoteError(422, "OverBudget", why)

    def _round_samples(
        self, proposal_id: int, record: ProposalRecord, checked: CheckedProposal
    ) -> int:
        """The samples the node will train on: after the tally, those of assets still in the
        round (a rejecting provider's data is neither used nor charged for)."""
        if record.tallier is None:
            return len(checked.samples)
        left = self.market.excluded_positions(proposal_id, record.asset_count)
        out = {a for i, a in enumerate(checked.document.asset_ids) if i in left}
        return sum(1 for sample in checked.samples if sample.asset_id not in out)

    def _checked(self, proposal_id: int) -> CheckedProposal:
        """The proposal's document checked against the chain — once per proposal, however many
        ask at once: a repeated quote does not fetch and verify every manifest again."""

        def load() -> CheckedProposal | QuoteError:
            try:
                return load_checked_proposal(
                    self.market, self.deployment, self.client, self.store, proposal_id
                )
            except (InvalidProposalError, SignatureError) as exc:
                return QuoteError(422, type(exc).__name__, str(exc))

        checked = self._proposals.get(proposal_id, load)
        if isinstance(checked, QuoteError):
            raise _refusal(checked)
        return checked

    def training_limits(self) -> dict[str, Any]:
        """The node's limits with the market's minimum expected batch size, which governance
        may change: the chain never sees the spec, so nodes enforce it."""
        own = int(self.config.limits.get("min_batch_size", 1))
        market_min = self.market.parameters().min_batch_size
        return {**self.config.limits, "min_batch_size": max(own, market_min)}

    @staticmethod
    def design_key(spec_hash: bytes, limits: Mapping[str, Any]) -> bytes:
        """A design check's cache key: the spec, and the batch minimum it was checked under."""
        return spec_hash + int(limits["min_batch_size"]).to_bytes(4, "big")

    def _design(self, spec_hash: bytes, spec_json: bytes) -> dict[str, Any]:
        """The design check's answer for a spec under the node's limits and the market's
        minimum batch size, by hash — refusals included."""
        limits = self.training_limits()

        def check() -> dict[str, Any] | QuoteError:
            try:  # the consumer wrote it: a nested spec must not take the node down
                spec = load_untrusted_json(
                    spec_json,
                    what="the proposal's model spec",
                    max_bytes=MAX_SPEC_BYTES,
                    error=InvalidModelSpecError,
                    hint="propose again with a spec from `visdm data model-spec`",
                )
            except InvalidModelSpecError as exc:
                return QuoteError(422, InvalidModelSpecError.__name__, str(exc))
            with self._checks:
                answer = run_design_check(spec, limits, python=self.config.python)
            if answer.get("ok"):
                return {k: v for k, v in answer.items() if k != "ok"}
            kind = str(answer.get("error", "InvalidModelSpecError"))
            if kind not in (DesignLimitError.__name__, InvalidModelSpecError.__name__):
                kind = InvalidInputError.__name__
            return QuoteError(422, kind, str(answer.get("message", "the spec was refused")))

        design = self._designs.get(self.design_key(spec_hash, limits), check)
        if isinstance(design, QuoteError):
            raise _refusal(design)
        return design


# --- the wire format --------------------------------------------------------------------------
class QuoteRequestBody(BaseModel):
    """``POST /quotes``: a ``QuoteRequest`` and its signature."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # the wire format's names
    proposalId: int = Field(ge=1, le=MAX_PROPOSAL_ID)  # noqa: N815
    consumer: str = Field(pattern=f"^{_HEX_ADDRESS.pattern}$")
    issuedAt: int = Field(ge=0, le=_MAX_UINT64)  # noqa: N815
    signature: str = Field(pattern=f"^{_HEX_SIGNATURE.pattern}$")

    def signed(self) -> tuple[NodeRequest, bytes]:
        try:
            request = NodeRequest(self.proposalId, Address(self.consumer), self.issuedAt)
        except InvalidInputError as exc:
            raise _invalid(str(exc)) from None
        return request, bytes.fromhex(self.signature[2:])


def _invalid(detail: str) -> QuoteError:
    return QuoteError(400, "InvalidRequest", detail)


def _camel(name: str) -> str:
    """``max_flops_per_sample`` → ``maxFlopsPerSample``: the wire format's names."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _wire(value: Any) -> Any:
    """A stored JSON value (the journal keeps the sandbox's snake_case) under the wire
    format's names: camelCase keys, integers past 2^53 - 1 as decimal strings."""
    if isinstance(value, dict):
        return {_camel(str(k)): _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_SAFE_INT:
        return str(value)
    return value


def _problems(errors: Any) -> str:
    # a location holds the sender's keys: escaped, so that a line break cannot split the answer
    return one_line(
        "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg')}"
            for e in errors
        )
    )


def _parse_json(raw: bytes, *, max_bytes: int, max_depth: int) -> Any:
    try:
        return load_untrusted_json(
            raw,
            what="the body",
            max_bytes=max_bytes,
            max_depth=max_depth,
            hint="a request is one flat JSON object",
        )
    except InvalidInputError as exc:
        raise _invalid(str(exc)) from None


def _path_id(text: str) -> int:
    if (
        not text.isascii()
        or not text.isdigit()
        or len(text) > _ID_DIGITS
        or not 1 <= int(text) <= MAX_PROPOSAL_ID
    ):
        shown = text if len(text) <= 32 else f"{text[:32]}… ({len(text):,} characters)"
        raise _invalid(f"proposal id {shown!r} is not an integer from 1 to 2^63-1")
    return int(text)


def _signed_headers(
    proposal_id: int, headers: Mapping[str, str]
) -> tuple[NodeRequest, bytes] | None:
    """The ``JobStatusRequest`` in a request's headers; ``None`` when it carries none."""
    names = (CONSUMER_HEADER, ISSUED_AT_HEADER, SIGNATURE_HEADER)
    values = {name: headers.get(name) for name in names}
    if all(v is None for v in values.values()):
        return None
    missing = [name for name, v in values.items() if v is None]
    if missing:
        raise _invalid(
            f"a signed job query needs the headers {', '.join(names)}; missing {', '.join(missing)}"
        )
    consumer, issued_at, signature = (str(values[name]) for name in names)
    problems = []
    if not _HEX_ADDRESS.fullmatch(consumer):
        problems.append(f"{CONSUMER_HEADER} is not an address (0x and 40 hex digits)")
    if not _UNIX_SECONDS.fullmatch(issued_at) or int(issued_at) > _MAX_UINT64:
        problems.append(f"{ISSUED_AT_HEADER} is not unix seconds")
    if not _HEX_SIGNATURE.fullmatch(signature):
        problems.append(f"{SIGNATURE_HEADER} is not a 65-byte signature (0x and 130 hex digits)")
    if problems:
        raise _invalid("; ".join(problems))
    request = NodeRequest(proposal_id, Address(consumer), int(issued_at))
    return request, bytes.fromhex(signature[2:])


def _public(job: Job) -> dict[str, Any]:
    """What anyone may see of a job: no messages, log tails or results."""
    full = job.to_json()
    return {name: full[name] for name in _PUBLIC_JOB_FIELDS}


def _read_job(journal_path: Path, proposal_id: int) -> Job:
    job = None
    if journal_path.exists():
        journal = JobJournal(journal_path, read_only=True)
        try:
            job = journal.get(proposal_id)
        finally:
            journal.close()
    if job is None:
        raise QuoteError(404, "UnknownJob", f"no training job for proposal {proposal_id}")
    return job


async def _quote_body(request: Request) -> QuoteRequestBody:
    """The body of ``POST /quotes``: read (the middleware bounded it), nesting checked, parsed."""
    limits: ApiLimits = request.app.state.limits
    data = _parse_json(
        await request.body(), max_bytes=limits.max_body_bytes, max_depth=limits.max_json_depth
    )
    try:
        return QuoteRequestBody.model_validate(data)
    except ValidationError as exc:
        raise _invalid(_problems(exc.errors())) from None


def create_app(
    quotes: QuoteService | None, journal_path: Path, *, limits: ApiLimits | None = None
) -> FastAPI:
    """The API; ``quotes=None`` serves public job status only (a node that does not quote).

    ``limits`` default to the quote service's.
    """
    if limits is None:
        limits = quotes.limits if quotes is not None else ApiLimits()
    app = FastAPI(title="ViSDM compute node", version="1")
    app.state.limits = limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"error": "InvalidRequest", "detail": _problems(exc.errors())}, status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "".join(word.capitalize() for word in HTTPStatus(exc.status_code).phrase.split())
        return JSONResponse(
            {"error": kind, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(QuoteError)
    async def _refused(_: Request, exc: QuoteError) -> JSONResponse:
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return JSONResponse(
            {"error": exc.kind, "detail": str(exc)}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(VisdmError)
    async def _failed(_: Request, exc: VisdmError) -> JSONResponse:
        # the node's chain or store away: the same request may succeed in a moment (503)
        away = isinstance(exc, ChainNotRunningError | ChainTimeoutError | StorageUnavailableError)
        body = {"error": type(exc).__name__, "detail": str(exc)}
        if away:
            return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
        return JSONResponse(body, status_code=502)

    @app.exception_handler(Exception)
    async def _crashed(_: Request, exc: Exception) -> JSONResponse:
        log.error("the node API failed on a request: %r", exc)
        detail = "the node failed on this request; its log says why"
        return JSONResponse({"error": "InternalError", "detail": detail}, status_code=500)

    @app.get("/health")
    def health() -> dict[str, Any]:
        if quotes is None:
            return {"ok": True}
        # its isolation as the node reports it: verification and the court hold it to that
        box = {**_sandbox_status(), "unsandboxedAllowed": quotes.config.allow_unsandboxed}
        return {"ok": True, "node": quotes.account.address, "chainId": quotes.client.chain_id,
                "sandbox": box}  # fmt: skip

    @app.get("/limits")
    def limits_() -> dict[str, Any]:
        """What this node trains, for anyone to check a proposal against before paying: the
        design limits (with the market's minimum batch), price per GFLOP and longest job."""
        if quotes is None:
            raise QuoteError(503, "NotQuoting", "this node does not quote")
        return {
            "node": quotes.account.address,
            "chainId": quotes.client.chain_id,
            "limits": _wire(quotes.training_limits()),
            "pricePerGflopWei": str(quotes.config.price_per_gflop),
            "maxDuration": quotes.config.max_duration_s,
        }

    @app.post("/quotes")
    def post_quote(body: Annotated[QuoteRequestBody, Depends(_quote_body)]) -> dict[str, Any]:
        if quotes is None:
            raise QuoteError(503, "NotQuoting", "this node does not quote")
        return quotes.signed_quote(*body.signed())

    @app.get("/jobs/{proposal_id}")
    def get_job(proposal_id: str, request: Request) -> dict[str, Any]:
        pid = _path_id(proposal_id)
        signed = _signed_headers(pid, request.headers)
        job = _read_job(journal_path, pid)
        if signed is None:
            return _public(job)
        if quotes is None:
            raise QuoteError(
                503,
                "NotVerifying",
                "this node shows public job fields only: send the request without "
                f"{CONSUMER_HEADER} and the other signature headers",
            )
        quotes.check_job_viewer(*signed)
        return dict(_wire(job.to_json()))

    @app.get("/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        if not journal_path.exists():
            return []
        journal = JobJournal(journal_path, read_only=True)
        try:
            return [_public(j) for j in journal.jobs()]
        finally:
            journal.close()

    return app
