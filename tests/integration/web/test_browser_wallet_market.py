"""A market round's money moves signed by browser wallets, in a real browser on anvil with the
node's real API and training worker: the consumer's wallet proposes (the server prepares the
document, the wallet signs it, approves and proposes; the same form again sends nothing) and
tallies the votes batch by batch; it signs its request for the node's quote (EIP-712) and pays
in steps (mint dev tokens, approve, start training), each step read from the chain again, so
paying a second time does nothing; a limit below the quote is refused with nothing moved. A
wallet that signs the proposal with another key stores and escrows nothing. The provider's
wallet claims and withdraws (and is told when nothing is left); the consumer's unlocked local
account downloads the decrypted model and its card, which a wallet session and another account
cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.integration.compute.roundkit import MLP_SPEC, NAMES, VAL_X, VAL_Y, Round
from tests.integration.web.conftest import connect_wallet, login, wallet_handler, wallet_page
from tests.integration.web.test_browser_round import Shots
from visdm.chain.contracts import ProposalStatus
from visdm.errors import SignatureError
from visdm.market import workflow
from visdm.proposals import (
    load_checked_proposal,
    proposal_typed_data,
    verify_proposal,
    write_proposal,
)
from visdm.storage import compute_cid
from visdm.web import Sessions
from visdm.web.wallet_propose import held_proposal

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


def flashes(page: Page) -> str:
    return " | ".join(page.locator(".flash").all_inner_texts())


def proposal_files(folder: Path) -> tuple[Path, Path]:
    """The model spec file and a validation folder (images and labels.csv) on this machine."""
    spec = folder / "spec.json"
    spec.write_text(json.dumps(MLP_SPEC))
    validation = folder / "validation"
    validation.mkdir()
    rows = ["filename,label"]
    for i, (image, label) in enumerate(zip(VAL_X, VAL_Y, strict=True)):
        Image.fromarray(image).save(validation / f"v{i:03d}.png")
        rows.append(f"v{i:03d}.png,{NAMES[int(label)]}")
    (validation / "labels.csv").write_text("\n".join(rows) + "\n")
    return spec, validation


def fill_proposal(page: Page, url: str, rnd: Round, spec: Path, validation: Path) -> None:
    """The consumer page's propose form over every asset added, for the round's node."""
    page.goto(f"{url}/consumer")
    page.fill("input[name=asset]", ",".join(map(str, rnd.asset_ids)))
    page.fill("#spec", str(spec))
    page.fill("#validation", str(validation))
    page.fill("input[name=classes]", ", ".join(NAMES))
    page.fill("#offer", "1")
    page.fill("#wtp", "1000")
    page.select_option("#node", rnd.accounts["node"].address)
    page.fill("input[name=voting_period]", "120")


def test_wallets_pay_and_claim_and_the_consumer_downloads_the_model(
    market: tuple[Round, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
    tmp_path: Path,
) -> None:
    rnd, url, sessions = market
    rnd.add_assets(tmp_path, per_provider=10)
    consumer = rnd.accounts["consumer"]
    page = wallet_page(browser, url, sessions, wallet_handler(rnd.chain, funded_roles["consumer"]))
    connect_wallet(page, consumer.address)

    # the consumer's wallet proposes: the server prepares the document, the wallet signs it,
    # lets the market take the offer and proposes; done is the new proposal's page
    spec, validation = proposal_files(tmp_path)
    rnd.token.approve(consumer.local_account, rnd.market.address, 0)
    count = rnd.market.proposal_count()
    fill_proposal(page, url, rnd, spec, validation)
    expect(page.locator("#propose-submit")).to_have_text(
        "Propose and escrow the offer with the wallet"
    )
    shots = Shots(tmp_path / "screens")
    shots(page, "wallet-propose")
    with page.expect_navigation(url=f"**/proposals/{count + 1}"):
        page.click("#propose-submit")
    pid = count + 1
    shown = flashes(page)
    for step in ("let the market take", "propose and escrow", f"proposal {pid} created"):
        assert step in shown, shown
    record = rnd.market.proposal(pid)
    assert (record.consumer, record.status, record.offer) == (
        consumer.address,
        ProposalStatus.VOTING,
        10**18,
    )
    # the stored document is the consumer's, signed by its wallet, and agrees with the chain
    checked = load_checked_proposal(rnd.market, rnd.deployment, rnd.chain, rnd.store, pid)
    assert checked.document.consumer == consumer.address
    assert checked.document.asset_ids == tuple(rnd.asset_ids)
    # the same form again is the same document: the chain made it already, nothing is sent
    balance = rnd.token.balance_of(consumer.address)
    fill_proposal(page, url, rnd, spec, validation)
    with page.expect_navigation(url=f"**/proposals/{pid}"):
        page.click("#propose-submit")
    expect(page.locator(".flash")).to_contain_text(f"proposal {pid} created")
    assert rnd.market.proposal_count() == pid
    assert rnd.token.balance_of(consumer.address) == balance

    # providers vote; after the deadline the consumer's wallet tallies, one batch per step
    for who in ("provider", "provider2"):
        workflow.vote(rnd.as_(who), rnd.accounts[who], pid, 0)
    page.goto(f"{url}/proposals/{pid}")
    expect(page.locator("#tally-submit")).to_have_text("Tally with the wallet")
    page.click("#tally-submit")  # too early: refused before the wallet is asked
    expect(page.locator("#wallet-error")).to_contain_text(f"voting on proposal {pid} is open")
    rnd.chain.advance_time(record.voting_deadline - rnd.chain.latest_timestamp() + 1)
    page.reload()
    with page.expect_navigation(url=f"**/proposals/{pid}"):
        page.click("#tally-submit")
    assert "tally assets 1–2 and record the outcome" in flashes(page)
    expect(page.locator("#proposal-status")).to_have_text("approved")
    assert rnd.market.proposal(pid).tallier == consumer.address
    # the wallet starts with no tokens and no approval: paying has to mint and approve first
    rnd.token.transfer(
        consumer.local_account,
        funded_roles["stranger"].address,
        rnd.token.balance_of(consumer.address),
    )
    rnd.token.approve(consumer.local_account, rnd.market.address, 0)

    page.goto(f"{url}/proposals/{pid}")
    expect(page.locator("#quote-submit")).to_have_text("Get the quote with the wallet")
    with page.expect_navigation(url=f"**/wallet/quote/{pid}"):
        page.click("#quote-submit")  # the wallet signs the QuoteRequest; the node quotes
    expect(page.locator("#quote")).to_contain_text("training cost")
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


@pytest.mark.attack
def test_a_wallet_signing_the_proposal_with_another_key_stores_and_escrows_nothing(
    market: tuple[Round, str, Sessions],
    browser: Browser,
    funded_roles: dict[str, LocalAccount],
    tmp_path: Path,
) -> None:
    """The consumer's wallet connects honestly, then signs the proposal document with another
    key: the server refuses the signature naming both addresses before anything is stored, and
    no transaction is asked for. Without that check the document would be stored and proposed,
    escrowing the offer for a proposal no node accepts (it does not verify as the consumer's)."""
    rnd, url, sessions = market
    rnd.add_assets(tmp_path, per_provider=10)
    consumer, stranger = funded_roles["consumer"], funded_roles["stranger"]
    swapper = wallet_handler(rnd.chain, consumer, typed_by=stranger)
    page = wallet_page(browser, url, sessions, swapper)
    connect_wallet(page, consumer.address)
    spec, validation = proposal_files(tmp_path)
    count = rnd.market.proposal_count()
    balance = rnd.token.balance_of(consumer.address)
    allowance = rnd.token.allowance(consumer.address, rnd.market.address)
    fill_proposal(page, url, rnd, spec, validation)
    page.click("#propose-submit")
    expect(page.locator("#wallet-error")).to_contain_text(
        f"recovers to {stranger.address}, not to the proposal's consumer {consumer.address}"
    )
    expect(page.locator("form .wallet-progress")).to_have_text("stopped")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "visdm_session"]
    held = held_proposal(sessions.get(cookie["value"]))
    assert held is not None and held.cid is None  # prepared, never signed by its consumer
    forged = Account.sign_typed_data(stranger.key, full_message=proposal_typed_data(held.document))
    as_signed = write_proposal(held.document, signature=bytes(forged.signature))
    assert not rnd.store.has(compute_cid(as_signed))
    assert rnd.market.proposal_count() == count
    assert rnd.token.balance_of(consumer.address) == balance
    assert rnd.token.allowance(consumer.address, rnd.market.address) == allowance
    # the defence off: stored as it is, the document is no consumer's proposal a node checks
    with pytest.raises(SignatureError, match=f"not from {consumer.address}"):
        verify_proposal(as_signed, chain_id=rnd.chain.chain_id, market=rnd.market.address)
