"""The node's HTTP API against the real chain: quotes priced from the design check's FLOPs and
signed for the market; every refusal is a JSON error naming the problem."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.integration.compute.roundkit import MLP_SPEC, Round
from visdm.chain.contracts import Quote
from visdm.compute import TrainingWorker
from visdm.compute._serve import ApiServer
from visdm.compute.api import create_app, price_training
from visdm.market import recover_quote_signer

pytestmark = pytest.mark.integration


@pytest.fixture
def images_per_provider() -> int:
    return 20


@contextmanager
def client_for(rnd: Round, **config: object) -> Iterator[httpx.Client]:
    """The API served by uvicorn on a free loopback port, as ``visdm node serve`` serves it."""
    app = create_app(rnd.quotes(**config), rnd.settings.node_dir / "jobs.sqlite3")
    rnd.settings.node_dir.mkdir(parents=True, exist_ok=True)
    server = ApiServer(app, "127.0.0.1", 0, rnd.settings.node_dir / "api.json")
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield client
    finally:
        server.stop()


def test_quote_is_priced_from_flops_and_signed_for_the_market(rnd: Round) -> None:
    pid = rnd.propose(wtp_bps=1000)
    with client_for(rnd, price_per_gflop=7 * 10**12) as api:
        response = api.post("/quotes", json={"proposalId": pid})
    assert response.status_code == 200, response.text
    body = response.json()
    design = body["design"]
    assert design["samples"] == 40
    assert body["quote"]["trainingCost"] == str(
        price_training(design["train_flops_per_sample"], 40, MLP_SPEC["epochs"], 7 * 10**12)
    )
    q = body["quote"]
    quote = Quote(pid, int(q["trainingCost"]), int(q["maxDuration"]), int(q["expiry"]))
    signer = recover_quote_signer(
        bytes.fromhex(body["signature"][2:]), rnd.chain.chain_id, rnd.market.address, quote
    )
    assert signer == rnd.accounts["node"].address
    assert quote.expiry > rnd.chain.latest_timestamp()


@pytest.mark.parametrize(
    ("body", "status", "error", "detail"),
    [
        ({"proposalId": 999}, 404, "UnknownProposal", "proposal 999 does not exist"),
        ({"proposalId": "1"}, 400, "InvalidRequest", "proposalId"),
        ({"proposalId": 0}, 400, "InvalidRequest", "proposalId"),
        ({"proposalId": 1, "extra": True}, 400, "InvalidRequest", "extra"),
        ({}, 400, "InvalidRequest", "proposalId"),
    ],
)
def test_malformed_or_unknown_quote_requests(
    rnd: Round, body: dict[str, object], status: int, error: str, detail: str
) -> None:
    with client_for(rnd) as api:
        response = api.post("/quotes", json=body)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert detail in response.json()["detail"]


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
        response = api.post("/quotes", json={"proposalId": pid})
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
        again = api.post("/quotes", json={"proposalId": pid})
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
        response = api.post("/quotes", json={"proposalId": forged})
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
        response = api.post("/quotes", json={"proposalId": pid})
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
        response = api.post("/quotes", json={"proposalId": forged})
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
    assert second["quote"]["trainingCost"] == first["quote"]["trainingCost"]
