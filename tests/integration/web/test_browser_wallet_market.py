"""A market round's money moves signed by browser wallets, in a real browser on anvil with the
node's real API and training worker: the consumer's wallet signs its request for the node's
quote (EIP-712) and pays in steps (mint dev tokens, approve, start training), each step read
from the chain again, so paying a second time does nothing; a limit below the quote is refused
with nothing moved. The provider's wallet claims and withdraws (and is told when nothing is
left); the consumer's unlocked local account downloads the decrypted model and its card, which
a wallet session and another account cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from playwright.sync_api import Browser, Page, expect

from tests.integration.compute.roundkit import Round
from tests.integration.web.conftest import connect_wallet, login, wallet_handler, wallet_page
from tests.integration.web.test_browser_round import Shots
from visdm.chain.contracts import ProposalStatus
from visdm.web import Sessions

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


def flashes(page: Page) -> str:
    return " | ".join(page.locator(".flash").all_inner_texts())


def test_wallets_pay_and_claim_and_the_consumer_downloads_the_model(
    market: tuple[Round, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
    tmp_path: Path,
) -> None:
    rnd, url, sessions = market
    rnd.add_assets(tmp_path, per_provider=10)
    pid = rnd.propose(wtp_bps=1000)
    rnd.approve(pid)
    consumer = rnd.accounts["consumer"]
    # the wallet starts with no tokens and no approval: paying has to mint and approve first
    rnd.token.transfer(
        consumer.local_account,
        funded_roles["stranger"].address,
        rnd.token.balance_of(consumer.address),
    )
    rnd.token.approve(consumer.local_account, rnd.market.address, 0)

    page = wallet_page(browser, url, sessions, wallet_handler(rnd.chain, funded_roles["consumer"]))
    connect_wallet(page, consumer.address)
    page.goto(f"{url}/proposals/{pid}")
    expect(page.locator("#quote-submit")).to_have_text("Get the quote with the wallet")
    with page.expect_navigation(url=f"**/wallet/quote/{pid}"):
        page.click("#quote-submit")  # the wallet signs the QuoteRequest; the node quotes
    expect(page.locator("#quote")).to_contain_text("training cost")
    shots = Shots(tmp_path / "screens")
    shots(page, "wallet-quote")
    cost = int(page.locator("input[name=max_cost_wei]").get_attribute("value") or "")
    assert cost > 0

    # a limit below the node's quote is refused before the wallet is asked: nothing moves
    page.evaluate(
        "(v) => { document.querySelector('input[name=max_cost_wei]').value = v; }", str(cost - 1)
    )
    page.click("#train-submit")
    expect(page.locator("#wallet-error")).to_contain_text(
        "above the cost you accepted on the quote page"
    )
    expect(page.locator("form .wallet-progress[role=status][aria-live=polite]")).to_have_text(
        "stopped"
    )
    assert rnd.market.proposal(pid).status == ProposalStatus.APPROVED
    assert rnd.token.balance_of(consumer.address) == 0
    assert rnd.token.allowance(consumer.address, rnd.market.address) == 0

    page.reload()
    expect(page.locator("#train-submit")).to_contain_text("with the wallet")
    with page.expect_navigation(url=f"**/proposals/{pid}"):
        page.click("#train-submit")
    expect(page.locator("#proposal-status")).to_have_text("training")
    shown = flashes(page)
    for step in ("mint", "let the market take", "start training"):
        assert f"{step}" in shown and "the wallet's transaction 0x" in shown, shown
    record = rnd.market.proposal(pid)
    assert record.status == ProposalStatus.TRAINING and record.training_cost == cost
    # paying again is done at once: the chain says training, so nothing is sent twice
    page.goto(f"{url}/wallet/quote/{pid}")
    with page.expect_navigation(url=f"**/proposals/{pid}"):
        page.click("#train-submit")
    expect(page.locator(".flash")).to_contain_text(f"training of proposal {pid} has started")
    assert rnd.token.balance_of(consumer.address) == 0

    worker = rnd.trainer()
    try:
        assert worker.poll() == 1
    finally:
        worker.close()
    assert rnd.market.proposal(pid).status == ProposalStatus.COMPLETED
    # a wallet cannot decrypt the model: the page says so instead of offering a button
    page.goto(f"{url}/proposals/{pid}")
    expect(page.locator("#model-note")).to_contain_text("cannot decrypt the model")
    assert page.locator("#model-download").count() == 0
    shots(page, "wallet-proposal")

    # the provider's wallet claims its payouts and withdraws them
    provider = funded_roles["provider"]
    before = rnd.token.balance_of(provider.address)
    claimer = wallet_page(browser, url, sessions, wallet_handler(rnd.chain, provider))
    connect_wallet(claimer, provider.address)
    claimer.goto(f"{url}/provider")
    expect(claimer.locator("#claim-all")).to_have_text("Claim and withdraw with the wallet")
    shots(claimer, "wallet-provider")
    with claimer.expect_navigation(url="**/provider"):
        claimer.click("#claim-all")
    expect(claimer.locator(".flash").first).to_contain_text("claim")
    assert "withdraw" in flashes(claimer)
    after = rnd.token.balance_of(provider.address)
    assert after > before
    assert rnd.market.credit_of(provider.address) == 0
    with claimer.expect_navigation(url="**/provider"):
        claimer.click("#claim-all")
    expect(claimer.locator(".flash")).to_contain_text("nothing to claim now")
    assert rnd.token.balance_of(provider.address) == after

    # the consumer's unlocked local account downloads the model and its checked card
    owner = login(browser, url, sessions, "consumer")
    owner.goto(f"{url}/proposals/{pid}")
    with owner.expect_download() as got:
        owner.click("#model-download")
    assert got.value.suggested_filename == f"proposal-{pid}-model.safetensors"
    model = Path(got.value.path()).read_bytes()
    assert bytes(keccak(model)) == rnd.market.proposal(pid).model_hash
    with owner.expect_download() as got:
        owner.click("#card-download")
    card = json.loads(Path(got.value.path()).read_text())
    assert isinstance(card, dict) and card

    # another account's session is refused in one line, and nothing is downloaded
    other = login(browser, url, sessions, "provider")
    other.goto(f"{url}/proposals/{pid}")
    other.click("#model-download")
    expect(other.locator(".error")).to_contain_text(f"proposal {pid} belongs to {consumer.address}")
