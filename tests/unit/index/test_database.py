"""Index URLs and opening the index: every bad URL or database is refused by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from visdm.config import Settings
from visdm.errors import ConfigError, IndexDatabaseError
from visdm.index import default_index_url, open_database, open_index, parse_index_url
from visdm.index._db import redact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "backend", "path"),
    [
        ("sqlite:///index.sqlite3", "sqlite", Path("index.sqlite3")),
        ("sqlite:////tmp/x/index.sqlite3", "sqlite", Path("/tmp/x/index.sqlite3")),
        ("SQLITE:///rel/dir/i.db", "sqlite", Path("rel/dir/i.db")),
        ("sqlite:///:memory:", "sqlite", None),
        ("postgresql://u:p@127.0.0.1:5432/visdm", "postgresql", None),
        ("postgres://localhost/visdm?sslmode=disable", "postgresql", None),
    ],
)
def test_urls_select_a_backend(url: str, backend: str, path: Path | None) -> None:
    parsed = parse_index_url(url)
    assert (parsed.backend, parsed.path) == (backend, path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("index.sqlite3", "neither sqlite"),
        ("mysql://u@h/db", "neither sqlite"),
        ("sqlite://index.sqlite3", "three slashes"),
        ("sqlite:///", "give the SQLite file"),
        ("sqlite:///i.db?mode=ro", "no query string"),
        ("postgresql://127.0.0.1:5432", "names no database"),
        ("postgresql://u:hunter2@[::1/db", "not a valid PostgreSQL URL"),
    ],
)
def test_bad_urls_are_refused_by_name(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_index_url(url)
    assert "hunter2" not in str(err.value)


def test_passwords_never_reach_a_message() -> None:
    assert redact("postgresql://me:s3cret@db.example:5432/visdm") == (
        "postgresql://me:***@db.example:5432/visdm"
    )
    assert redact("postgresql://me@db/visdm") == "postgresql://me@db/visdm"
    assert parse_index_url("postgresql://me:s3cret@h/d").redacted == "postgresql://me:***@h/d"


def test_an_unreachable_postgresql_is_a_clear_error() -> None:
    # port 1 on loopback: nothing listens, the connection is refused at once
    with pytest.raises(IndexDatabaseError, match=r"cannot connect.*127\.0\.0\.1") as err:
        open_database("postgresql://visdm:s3cret@127.0.0.1:1/visdm")
    assert "s3cret" not in str(err.value)
    assert "***" in str(err.value)
    assert err.value.exit_code == 8


def test_sqlite_files_that_cannot_be_an_index(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        open_database(f"sqlite:///{tmp_path}")
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database, just some bytes " * 100)
    with pytest.raises(IndexDatabaseError, match=r"junk\.sqlite3"):
        open_database(f"sqlite:///{junk}")
    blocked = tmp_path / "file"
    blocked.write_text("a file where a directory should be")
    with pytest.raises(IndexDatabaseError, match="cannot create the directory"):
        open_database(f"sqlite:///{blocked / 'sub' / 'index.sqlite3'}")


def test_the_default_index_lives_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    url = default_index_url(settings)
    assert parse_index_url(url).path == tmp_path / "home" / "index.sqlite3"


def test_reading_before_any_sync_says_how_to_build_the_index(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(ConfigError, match="visdm market sync"):
        open_index(settings)
    assert not (tmp_path / "index.sqlite3").exists()  # reading creates nothing
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    with pytest.raises(ConfigError, match="holds no marketplace index"):
        open_index(settings, f"sqlite:///{empty}")


def test_an_index_of_another_schema_version_must_be_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO index_meta VALUES ('schema_version', '0')")
    with pytest.raises(IndexDatabaseError, match="--rebuild"):
        open_index(Settings(home=tmp_path), f"sqlite:///{path}")


def test_transactions_commit_whole_or_not_at_all(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 't.sqlite3'}")
    db.execute("CREATE TABLE t (x INTEGER)")
    with db.transaction():
        db.execute("INSERT INTO t VALUES (?)", (1,))

    def fail_half_way() -> None:
        with db.transaction():
            db.executemany("INSERT INTO t VALUES (?)", [(2,), (3,)])
            raise RuntimeError("boom")

    def nest() -> None:
        with db.transaction(), db.transaction():
            pass

    with pytest.raises(RuntimeError, match="boom"):
        fail_half_way()
    with pytest.raises(RuntimeError, match="nest"):
        nest()
    assert db.query("SELECT x FROM t") == [(1,)]
    assert db.tables() == {"t"}
    db.close()
