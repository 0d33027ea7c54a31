"""The node's HTTP API against the real chain: quotes priced from the design check's FLOPs and
signed for the market, only for a proposal's own consumer; job details only for that consumer;
every refusal is a JSON error naming the problem, before the node does any work."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.integration.compute.roundkit import MLP_SPEC, Round
from visdm.chain.contracts import REJECT_ASK, Quote
from visdm.cli._json import scheme_problems
from visdm.compute import TrainingWorker
from visdm.compute import api as node_api
from visdm.compute._serve import ApiServer
from visdm.compute.api import ApiLimits, QuoteService, create_app, price_training
from visdm.errors import InvalidInputError
from visdm.market import recover_quote_signer, workflow
from visdm.market.quotes import (
    NodeRequest,
    job_status_headers,
    quote_request_body,
    sign_job_status_request,
    sign_quote_request,
)
from visdm.types import Role

pytestmark = pytest.mark.integration


@pytest.fixture
def images_per_provider() -> int:
    return 20


@contextmanager
def serve(rnd: Round, quotes: QuoteService) -> Iterator[httpx.Client]:
    """The API served by uvicorn on a free loopback port, as ``visdm node serve`` serves it."""
    app = create_app(quotes, rnd.settings.node_dir / "jobs.sqlite3")
    rnd.settings.node_dir.mkdir(parents=True, exist_ok=True)
    server = ApiServer(app, "127.0.0.1", 0, rnd.settings.node_dir / "api.json")
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield client
    finally:
        server.stop()


@contextmanager
def client_for(
    rnd: Round, *, api_limits: ApiLimits | None = None, **config: object
) -> Iterator[httpx.Client]:
    quotes = rnd.quotes(**config)
    if api_limits is not None:
        quotes = QuoteService(
            quotes.client,
            quotes.deployment,
            quotes.store,
            quotes.account,
            quotes.config,
            api_limits,
        )
    with serve(rnd, quotes) as client:
        yield client


def node_request(
    rnd: Round, pid: int, *, signer: str, consumer: str | None, issued_at: int | None
) -> tuple[NodeRequest, bytes]:
    who = rnd.accounts[signer]
    request = NodeRequest(
        pid,
        rnd.accounts[consumer or signer].address,
        int(time.time()) if issued_at is None else issued_at,
    )
    return request, bytes(who.local_account.key)


def signed(
    rnd: Round,
    pid: int,
    *,
    signer: str = "consumer",
    consumer: str | None = None,
    issued_at: int | None = None,
) -> dict[str, Any]:
    """A ``POST /quotes`` body that ``signer`` signed, naming ``consumer`` (default: itself)."""
    request, key = node_request(rnd, pid, signer=signer, consumer=consumer, issued_at=issued_at)
    signature = sign_quote_request(key, rnd.chain.chain_id, rnd.market.address, request)
    return quote_request_body(request, signature)


def signed_request(rnd: Round, pid: int) -> tuple[NodeRequest, bytes]:
    """The consumer's ``QuoteRequest`` and signature, for calling the service in-process."""
    request, key = node_request(rnd, pid, signer="consumer", consumer=None, issued_at=None)
    return request, sign_quote_request(key, rnd.chain.chain_id, rnd.market.address, request)


def signed_headers(rnd: Round, pid: int, *, signer: str = "consumer") -> dict[str, str]:
    request, key = node_request(rnd, pid, signer=signer, consumer=None, issued_at=None)
    signature = sign_job_status_request(key, rnd.chain.chain_id, rnd.market.address, request)
    return job_status_headers(request, signature)


def refusal(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    return str(response.json()["detail"])


def count_work(monkeypatch: pytest.MonkeyPatch, rnd: Round) -> dict[str, int]:
    """Count what a quote costs the node: proposal loads, blob reads, design checks."""
    work = {"loads": 0, "reads": 0, "design_checks": 0}
    real_load, real_check, real_get = (
        node_api.load_checked_proposal,
        node_api.run_design_check,
        rnd.store.get,
    )

    def load(*args: Any, **kwargs: Any) -> Any:
        work["loads"] += 1
        return real_load(*args, **kwargs)

    def check(*args: Any, **kwargs: Any) -> Any:
        work["design_checks"] += 1
        return real_check(*args, **kwargs)

    def get(*args: Any, **kwargs: Any) -> bytes:
        work["reads"] += 1
        return real_get(*args, **kwargs)

    monkeypatch.setattr(node_api, "load_checked_proposal", load)
    monkeypatch.setattr(node_api, "run_design_check", check)
    monkeypatch.setattr(rnd.store, "get", get)
    return work


def test_quote_is_priced_from_flops_and_signed_for_the_market(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    with client_for(rnd, price_per_gflop=7 * 10**12) as api:
        response = api.post("/quotes", json=signed(rnd, pid))
    assert response.status_code == 200, response.text
    body = response.json()
    assert scheme_problems(body) == []  # the CLI's JSON language: camelCase, wei as strings
    design = body["design"]
    assert design["samples"] == 40
    assert body["quote"]["trainingCostWei"] == str(
        price_training(design["trainFlopsPerSample"], 40, MLP_SPEC["epochs"], 7 * 10**12)
    )
    q = body["quote"]
    quote = Quote(pid, int(q["trainingCostWei"]), int(q["maxDuration"]), int(q["expiry"]))
    signer = recover_quote_signer(
        bytes.fromhex(body["signature"][2:]), rnd.chain.chain_id, rnd.market.address, quote
    )
    assert signer == rnd.accounts["node"].address
    assert quote.expiry > rnd.chain.latest_timestamp()


def test_after_the_tally_the_quote_charges_only_the_samples_left_in_the_round(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid, asks=(REJECT_ASK, 0))  # the first provider's 20 samples leave the round
    with client_for(rnd) as api:
        response = api.post("/quotes", json=signed(rnd, pid))
    assert response.status_code == 200, response.text
    assert response.json()["design"]["samples"] == 20


@pytest.mark.parametrize(
    ("change", "status", "error", "detail"),
    [
        ({"proposalId": 999}, 404, "UnknownProposal", "proposal 999 does not exist"),
        ({"proposalId": "1"}, 400, "InvalidRequest", "proposalId"),
        ({"proposalId": 0}, 400, "InvalidRequest", "proposalId"),
        ({"proposalId": 2**63}, 400, "InvalidRequest", "proposalId"),
        ({"extra": True}, 400, "InvalidRequest", "extra"),
        ({"consumer": "0x1234"}, 400, "InvalidRequest", "consumer"),
        ({"issuedAt": -1}, 400, "InvalidRequest", "issuedAt"),
        ({"signature": "0x00"}, 400, "InvalidRequest", "signature"),
    ],
)
def test_malformed_or_unknown_quote_requests(
    rnd: Round, change: dict[str, object], status: int, error: str, detail: str
) -> None:
    body = {**signed(rnd, 999 if change.get("proposalId") == 999 else 1), **change}
    with client_for(rnd) as api:
        response = api.post("/quotes", json=body)
    assert detail in refusal(response, status, error)


def test_non_json_body_is_refused(rnd: Round) -> None:
    with client_for(rnd) as api:
        response = api.post(
            "/quotes", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidRequest"


def test_spec_over_the_nodes_limits_is_refused_before_money_moves(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    with client_for(rnd, limits={"max_params": 1_000}) as api:
        response = api.post("/quotes", json=signed(rnd, pid))
    assert response.status_code == 422
    assert response.json()["error"] == "DesignLimitError"
    assert "max_params=1,000" in response.json()["detail"]


def test_a_proposal_in_training_is_not_quoted_again_and_its_job_is_visible(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)
    worker = TrainingWorker(
        rnd.chain, rnd.deployment, rnd.store, rnd.accounts["node"], rnd.training_config()
    )
    try:
        assert worker.follow() == 1  # journaled, not run
    finally:
        worker.close()
    with client_for(rnd) as api:
        again = api.post("/quotes", json=signed(rnd, pid))
        job = api.get(f"/jobs/{pid}")
        missing = api.get("/jobs/999")
        listed = api.get("/jobs")
    assert again.status_code == 409
    assert again.json()["error"] == "WrongStatus"
    assert job.status_code == 200
    assert (job.json()["state"], job.json()["attempts"]) == ("queued", 0)
    assert missing.status_code == 404
    assert missing.json()["error"] == "UnknownJob"
    assert [j["proposalId"] for j in listed.json()] == [pid]


def test_the_api_and_the_node_service_never_import_torch() -> None:
    code = (
        "import sys, visdm.compute.api, visdm.compute._training, visdm.compute._serve, "
        "visdm.cli.node, visdm.market.workflow, visdm.proposals, visdm.valuation; "
        "from visdm.valuation import compute_payout; "
        "from visdm.training import parse_model_spec; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_a_document_that_disagrees_with_the_chain_is_refused(rnd: Round) -> None:
    from visdm.chain.contracts import ProposalTerms

    pid = rnd.propose(wtp_bps=1000)
    (event,) = rnd.market.logs("ProposalCreated", where={"proposalId": pid})
    args = event["args"]
    doc = rnd.store.get(args["proposalCid"])
    from visdm.proposals import parse_proposal

    parsed = parse_proposal(doc).proposal
    terms = ProposalTerms(
        asset_ids=parsed.asset_ids,
        sample_counts=parsed.sample_counts,
        selection_root=parsed.selection_root,
        offer=2 * parsed.offer,  # the chain escrows another price than the signed document
        wtp_bps=parsed.wtp_bps,
        node=parsed.node,
        voting_deadline=parsed.voting_deadline,
        model_spec_hash=parsed.model_spec_hash,
        validation_set_hash=parsed.validation.plaintext_hash,
        proposal_cid=args["proposalCid"],
    )
    consumer = rnd.accounts["consumer"].local_account
    rnd.token.approve(consumer, rnd.market.address, terms.offer)
    forged, _ = rnd.market.propose(consumer, terms)
    with client_for(rnd) as api:
        response = api.post("/quotes", json=signed(rnd, forged))
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidProposalError"
    assert (
        "offer is 1000000000000000000 in the document but 2000000000000000000"
        in (response.json()["detail"])
    )


def test_a_consumer_key_that_cannot_receive_a_model_is_refused_at_quote_time(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    consumer = rnd.accounts["consumer"].local_account
    low_order = bytes([1]) + bytes(31)  # an X25519 point no sealed box can be made for
    rnd.registry.rotate_encryption_key(consumer, low_order)
    with client_for(rnd) as api:
        response = api.post("/quotes", json=signed(rnd, pid))
    assert response.status_code == 422
    assert response.json()["error"] == "UnusableConsumerKey"


def test_a_proposal_pointing_at_a_huge_blob_is_refused_unread(rnd: Round) -> None:
    from visdm.chain.contracts import ProposalTerms
    from visdm.proposals import MAX_PROPOSAL_BYTES, parse_proposal

    pid = rnd.propose(wtp_bps=1000)
    (event,) = rnd.market.logs("ProposalCreated", where={"proposalId": pid})
    parsed = parse_proposal(rnd.store.get(event["args"]["proposalCid"])).proposal
    huge = rnd.store.put(b"<" * (MAX_PROPOSAL_BYTES + 1))
    consumer = rnd.accounts["consumer"].local_account
    rnd.token.approve(consumer, rnd.market.address, parsed.offer)
    forged, _ = rnd.market.propose(
        consumer,
        ProposalTerms(
            asset_ids=parsed.asset_ids,
            sample_counts=parsed.sample_counts,
            selection_root=parsed.selection_root,
            offer=parsed.offer,
            wtp_bps=parsed.wtp_bps,
            node=parsed.node,
            voting_deadline=rnd.chain.latest_timestamp() + 600,
            model_spec_hash=parsed.model_spec_hash,
            validation_set_hash=parsed.validation.plaintext_hash,
            proposal_cid=huge,
        ),
    )
    with client_for(rnd) as api:
        response = api.post("/quotes", json=signed(rnd, forged))
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidProposalError"
    assert f"larger than the {MAX_PROPOSAL_BYTES:,} bytes" in response.json()["detail"]


def test_a_repeated_quote_checks_the_proposal_once(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = rnd.propose(wtp_bps=1000)
    quotes = rnd.quotes()
    reads: list[str] = []
    real_get = rnd.store.get

    def counting_get(cid: str, **kwargs: object) -> bytes:
        reads.append(cid)
        return real_get(cid, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rnd.store, "get", counting_get)
    first = quotes.quote(pid)
    fetched = len(reads)
    assert fetched > 0  # the document and every manifest, the first time
    second = quotes.quote(pid)
    assert len(reads) == fetched
    assert second["quote"]["trainingCostWei"] == first["quote"]["trainingCostWei"]


# --- who may make the node work ---------------------------------------------------------------
@pytest.mark.attack
def test_unsigned_forged_foreign_and_stale_requests_make_the_node_do_no_work(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = rnd.propose(wtp_bps=1000)
    provider = rnd.accounts["provider"]
    rnd.registry.add_roles(provider.local_account, Role.CONSUMER)  # a consumer, not this one's
    now = int(time.time())
    work = count_work(monkeypatch, rnd)
    with client_for(rnd) as api:
        unsigned = api.post("/quotes", json={"proposalId": pid})
        assert "signature: Field required" in refusal(unsigned, 400, "InvalidRequest")
        forged = api.post("/quotes", json=signed(rnd, pid, signer="stranger", consumer="consumer"))
        assert "signature is not from" in refusal(forged, 401, "BadSignature")
        unregistered = api.post("/quotes", json=signed(rnd, pid, signer="stranger"))
        assert "not a registered consumer" in refusal(unregistered, 403, "NotAConsumer")
        foreign = api.post("/quotes", json=signed(rnd, pid, signer="provider"))
        assert f"not {provider.address}'s" in refusal(foreign, 403, "NotYourProposal")
        stale = api.post("/quotes", json=signed(rnd, pid, issued_at=now - 400))
        assert "behind the node's clock" in refusal(stale, 401, "StaleRequest")
        assert "within ±300 s" in refusal(stale, 401, "StaleRequest")
        early = api.post("/quotes", json=signed(rnd, pid, issued_at=now + 400))
        assert "ahead of the node's clock" in refusal(early, 401, "StaleRequest")
        nested = api.post("/quotes", content=("[" * 100_000 + "]" * 100_000).encode())
        refusal(nested, 413, "BodyTooLarge")
        refusal(api.get("/jobs/" + "9" * 4301), 400, "InvalidRequest")
        assert work == {"loads": 0, "reads": 0, "design_checks": 0}
        # the node kept serving, and its own consumer gets the quote
        answer = api.post("/quotes", json=signed(rnd, pid))
    assert answer.status_code == 200, answer.text
    assert (work["loads"], work["design_checks"]) == (1, 1)


@pytest.mark.attack
def test_a_consumer_is_rate_limited_on_its_own_account(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    rnd.registry.add_roles(rnd.accounts["provider"].local_account, Role.CONSUMER)
    limits = ApiLimits(quote_burst=2, quotes_per_minute=0.01)  # a token every 100 minutes
    with client_for(rnd, api_limits=limits) as api:
        first, second, third = (api.post("/quotes", json=signed(rnd, pid)) for _ in range(3))
        other = api.post("/quotes", json=signed(rnd, pid, signer="provider"))
    assert (first.status_code, second.status_code) == (200, 200)
    assert "try again in" in refusal(third, 429, "RateLimited")
    assert 0 < int(third.headers["Retry-After"]) <= 6000
    refusal(other, 403, "NotYourProposal")  # another account's bucket is untouched


@pytest.mark.attack
def test_concurrent_quote_requests_share_one_load_and_one_design_check(
    rnd: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = rnd.propose(wtp_bps=1000)
    callers = 4
    quotes = QuoteService(
        rnd.chain,
        rnd.deployment,
        rnd.store,
        rnd.accounts["node"],
        rnd.training_config(),
        ApiLimits(quote_burst=callers),
    )
    work = count_work(monkeypatch, rnd)
    counted_load, counted_check = node_api.load_checked_proposal, node_api.run_design_check
    spec_hash: list[bytes] = []
    waiting_seen: dict[str, int] = {}

    def until_all_wait(what: str, waiting: Callable[[], int]) -> None:
        """Hold the one computation until every other caller waits for it (or give up)."""
        deadline = time.monotonic() + 120
        while waiting() < callers - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting_seen[what] = waiting()

    def held_load(*args: Any, **kwargs: Any) -> Any:
        until_all_wait("load", lambda: quotes._proposals.waiting(pid))
        checked = counted_load(*args, **kwargs)
        spec_hash.append(checked.document.model_spec_hash)
        return checked

    def held_check(*args: Any, **kwargs: Any) -> Any:
        key = quotes.design_key(spec_hash[0], quotes.training_limits())
        until_all_wait("design", lambda: quotes._designs.waiting(key))
        return counted_check(*args, **kwargs)

    monkeypatch.setattr(node_api, "load_checked_proposal", held_load)
    monkeypatch.setattr(node_api, "run_design_check", held_check)
    with serve(rnd, quotes) as api, ThreadPoolExecutor(callers) as pool:
        answers = list(
            pool.map(lambda _: api.post("/quotes", json=signed(rnd, pid)), range(callers))
        )
    assert [a.status_code for a in answers] == [200] * callers, answers[0].text
    assert len({a.json()["quote"]["trainingCostWei"] for a in answers}) == 1
    assert waiting_seen == {"load": callers - 1, "design": callers - 1}
    assert (work["loads"], work["design_checks"]) == (1, 1)


def test_the_caches_never_exceed_their_bounds(rnd: Round, monkeypatch: pytest.MonkeyPatch) -> None:
    pids = [
        rnd.propose(wtp_bps=1000, spec={**MLP_SPEC, "hidden": [width]}) for width in (32, 16, 8)
    ]
    quotes = QuoteService(
        rnd.chain,
        rnd.deployment,
        rnd.store,
        rnd.accounts["node"],
        rnd.training_config(),
        # five quotes in a row: a burst the rate limit must not cut short (it is tested apart)
        ApiLimits(cached_proposals=2, cached_designs=2, quote_burst=5),
    )
    work = count_work(monkeypatch, rnd)
    for pid in pids:
        quotes.signed_quote(*signed_request(rnd, pid))
        assert len(quotes._proposals) <= 2
        assert len(quotes._designs) <= 2
    assert (len(quotes._proposals), len(quotes._designs)) == (2, 2)
    assert (work["loads"], work["design_checks"]) == (3, 3)
    quotes.signed_quote(*signed_request(rnd, pids[-1]))  # still cached
    assert (work["loads"], work["design_checks"]) == (3, 3)
    quotes.signed_quote(*signed_request(rnd, pids[0]))  # evicted: loaded and checked again
    assert (work["loads"], work["design_checks"]) == (4, 4)


# --- job details ------------------------------------------------------------------------------
@pytest.mark.attack
def test_job_details_are_hidden_from_strangers_and_shown_to_the_consumer(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    rnd.start(pid)
    worker = rnd.trainer()
    try:
        assert worker.follow() == 1  # journaled, not run
        worker.journal.update(pid, message="sandbox stderr: /work/decrypted/img0007.png")
    finally:
        worker.close()
    rnd.registry.add_roles(rnd.accounts["provider"].local_account, Role.CONSUMER)
    public = {"proposalId", "state", "progress", "attempts", "deadline"}
    with client_for(rnd) as api:
        anyone = api.get(f"/jobs/{pid}")
        listed = api.get("/jobs")
        stranger = api.get(f"/jobs/{pid}", headers=signed_headers(rnd, pid, signer="stranger"))
        other = api.get(f"/jobs/{pid}", headers=signed_headers(rnd, pid, signer="provider"))
        forged = {**signed_headers(rnd, pid, signer="stranger")}
        forged["X-Visdm-Consumer"] = rnd.accounts["consumer"].address
        forging = api.get(f"/jobs/{pid}", headers=forged)
        owner = api.get(f"/jobs/{pid}", headers=signed_headers(rnd, pid))
        url = str(api.base_url)
        as_owner = workflow.proposal_status(
            rnd.settings, pid, viewer=rnd.accounts["consumer"], node_url_override=url
        )
        as_stranger = workflow.proposal_status(
            rnd.settings, pid, viewer=rnd.accounts["stranger"], node_url_override=url
        )
    assert anyone.status_code == 200 and set(anyone.json()) == public
    assert "img0007" not in anyone.text + listed.text
    assert [set(j) for j in listed.json()] == [public]
    refusal(stranger, 403, "NotYourProposal")
    refusal(other, 403, "NotYourProposal")
    refusal(forging, 401, "BadSignature")
    assert owner.status_code == 200, owner.text
    assert scheme_problems(owner.json()) == []
    assert owner.json()["message"] == "sandbox stderr: /work/decrypted/img0007.png"
    assert as_owner["job"]["message"] == "sandbox stderr: /work/decrypted/img0007.png"
    assert as_stranger["job"] == {
        "state": "queued",
        "progress": None,
        "message": None,
        "attempts": 0,
    }


# --- the consumer's client --------------------------------------------------------------------
def test_the_client_signs_its_quote_request_as_the_proposals_consumer(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    with client_for(rnd) as api:
        offer = workflow.request_quote(
            rnd.settings,
            pid,
            consumer=rnd.accounts["consumer"],
            node_url_override=str(api.base_url),
        )
        with pytest.raises(InvalidInputError, match="only a proposal's consumer"):
            workflow.request_quote(
                rnd.settings,
                pid,
                consumer=rnd.accounts["stranger"],
                node_url_override=str(api.base_url),
            )
    assert offer.quote.proposal_id == pid
    assert offer.signer == rnd.accounts["node"].address
    assert offer.design["samples"] == 40
