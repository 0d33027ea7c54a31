"""The index reads a result's model card: an honest one is kept, a lying one rejects the whole
result document with the reason, as any other disagreement with the chain does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.index.test_documents import _parse_result, _result
from tests.unit.training.test_card import card
from visdm.index import _documents
from visdm.index._documents import DocumentError

pytestmark = pytest.mark.unit

#: the accuracy the event of test_documents' result commits, as a count of 10,000 images
SCREEN = {"given": 10_000, "duplicates": 0, "nearSelected": 0, "used": 10_000}


def with_card(**facts: Any) -> dict[str, Any]:
    built = card(accuracy_bps=8_123, validation=SCREEN, **facts)
    return {**_result(), "epsilonSpent": built.epsilon_spent, "modelCard": built.to_document()}


def test_an_honest_card_is_kept() -> None:
    doc = with_card()
    parsed = _parse_result(doc)
    assert parsed.model_card is not None and parsed.model_card.correct == 8_123
    committed = bytes.fromhex(doc["modelCard"]["specHash"][2:])
    assert _parse_result(doc, model_spec_hash=committed).model_card == parsed.model_card
    assert _parse_result(_result()).model_card is None  # a document without a card


@pytest.mark.attack
def test_a_card_claiming_less_privacy_spent_than_the_document_rejects_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = with_card()
    doc["epsilonSpent"] = 7.5  # the accountant's figure; the card shows the buyer 2.99
    with pytest.raises(DocumentError, match=r"modelCard: .*epsilonSpent 7.5 \(the card: 2.99\)"):
        _parse_result(doc)
    # the card's check is what stops it: without it the document would be indexed
    monkeypatch.setattr(_documents, "card_from_result", lambda *_a, **_k: None)
    assert _parse_result(doc).epsilon_spent == 7.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["modelCard"]["privacy"].update(epsilonSpent=9.0), "not within the budget"),
        (lambda d: d["modelCard"]["samples"].update(selected=1), "1 selected is not"),
        (lambda d: d.update(accuracyBps=8_124), "accuracy 8123 bps is not the 8124 bps on chain"),
    ],
)
def test_a_lying_card_rejects_the_result_with_the_reason(change: Any, message: str) -> None:
    doc = with_card()
    change(doc)
    with pytest.raises(DocumentError, match=message) as info:
        _parse_result(doc, accuracy_bps=doc["accuracyBps"])
    assert "\n" not in str(info.value)


def test_a_card_of_another_spec_than_the_proposals_rejects_the_result() -> None:
    doc = with_card()
    with pytest.raises(
        DocumentError, match=r"its spec hashes to 0x.*, the proposal committed 0x00"
    ):
        _parse_result(doc, model_spec_hash=bytes(32))
