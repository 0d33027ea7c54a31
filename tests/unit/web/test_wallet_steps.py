"""The browser wallet's step logic: each action's next step from chain state alone, so a reload
or a rejected prompt resumes and a finished step is never asked again (no double payment); and
the step routes' refusals through FastAPI's test client (no chain needed to refuse)."""

from __future__ import annotations

import html
from dataclasses import replace

import pytest

from tests.unit.web.conftest import Web, csrf_of
from visdm.chain.contracts import (
    AssetRecord,
    AssetStatus,
    ClaimRequest,
    ProposalRecord,
    ProposalStatus,
    Quote,
)
from visdm.errors import InvalidInputError
from visdm.market.release import ResultWindow
from visdm.types import Address, AssetId
from visdm.web.wallet_plans import (
    Call,
    Done,
    Sign,
    plan_accept_counter,
    plan_claim,
    plan_delegate,
    plan_funding,
    plan_quote,
    plan_reclaim,
    plan_release,
    plan_train,
    plan_vote,
    plan_withdraw_asset,
)

pytestmark = pytest.mark.unit

ME = Address("0x1111111111111111111111111111111111111111")
OTHER = Address("0x2222222222222222222222222222222222222222")
MARKET = "0x3333333333333333333333333333333333333333"
NOW = 1_000_000
TOKEN = 10**18
ZERO = b"\0" * 32


def record(status: ProposalStatus, **changes: object) -> ProposalRecord:
    base = ProposalRecord(
        proposal_id=7,
        consumer=ME,
        voting_deadline=NOW - 10,
        wtp_bps=1000,
        status=status,
        min_share_bps=0,
        node=OTHER,
        deadline=NOW + 3600,
        asset_count=2,
        total_weight=40,
        remaining_weight=40,
        claim_deadline=0,
        accuracy_bps=0,
        tallier=None,
        offer=TOKEN,
        price=TOKEN,
        clearing_price=TOKEN // 2,
        training_cost=0,
        unclaimed=0,
        assets_hash=ZERO,
        selection_root=ZERO,
        model_spec_hash=ZERO,
        validation_set_hash=ZERO,
        payout_root=ZERO,
        model_hash=ZERO,
        seed_hash=ZERO,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


QUOTE = Quote(7, 2 * TOKEN, 3600, NOW + 1800)


def train(rec: ProposalRecord, **funds: int) -> object:
    given = {"balance": 0, "allowance": 0, **funds}
    return plan_train(
        rec,
        NOW,
        ME,
        quote=QUOTE,
        signature=b"s" * 65,
        max_cost=QUOTE.training_cost,
        market=MARKET,
        mintable=True,
        **given,
    )


def test_paying_mints_then_approves_then_starts_and_never_pays_twice() -> None:
    approved = record(ProposalStatus.APPROVED)
    first = train(approved)
    assert isinstance(first, Call) and (first.fn, first.args) == ("faucet", (2 * TOKEN,))
    second = train(approved, balance=2 * TOKEN)
    assert isinstance(second, Call)
    assert (second.fn, second.args) == ("approve", (MARKET, 2 * TOKEN))
    third = train(approved, balance=2 * TOKEN, allowance=2 * TOKEN)
    assert isinstance(third, Call) and third.fn == "startTraining"
    assert third.args == (7, QUOTE.as_tuple(), b"s" * 65)
    # once the chain says training, asking again is done: a reload cannot pay twice
    for status in (ProposalStatus.TRAINING, ProposalStatus.COMPLETED):
        assert isinstance(train(record(status), balance=0), Done)


def test_paying_without_a_fresh_quote_asks_the_wallet_to_sign_the_request() -> None:
    approved = record(ProposalStatus.APPROVED)
    step = plan_train(
        approved,
        NOW,
        ME,
        quote=None,
        signature=b"",
        max_cost=TOKEN,
        balance=0,
        allowance=0,
        market=MARKET,
        mintable=True,
    )
    assert step == Sign("quote", "sign the request for the node's quote")
    stale = replace(QUOTE, expiry=NOW + 5)
    assert isinstance(plan_quote(approved, NOW, ME, stale), Sign)
    assert plan_quote(approved, NOW, ME, QUOTE) == Done("/wallet/quote/7")


def test_paying_above_the_quote_page_cost_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="above the cost you accepted on the quote page"):
        plan_train(
            record(ProposalStatus.APPROVED),
            NOW,
            ME,
            quote=QUOTE,
            signature=b"s" * 65,
            max_cost=QUOTE.training_cost - 1,
            balance=10 * TOKEN,
            allowance=10 * TOKEN,
            market=MARKET,
            mintable=True,
        )


def test_only_the_consumer_pays_and_only_an_approved_proposal() -> None:
    with pytest.raises(InvalidInputError, match="only a proposal's consumer can ask for its quote"):
        plan_quote(record(ProposalStatus.APPROVED, consumer=OTHER), NOW, ME, QUOTE)
    with pytest.raises(InvalidInputError, match="there is nothing to quote"):
        plan_quote(record(ProposalStatus.VOTING), NOW, ME, QUOTE)


def test_funding_off_the_dev_chain_only_approves() -> None:
    step = plan_funding(need=5, balance=0, allowance=0, market=MARKET, mintable=False)
    assert isinstance(step, Call) and step.fn == "approve"
    assert plan_funding(need=5, balance=5, allowance=5, market=MARKET, mintable=True) is None
    assert plan_funding(need=0, balance=0, allowance=0, market=MARKET, mintable=True) is None


def test_accepting_a_counter_tops_up_the_difference_once() -> None:
    countered = record(ProposalStatus.COUNTERED, clearing_price=3 * TOKEN, price=TOKEN)
    funds = {"market": MARKET, "mintable": False}
    step = plan_accept_counter(countered, NOW, ME, balance=9 * TOKEN, allowance=0, **funds)  # type: ignore[arg-type]
    assert isinstance(step, Call) and step.args == (MARKET, 2 * TOKEN)
    step = plan_accept_counter(
        countered,
        NOW,
        ME,
        balance=9 * TOKEN,
        allowance=2 * TOKEN,
        **funds,  # type: ignore[arg-type]
    )
    assert isinstance(step, Call) and (step.fn, step.args) == ("acceptCounter", (7,))
    accepted = replace(countered, status=ProposalStatus.APPROVED, price=3 * TOKEN)
    done = plan_accept_counter(accepted, NOW, ME, balance=0, allowance=0, **funds)  # type: ignore[arg-type]
    assert isinstance(done, Done) and "counter offer accepted" in (done.message or "")
    # approved at the offer, never countered: nothing to accept
    with pytest.raises(InvalidInputError, match="no counter offer to accept"):
        plan_accept_counter(
            record(ProposalStatus.APPROVED),
            NOW,
            ME,
            balance=0,
            allowance=0,
            **funds,  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidInputError, match="no counter offer to accept"):
        plan_accept_counter(
            replace(countered, deadline=NOW - 1),
            NOW,
            ME,
            balance=0,
            allowance=0,
            **funds,  # type: ignore[arg-type]
        )


def test_reclaiming_waits_for_the_deadline_then_withdraws() -> None:
    late = record(ProposalStatus.TRAINING, deadline=NOW - 1)
    assert plan_reclaim(late, NOW, ME, credit=0, started=False) == Call(
        "TrainingMarket", "reclaim", (7,), "reclaim proposal 7's escrow"
    )
    with pytest.raises(InvalidInputError, match="can be reclaimed only after"):
        plan_reclaim(record(ProposalStatus.TRAINING), NOW, ME, credit=0, started=False)
    cancelled = record(ProposalStatus.CANCELLED)
    step = plan_reclaim(cancelled, NOW, ME, credit=5, started=True)
    assert isinstance(step, Call) and step.fn == "withdraw"
    assert isinstance(plan_reclaim(cancelled, NOW, ME, credit=0, started=True), Done)
    with pytest.raises(InvalidInputError, match="nothing to reclaim"):
        plan_reclaim(cancelled, NOW, ME, credit=0, started=False)
    with pytest.raises(InvalidInputError, match="only a proposal's consumer can reclaim"):
        plan_reclaim(replace(late, consumer=OTHER), NOW, ME, credit=0, started=False)


def test_claiming_claims_then_withdraws_and_says_when_nothing_is_claimable() -> None:
    request = ClaimRequest(7, 0, 3, TOKEN, (b"\1" * 32,))
    step = plan_claim([(7, [request])], [], credit=0, started=False)
    assert isinstance(step, Call) and step.fn == "claimMany"
    assert step.args == ([request.as_tuple()],)
    step = plan_claim([], [], credit=TOKEN, started=True)
    assert isinstance(step, Call) and step.fn == "withdraw"
    assert plan_claim([], [], credit=0, started=True) == Done(
        "/provider", "payouts claimed and withdrawn"
    )
    nothing = plan_claim([], ["proposal 7: already claimed"], credit=0, started=False)
    assert nothing == Done("/provider", "nothing to claim now: proposal 7: already claimed")


def test_a_result_past_its_window_is_released_before_its_claims() -> None:
    request = ClaimRequest(7, 0, 3, TOKEN, (b"\1" * 32,))
    step = plan_claim([(7, [request])], [], credit=0, started=False, release=(7,))
    assert step == Call("ResultCourt", "release", (7,), "release proposal 7's result")
    held = record(ProposalStatus.COMPLETED, deadline=NOW - 1)
    over = ResultWindow(7, ProposalStatus.COMPLETED, NOW - 1, challenged=False)
    assert plan_release(held, over, NOW) == step
    done = plan_release(replace(held, deadline=0), replace(over, ends=0), NOW)
    assert done == Done("/proposals/7", "proposal 7's result is released")
    with pytest.raises(InvalidInputError, match="cannot be released yet"):
        plan_release(held, replace(over, ends=NOW + 60), NOW)
    with pytest.raises(InvalidInputError, match="challenged"):
        plan_release(held, replace(over, challenged=True), NOW)


def test_withdrawing_an_asset_is_its_owners_and_done_once_withdrawn() -> None:
    asset = AssetRecord(AssetId(4), ME, AssetStatus.ACTIVE, 10, 10, 0, ZERO, 1, ZERO, ZERO)
    assert plan_withdraw_asset(asset, ME) == Call(
        "AssetRegistry", "withdrawAsset", (4,), "withdraw asset 4"
    )
    assert isinstance(plan_withdraw_asset(replace(asset, status=AssetStatus.WITHDRAWN), ME), Done)
    with pytest.raises(InvalidInputError, match="only its owner can withdraw it"):
        plan_withdraw_asset(asset, OTHER)
    with pytest.raises(InvalidInputError, match="does not exist"):
        plan_withdraw_asset(replace(asset, status=AssetStatus.NONE), ME)


def test_votes_and_delegations_are_done_once_the_chain_holds_them() -> None:
    voting = record(ProposalStatus.VOTING, voting_deadline=NOW + 60)
    assert isinstance(plan_vote(voting, NOW, 0, None), Call)
    assert plan_vote(voting, NOW, 0, 0) == Done("/proposals/7")
    with pytest.raises(InvalidInputError, match="voting on proposal 7 closed"):
        plan_vote(replace(voting, voting_deadline=NOW - 1), NOW, 0, None)
    assert plan_delegate(None, OTHER) == Call(
        "DelegationRegistry", "delegate", (OTHER,), f"delegate to {OTHER}"
    )
    assert plan_delegate(OTHER, OTHER.lower()) == Done("/provider")
    assert isinstance(plan_delegate(OTHER, None), Call)
    assert plan_delegate(None, None) == Done("/provider")


# --- the routes' refusals (no chain: each refuses before it would read one) ----------------
def error_line(text: str) -> str:
    lines = [html.unescape(line) for line in text.splitlines() if "error:" in line]
    assert len(lines) == 1, text
    return lines[0]


def test_a_step_needs_a_connected_wallet_and_a_known_action(web: Web) -> None:
    client = web.client()
    csrf = csrf_of(client)
    answer = client.post("/wallet/prepare/train", data={"csrf": csrf, "proposal": "1"})
    assert answer.status_code == 400
    assert "no browser wallet is connected to this session" in error_line(answer.text)
    session = web.sessions.get(client.cookies.get("visdm_session"))
    assert session is not None
    session.wallet = ME
    answer = client.post("/wallet/prepare/transfer-all", data={"csrf": csrf})
    assert "there is no wallet action 'transfer-all'" in error_line(answer.text)
    answer = client.post("/wallet/prepare/claim", data={"csrf": csrf, "step": "99"})
    assert "took more than 8 steps" in error_line(answer.text)
    answer = client.post("/wallet/prepare/claim", data={"csrf": "stolen", "step": "0"})
    assert answer.status_code == 403


def test_a_signed_quote_request_needs_an_open_request_and_a_signature(web: Web) -> None:
    client = web.client()
    csrf = csrf_of(client)
    session = web.sessions.get(client.cookies.get("visdm_session"))
    assert session is not None
    session.wallet = ME
    form = {"csrf": csrf, "proposal": "3", "signature": "0x" + "11" * 65}
    answer = client.post("/wallet/signed/quote", data=form)
    assert "no quote request for proposal 3 is open" in error_line(answer.text)
    session.pending["wallet_quote_request:3"] = str(NOW)
    answer = client.post("/wallet/signed/quote", data={**form, "signature": "0xzz"})
    assert "must be a 65-byte hex signature" in error_line(answer.text)
    assert "wallet_quote:3" not in session.pending
    answer = client.get("/wallet/quote/3", headers={"accept": "text/html"})
    assert "holds no quote for proposal 3" in error_line(answer.text)


def test_downloading_the_model_needs_an_unlocked_account(web: Web) -> None:
    client = web.client()
    csrf = csrf_of(client)
    for url in ("/consumer/model/download", "/consumer/model/card"):
        answer = client.post(url, data={"csrf": csrf, "proposal": "1"})
        assert answer.status_code == 403, url
        assert "no account is unlocked in this session" in error_line(answer.text)
        assert "content-disposition" not in answer.headers
