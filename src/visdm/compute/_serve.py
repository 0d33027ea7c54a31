"""Serve the node's HTTP API in a background thread of ``visdm node serve``."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI

from visdm.errors import ConfigError

__all__ = ["ApiServer", "api_address"]

log = logging.getLogger("visdm.node.api")
_START_TIMEOUT_S = 20.0


def api_address(endpoint: str, host: str | None, port: int | None) -> tuple[str, int]:
    """Where to listen: explicit ``host``/``port`` win, else the endpoint registered on chain,
    else loopback on a free port."""
    parsed = urlsplit(endpoint) if endpoint else None
    chosen_host = host or (parsed.hostname if parsed and parsed.hostname else "127.0.0.1")
    chosen_port = port if port is not None else (parsed.port if parsed and parsed.port else 0)
    return chosen_host, chosen_port


class ApiServer:
    """uvicorn in a daemon thread; the bound URL is written to ``info_file`` once listening."""

    def __init__(self, app: FastAPI, host: str, port: int, info_file: Path) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        )
        self.info_file = info_file
        self.thread = threading.Thread(target=self.server.run, name="node-api", daemon=True)
        self.url = ""

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the node's HTTP API did not start (is the port taken?)")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.info_file.write_text(json.dumps({"url": self.url}))
        log.info("node API listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.info_file.unlink(missing_ok=True)
