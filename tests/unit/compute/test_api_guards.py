"""What a request to the node's API may cost, without a chain: body, nesting and number limits,
per-account token buckets, single-flight LRU caches, and public job fields."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from visdm.compute._jobs import JobJournal
from visdm.compute._serve import ApiServer, OnceCache, TokenBuckets
from visdm.compute.api import ApiLimits, create_app
from visdm.errors import (
    ChainNotRunningError,
    ChainTimeoutError,
    ConfigError,
    InvalidProposalError,
    StorageUnavailableError,
)
from visdm.market.quotes import CONSUMER_HEADER, ISSUED_AT_HEADER, SIGNATURE_HEADER

pytestmark = pytest.mark.unit

NESTED = "[" * 100_000 + "]" * 100_000
SIGNED_FIELDS = {
    "consumer": "0x" + "12" * 20,
    "issuedAt": 1_700_000_000,
    "signature": "0x" + "ab" * 65,
}


def wait_until(what: str, condition: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds (a bounded wait for other threads, not a timing check)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# --- the LRU single-flight cache ----------------------------------------------------------
def test_the_cache_never_holds_more_than_its_bound() -> None:
    cache: OnceCache[int, int] = OnceCache(8)
    for key in range(1000):
        assert cache.get(key, functools.partial(pow, key, 2)) == key * key
        assert len(cache) <= 8
    assert len(cache) == 8


def test_the_least_recently_used_answer_goes_first() -> None:
    cache: OnceCache[str, str] = OnceCache(3)
    computed: list[str] = []

    def compute(key: str) -> Callable[[], str]:
        def run() -> str:
            computed.append(key)
            return key.upper()

        return run

    for key in "abc":
        cache.get(key, compute(key))
    cache.get("a", compute("a"))  # a is fresh again
    cache.get("d", compute("d"))  # evicts b
    cache.get("a", compute("a"))
    cache.get("b", compute("b"))
    assert computed == ["a", "b", "c", "d", "b"]


def test_concurrent_callers_share_one_computation() -> None:
    cache: OnceCache[str, int] = OnceCache(4)
    calls: list[int] = []
    release = threading.Event()

    def slow() -> int:
        calls.append(1)
        release.wait(60)
        return 42

    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(cache.get, "spec", slow) for _ in range(8)]
        wait_until("seven callers to wait", lambda: cache.waiting("spec") == 7)
        release.set()
        assert [a.result() for a in answers] == [42] * 8
    assert calls == [1]
    assert cache.waiting("spec") == 0


def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache: OnceCache[str, int] = OnceCache(4)
    release = threading.Event()

    def failing() -> int:
        release.wait(60)
        raise ConnectionError("the chain went away")

    with ThreadPoolExecutor(3) as pool:
        answers = [pool.submit(cache.get, "p", failing) for _ in range(3)]
        wait_until("two callers to wait", lambda: cache.waiting("p") == 2)
        release.set()
        for answer in answers:
            with pytest.raises(ConnectionError, match="went away"):
                answer.result()
    assert len(cache) == 0
    assert cache.get("p", lambda: 7) == 7  # the next caller tries again


# --- token buckets ------------------------------------------------------------------------
def test_a_bucket_allows_its_burst_then_one_request_per_interval() -> None:
    now = [1000.0]
    buckets = TokenBuckets(6, 2, accounts=10, clock=lambda: now[0])  # one per 10 s
    assert buckets.take("alice") == 0.0
    assert buckets.take("alice") == 0.0
    assert buckets.take("alice") == pytest.approx(10.0)
    assert buckets.take("bob") == 0.0  # each account has its own bucket
    now[0] += 4
    assert buckets.take("alice") == pytest.approx(6.0)  # a refused request spends nothing
    now[0] += 6
    assert buckets.take("alice") == 0.0
    assert buckets.take("alice") == pytest.approx(10.0)
    now[0] += 3600
    assert [buckets.take("alice") for _ in range(3)][:2] == [0.0, 0.0]  # capped at the burst


def test_buckets_remember_a_bounded_number_of_accounts() -> None:
    buckets = TokenBuckets(10, 3, accounts=5, clock=lambda: 0.0)
    for n in range(100):
        buckets.take(f"0x{n:040x}")
        assert len(buckets) <= 5


@pytest.mark.parametrize(
    "changes",
    [{"max_body_bytes": 0}, {"quote_burst": -1}, {"quotes_per_minute": 0.0}, {"freshness_s": True}],
)
def test_limits_must_be_positive(changes: dict[str, object]) -> None:
    (name,) = changes
    with pytest.raises(ConfigError, match=f"ApiLimits.{name} must be a positive"):
        ApiLimits(**changes)  # type: ignore[arg-type]


# --- refusals before any work -------------------------------------------------------------
@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.sqlite3"
    journal = JobJournal(path)
    try:
        journal.enqueue(5, deadline=2_000_000_000)
        journal.update(
            5, state="failed", progress=0.5, message="sandbox stderr: /tmp/job/secret.png"
        )
    finally:
        journal.close()
    return path


@contextmanager
def serve(journal_path: Path, limits: ApiLimits | None = None) -> Iterator[httpx.Client]:
    """A node that does not quote, served by uvicorn on a free loopback port."""
    app = create_app(None, journal_path, limits=limits)
    server = ApiServer(app, "127.0.0.1", 0, journal_path.parent / "api.json")
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        server.stop()


@pytest.fixture
def api(journal_path: Path) -> Iterator[httpx.Client]:
    with serve(journal_path) as client:
        yield client


def refusal(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    return str(body["detail"])


@pytest.mark.attack
def test_an_oversized_body_is_refused_unread(api: httpx.Client) -> None:
    detail = refusal(api.post("/quotes", content=b"{" + b" " * 5000 + b"}"), 413, "BodyTooLarge")
    assert "over 4,096 bytes" in detail

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"proposalId": 1,'
        yield b" " * 8192

    refusal(api.post("/quotes", content=chunks()), 413, "BodyTooLarge")
    assert api.get("/health").json() == {"ok": True}


@pytest.mark.attack
def test_deeply_nested_json_is_refused_and_the_node_keeps_serving(api: httpx.Client) -> None:
    refusal(api.post("/quotes", content=NESTED.encode()), 413, "BodyTooLarge")
    small = "[" * 1000 + "]" * 1000  # within the body limit
    detail = refusal(api.post("/quotes", content=small.encode()), 400, "InvalidRequest")
    assert "deeper than 8 levels" in detail
    quoted = '{"proposalId": 1, "consumer": "' + "[" * 100 + '"}'  # brackets in a string
    assert "deeper" not in refusal(api.post("/quotes", content=quoted), 400, "InvalidRequest")
    assert api.get("/health").json() == {"ok": True}


@pytest.mark.attack
def test_nested_json_kills_a_node_that_parses_it() -> None:
    """The defence switched off: with both limits lifted the JSON parser overflows the C stack
    (py_ecc raised the recursion limit) and takes the whole node down; with them it answers."""
    code = (
        "import sys, tempfile\n"
        "from pathlib import Path\n"
        "import httpx\n"
        "from visdm.compute._serve import ApiServer\n"
        "from visdm.compute.api import ApiLimits, create_app\n"
        "lifted = ApiLimits(max_body_bytes=1 << 20, max_json_depth=1 << 20)\n"
        "limits = lifted if sys.argv[1] == 'off' else ApiLimits()\n"
        "home = Path(tempfile.mkdtemp())\n"
        "app = create_app(None, home / 'jobs.sqlite3', limits=limits)\n"
        "url = ApiServer(app, '127.0.0.1', 0, home / 'api.json').start()\n"
        "body = ('[' * 100000 + ']' * 100000).encode()\n"
        "print(httpx.post(url + '/quotes', content=body, timeout=60).status_code, flush=True)\n"
    )
    run = [sys.executable, "-c", code]
    defended = subprocess.run([*run, "on"], capture_output=True, check=False, timeout=300)
    assert (defended.returncode, defended.stdout.strip()) == (0, b"413"), defended.stderr[-800:]
    undefended = subprocess.run([*run, "off"], capture_output=True, check=False, timeout=300)
    assert undefended.returncode < 0, undefended.stdout  # killed by a signal: the node is gone


@pytest.mark.attack
def test_huge_numbers_are_refused_with_a_4xx_that_names_the_problem(
    api: httpx.Client, journal_path: Path
) -> None:
    def quote_body(digits: int) -> str:
        return '{"proposalId": ' + "9" * digits + "}"

    # past Python's 4,300-digit limit int() raises: once a 500, now never parsed at all
    refusal(api.post("/quotes", content=quote_body(4301)), 413, "BodyTooLarge")
    detail = refusal(api.post("/quotes", content=quote_body(4000)), 400, "InvalidRequest")
    assert "proposalId has 4,000 digits" in detail
    with serve(journal_path, ApiLimits(max_body_bytes=16_384)) as roomy:
        detail = refusal(roomy.post("/quotes", content=quote_body(4301)), 400, "InvalidRequest")
        assert "4,301 digits" in detail
    detail = refusal(api.get("/jobs/" + "9" * 4301), 400, "InvalidRequest")
    assert "not an integer from 1 to 2^63-1" in detail and "4,301 characters" in detail
    for bad in ("0", str(2**63), "-1", "abc", "1.5", "\u0661"):
        refusal(api.get(f"/jobs/{bad}"), 400, "InvalidRequest")
    assert api.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON: it must be UTF-8"),
        (b"[1, 2]", "body: Input should be"),
        (b'{"proposalId": 1}', "consumer: Field required"),
        (b'{"proposalId": "1", "consumer": "x", "issuedAt": 1, "signature": "0x"}', "proposalId"),
        (
            b'{"proposalId": 1, "consumer": "0x' + b"12" * 20 + b'zz", "issuedAt": 1, '
            b'"signature": "0x' + b"ab" * 65 + b'"}',
            "consumer: String should match pattern",
        ),
        (
            b'{"proposalId": 1, "consumer": "0x' + b"12" * 20 + b'", "issuedAt": 1, '
            b'"signature": "0x' + b"ab" * 66 + b'"}',
            "signature: String should match pattern",
        ),
    ],
)
def test_malformed_bodies_are_400(api: httpx.Client, body: bytes, detail: str) -> None:
    assert detail in refusal(api.post("/quotes", content=body), 400, "InvalidRequest")


def test_a_well_formed_request_reaches_a_node_that_does_not_quote(api: httpx.Client) -> None:
    refusal(api.post("/quotes", json={"proposalId": 1, **SIGNED_FIELDS}), 503, "NotQuoting")


# --- job status ---------------------------------------------------------------------------
@pytest.mark.attack
def test_strangers_see_only_the_public_fields_of_a_job(api: httpx.Client) -> None:
    public = {"proposalId": 5, "state": "failed", "progress": 0.5, "attempts": 0}
    job = api.get("/jobs/5")
    assert job.status_code == 200
    assert job.json() == {**public, "deadline": 2_000_000_000}
    assert "secret" not in job.text
    listed = api.get("/jobs")
    assert listed.json() == [job.json()]
    refusal(api.get("/jobs/6"), 404, "UnknownJob")


def test_signature_headers_must_come_together_and_well_formed(api: httpx.Client) -> None:
    detail = refusal(
        api.get("/jobs/5", headers={CONSUMER_HEADER: "0x" + "12" * 20}), 400, "InvalidRequest"
    )
    assert f"missing {ISSUED_AT_HEADER}, {SIGNATURE_HEADER}" in detail
    headers = {CONSUMER_HEADER: "0x12", ISSUED_AT_HEADER: "9" * 4301, SIGNATURE_HEADER: "0x00"}
    detail = refusal(api.get("/jobs/5", headers=headers), 400, "InvalidRequest")
    for name in (CONSUMER_HEADER, ISSUED_AT_HEADER, SIGNATURE_HEADER):
        assert name in detail
    good = {
        CONSUMER_HEADER: str(SIGNED_FIELDS["consumer"]),
        ISSUED_AT_HEADER: "1700000000",
        SIGNATURE_HEADER: str(SIGNED_FIELDS["signature"]),
    }
    refusal(api.get("/jobs/5", headers=good), 503, "NotVerifying")  # no chain to check against


def test_unknown_routes_and_methods_answer_in_the_same_json(api: httpx.Client) -> None:
    assert refusal(api.get("/admin"), 404, "NotFound") == "Not Found"
    refusal(api.get("/quotes"), 405, "MethodNotAllowed")


class _FailingQuotes:
    """A quote service whose every quote fails with ``error``."""

    limits = ApiLimits()

    def __init__(self, error: Exception) -> None:
        self.error = error

    def signed_quote(self, *_: object) -> dict[str, object]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "retry"),
    [
        (ChainNotRunningError("no chain answers at http://127.0.0.1:9"), 503, "2"),
        (ChainTimeoutError("the chain did not answer in time"), 503, "2"),
        (StorageUnavailableError("the store is away"), 503, "2"),
        (InvalidProposalError("the proposal document is not signed by its consumer"), 502, None),
    ],
)
def test_an_outage_at_the_node_says_when_to_ask_again(
    journal_path: Path, error: Exception, status: int, retry: str | None
) -> None:
    """The node's own chain or store away is a moment's trouble: 503 with ``Retry-After``,
    which ``visdm train`` waits out; anything else the node refuses stays a 502."""
    app = create_app(_FailingQuotes(error), journal_path)  # type: ignore[arg-type]
    server = ApiServer(app, "127.0.0.1", 0, journal_path.parent / "api.json")
    url = server.start()
    try:
        answer = httpx.post(f"{url}/quotes", json={"proposalId": 1, **SIGNED_FIELDS}, timeout=30)
    finally:
        server.stop()
    assert answer.status_code == status
    assert answer.headers.get("Retry-After") == retry
    assert answer.json() == {"error": type(error).__name__, "detail": str(error)}


def test_a_nodes_retry_after_is_bounded() -> None:
    from visdm.market.workflow import _retry_after

    assert _retry_after("2") == 2.0
    assert _retry_after("86400") == 5.0  # a peer's header never stalls the caller long
    assert _retry_after("-3") == 0.1
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0
