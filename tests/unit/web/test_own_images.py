"""The owner's images page refuses, in one line and without an image byte, every request that
is not the owner's unlocked account: no session, a locked session, a browser wallet, and any
address part or query field that is not a plain number (path traversal included) — all before
the chain or a file is looked at. Thumbnails are small JPEGs; originals are found by content."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.unit.web.conftest import PASSWORD, TestClient, Web, csrf_of
from tests.unit.web.test_sessions_and_forms import one_error_line
from visdm.errors import InvalidImageError
from visdm.web._auth import COOKIE
from visdm.web._own_samples import THUMBNAIL_PX, find_originals, thumbnail_jpeg

pytestmark = pytest.mark.unit

HTML = {"accept": "text/html"}
PAGE = "/provider/assets/1/images"
THUMB = "/provider/assets/1/images/0"


def refused(response: httpx.Response, status: int) -> str:
    """The one line of a refusal that carries no image."""
    assert response.status_code == status, response.text
    assert not response.headers["content-type"].startswith("image/")
    return one_error_line(response.text)


def unlocked(web: Web) -> TestClient:
    client = web.client()
    response = client.post(
        "/account/unlock", data={"account": "alice", "password": PASSWORD, "csrf": csrf_of(client)}
    )
    assert response.status_code == 303
    return client


@pytest.mark.parametrize("url", [PAGE, THUMB])
def test_no_session_sees_no_image(web: Web, url: str) -> None:
    line = refused(web.client(login=False).get(url, headers=HTML), 403)
    assert "shown only to a session" in line and "open the URL `visdm web` printed" in line


@pytest.mark.parametrize("url", [PAGE, THUMB])
def test_a_locked_session_sees_no_image(web: Web, url: str) -> None:
    line = refused(web.client().get(url, headers=HTML), 403)
    assert "no account is unlocked in this session" in line and "Account page" in line


@pytest.mark.parametrize("url", [PAGE, THUMB])
def test_a_wallet_session_is_told_which_key_opens_the_images(web: Web, url: str) -> None:
    client = web.client()
    session = web.sessions.get(client.cookies.get(COOKIE))
    assert session is not None
    session.wallet = "0x" + "ab" * 20  # what connecting a browser wallet leaves in the session
    line = refused(client.get(url, headers=HTML), 403)
    assert "a browser wallet" in line and "cannot open your images" in line
    assert "unlock that account's keystore on the Account page" in line


@pytest.mark.attack
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/provider/assets/..%2F..%2Fetc/images", "the asset id in the address"),
        ("/provider/assets/%2e%2e%2f1/images/0", "the asset id in the address"),
        ("/provider/assets/1/images/..%2F..%2F..%2Fetc%2Fpasswd", "the sample index"),
        ("/provider/assets/1/images/%2e%2e%2f%2e%2e%2fkeystore", "the sample index"),
        ("/provider/assets/1/images/0%00.png", "the sample index"),
        ("/provider/assets/1/images/-1", "the sample index"),
        ("/provider/assets/1/images/%EF%BC%91", "the sample index"),  # a full-width digit
        (PAGE + "?page=..%2F..%2Fetc%2Fpasswd", "the field 'page' must be a whole number"),
        (PAGE + "?per_page=%2Fetc%2Fpasswd", "the field 'per_page' must be a whole number"),
        (PAGE + "?per_page=100000", "the field 'per_page' must be at most 200"),
        (PAGE + "?page=0", "the field 'page' must be at least 1"),
    ],
)
def test_a_path_in_any_parameter_is_refused_before_anything_is_read(
    web: Web, url: str, expected: str
) -> None:
    # alice is unlocked and no chain answers: a refusal that is not about the chain shows the
    # value was refused before the chain, the store or a folder was asked
    line = refused(unlocked(web).get(url, headers=HTML), 400)
    assert expected in line and "chain" not in line


def test_with_a_session_and_a_key_the_request_reaches_the_chain(web: Web) -> None:
    # the contrast to the refusals above: a well-formed request goes on, here to a chain that
    # is not running, and still shows no image
    line = refused(unlocked(web).get(THUMB, headers=HTML), 400)
    assert "http://127.0.0.1:9" in line


def picture(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(7)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype="uint8")
    image = Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("size", "mode", "expected"),
    [
        ((1000, 600), "RGB", (THUMBNAIL_PX, 96)),
        ((300, 900), "RGBA", (53, THUMBNAIL_PX)),
        ((28, 28), "L", (28, 28)),  # never enlarged
    ],
)
def test_a_thumbnail_is_a_small_jpeg(
    size: tuple[int, int], mode: str, expected: tuple[int, int]
) -> None:
    original = picture(*size, mode=mode)
    data = thumbnail_jpeg(original)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG" and thumb.size == expected
    if size[0] > THUMBNAIL_PX:
        assert len(data) < len(original) / 4


def test_a_thumbnail_of_bytes_that_are_no_image_is_a_one_line_refusal() -> None:
    with pytest.raises(InvalidImageError, match=r"^sample 3: ") as caught:
        thumbnail_jpeg(b"<svg onload=alert(1)>", name="sample 3")
    assert "\n" not in str(caught.value)


def test_originals_are_found_by_content_not_by_name(tmp_path: Path) -> None:
    a, b, c = picture(8, 8), picture(9, 9), picture(10, 10)
    (tmp_path / "shirts").mkdir()
    (tmp_path / "one.png").write_bytes(a)
    (tmp_path / "shirts" / "two.png").write_bytes(b)
    (tmp_path / "three.png").write_bytes(picture(10, 10, fmt="BMP"))  # changed since added
    (tmp_path / ".hidden.png").write_bytes(c)  # asset add refuses hidden files: not an original
    (tmp_path / "link.png").symlink_to(tmp_path / "one.png")

    def wanted(data: bytes) -> tuple[bytes, int]:
        return hashlib.sha256(data).digest(), len(data)

    found = find_originals(tmp_path, {0: wanted(a), 1: wanted(b), 2: wanted(c)})
    assert found == {0: "one.png", 1: "shirts/two.png"}
