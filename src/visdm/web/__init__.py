"""``visdm web``: the Dapp, a local web app for providers, consumers, node operators and
governance, over the same SDK the CLI uses.

Server-rendered pages (FastAPI + Jinja2) with htmx vendored under ``static/`` (no JavaScript
build step) and server-sent events for a proposal's live status. Every page reads without a
session or wallet; every action is a POST that needs the session the launch URL starts and its
CSRF token (:mod:`._auth`). Routes per actor: :mod:`.public`, :mod:`.account`,
:mod:`.provider`, :mod:`.consumer`, :mod:`.operator`.

::

    app = create_app(Settings.from_env())          # an ASGI app, e.g. for TestClient
    serve(Settings.from_env(), port=8765)          # bind 127.0.0.1, print the launch URL
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from visdm._lazy import lazy_exports
from visdm.config import Settings
from visdm.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from ._app import create_app
    from ._auth import Sessions

__all__ = [
    "BackgroundServer",
    "LaunchInfo",
    "Sessions",
    "create_app",
    "launch_url",
    "play_and_serve",
    "serve",
]

# FastAPI loads with the app, not with the package: `visdm web`'s command is registered on every
# CLI start-up
__getattr__ = lazy_exports(__name__, {"create_app": "._app", "Sessions": "._auth"})

#: the only address the app binds to
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class LaunchInfo:
    """Where the app listens and the URL (with the launch token) that starts a session."""

    port: int
    url: str


def launch_url(port: int, token: str) -> str:
    """``http://127.0.0.1:PORT/login?token=TOKEN``."""
    return f"http://{HOST}:{port}/login?token={token}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def serve(
    settings: Settings,
    *,
    port: int = 0,
    index_url: str | None = None,
    on_ready: Callable[[LaunchInfo], None] | None = None,
) -> None:
    """Serve the app on 127.0.0.1:``port`` (0: a free one) until interrupted; ``on_ready``
    gets the launch URL before the server starts."""
    import uvicorn

    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidInputError(f"--port must be 0 to 65535, got {port!r}")
    chosen = port or _free_port()
    from ._app import create_app
    from ._auth import Sessions

    sessions = Sessions()
    app = create_app(settings, sessions=sessions, index_url=index_url)
    info = LaunchInfo(port=chosen, url=launch_url(chosen, sessions.launch_token))
    if on_ready is not None:
        on_ready(info)
    config = uvicorn.Config(
        app,
        host=HOST,
        port=chosen,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        ws="none",
    )
    uvicorn.Server(config).run()


class BackgroundServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread (tests, benchmarks and
    ``demo --serve``); :meth:`stop` ends it."""

    def __init__(self, app: Any, *, port: int = 0) -> None:
        import uvicorn

        self.port = port or _free_port()
        self.url = f"http://{HOST}:{self.port}"
        config = uvicorn.Config(
            app,
            host=HOST,
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=2,
            ws="none",  # no websockets here, and their legacy module warns on import
        )
        config.access_log = False
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="visdm-web", daemon=True)

    def start(self, *, timeout_s: float = 30.0) -> str:
        """Start serving; returns the base URL once the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the web app did not start on {self.url} (is the port taken?)")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread (open event streams are cut)."""
        self._server.should_exit = True
        self._thread.join(timeout=10)


from ._demo import play_and_serve  # noqa: E402 - it uses serve and LaunchInfo, defined above
