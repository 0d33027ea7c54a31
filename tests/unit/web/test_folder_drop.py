"""A folder dropped on the provider's page: staged file by file on this machine, each file's
path, size and kind checked before anything is kept; a refusal keeps nothing of the file, and
another session can neither read, grow, add nor discard the folder."""

from __future__ import annotations

import html
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.web.conftest import PASSWORD, Web, csrf_of
from visdm.web import _app, _staging, create_app
from visdm.web._staging import clear_staging, staging_root

HTML = {"accept": "text/html"}


def png(size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("L", (size, size), 128).save(out, format="PNG")
    return out.getvalue()


class Dropper:
    """One browser session with alice unlocked, staging a folder."""

    def __init__(self, web: Web, *, unlock: bool = True) -> None:
        self.client = web.client()
        self.csrf = csrf_of(self.client)
        if unlock:
            response = self.client.post(
                "/account/unlock",
                data={"account": "alice", "password": PASSWORD, "csrf": self.csrf},
            )
            assert response.status_code == 303

    def open(self, name: str = "shirts") -> str:
        response = self.client.post("/provider/uploads", data={"csrf": self.csrf, "name": name})
        assert response.status_code == 200, html.unescape(response.text)
        upload: str = response.json()["upload"]
        return upload

    def put(self, upload: str, path: str, data: bytes, **headers: str) -> tuple[int, str]:
        response = self.client.put(
            f"/provider/uploads/{upload}/files",
            params={"path": path},
            content=data,
            headers={"x-csrf-token": self.csrf, **headers},
        )
        return response.status_code, html.unescape(response.text)


def staged_files(web: Web) -> list[str]:
    root = staging_root(web.settings)
    return (
        sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if root.exists()
        else []
    )


@pytest.fixture
def alice(web: Web) -> Dropper:
    return Dropper(web)


def test_a_dropped_folder_is_staged_byte_for_byte(web: Web, alice: Dropper) -> None:
    upload = alice.open()
    image = png()
    labels = b"filename,label\nshirts/a.png,shirt\n"
    assert alice.put(upload, "shirts/a.png", image)[0] == 200
    status, text = alice.put(upload, "labels.csv", labels)
    assert status == 200 and '"files":2' in text
    folder = staging_root(web.settings) / upload
    assert (folder / "shirts" / "a.png").read_bytes() == image
    assert (folder / "labels.csv").read_bytes() == labels
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../escape.png", "empty, '.' or '..' part"),
        ("a/../../escape.png", "empty, '.' or '..' part"),
        ("a//b.png", "empty, '.' or '..' part"),
        ("./a.png", "empty, '.' or '..' part"),
        ("/etc/escape.png", "must be relative"),
        ("a\\..\\escape.png", "must be relative"),
        ("a\x00.png", "must be relative"),
        ("/".join(["d"] * 10) + "/a.png", "folders deep"),
        ("x" * 300 + ".png", "folders deep or has a name over 255 bytes"),
        ("", "path inside the folder is empty"),
    ],
)
@pytest.mark.attack
def test_a_path_out_of_the_staged_folder_is_refused(
    web: Web, alice: Dropper, path: str, reason: str
) -> None:
    upload = alice.open()
    status, text = alice.put(upload, path, png())
    assert status == 400 and reason in text
    assert staged_files(web) == []
    assert not (Path(web.settings.home) / "web" / "escape.png").exists()


@pytest.mark.parametrize(
    "data",
    [b"GIF89a" + b"\0" * 40, b"<html><script>alert(1)</script></html>", b"%PDF-1.7\n" * 4],
)
def test_a_file_that_is_not_an_accepted_image_is_refused_by_its_bytes(
    web: Web, alice: Dropper, data: bytes
) -> None:
    upload = alice.open()
    status, text = alice.put(upload, "photo.png", data)
    assert status == 400
    assert "photo.png: not a PNG, JPEG, WebP or BMP image" in text
    assert staged_files(web) == []


def test_limits_refuse_a_file_before_its_bytes_are_kept(
    web: Web, alice: Dropper, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = png()
    monkeypatch.setattr(_staging, "MAX_FILE_BYTES", len(image) - 1)
    upload = alice.open()
    status, text = alice.put(upload, "big.png", image)
    assert status == 413 and "over the" in text and "limit of a sample file" in text
    monkeypatch.setattr(_staging, "MAX_FILE_BYTES", 10**9)
    monkeypatch.setattr(_staging, "MAX_STAGED_FILES", 1)
    assert alice.put(upload, "one.png", image)[0] == 200
    status, text = alice.put(upload, "two.png", image)
    assert status == 413 and "the most one asset takes here" in text
    monkeypatch.setattr(_staging, "MAX_STAGED_FILES", 10)
    monkeypatch.setattr(_staging, "MAX_STAGED_BYTES", len(image) + 10)
    status, text = alice.put(upload, "three.png", image)
    assert status == 413 and "would pass" in text
    monkeypatch.setattr(_staging, "MAX_STAGED_BYTES", 10**12)
    monkeypatch.setattr(_staging, "DISK_RESERVE", 2**62)
    status, text = alice.put(upload, "four.png", image)
    assert status == 413 and "free some space first" in text
    assert [Path(p).name for p in staged_files(web)] == ["one.png"]


def test_a_body_larger_than_a_sample_file_is_refused_before_it_is_read(
    web: Web, alice: Dropper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_app, "MAX_FILE_BYTES", 100 * 1024)
    upload = alice.open()
    status, text = alice.put(upload, "huge.png", png() + b"\0" * (200 * 1024))
    assert status == 413 and "this app accepts" in text
    assert staged_files(web) == []


def test_a_file_that_arrives_short_or_long_is_not_kept(web: Web, alice: Dropper) -> None:
    upload = alice.open()
    image = png()

    def body(data: bytes) -> Iterator[bytes]:
        yield data

    status, text = alice.put(
        upload, "short.png", body(image[:20]), **{"content-length": str(len(image))}
    )  # type: ignore[arg-type]
    assert status == 400 and f"20 of the {len(image):,} declared bytes arrived" in text
    status, text = alice.put(upload, "long.png", body(image), **{"content-length": "20"})  # type: ignore[arg-type]
    assert status == 413 and "more bytes arrived than the 20 declared" in text
    assert staged_files(web) == []


def test_the_same_path_twice_keeps_the_first(web: Web, alice: Dropper) -> None:
    upload = alice.open()
    first = png(8)
    assert alice.put(upload, "a.png", first)[0] == 200
    status, text = alice.put(upload, "a.png", png(16))
    assert status == 400 and "a.png: already in the staged folder" in text
    status, text = alice.put(upload, "a.png/b.png", png())
    assert status == 400 and "has the name of one of its folders" in text
    assert (staging_root(web.settings) / upload / "a.png").read_bytes() == first


def test_staging_needs_a_session_its_csrf_token_and_an_unlocked_account(
    web: Web, alice: Dropper
) -> None:
    upload = alice.open()
    anonymous = web.client(login=False)
    response = anonymous.put(f"/provider/uploads/{upload}/files?path=a.png", content=png())
    assert response.status_code == 403 and "needs a session" in html.unescape(response.text)
    status, text = alice.put(upload, "a.png", png(), **{"x-csrf-token": "forged"})
    assert status == 403 and "CSRF token is missing or belongs to another session" in text
    locked = Dropper(web, unlock=False)
    response = locked.client.post("/provider/uploads", data={"csrf": locked.csrf})
    assert response.status_code == 403 and "no account is unlocked" in html.unescape(response.text)
    response = locked.client.post("/provider/uploads", data={"name": "x"})
    assert response.status_code == 403
    assert staged_files(web) == []


@pytest.mark.attack
def test_another_session_cannot_grow_add_or_discard_my_staged_folder(
    web: Web, alice: Dropper
) -> None:
    upload = alice.open()
    assert alice.put(upload, "mine.png", png())[0] == 200
    mallory = Dropper(web)  # the same local account unlocked in another browser session
    status, text = mallory.put(upload, "theirs.png", png())
    assert status == 404 and "no staged folder" in text
    response = mallory.client.post(
        "/provider/assets/add", data={"csrf": mallory.csrf, "upload": upload}, headers=HTML
    )
    assert response.status_code == 404 and "no staged folder" in html.unescape(response.text)
    response = mallory.client.post(
        f"/provider/uploads/{upload}/discard", data={"csrf": mallory.csrf}
    )
    assert response.status_code == 404
    assert [Path(p).name for p in staged_files(web)] == ["mine.png"]


def test_a_failed_add_keeps_the_staged_folder_and_discard_removes_it(
    web: Web, alice: Dropper
) -> None:
    upload = alice.open()
    assert alice.put(upload, "a.png", png())[0] == 200
    # no chain answers at this data directory's RPC address: the add fails after validation
    response = alice.client.post(
        "/provider/assets/add", data={"csrf": alice.csrf, "upload": upload}, headers=HTML
    )
    assert response.status_code == 200, html.unescape(response.text)
    deadline = time.monotonic() + 60
    while (put := alice.put(upload, "b.png", png()))[0] != 200:
        assert "being added as an asset: wait for the result" in put[1]  # busy meanwhile
        assert time.monotonic() < deadline, put
        time.sleep(0.2)
    # the add was refused (no chain): the folder is kept, and may grow again
    assert sorted(Path(p).name for p in staged_files(web)) == ["a.png", "b.png"]
    response = alice.client.post(f"/provider/uploads/{upload}/discard", data={"csrf": alice.csrf})
    assert response.status_code == 200
    assert staged_files(web) == []
    status, text = alice.put(upload, "c.png", png())
    assert status == 404 and "no staged folder" in text


def test_a_restart_clears_its_own_and_ended_processes_folders_only(web: Web) -> None:
    parent = staging_root(web.settings).parent
    ours, ended, running = (parent / str(os.getpid()), parent / "999999999", parent / "1")
    for folder in (ours, ended, running):
        (folder / "x").mkdir(parents=True)
    create_app(web.settings)  # what `visdm web` does when it starts
    assert not ours.exists() and not ended.exists()
    assert running.exists()  # pid 1 runs: another server's folder is left alone
    clear_staging(web.settings)
    assert running.exists()
