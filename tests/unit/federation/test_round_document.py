"""The round document a coordinator announces: what a member and a consumer accept, and the
one-line refusals of everything else."""

from __future__ import annotations

import json

import pytest
from eth_utils.address import to_checksum_address

from visdm.chain.contracts import Quote
from visdm.errors import InvalidInputError
from visdm.federation.market_round import RegionShare
from visdm.federation.serve import RoundDocument
from visdm.types import Address

FED = Address(to_checksum_address("0x" + "f" * 40))
EU = Address(to_checksum_address("0x" + "e" * 40))
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _doc() -> RoundDocument:
    return RoundDocument(
        7,
        FED,
        Quote(7, 90, 3600, 1_900_000_000),
        b"\x01" * 65,
        (RegionShare(EU, "eu", (3, 4), 120),),
        (90,),
        "127.0.0.1:9092",
        PEM,
    )


def test_a_document_reads_back_as_written() -> None:
    doc = _doc()
    assert RoundDocument.parse(doc.to_json(), proposal_id=7, federation=FED.lower()) == doc


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kind": "visdm-training-result"}, "not a version 1"),
        ({"proposalId": 8}, "it is for proposal 8"),
        ({"federation": "0x" + "1" * 40}, "it is for federation"),
        ({"caCert": "not a certificate"}, "caCert is not a PEM certificate"),
        ({"quote": {"trainingCost": "ninety", "maxDuration": 1, "expiry": 1}}, "malformed"),
        ({"shares": [{"node": "0x12", "region": "eu"}]}, "malformed"),
    ],
)
def test_a_document_for_another_round_or_broken_is_refused(change: dict, expected: str) -> None:
    raw = json.loads(_doc().to_json())
    raw.update(change)
    with pytest.raises(InvalidInputError, match=expected) as info:
        RoundDocument.parse(json.dumps(raw).encode(), proposal_id=7, federation=FED)
    assert "\n" not in str(info.value) and "proposal 7" in str(info.value)


def test_a_document_that_is_not_json_or_too_deep_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        RoundDocument.parse(b"{" * 10_000, proposal_id=7, federation=FED)
    with pytest.raises(InvalidInputError):
        RoundDocument.parse(b"\xff\xfe", proposal_id=7, federation=FED)
