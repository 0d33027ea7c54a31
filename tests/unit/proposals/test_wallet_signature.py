"""A proposal signed by a browser wallet: the typed data it signs is what ``sign_proposal``
signs, a signature over it verifies like a local one, and a signature by another key or over
another document is refused naming both addresses; the terms commit to the document."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account

from tests.unit.proposals.test_document import CONSUMER, OTHER, make, signed
from visdm.errors import SignatureError
from visdm.proposals import (
    PreparedProposal,
    attach_proposal_signature,
    proposal_hash,
    proposal_terms,
    proposal_typed_data,
    store_signed_proposal,
    verify_proposal,
    write_proposal,
)
from visdm.storage import MemoryStore, compute_cid

pytestmark = pytest.mark.unit


def wallet_signs(typed: dict[str, object], key: bytes) -> bytes:
    """What ``eth_signTypedData_v4`` does with the JSON a page hands it."""
    return bytes(Account.sign_typed_data(key, full_message=typed).signature)


def test_a_wallet_signature_of_the_typed_data_verifies_as_the_local_signature_does() -> None:
    p = make()
    typed = proposal_typed_data(p)
    assert typed["primaryType"] == "TrainingProposal"
    assert typed["message"] == {
        "proposalHash": "0x" + proposal_hash(p).hex(),
        "consumer": CONSUMER.address,
        "node": p.node,
    }
    signature = wallet_signs(typed, bytes(CONSUMER.key))
    data = attach_proposal_signature(p, signature)
    parsed = verify_proposal(data, chain_id=p.chain_id, market=p.market)
    assert parsed.proposal == p and parsed.signature == signature
    # the very bytes a local key gives: same typed data, same deterministic signature
    assert data == signed(p)


def test_another_key_or_another_document_is_refused_naming_both_addresses() -> None:
    p = make()
    by_other = wallet_signs(proposal_typed_data(p), bytes(OTHER.key))
    with pytest.raises(SignatureError) as refused:
        attach_proposal_signature(p, by_other)
    assert OTHER.address in str(refused.value) and CONSUMER.address in str(refused.value)
    # the consumer's signature of another document (another offer) does not carry over
    other_doc = wallet_signs(proposal_typed_data(make(offer=1)), bytes(CONSUMER.key))
    with pytest.raises(SignatureError, match=f"not to the proposal's consumer {CONSUMER.address}"):
        attach_proposal_signature(p, other_doc)
    with pytest.raises(SignatureError, match="65"):
        attach_proposal_signature(p, b"\x01" * 64)


def test_the_store_takes_only_the_prepared_document_signed_by_its_consumer() -> None:
    p = make()
    store = MemoryStore()
    prepared = PreparedProposal(p)
    foreign = signed(make(offer=7))  # the consumer's own signature, on another document
    with pytest.raises(SignatureError, match="not the one prepared"):
        store_signed_proposal(store, prepared, foreign)
    assert not store.has(compute_cid(foreign))
    data = signed(p)
    terms = store_signed_proposal(store, prepared, data)
    assert terms == proposal_terms(p, compute_cid(data)) and store.get(terms.proposal_cid) == data
    assert dataclasses.replace(prepared.terms, proposal_cid=terms.proposal_cid) == terms
    assert (terms.asset_ids, terms.sample_counts) == (p.asset_ids, p.sample_counts)
    assert terms.validation_set_hash == p.validation.plaintext_hash
    # an unsigned document is refused as unsigned
    with pytest.raises(SignatureError, match="not signed"):
        store_signed_proposal(store, prepared, write_proposal(p))
