"""Training quotes: the compute node's EIP-712-signed offer that ``startTraining`` verifies.

:func:`market_domain` is the one EIP-712 domain of everything signed for a market: quotes,
proposals (:mod:`visdm.proposals`) and model deliveries (:mod:`visdm.compute.delivery`).
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from visdm.chain.contracts import QUOTE_TYPES, Quote, TrainingMarket
from visdm.crypto import Eip712Domain, recover_typed, sign_typed
from visdm.types import Address

__all__ = ["market_domain", "recover_quote_signer", "sign_quote"]


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
