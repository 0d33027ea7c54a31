"""The compute node's HTTP API (design 3.4 step 1): signed quotes and job status.

``POST /quotes`` ``{"proposalId": 7}`` → the node fetches the proposal's document, checks it
against the chain, runs the design check (parameters and FLOPs against its limits) in a worker
process, prices it — ⌈train FLOPs/sample × samples × epochs × price per GFLOP / 10⁹⌉ — and
returns an EIP-712 ``Quote`` signed for the market with an expiry. ``GET /jobs/{proposalId}``
returns the journaled state and progress of a training job, ``GET /health`` who the node is.

This module never imports torch: the design check runs as ``python -m
visdm.training.design_check`` and training in the sandbox. Errors are JSON
``{"error": kind, "detail": message}`` with 400 (malformed request), 404 (unknown proposal or
job), 409 (a proposal this node cannot quote now) or 422 (a spec it refuses).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from visdm.accounts import UnlockedAccount
from visdm.chain.client import ChainClient
from visdm.chain.contracts import ProposalStatus, Quote
from visdm.chain.deployment import Deployment
from visdm.crypto import wrap_key
from visdm.errors import (
    CryptoError,
    DesignLimitError,
    InvalidInputError,
    InvalidModelSpecError,
    InvalidProposalError,
    SignatureError,
    VisdmError,
)
from visdm.market.quotes import sign_quote
from visdm.proposals import CheckedProposal, load_checked_proposal
from visdm.storage import ContentStore

from ._jobs import JobJournal
from ._training import TrainingConfig

__all__ = ["QuoteError", "QuoteService", "create_app", "price_training"]

_GFLOP = 10**9
_DESIGN_CHECK_TIMEOUT_S = 120.0
_CONCURRENT_DESIGN_CHECKS = 2
_QUOTABLE = (ProposalStatus.VOTING, ProposalStatus.APPROVED, ProposalStatus.COUNTERED)


class QuoteError(VisdmError):
    """A quote the node will not give; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind


def price_training(train_flops_per_sample: int, samples: int, epochs: int, price: int) -> int:
    """The quote in the token's smallest unit (integer arithmetic, rounded up)."""
    return -(-(train_flops_per_sample * samples * epochs * price) // _GFLOP)


def run_design_check(
    spec: Mapping[str, Any], limits: Mapping[str, Any], *, python: str = sys.executable
) -> dict[str, Any]:
    """The design check in a separate process (see :mod:`visdm.training.design_check`)."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, the spec goes through stdin as JSON
            [python, "-m", "visdm.training.design_check"],
            input=json.dumps({"spec": spec, "limits": dict(limits)}).encode(),
            capture_output=True,
            timeout=_DESIGN_CHECK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise QuoteError(503, "DesignCheckTimeout", "the design check timed out") from None
    try:
        answer: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        tail = done.stderr.decode(errors="replace")[-500:]
        raise QuoteError(
            500, "DesignCheckCrashed", f"the design check exited {done.returncode}: {tail}"
        ) from None
    return answer


@dataclass
class QuoteService:
    """Prices and signs quotes for proposals that name this node."""

    client: ChainClient
    deployment: Deployment
    store: ContentStore
    account: UnlockedAccount
    config: TrainingConfig

    def __post_init__(self) -> None:
        self.market = self.deployment.training_market(self.client)
        self._designs: dict[bytes, dict[str, Any] | QuoteError] = {}
        self._proposals: dict[int, CheckedProposal | QuoteError] = {}
        self._lock = threading.Lock()
        # each design check is a process that imports torch: a burst of requests must not fork
        # dozens of them
        self._checks = threading.BoundedSemaphore(_CONCURRENT_DESIGN_CHECKS)

    def quote(self, proposal_id: int) -> dict[str, Any]:
        if proposal_id <= 0 or proposal_id > self.market.proposal_count():
            raise QuoteError(404, "UnknownProposal", f"proposal {proposal_id} does not exist")
        record = self.market.proposal(proposal_id)
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
        consumer_key = (
            self.deployment.stakeholder_registry(self.client)
            .stakeholder(record.consumer)
            .encryption_key
        )
        try:
            wrap_key(bytes(32), consumer_key)  # the model will be sealed to this key
        except (InvalidInputError, CryptoError) as exc:
            raise QuoteError(
                422,
                "UnusableConsumerKey",
                f"the consumer's registered X25519 key cannot receive a sealed model: {exc}",
            ) from None
        samples = len(checked.samples)
        limit = int(self.config.limits.get("max_samples", 1_000_000))
        if samples > limit:
            raise QuoteError(
                422,
                "DesignLimitError",
                f"the selection has {samples:,} samples, over this node's max_samples={limit:,}",
            )
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
                "trainingCost": str(quote.training_cost),
                "maxDuration": quote.max_duration,
                "expiry": quote.expiry,
            },
            "signature": "0x" + signature.hex(),
            "signer": self.account.address,
            "market": self.market.address,
            "chainId": self.client.chain_id,
            "design": {
                **design,
                "samples": samples,
                "pricePerGflop": str(self.config.price_per_gflop),
            },
        }

    def _checked(self, proposal_id: int) -> CheckedProposal:
        """The proposal's document checked against the chain — once per proposal: both are
        immutable, so a repeated quote does not fetch and verify every manifest again."""
        with self._lock:
            cached = self._proposals.get(proposal_id)
        if cached is None:
            try:
                cached = load_checked_proposal(
                    self.market, self.deployment, self.client, self.store, proposal_id
                )
            except (InvalidProposalError, SignatureError) as exc:
                cached = QuoteError(422, type(exc).__name__, str(exc))
            with self._lock:
                self._proposals[proposal_id] = cached
        if isinstance(cached, QuoteError):
            raise cached
        return cached

    def _design(self, spec_hash: bytes, spec_json: bytes) -> dict[str, Any]:
        """The design check's answer for a spec, cached by hash — refusals included."""
        with self._lock:
            cached = self._designs.get(spec_hash)
        if cached is None:
            with self._checks:
                answer = run_design_check(
                    json.loads(spec_json), self.config.limits, python=self.config.python
                )
            if answer.get("ok"):
                cached = {k: v for k, v in answer.items() if k != "ok"}
            else:
                kind = str(answer.get("error", "InvalidModelSpecError"))
                if kind not in (DesignLimitError.__name__, InvalidModelSpecError.__name__):
                    kind = InvalidInputError.__name__
                cached = QuoteError(422, kind, str(answer.get("message", "the spec was refused")))
            with self._lock:
                self._designs[spec_hash] = cached
        if isinstance(cached, QuoteError):
            raise cached
        return cached


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    proposalId: int = Field(ge=1, le=2**63 - 1)  # noqa: N815 - the wire format's name


def create_app(quotes: QuoteService | None, journal_path: Path) -> FastAPI:
    """The API; ``quotes=None`` serves job status only (a node that does not quote)."""
    app = FastAPI(title="ViSDM compute node", version="1")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse({"error": "InvalidRequest", "detail": problems}, status_code=400)

    @app.exception_handler(QuoteError)
    async def _refused(_: Request, exc: QuoteError) -> JSONResponse:
        return JSONResponse({"error": exc.kind, "detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(VisdmError)
    async def _failed(_: Request, exc: VisdmError) -> JSONResponse:
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=502)

    @app.get("/health")
    def health() -> dict[str, Any]:
        if quotes is None:
            return {"ok": True}
        return {"ok": True, "node": quotes.account.address, "chainId": quotes.client.chain_id}

    @app.post("/quotes")
    def post_quote(request: QuoteRequest) -> dict[str, Any]:
        if quotes is None:
            raise QuoteError(503, "NotQuoting", "this node does not quote")
        return quotes.quote(request.proposalId)

    @app.get("/jobs/{proposal_id}")
    def get_job(proposal_id: int) -> dict[str, Any]:
        if not journal_path.exists():
            raise QuoteError(404, "UnknownJob", f"no training job for proposal {proposal_id}")
        journal = JobJournal(journal_path, read_only=True)
        try:
            job = journal.get(proposal_id)
        finally:
            journal.close()
        if job is None:
            raise QuoteError(404, "UnknownJob", f"no training job for proposal {proposal_id}")
        return job.to_json()

    @app.get("/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        if not journal_path.exists():
            return []
        journal = JobJournal(journal_path, read_only=True)
        try:
            return [j.to_json() for j in journal.jobs()]
        finally:
            journal.close()

    return app
