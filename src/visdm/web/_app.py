"""The web app's skeleton: the FastAPI application, its guard, sessions, rendering and errors.

Routes live per actor (:mod:`.public`, :mod:`.account`, :mod:`.provider`, :mod:`.consumer`,
:mod:`.operator`); each parses its form with :mod:`._forms`, calls the same SDK function the
matching CLI command calls, and renders a template. Nothing here knows a workflow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from visdm.accounts import UnlockedAccount
from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import one_line

from ._auth import COOKIE, CSRF_FIELD, RequestTooLargeError, SessionError, Sessions, WebSession
from ._staging import MAX_FILE_BYTES, UPLOAD_PATH_PREFIX, clear_staging

__all__ = [
    "CSRF_FIELD",
    "DEFAULT_MAX_BODY",
    "WebState",
    "acting",
    "ask_text",
    "create_app",
    "current_session",
    "redirect",
    "render",
    "session_settings",
    "short_address",
    "state",
    "tokens_text",
    "unlocked",
    "when_text",
]

_HERE = Path(__file__).parent
#: the largest request body accepted: forms carry paths and numbers, never images
DEFAULT_MAX_BODY = 1 << 20
#: hosts a loopback server answers to (anything else: DNS rebinding)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class WebState:
    """What every route needs: settings, sessions, templates, where the index is."""

    settings: Settings
    sessions: Sessions
    templates: Jinja2Templates
    index_url: str | None = None
    #: seconds between two polls of a proposal's status for its live view
    poll_s: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Guard:
    """Refuses a foreign ``Host`` (DNS rebinding) and a body over the limit, before routing."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], max_body: int) -> None:
        self.app = app
        self.hosts = hosts
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        name = host if host.startswith("[") and host.endswith("]") else host.rsplit(":", 1)[0]
        if host.startswith("["):
            name = host.split("]", 1)[0] + "]"
        if name.lower() not in self.hosts:
            await _plain(
                send,
                403,
                f"the host {host[:80]!r} is not this loopback server: "
                "open the URL `visdm web` printed",
            )
            return
        limit = self.max_body
        if scope.get("method") == "PUT" and str(scope.get("path", "")).startswith(
            UPLOAD_PATH_PREFIX
        ):  # one file of a dropped folder, raw: as large as a sample file may be
            limit = max(limit, MAX_FILE_BYTES)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _plain(send, 413, _too_large(length, limit))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise RequestTooLargeError(_too_large(str(seen), limit))
            return message

        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_security_headers(static)]
            await send(message)

        await self.app(scope, counted, with_headers)


#: the launch token may be in the URL: never send it on; no framing; scripts only from here
_SECURITY_HEADERS = [
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
]


def _security_headers(static: bool) -> list[tuple[bytes, bytes]]:
    if static:
        return _SECURITY_HEADERS
    return [*_SECURITY_HEADERS, (b"cache-control", b"no-store")]


def _too_large(length: str, limit: int) -> str:
    return (
        f"the request body ({length[:20]} bytes) is over the {limit} bytes this app accepts: "
        "forms take folder paths on this machine, never the files themselves; nothing was changed"
    )


async def _plain(send: Send, status: int, message: str) -> None:
    body = f"error: {one_line(message)}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *_SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- helpers for routes ------------------------------------------------------------------------
def state(request: Request) -> WebState:
    """The app's :class:`WebState`."""
    web: WebState = request.app.state.web
    return web


def current_session(request: Request) -> WebSession | None:
    """The session the request's cookie names, if any."""
    return state(request).sessions.get(request.cookies.get(COOKIE))


def session_settings(request: Request, session: WebSession | None = None) -> Settings:
    """The settings, with the account the session chose."""
    chosen = session or current_session(request)
    web = state(request)
    if chosen is None or chosen.account_name is None:
        return web.settings
    return web.settings.with_overrides(account=chosen.account_name)


def unlocked(session: WebSession) -> UnlockedAccount:
    """The session's unlocked local account, or a refusal that says where to unlock it."""
    if session.unlocked is None:
        raise SessionError(
            "no account is unlocked in this session: unlock one on the Account page (its "
            "keystore password is asked once and kept only for this session)"
        )
    return session.unlocked


async def acting(request: Request) -> tuple[WebSession, FormData]:
    """The session and form of a POST that acts; refuses one without a session or with a CSRF
    token that is not its session's own."""
    session = current_session(request)
    if session is None:
        raise SessionError(
            "this action needs a session: open the URL with the token that `visdm web` printed "
            "when it started; nothing was changed"
        )
    form = await request.form()
    files = [key for key, value in form.multi_items() if not isinstance(value, str)]
    if files:  # forms take paths on this machine, never uploads: refuse and free them now
        await form.close()
        raise InvalidInputError(
            f"the field {files[0]!r} must be text, but a file was sent: type the value instead; "
            "nothing was changed"
        )
    session.check_csrf(form.get(CSRF_FIELD))
    return session, form


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A page from ``template`` with the session's CSRF token and messages."""
    session = current_session(request)
    flashes = session_flashes(session)
    return state(request).templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "csrf": session.csrf if session else "",
            "flashes": flashes,
            **context,
        },
        status_code=status_code,
    )


def session_flashes(session: WebSession | None) -> list[str]:
    if session is None:
        return []
    flashes = list(session.flashes)
    session.flashes.clear()
    return flashes


def redirect(session: WebSession, to: str, *messages: str) -> Response:
    """After a POST: remember ``messages`` for the next page and send the browser to ``to``."""
    session.flashes.extend(one_line(m) for m in messages)
    return RedirectResponse(to, status_code=303)


# --- the application ---------------------------------------------------------------------------
def create_app(
    settings: Settings,
    *,
    sessions: Sessions | None = None,
    index_url: str | None = None,
    hosts: frozenset[str] = LOOPBACK_HOSTS,
    max_body: int = DEFAULT_MAX_BODY,
    poll_s: float = 1.0,
) -> FastAPI:
    """The web app for the data directory of ``settings``.

    ``sessions`` holds the launch token (default: a fresh random one); ``hosts`` are the host
    names the app answers to; ``max_body`` bounds every request body in bytes.
    """
    from . import (
        account,
        consumer,
        folder_drop,
        operator,
        provider,
        public,
        spec_builder,
        wallet,
    )

    app = FastAPI(title="ViSDM", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters["tokens"] = tokens_text
    templates.env.filters["short"] = short_address
    templates.env.filters["when"] = when_text
    templates.env.filters["ask"] = ask_text
    app.state.web = WebState(
        settings=settings,
        sessions=sessions or Sessions(),
        templates=templates,
        index_url=index_url,
        poll_s=poll_s,
    )
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    clear_staging(settings)  # folders staged before a restart belong to sessions now gone
    for module in (
        public,
        account,
        provider,
        folder_drop,
        consumer,
        spec_builder,
        operator,
        wallet,
    ):
        app.include_router(module.router)
    app.add_exception_handler(VisdmError, _visdm_error)
    app.add_exception_handler(OSError, _os_error)
    app.add_middleware(_Guard, hosts=hosts, max_body=max_body)
    return app


def _error_page(request: Request, status: int, message: str) -> Response:
    line = one_line(message)
    if "text/html" not in request.headers.get("accept", "") or request.headers.get("hx-request"):
        return HTMLResponse(f'<p class="error" role="alert">error: {_esc(line)}</p>', status)
    return render(request, "error.html", status_code=status, title="Error", message=line)


def _esc(text: str) -> str:
    from html import escape

    return escape(text)


async def _visdm_error(request: Request, exc: Exception) -> Response:
    status = int(getattr(exc, "status_code", 400))
    return _error_page(request, status, str(exc))


async def _os_error(request: Request, exc: Exception) -> Response:
    from visdm.cli import os_error_message

    assert isinstance(exc, OSError)
    return _error_page(request, 400, os_error_message(exc))


# --- template filters --------------------------------------------------------------------------
def tokens_text(value: object) -> str:
    """Wei (an int or a decimal string) as tokens, e.g. ``2.5``."""
    from decimal import Decimal

    try:
        wei = int(str(value))
    except ValueError:
        return str(value)
    text = f"{Decimal(wei) / 10**18:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def ask_text(value: object) -> str:
    """A vote's ask in words: ``accept``, ``reject`` or ``ask 2.5 tokens``."""
    text = str(value)
    if text == str(2**256 - 1):
        return "reject"
    if text == "0":
        return "accept"
    return f"ask {tokens_text(text)} tokens"


def when_text(value: object) -> str:
    """Unix seconds as ``2026-12-01 21:59 UTC`` (``—`` for none)."""
    from datetime import UTC, datetime

    try:
        seconds = int(str(value))
    except ValueError:
        return str(value)
    if seconds <= 0:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short_address(value: object) -> str:
    """``0x1234…abcd`` for an address; anything else unchanged."""
    text = str(value or "")
    return f"{text[:6]}…{text[-4:]}" if text.startswith("0x") and len(text) == 42 else text
