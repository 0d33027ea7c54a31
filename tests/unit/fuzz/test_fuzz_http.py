"""Fuzzing the compute node's HTTP API in process: every body ``POST /quotes`` can get, every
path and signed-header set ``GET /jobs/...`` can get, is answered with a 4xx (or the 503 of a
node that does not quote) and a one-line JSON refusal — never a 500 or a dead worker. The
guards themselves (body size, nesting, token buckets) are tested in
``tests/unit/compute/test_api_guards.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from visdm.market.quotes import CONSUMER_HEADER, ISSUED_AT_HEADER, SIGNATURE_HEADER

from ._harness import fuzz
from ._strategies import (
    HOSTILE_TEXT,
    deep_json,
    encoded,
    json_values,
    mangled,
    token_spliced,
    with_replaced_path,
)
from ._targets import api_body, api_job, node_api

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with node_api() as client:
        yield client


REQUEST = {
    "proposalId": 7,
    "consumer": "0x" + "12" * 20,
    "issuedAt": 1_700_000_000,
    "signature": "0x" + "ab" * 65,
}


@fuzz(120)
@given(
    st.one_of(
        with_replaced_path(REQUEST).map(encoded),
        with_replaced_path(REQUEST).map(encoded).flatmap(mangled),
        st.just(json.dumps(REQUEST)).flatmap(token_spliced),
        deep_json(),
        json_values().map(encoded),
        st.binary(max_size=300),
    )
)
def test_quote_request_bodies(api: httpx.Client, body: bytes) -> None:
    api_body(api, body)


_HEADER_VALUE = st.one_of(
    st.sampled_from(["0x" + "12" * 20, "1700000000", "0x" + "ab" * 65, "", "9" * 30]),
    # what a client can send at all: printable ASCII without surrounding spaces
    HOSTILE_TEXT.filter(lambda t: t.isascii() and t.isprintable() and t == t.strip()),
)


@fuzz(80)
@given(
    st.one_of(
        st.sampled_from(["7", "0", "-1", "9" * 30, "1.5", "%00", "..", "\u0661", "7/x"]),
        st.text(
            alphabet=st.characters(
                min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"
            ),
            max_size=30,
        ),
    ),
    st.dictionaries(
        st.sampled_from([CONSUMER_HEADER, ISSUED_AT_HEADER, SIGNATURE_HEADER]),
        _HEADER_VALUE,
    ),
)
def test_job_queries(api: httpx.Client, path: str, headers: dict[str, str]) -> None:
    api_job(api, path, headers)
