"""The index on a real PostgreSQL server passes the same conformance suite as SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.index.conformance import IndexConformance, NewDb
from visdm.index import Database, open_database

from .conftest import PostgresServer

pytestmark = pytest.mark.integration


class TestPostgresIndex(IndexConformance):
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
