"""Who may act through the web app: the launch token, browser sessions and CSRF tokens.

The app binds to loopback only, but any web page the user visits can still make the browser
send requests there, so nothing that acts is reachable without a session:

- ``visdm web`` prints a URL with a random **launch token** (as Jupyter does). Opening it
  starts a **session**: a random id in an ``HttpOnly``, ``SameSite=Strict`` cookie that other
  sites' pages can neither read nor make the browser send.
- Every session has its own **CSRF token**, put in every form; a POST without the session's
  own token is refused before its form is read any further (a token of another session is
  as good as none).
- The keystore password entered in a page unlocks the account **for that session only**: the
  unlocked key lives in the session's memory and is dropped on lock or when the server stops;
  the password itself is never kept.
- A ``Host`` header other than the loopback address the server listens on is refused (DNS
  rebinding would otherwise let a hostile page read the app's answers).

A browser wallet (EIP-1193) needs no unlocked key: the server prepares what to sign and the
wallet signs it, so a wallet session holds only the wallet's address.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from visdm.accounts import UnlockedAccount
from visdm.errors import VisdmError

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "RequestTooLargeError",
    "SessionError",
    "Sessions",
    "WebSession",
]

#: the session cookie's name
COOKIE = "visdm_session"
#: the hidden form field every POST carries
CSRF_FIELD = "csrf"
_MAX_SESSIONS = 64


class SessionError(VisdmError, PermissionError):
    """A request that acts came without a valid session, CSRF token or loopback host."""

    status_code = 403


class RequestTooLargeError(VisdmError, ValueError):
    """A request body is larger than the web app accepts."""

    status_code = 413


@dataclass
class WebSession:
    """One browser's session: its CSRF token and, once unlocked, the account it acts as."""

    sid: str
    csrf: str
    #: the local keystore account this session chose (``None``: the data directory's default)
    account_name: str | None = None
    #: the unlocked local account, while the session holds it
    unlocked: UnlockedAccount | None = field(default=None, repr=False)
    #: the address of the browser wallet that signs for this session (wallet mode)
    wallet: str | None = None
    #: one-line messages for the next page this session sees (after a POST's redirect)
    flashes: list[str] = field(default_factory=list)
    #: what a multi-step action keeps between its requests (a wallet challenge's nonce)
    pending: dict[str, str] = field(default_factory=dict)
    #: assets being added in the background, by job id (:mod:`._uploads`)
    uploads: dict[str, Any] = field(default_factory=dict)
    #: folders dropped on the page and staged for ``asset add``, by id (:mod:`._staging`)
    staged: dict[str, Any] = field(default_factory=dict)

    def check_csrf(self, token: object) -> None:
        """Refuse ``token`` unless it is this session's CSRF token."""
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), self.csrf.encode()
        ):
            raise SessionError(
                "this form's CSRF token is missing or belongs to another session: nothing was "
                "changed; reload the page and submit the form again"
            )


class Sessions:
    """The launch token and the sessions started with it (in memory: a restart logs out)."""

    def __init__(self, launch_token: str | None = None) -> None:
        self.launch_token = launch_token or secrets.token_urlsafe(24)
        self._by_id: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def start(self, token: str) -> WebSession:
        """A new session for a browser that presents the launch ``token``."""
        if not hmac.compare_digest(token.encode(), self.launch_token.encode()):
            raise SessionError(
                "wrong launch token: open the URL `visdm web` printed when it started"
            )
        session = WebSession(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32))
        with self._lock:
            if len(self._by_id) >= _MAX_SESSIONS:  # drop the oldest: its browser logs in again
                del self._by_id[next(iter(self._by_id))]
            self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None) -> WebSession | None:
        """The session with id ``sid``, or ``None``."""
        if not sid:
            return None
        with self._lock:
            return self._by_id.get(sid)

    def end(self, sid: str) -> None:
        """Forget a session and the key it held."""
        with self._lock:
            self._by_id.pop(sid, None)
