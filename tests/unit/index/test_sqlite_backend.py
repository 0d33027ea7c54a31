"""The embedded SQLite index passes the shared conformance suite (no services needed)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from visdm.index import Database, open_database

from .conformance import IndexConformance, NewDb

pytestmark = pytest.mark.unit


class TestSqliteIndex(IndexConformance):
    @pytest.fixture
    def new_db(self, tmp_path: Path) -> Iterator[NewDb]:
        opened: list[Database] = []
        counter = itertools.count()

        def new() -> Database:
            db = open_database(f"sqlite:///{tmp_path / f'index-{next(counter)}.sqlite3'}")
            opened.append(db)
            return db

        yield new
        for db in opened:
            db.close()
