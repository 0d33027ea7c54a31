"""Hostile requests against the web app: no session, a wrong launch token, a POST without or
with another session's CSRF token, another browser's unlocked account, a foreign Host, an
oversized body, files where text belongs, malformed numbers. Each gets one clear line and
changes nothing."""

from __future__ import annotations

import html

import pytest

from tests.unit.web.conftest import PASSWORD, Web, csrf_of
from visdm.web._auth import COOKIE

pytestmark = pytest.mark.unit

HTML = {"accept": "text/html"}


def one_error_line(text: str) -> str:
    """The error a response shows: exactly one ``error:`` line."""
    lines = [html.unescape(line) for line in text.splitlines() if "error:" in line]
    assert len(lines) == 1, text
    return lines[0]


def test_every_page_reads_without_a_session(web: Web) -> None:
    client = web.client(login=False)
    for page in ("/", "/search", "/proposals", "/provider", "/consumer", "/node", "/governance"):
        response = client.get(page, headers=HTML)
        assert response.status_code == 200, page
        assert "read-only (no session)" in response.text
    # no chain answers: the page says so in the SDK's words instead of failing
    line = one_error_line(client.get("/", headers=HTML).text)
    assert "http://127.0.0.1:9" in line and "visdm chain up" in line


def test_the_launch_token_starts_a_strict_httponly_session(web: Web) -> None:
    client = web.client(login=False)
    response = client.get(f"/login?token={web.sessions.launch_token}")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert response.headers["referrer-policy"] == "no-referrer"  # the token never leaks on


def test_a_wrong_launch_token_starts_nothing(web: Web) -> None:
    client = web.client(login=False)
    response = client.get("/login?token=guess", headers=HTML)
    assert response.status_code == 403
    assert "wrong launch token" in one_error_line(response.text)
    assert "set-cookie" not in response.headers


def test_a_post_without_a_session_is_refused(web: Web) -> None:
    client = web.client(login=False)
    response = client.post(
        "/account/unlock", data={"account": "alice", "password": PASSWORD}, headers=HTML
    )
    assert response.status_code == 403
    assert "needs a session" in one_error_line(response.text)


@pytest.mark.attack
def test_a_post_without_csrf_changes_nothing(web: Web) -> None:
    client = web.client()
    response = client.post(
        "/account/unlock", data={"account": "alice", "password": PASSWORD}, headers=HTML
    )
    assert response.status_code == 403
    assert "CSRF token is missing or belongs to another session" in one_error_line(response.text)
    assert "no account unlocked" in client.get("/account").text


@pytest.mark.attack
def test_another_sessions_csrf_token_is_refused(web: Web) -> None:
    mallory, victim = web.client(), web.client()
    stolen = csrf_of(mallory)
    response = victim.post(
        "/account/unlock",
        data={"account": "alice", "password": PASSWORD, "csrf": stolen},
        headers=HTML,
    )
    assert response.status_code == 403
    assert "belongs to another session" in response.text
    assert "no account unlocked" in victim.get("/account").text


@pytest.mark.attack
def test_an_unlocked_account_serves_only_its_own_session(web: Web) -> None:
    alice, other = web.client(), web.client()
    response = alice.post(
        "/account/unlock", data={"account": "alice", "password": PASSWORD, "csrf": csrf_of(alice)}
    )
    assert response.status_code == 303
    assert "acting as <strong>alice</strong>" in alice.get("/account").text
    # the other browser has its own session: alice's key does not sign for it
    response = other.post(
        "/account/register", data={"role": "provider", "csrf": csrf_of(other)}, headers=HTML
    )
    assert response.status_code == 403
    assert "no account is unlocked in this session" in one_error_line(response.text)
    # nor does the same cookie with a forged session id
    forged = web.client(login=False)
    forged.cookies.set(COOKIE, "not-a-session")
    response = forged.post("/account/lock", data={"csrf": csrf_of(alice)}, headers=HTML)
    assert response.status_code == 403
    assert "acting as <strong>alice</strong>" in alice.get("/account").text


def test_a_wrong_password_leaves_the_account_locked(web: Web) -> None:
    client = web.client()
    response = client.post(
        "/account/unlock",
        data={"account": "alice", "password": "wrong", "csrf": csrf_of(client)},
        headers=HTML,
    )
    assert response.status_code == 400
    line = one_error_line(response.text)
    assert "password" in line.lower()
    assert "no account unlocked" in client.get("/account").text


@pytest.mark.attack
def test_a_foreign_host_is_refused(web: Web) -> None:
    client = web.client()
    response = client.get("/", headers={"host": "evil.example:8765"})
    assert response.status_code == 403
    assert response.text.startswith("error: the host 'evil.example:8765' is not this loopback")
    assert response.text.count("\n") == 1


def test_an_oversized_body_is_refused_before_it_is_read(web: Web) -> None:
    client = web.client()
    csrf = csrf_of(client)
    response = client.post(
        "/provider/assets/add",
        files={"directory": ("huge.bin", b"\0" * (65 * 1024), "application/octet-stream")},
        data={"csrf": csrf},
    )
    assert response.status_code == 413
    assert "is over the 65536 bytes this app accepts" in response.text
    assert "nothing was changed" in response.text


@pytest.mark.attack
def test_an_oversized_body_without_a_length_is_refused_while_it_streams(web: Web) -> None:
    client = web.client()
    csrf = csrf_of(client)

    def chunks() -> object:
        yield f"csrf={csrf}&directory=".encode()
        for _ in range(80):
            yield b"a" * 1024

    response = client.post(
        "/provider/assets/add",
        content=chunks(),  # type: ignore[arg-type]
        headers={"content-type": "application/x-www-form-urlencoded", **HTML},
    )
    assert response.status_code == 413
    assert "this app accepts" in one_error_line(response.text)


def test_a_file_where_text_belongs_is_refused_by_name(web: Web) -> None:
    client = web.client()
    response = client.post(
        "/account/unlock",
        data={"account": "alice", "csrf": csrf_of(client)},
        files={"password": ("pw.txt", PASSWORD.encode(), "text/plain")},
        headers=HTML,
    )
    assert response.status_code == 400
    assert "the field 'password' must be text, but a file was sent" in one_error_line(response.text)
    assert "no account unlocked" in client.get("/account").text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("min_brightness=bright", "the field 'min_brightness' must be a number, got 'bright'"),
        ("min_brightness=nan", "the field 'min_brightness' must be a finite number"),
        ("max_cluster_size=0", "the field 'max_cluster_size' must be at least 1, got 0"),
        ("max_duplicate_links=2.5", "the field 'max_duplicate_links' must be a whole number"),
        ("min_resolution=big", "min_resolution 'big' is not a resolution"),
        ("asset=one", "the field 'asset' must be an asset id, got 'one'"),
        ("limit=0", "the field 'limit' must be at least 1, got 0"),
        ("label=a&label=" + "x" * 5000, "the field 'label' has 5000 characters"),
    ],
)
def test_a_malformed_search_says_which_field(web: Web, query: str, expected: str) -> None:
    response = web.client(login=False).get(f"/search?{query}", headers=HTML)
    assert response.status_code == 400
    assert expected in one_error_line(response.text)


def test_vote_with_a_bad_amount_is_refused_before_any_key_is_needed(web: Web) -> None:
    client = web.client()
    csrf = csrf_of(client)
    for data, expected in (
        ({"proposal": "x", "vote": "accept"}, "the field 'proposal' must be a whole number"),
        ({"proposal": "1", "vote": "maybe"}, "the field 'vote' must be accept, reject or ask"),
        ({"proposal": "1", "vote": "ask", "ask": "-1"}, "a non-negative amount"),
        ({"proposal": "1", "vote": "ask", "ask": "1e-30"}, "at most 18 decimals"),
        ({"proposal": "1", "vote": "ask", "ask": "lots"}, "an amount in tokens such as 2.5"),
    ):
        response = client.post("/provider/vote", data={**data, "csrf": csrf}, headers=HTML)
        assert response.status_code == 400, data
        assert expected in one_error_line(response.text)


@pytest.mark.attack
def test_pages_forbid_framing_and_foreign_scripts(web: Web) -> None:
    response = web.client(login=False).get("/search", headers=HTML)
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["cache-control"] == "no-store"


def test_logout_forgets_the_session_and_its_key(web: Web) -> None:
    client = web.client()
    client.post(
        "/account/unlock",
        data={"account": "alice", "password": PASSWORD, "csrf": csrf_of(client)},
    )
    csrf = csrf_of(client)
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert "read-only (no session)" in client.get("/account").text
    response = client.post("/account/lock", data={"csrf": csrf}, headers=HTML)
    assert response.status_code == 403


@pytest.mark.attack
def test_another_sessions_upload_job_is_not_shown(web: Web) -> None:
    from visdm.web._uploads import AddJob

    owner, other = web.client(), web.client()
    sid = owner.cookies.get("visdm_session")
    session = web.sessions.get(sid)
    assert session is not None
    session.uploads["job1"] = AddJob(job_id="job1", directory="/home/owner/photos")
    assert "/home/owner/photos" in owner.get("/provider/assets/jobs/job1").text
    response = other.get("/provider/assets/jobs/job1", headers=HTML)
    assert response.status_code == 400
    assert "no asset is being added under 'job1' in this session" in one_error_line(response.text)
    assert "/home/owner/photos" not in response.text
