"""``visdm market search|summary`` through the real entry point, on a prebuilt SQLite index.

``sync`` needs a chain and is exercised in ``tests/integration/index``. Licences are judged
against the real clock here, so the tests that count samples pass ``--include-expired``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from visdm.cli import main
from visdm.cli._json import scheme_problems
from visdm.index import open_database

from ._world import PROVIDER2, World, build_market

pytestmark = pytest.mark.unit


@pytest.fixture
def index_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VISDM_HOME", str(tmp_path / "home"))
    for name in ("VISDM_INDEX_URL", "VISDM_RPC_URL", "VISDM_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    w = World()
    build_market(w)
    with open_database(url) as db:
        w.indexer(db).sync()
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert scheme_problems(data) == []
    return data


def test_search_json_pages_and_filters(capsys: pytest.CaptureFixture[str], index_url: str) -> None:
    page = run_json(
        capsys, "market", "search", "--index-url", index_url, "--include-expired", "--limit", "2"
    )
    assert (page["total"], len(page["samples"]), page["offset"]) == (9, 2, 0)
    assert page["samples"][0]["score"] == pytest.approx(0.375)
    cats = run_json(
        capsys,
        "market",
        "search",
        "--index-url",
        index_url,
        "--label",
        "cat",
        "--label",
        "unicorn",
        "--min-resolution",
        "28x28",
        "--max-resolution",
        "28",
        "--format",
        "png",
        "--max-duplicate-links",
        "0",
        "--duplicate-distance",
        "5",
        "--exclude-flag",
        "noisy",
        "--region",
        "local",
        "--purpose",
        "training",
        "--provider",
        PROVIDER2.address,
        "--asset",
        "2",
        "--asset",
        "3",
    )
    assert [(s["assetId"], s["index"]) for s in cats["samples"]] == [(2, 1)]
    assert cats["unknownLabels"] == ["unicorn"]


def test_search_env_url_text_output_and_save(
    capsys: pytest.CaptureFixture[str],
    index_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("VISDM_INDEX_URL", index_url)
    code, out, err = run(
        capsys, "market", "search", "--label", "dog", "--limit", "1", "--save", "dogs"
    )
    assert code == 0, err
    assert "matching samples (showing 1–1)" in out
    assert "saved" in out and "dogs.json" in out
    saved = json.loads((tmp_path / "home" / "searches" / "dogs.json").read_text())
    assert saved["name"] == "dogs" and saved["filters"] == {"labels": ["dog"]}
    assert saved["selection"][0] == {"asset_id": 1, "sample_indexes": [1]}
    code, out, err = run(capsys, "market", "search", "--label", "zebra")
    assert code == 0
    assert "0 matching samples" in out and "no indexed sample has the label 'zebra'" in err


def test_summary(capsys: pytest.CaptureFixture[str], index_url: str) -> None:
    summary = run_json(capsys, "market", "summary", "--index-url", index_url, "--include-expired")
    assert summary["labels"] == [
        {"label": "cat", "samples": 4},
        {"label": "dog", "samples": 3},
        {"label": "bird", "samples": 2},
    ]
    assert [a["assetId"] for a in summary["perAsset"]] == [1, 2, 3]
    code, out, _ = run(capsys, "market", "summary", "--index-url", index_url, "--region", "eu")
    assert code == 0
    assert "samples in" in out and "labels" in out and "providers" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--limit", "-1"], 2, "--limit must be a whole number ≥ 1"),
        (["--limit", "0"], 2, "--limit"),
        (["--limit", "100000"], 2, "over 10000"),
        (["--offset", "-3"], 2, "--offset must be a whole number ≥ 0"),
        (["--label", ""], 2, "--label is empty"),
        (["--min-resolution", "big"], 2, "--min-resolution 'big' is not a resolution"),
        (["--format", "gif"], 2, "--format 'gif'"),
        (["--exclude-flag", "blurry"], 2, "--exclude-flag 'blurry'"),
        (["--region", "mars"], 2, "unknown region"),
        (["--provider", "bob"], 2, "--provider 'bob'"),
        (["--consumer", "0x12"], 2, "--consumer"),
        (["--asset", "0"], 2, "--asset 0"),
        (["--min-sharpness", "9", "--max-sharpness", "1"], 2, "--min-sharpness 9.0 is above"),
        (["--save", "../escape"], 2, "--save '../escape' is not a usable name"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_status(
    capsys: pytest.CaptureFixture[str], index_url: str, argv: list[str], code: int, message: str
) -> None:
    status, _, err = run(capsys, "market", "search", "--index-url", index_url, *argv)
    assert status == code
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["search", "summary"])
def test_bad_or_unreachable_databases(
    capsys: pytest.CaptureFixture[str], command: str, tmp_path: Path
) -> None:
    status, _, err = run(capsys, "market", command, "--index-url", "mysql://x/y")
    assert (status, "neither sqlite" in err) == (2, True)
    status, _, err = run(
        capsys, "market", command, "--index-url", "postgresql://me:pw-123@127.0.0.1:1/visdm"
    )
    assert status == 8
    assert "cannot connect" in err and "pw-123" not in err
    status, _, err = run(capsys, "market", command, "--index-url", f"sqlite:///{tmp_path}/no.db")
    assert status == 2 and "visdm market sync" in err


def test_sync_needs_a_chain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISDM_HOME", str(tmp_path))
    monkeypatch.delenv("VISDM_INDEX_URL", raising=False)
    status, _, err = run(
        capsys, "--rpc-url", "http://127.0.0.1:1", "market", "sync", "--confirmations", "0"
    )
    assert status == 6 and "no chain answers" in err
    status, _, err = run(capsys, "market", "sync", "--index-url", "sqlite://bad")
    assert status == 2 and "three slashes" in err
    status, _, err = run(
        capsys, "--rpc-url", "http://127.0.0.1:1", "market", "sync", "--confirmations", "-2"
    )
    assert status == 2 and "confirmations" in err


def test_earnings(capsys: pytest.CaptureFixture[str], index_url: str) -> None:
    rows = run_json(capsys, "market", "earnings", "--index-url", index_url)
    assert rows, "the prebuilt market has a completed round with payouts"
    for row in rows:
        states = ("claimedWei", "unclaimedWei", "sweptWei", "unpayableWei", "unverifiedWei")
        total = sum(int(row[s]) for s in states)
        assert total == sum(int(line["amountWei"]) for line in row["lines"]) > 0
    one = rows[0]["provider"]
    mine = run_json(capsys, "market", "earnings", "--index-url", index_url, "--provider", one)
    assert [r["provider"] for r in mine] == [one]
    code, out, _ = run(capsys, "market", "earnings", "--index-url", index_url)
    assert code == 0 and one[:10] in out
    code, _, err = run(capsys, "market", "earnings", "--index-url", index_url, "--provider", "ada")
    assert code != 0 and "is not an Ethereum address" in err and len(err.strip().splitlines()) == 1
