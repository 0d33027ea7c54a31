"""What a node says about its limits is a peer's input: anything but a well-formed answer from
that node falls back to the default limits, with the reason, and never raises."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.chain.contracts import ComputeNodeRecord
from visdm.compute._serve import ApiServer
from visdm.compute.api import create_app
from visdm.proposals._feasibility import (
    MAX_LIMITS_BYTES,
    _parse_terms,
    node_refusals,
    node_terms,
)
from visdm.types import Address

pytestmark = pytest.mark.unit

NODE = Address("0x" + "Ab" * 20)
GOOD = {
    "node": NODE,
    "chainId": 31337,
    "limits": {"maxEpochs": 2, "maxParams": 10_000, "allowDp": False},
    "pricePerGflopWei": "1000",
    "maxDuration": 600,
}


class _Answer:
    status = 200
    body = b""


@pytest.fixture
def node_api() -> Iterator[tuple[ComputeNodeRecord, type[_Answer]]]:
    answer = type("Answer", (_Answer,), {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    record = ComputeNodeRecord(
        NODE, NODE, 0, True, False, bytes(32), f"http://127.0.0.1:{server.server_port}/"
    )
    try:
        yield record, answer
    finally:
        server.shutdown()
        server.server_close()


def test_a_well_formed_answer_is_used(node_api: tuple[ComputeNodeRecord, type[_Answer]]) -> None:
    record, answer = node_api
    answer.body = json.dumps(GOOD).encode()
    terms = node_terms(record)
    assert terms.published and terms.why == ""
    assert terms.limits["max_epochs"] == 2 and terms.limits["allow_dp"] is False
    assert terms.limits["max_batch_size"] == 1024  # not sent: the default
    assert (terms.price_per_gflop, terms.max_duration) == (1000, 600)


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (404, b"{}", "answered HTTP 404"),
        (200, b"not json", "is not valid JSON"),
        (200, b"[" * 5000 + b"]" * 5000, "nests"),
        (200, b"x" * (MAX_LIMITS_BYTES + 1), f"sent more than {MAX_LIMITS_BYTES:,} bytes"),
        (200, b'{"limits": []}', "did not answer {'limits': {...}}"),
        (200, json.dumps({**GOOD, "node": "0x" + "11" * 20}).encode(), "answers as node"),
        (200, json.dumps({**GOOD, "limits": {"maxEpochs": -1}}).encode(), "maxEpochs='-1'"),
        (200, json.dumps({**GOOD, "limits": {"maxEpochs": True}}).encode(), "not a count"),
        (200, json.dumps({**GOOD, "limits": {"allowDp": "yes"}}).encode(), "non-boolean"),
    ],
)
def test_anything_else_falls_back_to_the_defaults_with_the_reason(
    node_api: tuple[ComputeNodeRecord, type[_Answer]], status: int, body: bytes, why: str
) -> None:
    record, answer = node_api
    answer.status, answer.body = status, body
    terms = node_terms(record)
    assert not terms.published
    assert why in terms.why, terms.why
    assert terms.limits["max_epochs"] == 50  # NodeLimits' default


def test_a_node_that_does_not_answer_falls_back() -> None:
    record = ComputeNodeRecord(NODE, NODE, 0, True, False, bytes(32), "http://127.0.0.1:9")
    terms = node_terms(record, timeout_s=2)
    assert not terms.published and "did not answer (ConnectError)" in terms.why
    odd = ComputeNodeRecord(NODE, NODE, 0, True, False, bytes(32), "not a url")
    assert "registered no HTTP endpoint" in node_terms(odd).why


def test_refusals_name_every_limit_and_the_duration(
    node_api: tuple[ComputeNodeRecord, type[_Answer]],
) -> None:
    record, answer = node_api
    answer.body = json.dumps({**GOOD, "limits": {"maxSamples": 10}, "maxDuration": 9}).encode()
    spec = {
        "architecture": "mlp",
        "input_shape": [1, 8, 8],
        "num_classes": 2,
        "epochs": 3,
        "batch_size": 4,
        "optimizer": "adam",
        "learning_rate": 0.01,
        "hidden": [8],
    }
    refusals, notes = node_refusals(
        spec, record, samples=11, min_batch_size=1, max_training_period=5, terms=node_terms(record)
    )
    assert refusals == [
        "the selection has 11 samples, over the node's max_samples=10: select fewer",
        "the node promises jobs of up to 9 s but the market allows at most 5 s, so "
        "startTraining would refuse its quotes: choose another node",
    ]
    assert notes[0] == f"checked the spec against the limits compute node {NODE} publishes"


def test_the_node_api_publishes_its_limits_only_when_it_quotes(tmp_path: Path) -> None:
    server = ApiServer(create_app(None, tmp_path / "jobs.sqlite3"), "127.0.0.1", 0, tmp_path / "a")
    url = server.start()
    try:
        answer = httpx.get(url + "/limits", timeout=60)
    finally:
        server.stop()
    assert answer.status_code == 503 and answer.json()["error"] == "NotQuoting"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(
    limits=st.dictionaries(
        st.sampled_from(["maxEpochs", "maxParams", "allowDp", "maxSamples", "x"]), _JSON
    ),
    extra=_JSON,
)
def test_any_answer_shape_is_a_fallback_or_terms_never_an_exception(
    limits: dict[str, object], extra: object
) -> None:
    record = ComputeNodeRecord(NODE, NODE, 0, True, False, bytes(32), "http://127.0.0.1:9")
    for answer in ({**GOOD, "limits": limits, "maxDuration": extra}, extra):
        problem, terms = _parse_terms(answer, record)
        if terms is None:
            assert problem and "\n" not in problem
        else:
            assert all(isinstance(terms.limits[k], int) for k in ("max_epochs", "max_params"))
            assert terms.max_duration is None or terms.max_duration >= 0
