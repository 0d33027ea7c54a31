"""The index's scoring rounds and the expected-value ranking on a real PostgreSQL server: the
same tests as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.index.test_scoring import NewDb, ScoringIndexConformance
from visdm.index import Database, open_database

from .conftest import PostgresServer

pytestmark = pytest.mark.integration


class TestPostgresScoringIndex(ScoringIndexConformance):
    @pytest.fixture
    def new_db(self, postgres: PostgresServer) -> Iterator[NewDb]:
        opened: list[Database] = []

        def new() -> Database:
            db = open_database(postgres.new_database())
            assert db.backend == "postgresql"
            opened.append(db)
            return db

        yield new
        for db in opened:
            db.close()
