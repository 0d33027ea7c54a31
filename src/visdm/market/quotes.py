"""Training quotes and the consumer's signed requests to a compute node.

A quote is the compute node's EIP-712-signed offer that ``startTraining`` verifies. Before the
node does any work for a proposal — fetching its manifests, forking a design check, showing its
job's messages — the proposal's consumer signs a :class:`NodeRequest`: ``QuoteRequest`` for
``POST /quotes``, ``JobStatusRequest`` for ``GET /jobs/{id}``. Both sides build the wire format
with the helpers here (:func:`quote_request_body`, :func:`job_status_headers`).

:func:`market_domain` is the one EIP-712 domain of everything signed for a market: quotes,
requests to nodes, proposals (:mod:`visdm.proposals`) and model deliveries
(:mod:`visdm.compute.delivery`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from visdm.chain.contracts import QUOTE_TYPES, Quote, TrainingMarket
from visdm.crypto import Eip712Domain, Eip712Types, recover_typed, sign_typed, verify_typed
from visdm.errors import InvalidInputError
from visdm.types import Address

__all__ = [
    "CONSUMER_HEADER",
    "ISSUED_AT_HEADER",
    "JOB_STATUS_REQUEST_TYPES",
    "MAX_PROPOSAL_ID",
    "QUOTE_REQUEST_TYPES",
    "SIGNATURE_HEADER",
    "NodeRequest",
    "job_status_headers",
    "market_domain",
    "quote_request_body",
    "recover_quote_signer",
    "sign_job_status_request",
    "sign_quote",
    "sign_quote_request",
    "verify_job_status_request",
    "verify_quote_request",
]

#: the largest proposal id a node accepts in a request (ids are counted from 1 on chain)
MAX_PROPOSAL_ID = 2**63 - 1
_MAX_UINT64 = 2**64 - 1

_REQUEST_FIELDS = [
    {"name": "proposalId", "type": "uint256"},
    {"name": "consumer", "type": "address"},
    {"name": "issuedAt", "type": "uint64"},
]
#: EIP-712 types of a consumer's request for a quote (in the market's domain)
QUOTE_REQUEST_TYPES: dict[str, list[dict[str, str]]] = {"QuoteRequest": _REQUEST_FIELDS}
#: EIP-712 types of a consumer's request for its job's details (in the market's domain)
JOB_STATUS_REQUEST_TYPES: dict[str, list[dict[str, str]]] = {"JobStatusRequest": _REQUEST_FIELDS}

#: the headers of a signed ``GET /jobs/{id}``
CONSUMER_HEADER = "X-Visdm-Consumer"
ISSUED_AT_HEADER = "X-Visdm-Issued-At"
SIGNATURE_HEADER = "X-Visdm-Signature"


def market_domain(chain_id: int, market_address: str) -> Eip712Domain:
    """The market's EIP-712 domain: a signature is valid for one market on one chain only."""
    return Eip712Domain(
        name=TrainingMarket.EIP712_NAME,
        version=TrainingMarket.EIP712_VERSION,
        chain_id=chain_id,
        verifying_contract=Address(to_checksum_address(market_address)),
    )


def sign_quote(private_key: bytes, chain_id: int, market_address: str, quote: Quote) -> bytes:
    """The node signer's 65-byte signature of ``quote``."""
    domain = market_domain(chain_id, market_address)
    return sign_typed(private_key, domain, QUOTE_TYPES, "Quote", quote.as_message())


def recover_quote_signer(
    signature: bytes, chain_id: int, market_address: str, quote: Quote
) -> Address:
    """Who signed ``quote`` for this market."""
    domain = market_domain(chain_id, market_address)
    return recover_typed(signature, domain, QUOTE_TYPES, "Quote", quote.as_message())


# --- the consumer's requests to a node ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeRequest:
    """Who asks a compute node about which proposal, and when (unix seconds).

    The node answers only when ``consumer`` signed it, is the proposal's registered consumer,
    and ``issued_at`` is close to the node's clock — so a captured request is useful for
    minutes, not forever.
    """

    proposal_id: int
    consumer: Address
    issued_at: int

    def __post_init__(self) -> None:
        if (
            isinstance(self.proposal_id, bool)
            or not isinstance(self.proposal_id, int)
            or not 1 <= self.proposal_id <= MAX_PROPOSAL_ID
        ):
            raise InvalidInputError(
                f"proposal id {self.proposal_id!r} must be an integer from 1 to 2^63-1"
            )
        if not isinstance(self.consumer, str) or not is_address(self.consumer.lower()):
            raise InvalidInputError(f"consumer {self.consumer!r} is not an address (0x + 40 hex)")
        if (
            isinstance(self.issued_at, bool)
            or not isinstance(self.issued_at, int)
            or not 0 <= self.issued_at <= _MAX_UINT64
        ):
            raise InvalidInputError(
                f"issuedAt {self.issued_at!r} must be unix seconds (an integer from 0 to 2^64-1)"
            )
        object.__setattr__(self, "consumer", Address(to_checksum_address(self.consumer.lower())))

    def as_message(self) -> dict[str, Any]:
        return {
            "proposalId": self.proposal_id,
            "consumer": self.consumer,
            "issuedAt": self.issued_at,
        }


def sign_quote_request(
    private_key: bytes, chain_id: int, market_address: str, request: NodeRequest
) -> bytes:
    """The consumer's 65-byte signature of a ``QuoteRequest``."""
    return _sign(QUOTE_REQUEST_TYPES, private_key, chain_id, market_address, request)


def verify_quote_request(
    signature: bytes, chain_id: int, market_address: str, request: NodeRequest
) -> None:
    """Check that ``request.consumer`` signed this ``QuoteRequest`` for this market; raises
    :class:`~visdm.errors.SignatureError` otherwise."""
    _verify(QUOTE_REQUEST_TYPES, signature, chain_id, market_address, request)


def sign_job_status_request(
    private_key: bytes, chain_id: int, market_address: str, request: NodeRequest
) -> bytes:
    """The consumer's 65-byte signature of a ``JobStatusRequest``."""
    return _sign(JOB_STATUS_REQUEST_TYPES, private_key, chain_id, market_address, request)


def verify_job_status_request(
    signature: bytes, chain_id: int, market_address: str, request: NodeRequest
) -> None:
    """Check that ``request.consumer`` signed this ``JobStatusRequest`` for this market; raises
    :class:`~visdm.errors.SignatureError` otherwise."""
    _verify(JOB_STATUS_REQUEST_TYPES, signature, chain_id, market_address, request)


def _sign(
    types: Eip712Types, private_key: bytes, chain_id: int, market_address: str, request: NodeRequest
) -> bytes:
    (primary,) = types
    domain = market_domain(chain_id, market_address)
    return sign_typed(private_key, domain, types, primary, request.as_message())


def _verify(
    types: Eip712Types, signature: bytes, chain_id: int, market_address: str, request: NodeRequest
) -> None:
    (primary,) = types
    domain = market_domain(chain_id, market_address)
    verify_typed(
        signature, domain, types, primary, request.as_message(), expected_signer=request.consumer
    )


def quote_request_body(request: NodeRequest, signature: bytes) -> dict[str, Any]:
    """The JSON body of ``POST /quotes``."""
    return {**request.as_message(), "signature": "0x" + signature.hex()}


def job_status_headers(request: NodeRequest, signature: bytes) -> dict[str, str]:
    """The headers of a signed ``GET /jobs/{proposalId}``."""
    return {
        CONSUMER_HEADER: request.consumer,
        ISSUED_AT_HEADER: str(request.issued_at),
        SIGNATURE_HEADER: "0x" + signature.hex(),
    }
