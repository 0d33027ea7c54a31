"""The node's HTTP answers speak the CLI's JSON language (:mod:`visdm.cli._json`): camelCase
keys, amounts in wei as decimal strings, no integer past 2^53 as a JSON number — also where an
answer carries what the journal stored in the sandbox's own snake_case."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from visdm.cli._json import scheme_problems
from visdm.compute._jobs import JobJournal
from visdm.compute._serve import ApiServer
from visdm.compute.api import _wire, create_app

pytestmark = pytest.mark.unit


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.sqlite3"
    jobs = JobJournal(path)
    try:
        jobs.enqueue(5, 2_000_000_000)
        result = {"accuracy_bps": 8100, "epsilon_spent": 2.9, "validation": {"near_selected": 1}}
        jobs.update(5, state="valuing", result=result, progress=0.5)
    finally:
        jobs.close()
    return path


def test_every_public_answer_keeps_the_language(journal: Path) -> None:
    server = ApiServer(create_app(None, journal), "127.0.0.1", 0, journal.parent / "api.json")
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as api:
            answers = [
                api.get("/health"),
                api.get("/jobs"),
                api.get("/jobs/5"),
                api.get("/jobs/6"),  # 404
                api.get("/limits"),  # 503: this node does not quote
                api.post("/quotes", content=b"[1"),  # 400
            ]
    finally:
        server.stop()
    for answer in answers:
        assert scheme_problems(answer.json()) == [], answer.text


def test_a_stored_job_goes_out_under_the_wire_names(journal: Path) -> None:
    jobs = JobJournal(journal, read_only=True)
    try:
        job = jobs.get(5)
    finally:
        jobs.close()
    assert job is not None
    stored = job.to_json()
    assert stored["result"]["accuracy_bps"] == 8100  # the journal keeps its own names
    sent = _wire({**stored, "submission": {"payout_total": 2**70}})
    assert sent["result"] == {
        "accuracyBps": 8100,
        "epsilonSpent": 2.9,
        "validation": {"nearSelected": 1},
    }
    assert sent["submission"] == {"payoutTotal": str(2**70)}
    assert scheme_problems(sent) == []
    assert scheme_problems(stored) != []  # what the answer would have been without the view
