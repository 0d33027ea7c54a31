"""Every parser of untrusted input, as a function of raw bytes that checks the oracle.

Each target hands the bytes to the real parser (through a file where the parser reads files)
and asserts, through :func:`._harness.outcome`, success or a one-line documented error; on
success it checks what the success promises (a round trip, a bound, an 8-bit image). The
Hypothesis tests feed them structured and random inputs; ``atheris_main`` feeds them
coverage-guided ones. Nothing here is fuzz-specific parsing code: only the real entry points.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from eth_utils.crypto import keccak

from visdm.errors import InvalidImageError, VisdmError

from ._harness import HANG_S, outcome, refused

Target = Callable[[bytes], None]

_WORK = Path(tempfile.mkdtemp(prefix="visdm-fuzz-"))


def _file(name: str, data: bytes) -> Path:
    path = _WORK / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- JSON ------------------------------------------------------------------------------------
#: recursion a syntax error costs on top of the levels (measured: 3, for an unclosed object)
_ERROR_PATH = 4


def _loads_under(limit: int, text: str) -> bool:
    """Whether ``json.loads(text)`` finishes (parsed or refused) under recursion ``limit``."""
    previous = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(limit)
    except RecursionError:  # the limit is below the depth we are already at
        return False
    try:
        json.loads(text)
    except RecursionError:
        return False
    except ValueError:
        pass
    finally:
        sys.setrecursionlimit(previous)
    return True


def json_recursion_within_estimate(text: str, raw: bytes) -> None:
    """The depth the guard measures bounds how deep ``json.loads`` recurses: with that many
    levels of headroom (one level's cost measured here, from the same frame) and the constant
    cost of raising a syntax error, the parser never runs out of it. An under-count grows with
    the nesting it misses, so the constant hides none worth finding."""
    from visdm.jsonsafe import nesting_depth

    frame, base = sys._getframe(), 0
    while frame is not None:
        frame, base = frame.f_back, base + 1  # type: ignore[assignment]
    depth = nesting_depth(raw)
    if depth > 1000:  # far past any limit; and the probe itself would overflow the C stack
        return
    one_level = next(n for n in range(base, base + 1000) if _loads_under(n, "[0]"))
    assert _loads_under(one_level + max(depth, 1) - 1 + _ERROR_PATH, text), (
        f"nesting_depth {depth} under-counts {raw[:80]!r}"
    )


def json_document(data: bytes) -> None:
    from visdm.jsonsafe import load_untrusted_json

    result = outcome(lambda: load_untrusted_json(data, what="a fuzzed document", max_bytes=1 << 20))
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        assert refused(result), "bytes that are not UTF-8 were accepted"
        return
    json_recursion_within_estimate(text, data)
    if not refused(result):
        # what the guard accepts, the standard parser reads the same way
        assert json.loads(text) == result


# --- documents read from files ---------------------------------------------------------------
def model_spec(data: bytes) -> None:
    from visdm.training import canonical_spec_json, parse_model_spec

    spec = outcome(lambda: parse_model_spec(data))
    if not refused(spec):
        assert parse_model_spec(canonical_spec_json(spec)) == spec  # type: ignore[arg-type]


def licence(data: bytes) -> None:
    from visdm.assets import _checked_terms, load_licence
    from visdm.manifest import parse_manifest, write_manifest

    path = _file("licence.json", data)
    loaded = outcome(lambda: load_licence(path))
    if refused(loaded):
        return
    # what `asset add` checks before it encrypts anything; what passes must go into the signed
    # manifest and come back unchanged
    terms = outcome(lambda: _checked_terms(loaded, ["local"]))  # type: ignore[arg-type]
    if refused(terms):
        return
    manifest = dataclasses.replace(_manifest_seed(), licence=terms)
    assert parse_manifest(write_manifest(manifest)).manifest.licence == terms


def keystore(data: bytes) -> None:
    from visdm.accounts import account_info, scan_accounts

    folder = _WORK / "keystores"
    _file("keystores/fuzz.json", data)
    info = outcome(lambda: account_info(folder, "fuzz"))
    found, unusable = scan_accounts(folder)  # one bad file is listed, never raised
    assert len(found) + len(unusable) == 1
    if refused(info):
        assert [u.path.name for u in unusable] == ["fuzz.json"]
    for bad in unusable:
        assert len(bad.reason.splitlines()) == 1


def labels_csv(data: bytes) -> None:
    from visdm.ingest._validate import _label_problem, _read_labels

    path = _file("labels/labels.csv", data)
    read = outcome(lambda: _read_labels(path, known={"a.png", "dir/b.png", "C.png"}))
    if refused(read):
        return
    rows, problems = read  # type: ignore[misc]
    for problem in problems:
        assert len(problem.reason.splitlines()) == 1, problem
    for name, row in rows.items():
        if row.problem is None:  # a usable row: a file that exists, a valid label
            assert name in {"a.png", "dir/b.png", "C.png"}, name
            assert _label_problem(row.label) is None, row
        else:
            assert len(row.problem.splitlines()) == 1, row


# --- images ----------------------------------------------------------------------------------
_EIGHT_BIT = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}


def image(data: bytes) -> None:
    from visdm.ingest import DEFAULT_LIMITS, decode_image
    from visdm.ingest._trailing import image_end

    decoded = outcome(lambda: decode_image(data, name="fuzzed.png"))
    if refused(decoded):
        assert isinstance(decoded, InvalidImageError), decoded
        assert str(decoded).startswith("fuzzed.png: ")
        return
    assert decoded.mode in _EIGHT_BIT, decoded.mode  # type: ignore[union-attr]
    width, height = decoded.image.size  # type: ignore[union-attr]
    assert (width, height) == (decoded.width, decoded.height)  # type: ignore[union-attr]
    assert width * height <= DEFAULT_LIMITS.max_pixels
    end = image_end(data, decoded.format)  # type: ignore[union-attr]
    assert end is None or end >= len(data), f"{len(data) - end} bytes after the image's end"
    decoded.image.close()  # type: ignore[union-attr]


# --- XML -------------------------------------------------------------------------------------
def manifest_xml(data: bytes) -> None:
    from visdm.manifest import manifest_hash, parse_manifest, write_manifest

    parsed = outcome(lambda: parse_manifest(data))
    if not refused(parsed):
        again = parse_manifest(write_manifest(parsed.manifest))  # type: ignore[union-attr]
        assert manifest_hash(again.manifest) == manifest_hash(parsed.manifest)  # type: ignore[union-attr]


def proposal_xml(data: bytes) -> None:
    from visdm.proposals import parse_proposal, write_proposal

    parsed = outcome(lambda: parse_proposal(data))
    if not refused(parsed):
        assert parse_proposal(write_proposal(parsed.proposal)).proposal == parsed.proposal  # type: ignore[union-attr]


# --- validation archives ---------------------------------------------------------------------
def archive(data: bytes) -> None:
    from visdm.proposals._validation import read_array_headers, unpack_arrays

    headers = outcome(lambda: read_array_headers(data, what="the fuzzed archive"))
    arrays = outcome(
        lambda: unpack_arrays(
            data, what="the fuzzed archive", input_shape=(1, 8, 8), max_samples=64
        )
    )
    if refused(arrays):
        return
    images, labels = arrays  # type: ignore[misc]
    assert not refused(headers), "unpack_arrays read what read_array_headers refused"
    assert images.dtype == np.uint8 and images.shape[1:] == (8, 8)
    assert labels.dtype == np.int64 and labels.shape == (len(images),) and len(images) <= 64


# --- the index's documents (a node wrote them; DocumentError is the documented refusal) ------
def index_documents(data: bytes) -> None:
    from visdm.index._documents import DocumentError, parse_metadata, parse_result, parse_scores

    errors = (DocumentError, VisdmError)
    digest = keccak(data)
    outcome(
        lambda: parse_metadata(data, metadata_hash=digest, manifest_hash=None, sample_count=4),
        errors=errors,
    )
    outcome(
        lambda: parse_result(
            data,
            proposal_id=3,
            accuracy_bps=8123,
            wtp_met=True,
            model_hash=b"\x01" * 32,
            payout_root=b"\x02" * 32,
            node=None,
            price=1000,
        ),
        errors=errors,
    )
    outcome(lambda: parse_scores(data, proposal_id=3, scores_hash=digest), errors=errors)


# --- the node API ----------------------------------------------------------------------------
@contextmanager
def node_api() -> Iterator[httpx.Client]:
    """A node that does not quote, served by uvicorn on a free loopback port (as it runs)."""
    from visdm.compute._serve import ApiServer
    from visdm.compute.api import create_app

    folder = Path(tempfile.mkdtemp(prefix="visdm-fuzz-api-"))
    server = ApiServer(create_app(None, folder / "jobs.sqlite3"), "127.0.0.1", 0, folder / "api")
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=HANG_S) as client:
            yield client
    finally:
        server.stop()


def _answer(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body, dict)
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), body
        assert len(body["detail"].splitlines()) == 1, body


def api_body(client: httpx.Client, data: bytes) -> None:
    """``POST /quotes``: a node that does not quote still parses and refuses every body; a
    well-formed one reaches the 503 that says so."""
    response = client.post("/quotes", content=data, headers={"content-type": "application/json"})
    _answer(response, {400, 413, 503})


def api_job(client: httpx.Client, path: str, headers: dict[str, str]) -> None:
    """``GET /jobs/{id}``, signed or not: an answer or a refusal, never a 500."""
    _answer_or_redirect(client.get(f"/jobs/{path}", headers=headers))


def _answer_or_redirect(response: httpx.Response) -> None:
    if response.status_code != 307:  # "/jobs/" is sent on to "/jobs"
        _answer(response, {200, 400, 401, 403, 404, 429})


_RUNNING: list[Any] = []  # holds the context manager, or collecting it would stop the node


@cache
def _running_api() -> httpx.Client:
    """One node for a whole coverage-guided run (left to end with the process)."""
    manager = node_api()
    _RUNNING.append(manager)
    return manager.__enter__()


# --- seeds shared with the strategies --------------------------------------------------------
@cache
def _manifest_seed() -> Any:
    from tests.unit.manifest._fixtures import build

    return build(Path(tempfile.mkdtemp(prefix="visdm-fuzz-manifest-")), n=2).manifest


TARGETS: dict[str, Target] = {
    "json": json_document,
    "spec": model_spec,
    "licence": licence,
    "keystore": keystore,
    "labels": labels_csv,
    "image": image,
    "manifest": manifest_xml,
    "proposal": proposal_xml,
    "archive": archive,
    "documents": index_documents,
    "body": lambda data: api_body(_running_api(), data),
}


def image_seed_bytes(
    fmt: str, mode: str = "RGB", size: tuple[int, int] = (9, 7), **params: Any
) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(len(fmt) * 31 + len(mode))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    picture = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **params)
    return buffer.getvalue()
