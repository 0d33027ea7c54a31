"""The model-spec builder without a chain: it builds the recommended spec, names a bad choice
or a broken JSON in one line, and saves a checked spec only for a session, never over a file
unless told."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from tests.unit.web.conftest import Web, csrf_of
from visdm.training import canonical_spec_json, parse_model_spec, recommended_spec
from visdm.web.spec_builder import specs_dir


def spec_on(page: str) -> dict[str, object]:
    found = re.search(r'<textarea name="spec" id="spec-json"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, "the page shows no spec"
    parsed: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return parsed


def error_on(page: str) -> str:
    found = re.search(r'<p class="error" role="alert">error: (.*?)</p>', page, re.S)
    assert found, "the page shows no error"
    return html.unescape(found.group(1))


def test_the_empty_page_shows_the_recommended_spec_without_asking_a_node(web: Web) -> None:
    page = web.client(login=False).get("/consumer/spec").text
    expected = json.loads(canonical_spec_json(recommended_spec("scatter_linear")))
    assert spec_on(page) == expected
    assert 'id="verdict-h"' not in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("architecture=vgg", "the field 'architecture' must be one of scatter_linear"),
        ("dp=maybe", "the field 'dp' must be dp or none"),
        ("epsilon=lots", "the field 'epsilon' must be a number"),
        ("channels=2", "the field 'channels' must be 1 or 3"),
        ("samples=0", "'samples'"),
        ("spec=%7B%22architecture%22%3A%22mlp%22%7D", "spec"),
        ("spec=" + "x" * 17_000, "over 16,384 characters"),
        ("selection=theirs", "no saved selection 'theirs'"),
    ],
)
def test_a_bad_choice_is_named_in_one_line(web: Web, query: str, expected: str) -> None:
    page = web.client(login=False).get(f"/consumer/spec?{query}").text
    assert expected in error_on(page)


def test_a_spec_builds_before_the_node_check_says_the_chain_is_unreachable(web: Web) -> None:
    page = web.client(login=False).get("/consumer/spec?architecture=mlp&samples=4000").text
    assert spec_on(page)["architecture"] == "mlp"
    assert spec_on(page)["batch_size"] == 100 or spec_on(page)["batch_size"] == 128
    assert "127.0.0.1:9" in error_on(page)  # the data directory's chain does not answer


def test_saving_needs_a_session_and_never_writes_over_a_spec_unless_told(web: Web) -> None:
    spec = canonical_spec_json(recommended_spec("mlp", epsilon=None)).decode()
    anonymous = web.client(login=False)
    response = anonymous.post("/consumer/spec/save", data={"name": "r1", "spec": spec})
    assert response.status_code == 403
    client = web.client()
    csrf = csrf_of(client)
    response = client.post("/consumer/spec/save", data={"csrf": csrf, "name": "r1", "spec": spec})
    assert response.status_code == 303
    path = specs_dir(web.settings) / "r1.json"
    assert parse_model_spec(path.read_text()) == parse_model_spec(spec)
    other = canonical_spec_json(recommended_spec("small_cnn")).decode()
    refused = client.post(
        "/consumer/spec/save",
        data={"csrf": csrf, "name": "r1", "spec": other},
        headers={"accept": "text/html"},
    )
    assert refused.status_code == 400 and "tick 'replace'" in html.unescape(refused.text)
    assert parse_model_spec(path.read_text()) == parse_model_spec(spec)
    response = client.post(
        "/consumer/spec/save", data={"csrf": csrf, "name": "r1", "spec": other, "replace": "1"}
    )
    assert response.status_code == 303
    assert parse_model_spec(path.read_text()) == parse_model_spec(other)


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [
        ("../escape", None, "must be 1-64 letters"),
        (".hidden", None, "must be 1-64 letters"),
        ("ok", '{"architecture": "mlp"}', "spec"),
        ("ok", "not json", "spec"),
    ],
)
def test_a_bad_name_or_spec_saves_nothing(
    web: Web, name: str, spec: str | None, expected: str
) -> None:
    client = web.client()
    text = spec if spec is not None else canonical_spec_json(recommended_spec("mlp")).decode()
    response = client.post(
        "/consumer/spec/save",
        data={"csrf": csrf_of(client), "name": name, "spec": text},
        headers={"accept": "text/html"},
    )
    assert response.status_code == 400 and expected in html.unescape(response.text)
    folder = specs_dir(web.settings)
    assert not folder.exists() or list(folder.iterdir()) == []
    assert not (Path(web.settings.home) / "escape.json").exists()
