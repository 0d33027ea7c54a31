"""A consumer's signed requests to a compute node: who signed, for which market, for what."""

from __future__ import annotations

import pytest
from eth_account import Account

from visdm.errors import InvalidInputError, SignatureError
from visdm.market.quotes import (
    CONSUMER_HEADER,
    ISSUED_AT_HEADER,
    SIGNATURE_HEADER,
    NodeRequest,
    job_status_headers,
    quote_request_body,
    sign_job_status_request,
    sign_quote_request,
    verify_job_status_request,
    verify_quote_request,
)
from visdm.types import Address

pytestmark = pytest.mark.unit

CHAIN = 31337
MARKET = "0x" + "12" * 20
CONSUMER_KEY = bytes(range(1, 33))
OTHER_KEY = bytes(range(40, 72))
CONSUMER = Address(Account.from_key(CONSUMER_KEY).address)


def request(**changes: object) -> NodeRequest:
    fields: dict[str, object] = {"proposal_id": 7, "consumer": CONSUMER, "issued_at": 1_700_000_000}
    fields.update(changes)
    return NodeRequest(**fields)  # type: ignore[arg-type]


def test_the_consumers_signature_verifies_for_its_market() -> None:
    req = request()
    verify_quote_request(sign_quote_request(CONSUMER_KEY, CHAIN, MARKET, req), CHAIN, MARKET, req)
    verify_job_status_request(
        sign_job_status_request(CONSUMER_KEY, CHAIN, MARKET, req), CHAIN, MARKET, req
    )


def test_a_signature_by_anyone_but_the_named_consumer_is_refused() -> None:
    req = request()
    forged = sign_quote_request(OTHER_KEY, CHAIN, MARKET, req)
    with pytest.raises(SignatureError, match=f"not from {CONSUMER}"):
        verify_quote_request(forged, CHAIN, MARKET, req)


@pytest.mark.parametrize(
    ("chain", "market", "changes"),
    [
        (1, MARKET, {}),  # another chain
        (CHAIN, "0x" + "34" * 20, {}),  # another market
        (CHAIN, MARKET, {"proposal_id": 8}),  # another proposal
        (CHAIN, MARKET, {"issued_at": 1_700_000_001}),  # another time
    ],
)
def test_a_signature_does_not_carry_over_to_other_terms(
    chain: int, market: str, changes: dict[str, object]
) -> None:
    signature = sign_quote_request(CONSUMER_KEY, CHAIN, MARKET, request())
    with pytest.raises(SignatureError):
        verify_quote_request(signature, chain, market, request(**changes))


def test_a_quote_request_signature_is_not_a_job_status_request_signature() -> None:
    req = request()
    signature = sign_quote_request(CONSUMER_KEY, CHAIN, MARKET, req)
    with pytest.raises(SignatureError, match="JobStatusRequest"):
        verify_job_status_request(signature, CHAIN, MARKET, req)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"proposal_id": 0}, "proposal id 0"),
        ({"proposal_id": 2**63}, "from 1 to 2\\^63-1"),
        ({"proposal_id": True}, "proposal id True"),
        ({"consumer": "0x1234"}, "not an address"),
        ({"consumer": 5}, "not an address"),
        ({"issued_at": -1}, "issuedAt -1"),
        ({"issued_at": 2**64}, "unix seconds"),
    ],
)
def test_malformed_requests_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        request(**changes)


def test_the_wire_format_carries_the_request_and_its_signature() -> None:
    req = request(consumer=CONSUMER.lower())
    assert req.consumer == CONSUMER  # checksummed
    signature = sign_quote_request(CONSUMER_KEY, CHAIN, MARKET, req)
    assert quote_request_body(req, signature) == {
        "proposalId": 7,
        "consumer": CONSUMER,
        "issuedAt": 1_700_000_000,
        "signature": "0x" + signature.hex(),
    }
    headers = job_status_headers(req, signature)
    assert headers == {
        CONSUMER_HEADER: CONSUMER,
        ISSUED_AT_HEADER: "1700000000",
        SIGNATURE_HEADER: "0x" + signature.hex(),
    }
