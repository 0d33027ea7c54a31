"""The model-spec builder against a real node on anvil: the verdict is the node's own design
check against the limits it publishes, with the cost its published price gives; a spec it
would refuse is refused here first, naming the limit; the page passes the accessibility checks
in a real browser."""

from __future__ import annotations

import html
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.integration.compute.roundkit import Round
from tests.integration.web.conftest import Shots, login
from visdm.web import Sessions

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_the_builder_checks_a_spec_as_the_node_will_before_anything_is_paid(
    market: tuple[Round, str, Sessions], browser: Browser, tmp_path: Path
) -> None:
    rnd, url, sessions = market
    node = rnd.accounts["node"].address
    page = httpx.get(
        f"{url}/consumer/spec?architecture=scatter_linear&samples=2000", timeout=120
    ).text
    text = html.unescape(page)
    assert f"Node <code>{node}</code> would accept this spec for 2000 samples" in text
    assert f"checked the spec against the limits compute node {node} publishes" in text
    assert "the node would charge about" in text
    refused = html.unescape(
        httpx.get(f"{url}/consumer/spec?architecture=mlp&epochs=500", timeout=120).text
    )
    assert "would refuse this spec" in refused
    assert "spec epochs=500 exceeds this node's max_epochs=" in refused

    consumer = login(browser, url, sessions, "consumer")
    consumer.goto(f"{url}/consumer/spec")
    consumer.select_option("#architecture", "small_cnn")
    consumer.fill("#samples", "5000")
    consumer.click("#build-submit")
    expect(consumer.locator("#accepted")).to_contain_text("would accept")
    Shots(tmp_path / "shots")(consumer, "spec")
    consumer.fill("#spec-name", "round-1")
    consumer.click("#save-spec-submit")
    expect(consumer.locator(".flash")).to_contain_text("round-1.json")
    saved = Path(rnd.settings.home) / "specs" / "round-1.json"
    assert saved.is_file()
    # the propose form offers the saved spec
    options = consumer.locator("#saved-specs option")
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == [str(saved)]
