"""A whole training round through the web app in a real browser (Debian's chromium-headless-shell
driven by Playwright) on anvil, with the node's real API, asset worker and training worker:
a stranger registers, a provider adds an asset from a folder (a broken file reported by name),
the node attests, a consumer searches, saves a selection, proposes, providers vote, the
consumer tallies, reads the node's quote and design check, pays and watches training finish
live (server-sent events), downloads the model; the provider claims. Every page is saved as
a screenshot under the test's tmp dir (and under ``$VISDM_SCREENSHOT_DIR`` when set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.integration.compute.roundkit import (
    MLP_SPEC,
    NAMES,
    NO_DP_LICENCE,
    VAL_X,
    VAL_Y,
    Round,
    write_folder,
)
from tests.integration.web.conftest import Shots, login
from visdm.assets import add_asset
from visdm.chain.contracts import ProposalStatus
from visdm.market import workflow
from visdm.web import Sessions

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

PER_PROVIDER = 20


def flash(page: Page) -> str:
    return " | ".join(page.locator(".flash").all_inner_texts())


def test_a_round_through_the_browser(
    market: tuple[Round, str, Sessions], browser: Browser, tmp_path: Path
) -> None:
    rnd, url, sessions = market
    shots = Shots(tmp_path / "screens")

    # anyone reads the market without a session
    public = browser.new_context().new_page()
    public.goto(url)
    expect(public.locator("#who")).to_contain_text("read-only")
    expect(public.locator("main")).to_contain_text("TrainingMarket")
    shots(public, "market")
    # the keyboard reaches the content first: Tab lands on the skip link, Enter moves to main
    public.keyboard.press("Tab")
    assert public.evaluate("document.activeElement.textContent") == "Skip to content"
    public.keyboard.press("Enter")
    assert public.evaluate("document.activeElement.id") == "main"

    # a stranger registers as a provider through the page
    stranger = login(browser, url, sessions, "stranger")
    stranger.check("#role-provider")
    stranger.click("#register-submit")
    expect(stranger.locator(".flash")).to_contain_text("registered as provider")
    expect(stranger.locator("#whoami")).to_contain_text("provider")
    shots(stranger, "account")

    # the provider drops a folder with a text file (refused as it is sent) and a truncated PNG
    # (sent, then refused by the ingest); the page names each with its reason
    folder = write_folder(tmp_path / "mine", list(range(PER_PROVIDER)))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "notes.txt").write_text("not an image")
    with (folder / "labels.csv").open("a") as labels:
        labels.write("broken.png,bag\n")
    provider = login(browser, url, sessions, "provider")

    def drop_folder() -> None:
        provider.goto(f"{url}/provider")
        provider.set_input_files("#folder-input", str(folder))
        staged = f"{PER_PROVIDER + 2} of {PER_PROVIDER + 3} files staged"
        expect(provider.locator("#drop-status")).to_contain_text(staged)
        expect(provider.locator("#drop-refused")).to_contain_text("notes.txt: not a PNG")
        provider.check("input[name=dp][value=optional]")

    drop_folder()
    shots(provider, "asset-drop")
    provider.click("#add-submit")
    expect(provider.locator("#error")).to_contain_text("pass --partial")
    expect(provider.locator("#rejected")).to_contain_text("broken.png")
    shots(provider, "asset-refused")
    drop_folder()
    provider.check("input[name=partial]")
    provider.click("#add-submit")
    expect(provider.locator("#added")).to_contain_text(f"{PER_PROVIDER} samples")
    expect(provider.locator("#rejected")).to_contain_text("broken.png")
    shots(provider, "asset-added")
    # a second provider adds through the SDK, and the node attests both
    other = write_folder(tmp_path / "other", list(range(PER_PROVIDER, 2 * PER_PROVIDER)))
    add_asset(rnd.as_("provider2"), rnd.accounts["provider2"], other, licence=NO_DP_LICENCE)
    rnd.attest()
    provider.goto(f"{url}/provider")
    expect(provider.locator("#my-assets")).to_contain_text("active")
    shots(provider, "provider")

    # the consumer searches with a facet, saves every match, and proposes
    consumer = login(browser, url, sessions, "consumer")
    consumer.goto(f"{url}/search")
    expect(consumer.locator("#total")).to_contain_text(str(2 * PER_PROVIDER))
    assert consumer.locator("svg.chart").count() >= 3
    shots(consumer, "search")
    consumer.fill("#selection-name", "everything")
    consumer.click("#save-submit")
    expect(consumer.locator(".flash")).to_contain_text(
        f"saved {2 * PER_PROVIDER} samples as the selection 'everything'"
    )
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(MLP_SPEC))
    validation = tmp_path / "validation"
    validation.mkdir()
    rows = ["filename,label"]
    for i in range(60):
        Image.fromarray(VAL_X[i]).save(validation / f"v{i:03d}.png")
        rows.append(f"v{i:03d}.png,{NAMES[int(VAL_Y[i])]}")
    (validation / "labels.csv").write_text("\n".join(rows) + "\n")
    consumer.select_option("#selection", "everything")
    consumer.fill("#spec", str(spec))
    consumer.fill("#validation", str(validation))
    consumer.fill("input[name=classes]", ",".join(NAMES))
    consumer.fill("#offer", "1")
    consumer.fill("#wtp", "1000")
    consumer.fill("input[name=voting_period]", "120")
    shots(consumer, "consumer")
    consumer.click("#propose-submit")
    expect(consumer.locator(".flash").first).to_contain_text("created")
    pid = int(consumer.url.rstrip("/").rsplit("/", 1)[1])
    expect(consumer.locator("#proposal-status")).to_have_text("voting")

    # the provider accepts on the proposal page; provider2 through the SDK
    provider.goto(f"{url}/proposals/{pid}")
    provider.click("#vote-submit")
    expect(provider.locator(".flash").first).to_contain_text(f"voted accept on proposal {pid}")
    workflow.vote(rnd.as_("provider2"), rnd.accounts["provider2"], pid, 0)
    rnd.chain.advance_time(131)

    # the consumer tallies, reads the quote and design check, and pays
    consumer.goto(f"{url}/proposals/{pid}")
    expect(consumer.locator("#votes")).to_contain_text("accept")
    consumer.click("#tally-submit")
    expect(consumer.locator(".flash")).to_contain_text("tallied: approved")
    consumer.click("#quote-submit")
    expect(consumer.locator("#quote")).to_contain_text("training cost")
    shots(consumer, "quote")
    consumer.click("#train-submit")
    expect(consumer.locator(".flash")).to_contain_text("training started")
    expect(consumer.locator("#proposal-status")).to_have_text("training")

    # the node trains while the page is open; the status arrives by server-sent events
    worker = rnd.trainer()
    try:
        assert worker.poll() == 1
    finally:
        worker.close()
    assert rnd.market.proposal(pid).status == ProposalStatus.COMPLETED
    expect(consumer.locator("#proposal-status")).to_have_text("completed", timeout=60_000)
    assert int(consumer.locator("#live").get_attribute("data-updates") or 0) >= 1
    expect(consumer.locator("#result")).to_contain_text("WTP met")
    shots(consumer, "proposal")

    # the consumer decrypts the model into a file; the provider claims
    consumer.reload()
    out = tmp_path / "model" / "model.safetensors"
    out.parent.mkdir()
    consumer.fill("input[name=out]", str(out))
    consumer.click("#model-submit")
    expect(consumer.locator(".flash")).to_contain_text(f"model written to {out}")
    assert out.stat().st_size > 0 and (out.parent / "model-card.json").exists()
    before = rnd.token.balance_of(rnd.accounts["provider"].address)
    provider.goto(f"{url}/provider")
    provider.click("#claim-all")
    expect(provider.locator(".flash").first).to_contain_text(f"proposal {pid}:")
    assert rnd.token.balance_of(rnd.accounts["provider"].address) > before
    provider.goto(f"{url}/provider")
    expect(provider.locator("#my-proposals")).to_contain_text(str(pid))
    expect(provider.locator("#my-proposals")).to_contain_text("accept")
    shots(provider, "earnings")

    public.goto(f"{url}/proposals")
    expect(public.locator("#proposals")).to_contain_text("completed")
    shots(public, "proposals")
    for page_name in ("node", "governance"):
        public.goto(f"{url}/{page_name}")
        if page_name == "node":  # the node's own report of how it isolates jobs
            expect(public.locator("#sandbox-1")).to_have_text("bubblewrap isolates its jobs")
        shots(public, page_name)
