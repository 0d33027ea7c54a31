"""Careless settings: a data directory that cannot hold files, and chain URLs that are not an
Ethereum JSON-RPC node (a web page, other JSON, a websocket, ``file://``, garbage) are each a
one-line ``VisdmError`` that says what to pass instead — never a traceback."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from visdm.cli import main
from visdm.config import Settings, check_rpc_url
from visdm.errors import ChainNotRunningError, ConfigError
from visdm.session import connect

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc/passwd", "is a file:// URL"),
        ("ws://127.0.0.1:8545", "is a websocket endpoint"),
        ("wss://node.example", "is a websocket endpoint"),
        ("garbage", "is not a URL"),
        ("127.0.0.1:8545", "is not a URL"),
        ("localhost:8545", "is not a URL"),
        ("http://", "names no host"),
        ("http://[::1", "cannot be parsed"),
        ("http://host:99999", "cannot be parsed"),
        ("http://host:0", "names port 0"),
    ],
)
def test_chain_urls_that_cannot_be_json_rpc(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        check_rpc_url(url)
    assert "--rpc-url http://127.0.0.1:8545" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545", "https://rpc.example.org/v1/key"])
def test_http_urls_pass(url: str) -> None:
    assert check_rpc_url(url) == url


@pytest.mark.parametrize("home", ["/proc/visdm", "/proc/self", "/sys/visdm", "/dev/null"])
def test_a_home_on_a_virtual_file_system_is_refused(home: str) -> None:
    with pytest.raises(ConfigError, match="a virtual file system that cannot hold files"):
        Settings(home=Path(home))


def test_a_home_that_cannot_hold_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        Settings(home=tmp_path / "file")
    with pytest.raises(ConfigError, match="contains a NUL byte"):
        Settings(home=Path("/tmp/a\0b"))
    os.symlink("/proc", tmp_path / "link")  # through a link is still /proc
    with pytest.raises(ConfigError, match="inside /proc"):
        Settings(home=tmp_path / "link" / "visdm")
    # a tmpfs under /dev and any ordinary folder are fine
    assert Settings(home=Path("/dev/shm/visdm-test")).home == Path("/dev/shm/visdm-test")
    assert Settings(home=tmp_path / "new").home == tmp_path / "new"


def test_the_cli_refuses_them_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, says in (
        (["--home", "/proc/x", "account", "list"], "inside /proc"),
        (["--home", str(tmp_path), "--rpc-url", "ws://x:1", "asset", "list"], "websocket"),
        (["--home", str(tmp_path), "--rpc-url", "nonsense", "asset", "show", "1"], "not a URL"),
    ):
        monkeypatch.delenv("VISDM_HOME", raising=False)
        monkeypatch.delenv("VISDM_ACCOUNT", raising=False)
        with pytest.raises(SystemExit) as done:
            main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert done.value.code == 2, err
        assert len(err) == 1 and err[0].startswith("error: ") and says in err[0]


class _Server(http.server.BaseHTTPRequestHandler):
    """Answers every POST with ``self.server.reply``: (status, body)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, body = self.server.reply  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (200, b"<html>a web page</html>", "JSONDecodeError"),
        (200, b'{"foo": 1}', "BadResponseFormat"),
        (200, b'{"jsonrpc": "2.0", "id": 0, "result": "zzz"}', "ValueError"),
        (404, b"not found", "HTTPError: 404"),
        (
            200,
            json.dumps(
                {"jsonrpc": "2.0", "id": 0, "error": {"code": -32601, "message": "no"}}
            ).encode(),
            "MethodUnavailable",
        ),
    ],
)
def test_a_server_that_is_not_a_json_rpc_node(
    server: http.server.HTTPServer, tmp_path: Path, status: int, body: bytes, says: str
) -> None:
    server.reply = (status, body)  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with pytest.raises(ChainNotRunningError) as info:
        connect(Settings(home=tmp_path, rpc_url=url, rpc_timeout_s=5))
    message = str(info.value)
    assert message.startswith(f"the server at {url} does not answer like an Ethereum JSON-RPC")
    assert says in message and "\n" not in message
    assert "point --rpc-url or VISDM_RPC_URL at a node's JSON-RPC URL" in message
