"""A provider sees its own images through the web app on anvil, and only it does.

One small asset (six Fashion-MNIST images, one of them a near-copy of another) is added by
``provider`` from a folder and attested by the node. The owner's unlocked session reads its
images page — file names, labels, public metadata rows, the duplicate link — and each
thumbnail, which must show the pixels the owner registered; an original changed or deleted on
disk since is named as such and still shown from the encrypted sample. Another provider and a
stranger, each with its own unlocked account in its own session while the owner's is open,
get a one-line refusal and no image byte; with the ownership check switched off the data key
still does not open for them. One Playwright screenshot of the page, checked like every page
of the browser round (named controls, one ``h1``, no serious axe-core violation)."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from PIL import Image
from playwright.sync_api import Browser, expect

from tests.integration.compute.roundkit import (
    NAMES,
    NO_DP_LICENCE,
    PASSWORD,
    TRAIN_X,
    TRAIN_Y,
    Round,
    write_folder,
)
from tests.integration.web.conftest import Shots, login
from visdm.assets import add_asset
from visdm.chain.client import ChainClient
from visdm.chain.deployment import Deployment
from visdm.web import BackgroundServer, Sessions, _own_samples, create_app
from visdm.web._auth import COOKIE

with warnings.catch_warnings():  # Starlette asks for httpx2, which is not installed here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

HTML = {"accept": "text/html"}
#: the training images the folder holds, as img0000.png …; sample 5 is a near-copy of 0
PICTURES = [0, 1, 2, 3, 4]
COPY = "img9999.png"


@dataclass
class OwnedAsset:
    rnd: Round
    asset_id: int
    folder: Path
    sessions: Sessions
    app: Any

    def client(self, account: str | None = None, *, session: bool = True) -> TestClient:
        """A browser with a session (unless not ``session``), ``account`` unlocked in it when
        given."""
        client = TestClient(self.app, base_url="http://127.0.0.1", follow_redirects=False)
        if not session:
            return client
        client.get(f"/login?token={self.sessions.launch_token}")
        if account is not None:
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/account").text)
            assert csrf is not None
            response = client.post(
                "/account/unlock", data={"account": account, "password": PASSWORD, "csrf": csrf[1]}
            )
            assert response.status_code == 303
        return client


def registered(index: int) -> np.ndarray:
    """The pixels of sample ``index`` as the owner registered them."""
    if index < len(PICTURES):
        return TRAIN_X[PICTURES[index]]
    return near_copy()


def near_copy() -> np.ndarray:
    copy = TRAIN_X[0].copy()
    copy[0, :4] = 255 - copy[0, :4]  # four pixels: a near-duplicate, not a byte-identical one
    return copy


@pytest.fixture(scope="module")
def owned(
    session_chain: ChainClient,
    deployment: Deployment,
    funded_roles: dict[str, LocalAccount],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OwnedAsset]:
    """The asset, added and attested once for the module (its tests only read), inside a
    snapshot that is reverted at the end."""
    w3 = session_chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        tmp = tmp_path_factory.mktemp("own-images")
        rnd = Round(session_chain, deployment, tmp / "home", dict(funded_roles))
        folder = write_folder(tmp / "photos", PICTURES)
        Image.fromarray(near_copy()).save(folder / COPY)
        with (folder / "labels.csv").open("a") as labels:
            labels.write(f"{COPY},{NAMES[int(TRAIN_Y[0])]}\n")
        added = add_asset(
            rnd.as_("provider"), rnd.accounts["provider"], folder, licence=NO_DP_LICENCE
        )
        rnd.attest()
        sessions = Sessions()
        yield OwnedAsset(
            rnd, added.asset_id, folder, sessions, create_app(rnd.settings, sessions=sessions)
        )
    finally:
        reverted = w3.provider.make_request("evm_revert", [snapshot])["result"]  # type: ignore[arg-type]
        assert reverted, "evm_revert failed: later tests would see this module's state"
        session_chain.reset_nonces()


def thumbnail_of(client: TestClient, asset_id: int, index: int) -> np.ndarray:
    response = client.get(f"/provider/assets/{asset_id}/images/{index}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert "no-store" in response.headers["cache-control"]
    with Image.open(io.BytesIO(response.content)) as thumb:
        return np.asarray(thumb.convert("L"), dtype=np.int16)


def looks_like(thumb: np.ndarray, pixels: np.ndarray) -> bool:
    """The thumbnail shows ``pixels`` (a 28×28 sample is not scaled; JPEG blurs a little)."""
    return thumb.shape == pixels.shape and float(np.abs(thumb - pixels).mean()) < 6.0


def one_error_line(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert not response.headers["content-type"].startswith("image/")
    lines = [line for line in response.text.splitlines() if "error:" in line]
    assert len(lines) == 1, response.text
    return lines[0]


def test_the_owner_sees_its_own_images_from_its_own_disk(owned: OwnedAsset) -> None:
    owner = owned.client("provider")
    page = owner.get(f"/provider/assets/{owned.asset_id}/images", headers=HTML)
    assert page.status_code == 200, page.text
    text = page.text
    assert "decrypted on this machine from your own encrypted sample" in text
    assert str(owned.folder) in text and "data:image" not in text
    for index, picture in enumerate(PICTURES):
        name = f"img{picture:04d}.png"
        label = NAMES[int(TRAIN_Y[picture])]
        assert f"<strong>{index}</strong> <code>{name}</code> · {label}" in text, name
    assert f"<code>{COPY}</code>" in text
    assert text.count(">on disk</span>") == 6 and "28×28" in text
    assert "near-duplicate of sample 0 of this asset" in text  # the node's link, from metadata
    for index in range(6):
        assert looks_like(thumbnail_of(owner, owned.asset_id, index), registered(index)), index
    # the asset's public page links the images for the owner's session alone
    assert 'id="own-images"' in owner.get(f"/provider/assets/{owned.asset_id}").text
    for other in (owned.client("provider2"), owned.client(), owned.client(session=False)):
        assert 'id="own-images"' not in other.get(f"/provider/assets/{owned.asset_id}").text
    # the owner's browser wallet holds no encryption key: its session is told which does
    wallet = owned.client()
    session = owned.sessions.get(wallet.cookies.get(COOKIE))
    assert session is not None
    session.wallet = owned.rnd.accounts["provider"].address
    shown = wallet.get(f"/provider/assets/{owned.asset_id}").text
    assert 'id="own-images"' not in shown and "open with the local account that added it" in shown


def test_a_big_asset_comes_in_pages(owned: OwnedAsset) -> None:
    owner = owned.client("provider")
    url = f"/provider/assets/{owned.asset_id}/images"
    last = owner.get(f"{url}?page=3&per_page=2", headers=HTML).text
    assert "page 3 of 3" in last and 'id="sample-4"' in last and 'id="sample-5"' in last
    assert 'id="sample-3"' not in last and 'rel="prev"' in last and 'rel="next"' not in last
    line = one_error_line(owner.get(f"{url}?page=4&per_page=2", headers=HTML), 404)
    assert "page 4 does not exist" in line


def test_an_original_changed_or_deleted_since_added_is_named_as_such(owned: OwnedAsset) -> None:
    changed, deleted = owned.folder / "img0001.png", owned.folder / "img0002.png"
    kept = changed.read_bytes(), deleted.read_bytes()
    try:
        Image.fromarray(255 - TRAIN_X[1]).save(changed)
        deleted.unlink()
        owner = owned.client("provider")
        text = owner.get(f"/provider/assets/{owned.asset_id}/images", headers=HTML).text
        assert text.count(">changed since added</span>") == 2
        assert "img0001.png" not in text and "img0002.png" not in text
        assert text.count(">on disk</span>") == 4
        # the image is still the one registered, from the owner's encrypted sample
        assert looks_like(thumbnail_of(owner, owned.asset_id, 1), registered(1))
    finally:
        changed.write_bytes(kept[0])
        deleted.write_bytes(kept[1])


def reads_nothing(owned: OwnedAsset, thief: TestClient) -> list[str]:
    """What ``thief`` gets for the page and every thumbnail: one line each, no image."""
    base = f"/provider/assets/{owned.asset_id}/images"
    urls = [base, *(f"{base}/{i}" for i in range(6))]
    lines = []
    for url in urls:
        response = thief.get(url, headers=HTML)
        lines.append(one_error_line(response, response.status_code))
        assert response.status_code in (400, 403)
        assert b"JFIF" not in response.content and b"\x89PNG" not in response.content
    return lines


def attempt(owned: OwnedAsset, monkeypatch: pytest.MonkeyPatch, account: str) -> None:
    owner = owned.client("provider")  # the owner's key is unlocked, in the owner's session
    assert looks_like(thumbnail_of(owner, owned.asset_id, 0), registered(0))
    thief = owned.client(account)
    address = owned.rnd.accounts[account].address
    for line in reads_nothing(owned, thief):
        assert f"asset {owned.asset_id} belongs to {owned.rnd.accounts['provider'].address}" in line
        assert f"not to {account} ({address})" in line
    # with the ownership check switched off, the key does not open: it is sealed to the owner
    # (and the allowed nodes) only, and the session holds the thief's own key, not the owner's
    monkeypatch.setattr(_own_samples, "_check_owner", lambda *_: None)
    for line in reads_nothing(owned, thief):
        assert f"manifest has no wrapped key for {address}" in line
    assert looks_like(thumbnail_of(owner, owned.asset_id, 0), registered(0))


@pytest.mark.attack
def test_another_provider_cannot_read_my_images(
    owned: OwnedAsset, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt(owned, monkeypatch, "provider2")


@pytest.mark.attack
def test_a_stranger_cannot_read_my_images(
    owned: OwnedAsset, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt(owned, monkeypatch, "stranger")


def test_an_asset_or_sample_that_does_not_exist_is_one_line(owned: OwnedAsset) -> None:
    owner = owned.client("provider")
    line = one_error_line(owner.get("/provider/assets/999/images", headers=HTML), 404)
    assert "asset 999 does not exist" in line
    line = one_error_line(owner.get(f"/provider/assets/{owned.asset_id}/images/6"), 404)
    assert f"asset {owned.asset_id} has no sample 6: its samples are numbered 0 to 5" in line


@pytest.mark.browser
def test_the_owner_sees_the_page_in_a_browser(
    owned: OwnedAsset,
    browser: Browser,
    tmp_path: Path,
) -> None:
    server = BackgroundServer(owned.app)
    url = server.start()
    try:
        page = login(browser, url, owned.sessions, "provider")
        page.goto(f"{url}/provider/assets/{owned.asset_id}")
        page.click("#own-images")
        expect(page.locator("main h1")).to_have_text(f"My images of asset {owned.asset_id}")
        expect(page.locator(".thumbs > li")).to_have_count(6)
        page.wait_for_function(
            "() => [...document.images].every((i) => i.complete && i.naturalWidth === 28)"
        )
        Shots(tmp_path / "screens")(page, "own-images")
    finally:
        server.stop()
