"""KuboStore's failure paths that a healthy node cannot produce on demand.

A node that is down (a closed loopback port), one that accepts connections but never answers (a
listening socket nobody reads), and a node that lies (a scripted ``httpx.MockTransport``
returning the wrong CID or the wrong bytes, or errors in Kubo's JSON shape). The happy paths
and real-node behaviour are tested against js-ipfs in ``tests/integration/storage``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from visdm.errors import (
    BlobNotFoundError,
    CidMismatchError,
    ConfigError,
    StorageError,
    StorageUnavailableError,
)
from visdm.storage import KuboStore, compute_cid

pytestmark = pytest.mark.unit

DATA = b"visdm kubo unit test"
CID = compute_cid(DATA)

Handler = Callable[[httpx.Request], httpx.Response]


def kubo_error(message: str, status: int = 500) -> httpx.Response:
    return httpx.Response(status, json={"Message": message, "Code": 0, "Type": "error"})


def scripted(handler: Handler) -> tuple[KuboStore, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    store = KuboStore("http://ipfs.test:5001/api/v0/", transport=httpx.MockTransport(record))
    return store, seen


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never sends a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("method", ["get", "has", "pin", "unpin", "is_pinned"])
def test_server_down_is_storage_unavailable_naming_the_url(closed_port: int, method: str) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    with KuboStore(url) as store, pytest.raises(StorageUnavailableError) as info:
        getattr(store, method)(CID)
    assert url in str(info.value)
    assert "ipfs daemon" in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_put_to_a_server_that_is_down(closed_port: int) -> None:
    with (
        KuboStore(f"http://127.0.0.1:{closed_port}") as store,
        pytest.raises(StorageUnavailableError),
    ):
        store.put(DATA)


def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    with KuboStore(url, timeout_s=0.3) as store, pytest.raises(StorageUnavailableError) as info:
        store.get(CID)
    assert url in str(info.value)
    assert "did not answer 'cat' within 0.3 s" in str(info.value)


def test_add_sends_kubo_default_import_options_explicitly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=json.dumps({"Name": "blob", "Hash": CID, "Size": "20"}))

    store, seen = scripted(handler)
    assert store.put(DATA, pin=True) == CID
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/api/v0/add"
    params = dict(request.url.params)
    assert params["cid-version"] == "1"
    assert params["raw-leaves"] == "true"
    assert params["chunker"] == "size-262144"
    assert params["hash"] == "sha2-256"
    assert params["pin"] == "true"
    assert DATA in request.read()


def test_a_node_that_chunks_differently_is_refused() -> None:
    other = compute_cid(DATA + b"!")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=json.dumps({"Name": "blob", "Hash": other}) + "\n")

    store, _ = scripted(handler)
    with pytest.raises(CidMismatchError, match=other) as info:
        store.put(DATA)
    assert CID in str(info.value)


def test_cat_returning_wrong_bytes_is_cid_mismatch() -> None:
    store, seen = scripted(lambda request: httpx.Response(200, content=DATA + b"tampered"))
    with pytest.raises(CidMismatchError, match=CID):
        store.get(CID)
    assert dict(seen[0].url.params)["arg"] == CID


def test_get_parses_and_canonicalises_the_cid_before_asking() -> None:
    store, seen = scripted(lambda request: httpx.Response(200, content=DATA))
    assert store.get(CID.upper()) == DATA
    assert dict(seen[0].url.params)["arg"] == CID


@pytest.mark.parametrize(
    ("method", "message", "error"),
    [
        ("get", "block was not found locally (offline): ipld: could not find X", BlobNotFoundError),
        ("get", "Failed to cat file: request timed out", BlobNotFoundError),
        ("get", "context deadline exceeded", BlobNotFoundError),
        ("get", "something broke", StorageError),
        ("pin", "pin: block was not found locally (offline)", BlobNotFoundError),
        ("pin", "Failed to add pin: request timed out", BlobNotFoundError),
        ("pin", "out of disk", StorageError),
        ("unpin", "not pinned or pinned indirectly", BlobNotFoundError),
        ("unpin", "repo locked", StorageError),
    ],
)
def test_kubo_error_messages_map_onto_the_error_tree(
    method: str, message: str, error: type[StorageError]
) -> None:
    store, _ = scripted(lambda request: kubo_error(message))
    with pytest.raises(error, match=CID) as info:
        getattr(store, method)(CID)
    assert type(info.value) is error


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("block was not found locally (offline)", False),
        ("Failed to get block stats: request timed out", False),
    ],
)
def test_has_is_false_for_absent_blocks(message: str, expected: bool) -> None:
    store, seen = scripted(lambda request: kubo_error(message))
    assert store.has(CID) is expected
    assert dict(seen[0].url.params)["offline"] == "true"


def test_has_does_not_hide_other_errors() -> None:
    store, _ = scripted(lambda request: kubo_error("datastore closed"))
    with pytest.raises(StorageError, match="datastore closed"):
        store.has(CID)


@pytest.mark.parametrize("status", [403, 404, 405])
def test_a_url_that_is_not_an_rpc_api_says_so(status: int) -> None:
    store, _ = scripted(lambda request: httpx.Response(status, text="nope"))
    with pytest.raises(StorageError, match="Kubo RPC API"):
        store.get(CID)


def test_add_without_a_cid_in_the_answer() -> None:
    store, _ = scripted(lambda request: httpx.Response(200, text="{}"))
    with pytest.raises(StorageError, match="without a CID"):
        store.put(DATA)


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [("127.0.0.1:5001", {}), ("ftp://x", {}), ("http://x", {"timeout_s": 0})],
)
def test_bad_settings_are_config_errors(url: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        KuboStore(url, **kwargs)
