"""A browser wallet proposes and tallies: the next step from the held document and chain facts
(sign, mint, approve, propose, done once the chain made it; one tally batch per step), and the
signature route's refusals through FastAPI's test client: no document held, one prepared for
another wallet or from another form, a signature by another key (nothing stored)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from eth_account import Account

from tests.unit.proposals.test_document import CONSUMER, OTHER, make
from tests.unit.web.conftest import Web, csrf_of
from tests.unit.web.test_wallet_steps import MARKET, NOW, TOKEN, error_line, record
from visdm.chain.contracts import ProposalStatus
from visdm.errors import InvalidInputError
from visdm.market.tally import TallyBatch
from visdm.proposals import SelectedAsset, proposal_terms, proposal_typed_data, write_proposal
from visdm.session import open_store
from visdm.storage import compute_cid
from visdm.web.wallet_plans import Call, Done, Sign, plan_propose, plan_tally
from visdm.web.wallet_propose import HeldProposal, form_fingerprint, held_proposal, hold

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from visdm.web._auth import WebSession

pytestmark = pytest.mark.unit

DOC = make(voting_deadline=NOW + 3600)
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
FORM = {"asset": "1,4", "spec": "/tmp/spec.json", "offer": "1"}


def propose(cid: str | None, proposed: int | None = None, **funds: int) -> object:
    given = {"balance": 0, "allowance": 0, **funds}
    return plan_propose(
        DOC,
        cid,
        proposed,
        now=NOW,
        min_voting_period=60,
        market=MARKET,
        mintable=True,
        **given,
    )


def test_proposing_signs_then_mints_approves_proposes_and_is_done_once_made() -> None:
    assert propose(None) == Sign("proposal", "sign the proposal document")
    mint = propose(CID)
    assert isinstance(mint, Call) and (mint.fn, mint.args) == ("faucet", (TOKEN,))
    approve = propose(CID, balance=TOKEN)
    assert isinstance(approve, Call) and approve.args == (MARKET, TOKEN)
    made = propose(CID, balance=TOKEN, allowance=TOKEN)
    assert isinstance(made, Call) and made.fn == "propose"
    assert made.args == (proposal_terms(DOC, CID).as_tuple(),)
    # once the chain made a proposal from this document, nothing is sent again
    done = propose(CID, 9, balance=0, allowance=0)
    assert isinstance(done, Done) and done.next == "/proposals/9"
    assert "proposal 9 created: 4 samples" in (done.message or "")


def test_a_document_whose_deadline_came_too_close_is_stale() -> None:
    with pytest.raises(InvalidInputError, match="propose again to prepare a new document"):
        plan_propose(
            replace(DOC, voting_deadline=NOW + 30),
            CID,
            None,
            now=NOW,
            min_voting_period=60,
            balance=TOKEN,
            allowance=TOKEN,
            market=MARKET,
            mintable=False,
        )


def test_tallying_sends_one_batch_per_step_after_a_reset_and_is_done_after_voting() -> None:
    voting = record(ProposalStatus.VOTING)
    batch = TallyBatch(7, 5, 256, (9, 10), (3, 4), last=True)
    step = plan_tally(voting, batch)
    assert isinstance(step, Call) and step.fn == "tally"
    assert step.args == (7, 5, [9, 10], [3, 4])
    assert step.label == "tally assets 257–258 and record the outcome"
    reset = plan_tally(voting, replace(batch, start=0, reset=True))
    assert reset == Call(
        "TrainingMarket", "resetTally", (7,), "discard your unfinished tally at another price"
    )
    done = plan_tally(record(ProposalStatus.APPROVED), None)
    assert done == Done("/proposals/7", "proposal 7 is approved: its tally is done")


def wallet_client(web: Web, address: str) -> tuple[TestClient, WebSession, str]:
    client = web.client()
    csrf = csrf_of(client)
    session = web.sessions.get(client.cookies.get("visdm_session"))
    assert session is not None
    session.wallet = address
    return client, session, csrf


def test_a_signature_needs_the_document_this_session_prepared_from_this_form(web: Web) -> None:
    client, session, csrf = wallet_client(web, CONSUMER.address)
    form = {"csrf": csrf, **FORM, "signature": "0x" + "11" * 65}
    answer = client.post("/wallet/signed/proposal", data=form)
    assert "no proposal document is waiting for a signature" in error_line(answer.text)
    # a document prepared for another wallet of this session (it reconnected since)
    hold(session, HeldProposal(form_fingerprint(_Form(FORM)), replace(DOC, consumer=OTHER.address)))
    answer = client.post("/wallet/signed/proposal", data=form)
    line = error_line(answer.text)
    assert f"prepared for {OTHER.address}, not for the connected wallet {CONSUMER.address}" in line
    # a form changed since its document was prepared
    hold(session, HeldProposal(form_fingerprint(_Form(FORM)), DOC))
    answer = client.post("/wallet/signed/proposal", data={**form, "offer": "2"})
    assert "the propose form changed since its document was prepared" in error_line(answer.text)
    answer = client.post("/wallet/signed/proposal", data={**form, "signature": "0x12"})
    assert "must be a 65-byte hex signature" in error_line(answer.text)
    # a step after the document was replaced refuses before the chain is asked
    answer = client.post(
        "/wallet/prepare/propose", data={"csrf": csrf, **FORM, "offer": "3", "step": "1"}
    )
    assert "no longer holds the proposal document" in error_line(answer.text)


def test_another_keys_signature_is_refused_and_the_consumers_is_stored(web: Web) -> None:
    client, session, csrf = wallet_client(web, CONSUMER.address)
    hold(session, HeldProposal(form_fingerprint(_Form(FORM)), DOC, ("a note",)))
    typed = proposal_typed_data(DOC)
    forged = Account.sign_typed_data(OTHER.key, full_message=typed).signature
    form = {"csrf": csrf, **FORM, "signature": "0x" + forged.hex()}
    answer = client.post("/wallet/signed/proposal", data=form)
    line = error_line(answer.text)
    assert f"recovers to {OTHER.address}, not to the proposal's consumer {CONSUMER.address}" in line
    store = open_store(web.settings)
    assert not store.has(compute_cid(write_proposal(DOC, signature=bytes(forged))))
    held = held_proposal(session)
    assert held is not None and held.cid is None
    signature = Account.sign_typed_data(CONSUMER.key, full_message=typed).signature
    answer = client.post(
        "/wallet/signed/proposal", data={**form, "signature": "0x" + signature.hex()}
    )
    assert answer.status_code == 200
    held = held_proposal(session)
    signed = write_proposal(DOC, signature=bytes(signature))
    assert held is not None and held.cid == json.loads(answer.text)["cid"] == compute_cid(signed)
    assert store.get(held.cid) == signed and held.notes == ("a note",)


def test_a_session_holds_one_bounded_document() -> None:
    class Session:
        pending: dict[str, str] = {}  # noqa: RUF012

    big = replace(DOC, selection=(SelectedAsset(1, tuple(range(200_000))),))
    with pytest.raises(InvalidInputError, match="more than a web session holds"):
        hold(Session(), HeldProposal("f", big))
    assert held_proposal(Session()) is None


class _Form:
    """The form a page posts, as Starlette's ``FormData`` reads it."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self.fields.items())
