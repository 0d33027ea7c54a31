"""CI never skips the PostgreSQL backend: a server that cannot start fails the run there."""

from __future__ import annotations

import pytest

from . import conftest

pytestmark = pytest.mark.integration


@pytest.fixture
def no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_binaries", lambda: None)


@pytest.mark.usefixtures("no_postgres")
def test_without_a_server_ci_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest.start_or_give_up()


@pytest.mark.usefixtures("no_postgres")
def test_without_a_server_a_developer_machine_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        conftest.start_or_give_up()


def test_the_server_runs_as_a_user_postgres_accepts(postgres: conftest.PostgresServer) -> None:
    import psycopg

    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('is_superuser'), version()").fetchone()
    assert row is not None and row[0] == "on" and "PostgreSQL" in row[1]
    assert postgres.process.poll() is None
