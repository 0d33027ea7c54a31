"""Wallet mode in a real browser: a test EIP-1193 provider injected into the page announces
itself with EIP-6963 and signs with eth-account on the Python side (the server never sees the
key). The provider connects by signing the session's EIP-712 challenge, votes, delegates,
undelegates and withdraws its asset with transactions the server prepared; a consumer's wallet
accepts a counter offer (approve, accept) and, after the start deadline, reclaims the escrow
and withdraws it; a wallet that signs with another key than the address it claims, or
swaps keys after connecting, is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, expect

from tests.integration.compute.roundkit import Round
from tests.integration.web.conftest import connect_wallet, wallet_handler, wallet_page
from visdm.chain.client import ChainClient
from visdm.chain.contracts import AssetStatus, ProposalStatus
from visdm.chain.deployment import Deployment
from visdm.market import workflow
from visdm.web import BackgroundServer, Sessions, create_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def voting(
    chain: ChainClient,
    deployment: Deployment,
    tmp_path: Path,
    funded_roles: dict[str, LocalAccount],
) -> Iterator[tuple[Round, int, str, Sessions]]:
    """Two small attested assets, a proposal in its voting period, the web app serving."""
    rnd = Round(chain, deployment, tmp_path / "home", dict(funded_roles))
    rnd.add_assets(tmp_path, per_provider=10)
    pid = rnd.propose(wtp_bps=1000)
    sessions = Sessions()
    web = BackgroundServer(create_app(rnd.settings, sessions=sessions))
    url = web.start()
    try:
        yield rnd, pid, url, sessions
    finally:
        web.stop()


def test_a_browser_wallet_connects_and_votes(
    voting: tuple[Round, int, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
) -> None:
    rnd, pid, url, sessions = voting
    provider = funded_roles["provider"]
    page = wallet_page(browser, url, sessions, wallet_handler(rnd.chain, provider))
    page.click("#wallet-connect-0")  # found through EIP-6963
    expect(page.locator("#who")).to_contain_text(f"wallet {provider.address[:6]}")
    page.goto(f"{url}/proposals/{pid}")
    expect(page.locator("#vote-submit")).to_have_text("Vote with the wallet")
    page.check("input[name=vote][value=reject]")
    with page.expect_navigation():  # the wallet sent it and the server saw it mined
        page.click("#vote-submit")
    expect(page.locator(".flash")).to_contain_text("the wallet's transaction 0x")
    assert rnd.market.vote_of(pid, provider.address) == 2**256 - 1  # reject, as sent
    expect(page.locator("#votes")).to_contain_text("reject")
    # the wallet delegates and takes it back, each a transaction the server prepared
    delegation = rnd.deployment.delegation_registry(rnd.chain)
    other = funded_roles["provider2"].address
    page.goto(f"{url}/provider")
    page.fill("#delegate-to", other)
    with page.expect_navigation():
        page.click("#delegate-submit")
    expect(page.locator("#delegate")).to_contain_text(other)
    assert delegation.delegate_of(provider.address) == other
    with page.expect_navigation():
        page.click("#undelegate-submit")
    expect(page.locator(".flash")).to_contain_text("the wallet's transaction 0x")
    expect(page.locator("#delegate")).to_contain_text("no delegate")
    assert delegation.delegate_of(provider.address) is None
    # the wallet withdraws the provider's asset: done once the chain says withdrawn
    mine = rnd.asset_ids[0]
    with page.expect_navigation(url="**/provider"):
        page.click(f"#withdraw-asset-{mine}")
    expect(page.locator(".flash").first).to_contain_text(f"withdraw asset {mine}: the wallet's")
    assert rnd.deployment.asset_registry(rnd.chain).asset(mine).status == AssetStatus.WITHDRAWN


def test_a_consumer_wallet_accepts_a_counter_offer_and_reclaims(
    voting: tuple[Round, int, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
) -> None:
    rnd, pid, url, sessions = voting
    offer = rnd.market.proposal(pid).offer
    for who in ("provider", "provider2"):  # both ask twice the offer: a counter offer
        workflow.vote(rnd.as_(who), rnd.accounts[who], pid, 2 * offer)
    rnd.chain.advance_time(131)
    workflow.tally(rnd.as_("stranger"), rnd.accounts["stranger"], pid)
    assert rnd.market.proposal(pid).status == ProposalStatus.COUNTERED
    consumer = funded_roles["consumer"]
    rnd.token.approve(consumer, rnd.market.address, 0)  # so that accepting approves first
    before = rnd.token.balance_of(consumer.address)

    page = wallet_page(browser, url, sessions, wallet_handler(rnd.chain, consumer))
    connect_wallet(page, consumer.address)
    page.goto(f"{url}/proposals/{pid}")
    with page.expect_navigation(url=f"**/proposals/{pid}"):
        page.click("#accept-counter-submit")  # approve the top-up, then accept
    expect(page.locator("#proposal-status")).to_have_text("approved")
    assert "let the market take" in " ".join(page.locator(".flash").all_inner_texts())
    record = rnd.market.proposal(pid)
    assert record.price == 2 * offer
    assert rnd.token.balance_of(consumer.address) == before - offer

    # too early to reclaim: the market's reason, before the wallet is asked
    page.click("#reclaim-submit")
    expect(page.locator("#wallet-error")).to_contain_text("can be reclaimed only after")
    rnd.chain.advance_time(record.deadline - rnd.chain.latest_timestamp() + 1)
    page.reload()
    with page.expect_navigation(url=f"**/proposals/{pid}"):
        page.click("#reclaim-submit")  # reclaim, then withdraw the credit
    expect(page.locator(".flash").first).to_contain_text("reclaim proposal")
    assert rnd.market.credit_of(consumer.address) == 0
    assert rnd.token.balance_of(consumer.address) == before + offer


@pytest.mark.attack
def test_a_wallet_signing_for_another_address_is_refused(
    voting: tuple[Round, int, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
) -> None:
    rnd, _pid, url, sessions = voting
    liar = wallet_handler(
        rnd.chain, funded_roles["stranger"], claims=funded_roles["provider"].address
    )
    page = wallet_page(browser, url, sessions, liar)
    page.click("#wallet-connect-0")
    expect(page.locator("#wallet-error")).to_contain_text(
        f"the challenge was signed by {funded_roles['stranger'].address}"
    )
    page.reload()
    expect(page.locator("#who")).to_contain_text("no account unlocked")


@pytest.mark.attack
def test_a_wallet_that_swaps_keys_after_connecting_gets_no_quote(
    voting: tuple[Round, int, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
) -> None:
    """The consumer's wallet connects honestly, then signs the request for the node's quote
    with another key: the server refuses it before the node is asked, and holds no quote."""
    rnd, pid, url, sessions = voting
    rnd.approve(pid)
    consumer = funded_roles["consumer"]
    swapper = wallet_handler(rnd.chain, consumer, typed_by=funded_roles["stranger"])
    page = wallet_page(browser, url, sessions, swapper)
    connect_wallet(page, consumer.address)
    page.goto(f"{url}/proposals/{pid}")
    page.click("#quote-submit")
    expect(page.locator("#wallet-error")).to_contain_text(
        f"QuoteRequest signature is not from {consumer.address}"
    )
    page.goto(f"{url}/wallet/quote/{pid}")
    expect(page.locator("#error")).to_contain_text(f"holds no quote for proposal {pid}")
    assert rnd.market.proposal(pid).status == ProposalStatus.APPROVED
