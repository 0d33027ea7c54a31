"""One SQL layer over SQLite (the embedded default) and PostgreSQL (psycopg 3).

The index is a read model: it must work on one machine with no server, and move to a shared
PostgreSQL when users outgrow that (design section 2), without a second copy of every query.
So both backends run the *same SQL text*, written in the subset the two agree on:

* types ``BIGINT``, ``INTEGER``, ``DOUBLE PRECISION`` and ``TEXT`` (SQLite maps them to its
  integer, real and text affinities); booleans are ``0``/``1`` integers; amounts that may
  exceed 64 bits (uint256) are decimal ``TEXT``;
* upserts with ``INSERT … ON CONFLICT (…) DO UPDATE/NOTHING`` (SQLite ≥ 3.24);
* ``?`` placeholders, which the PostgreSQL backend rewrites to psycopg's ``%s`` (the SQL must
  therefore hold no literal ``%`` or ``?``: values always travel as parameters);
* no reliance on text collation: anything shown in text order is sorted in Python.

What cannot be hidden in SQL is a method of :class:`Database`: how a write transaction locks
out a second writer (``BEGIN IMMEDIATE`` in SQLite, a transaction-scoped advisory lock in
PostgreSQL) and how a connection failure is reported (:class:`~visdm.errors.IndexDatabaseError`
naming the URL with its password hidden).

URLs: ``sqlite:///relative/file.sqlite3``, ``sqlite:////absolute/file.sqlite3`` (SQLAlchemy's
convention: the path follows the third slash), ``sqlite:///:memory:``, and
``postgresql://user:password@host:port/dbname`` (or ``postgres://``, any libpq URI).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from visdm.errors import ConfigError, IndexDatabaseError

__all__ = ["Database", "IndexUrl", "open_database", "parse_index_url"]

#: a row as both drivers return it
Row = tuple[Any, ...]
#: parameters of one statement
Params = Sequence[Any]

_POSTGRES_SCHEMES = ("postgresql", "postgres")
#: key of the advisory lock that serialises writers of one PostgreSQL index ("visdmidx")
_PG_LOCK_KEY = 0x7669_7364_6D69_6478 & 0x7FFF_FFFF_FFFF_FFFF
_PG_CONNECT_TIMEOUT_S = 5
_SQLITE_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class IndexUrl:
    """A parsed index URL: which backend, and where."""

    backend: Literal["sqlite", "postgresql"]
    url: str
    #: the SQLite file (``None`` for ``:memory:`` and for PostgreSQL)
    path: Path | None = None

    @property
    def redacted(self) -> str:
        """The URL with any password replaced by ``***``, safe for messages and logs."""
        return redact(self.url)


def redact(url: str) -> str:
    """``url`` with the password of its user-info part hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scrub(message: str, url: str) -> str:
    """``message`` (a driver's error text) with ``url``'s password hidden wherever it appears."""
    text = message.strip().replace(url, redact(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password is None:
        found = re.search(r"://[^:/@]*:([^@]*)@", url)
        password = found.group(1) if found else None
    return text.replace(password, "***") if password else text


def parse_index_url(url: str) -> IndexUrl:
    """Check an index URL and say which backend it selects.

    Raises :class:`~visdm.errors.ConfigError` naming the URL (password hidden) when it is
    neither a ``sqlite:///`` nor a ``postgresql://`` URL, or cannot be parsed.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            "the index URL is empty: use sqlite:///path/to/index.sqlite3 or "
            "postgresql://user:password@host:port/dbname (--index-url or VISDM_INDEX_URL)"
        )
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme == "sqlite":
        if not text.lower().startswith("sqlite:///"):
            raise ConfigError(
                f"index URL {redact(text)!r}: a SQLite URL is sqlite:///relative/path or "
                "sqlite:////absolute/path (three slashes, then the path)"
            )
        rest = text[len("sqlite:///") :]
        if rest.split("?", 1)[0] == ":memory:":
            return IndexUrl("sqlite", text, None)
        if not rest or "?" in rest or "#" in rest:
            raise ConfigError(
                f"index URL {text!r}: give the SQLite file after sqlite:/// (no query string), "
                "e.g. sqlite:////home/me/index.sqlite3"
            )
        return IndexUrl("sqlite", text, Path(rest).expanduser())
    if scheme in _POSTGRES_SCHEMES:
        import psycopg

        try:
            info = psycopg.conninfo.conninfo_to_dict(text)
        except psycopg.Error as exc:
            raise ConfigError(
                f"index URL {redact(text)!r} is not a valid PostgreSQL URL: {scrub(str(exc), text)}"
            ) from None
        if not info.get("dbname"):
            raise ConfigError(
                f"index URL {redact(text)!r} names no database: add it after the host, e.g. "
                "postgresql://user@127.0.0.1:5432/visdm"
            )
        return IndexUrl("postgresql", text, None)
    raise ConfigError(
        f"index URL {redact(text)!r} is neither sqlite:///… nor postgresql://…: use "
        "sqlite:////absolute/path/index.sqlite3 or postgresql://user:password@host/dbname"
    )


class Database(ABC):
    """A connection to the index database (one thread at a time).

    Statements use ``?`` placeholders on both backends. Outside :meth:`transaction` every
    statement commits on its own; inside, everything commits together or not at all.
    """

    backend: Literal["sqlite", "postgresql"]

    def __init__(self, url: IndexUrl) -> None:
        self.url = url
        self._in_transaction = False

    # --- statements -------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> None:
        """Run one statement."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement once per parameter row."""

    @abstractmethod
    def query(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return every row."""

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or ``None`` when there is no row."""
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    # --- transactions -----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction: exclusive among writers of this index, all or nothing."""
        if self._in_transaction:
            raise RuntimeError("index transactions do not nest")
        self._begin_write()
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self._rollback()
            raise
        self._in_transaction = False
        self._commit()

    @abstractmethod
    def _begin_write(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    # --- catalogue --------------------------------------------------------------------------
    @abstractmethod
    def tables(self) -> set[str]:
        """Names of the tables that exist."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, exc: Exception, doing: str) -> IndexDatabaseError:
        return IndexDatabaseError(
            f"the index database {self.url.redacted} failed while {doing}: "
            f"{scrub(str(exc), self.url.url)}"
        )


class SqliteDatabase(Database):
    """The embedded backend: one SQLite file (WAL, full sync), or ``:memory:``."""

    backend: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, url: IndexUrl) -> None:
        super().__init__(url)
        target = ":memory:"
        if url.path is not None:
            if url.path.is_dir():
                raise ConfigError(f"index URL {url.url!r} names a directory, not a SQLite file")
            try:
                url.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IndexDatabaseError(
                    f"cannot create the directory of the index database {url.path}: {exc}"
                ) from exc
            target = str(url.path)
        try:
            self._db = sqlite3.connect(target, isolation_level=None, timeout=_SQLITE_BUSY_TIMEOUT_S)
            if url.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IndexDatabaseError(
                f"cannot open the index database {url.url}: {exc} (not a SQLite file? point "
                "--index-url elsewhere or delete the file to rebuild the index)"
            ) from exc

    def execute(self, sql: str, params: Params = ()) -> None:
        try:
            self._db.execute(sql, tuple(params))
        except sqlite3.OperationalError as exc:
            raise self._fail(exc, "writing") from exc

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        try:
            self._db.executemany(sql, [tuple(r) for r in rows])
        except sqlite3.OperationalError as exc:
            raise self._fail(exc, "writing") from exc

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            return list(self._db.execute(sql, tuple(params)).fetchall())
        except sqlite3.OperationalError as exc:
            raise self._fail(exc, "reading") from exc

    def _begin_write(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.execute("COMMIT")

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def tables(self) -> set[str]:
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows}

    def close(self) -> None:
        self._db.close()


class PostgresDatabase(Database):
    """The server backend: PostgreSQL through psycopg 3, autocommit outside transactions."""

    backend: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(self, url: IndexUrl) -> None:
        super().__init__(url)
        import psycopg

        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(
                url.url, autocommit=True, connect_timeout=_PG_CONNECT_TIMEOUT_S
            )
        except psycopg.Error as exc:
            lines = scrub(str(exc), url.url).splitlines()
            reason = lines[0] if lines else type(exc).__name__
            raise IndexDatabaseError(
                f"cannot connect to the index database {url.redacted}: {reason} — start "
                "PostgreSQL, or check --index-url / VISDM_INDEX_URL"
            ) from exc
        # the near-duplicate subquery's estimated cost made PostgreSQL compile a search with
        # JIT: 240 ms of a 290 ms count at 200k samples, for queries that run in tens of ms
        self.execute("SET jit = off")

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Params = ()) -> None:
        try:
            self._conn.execute(self._sql(sql), tuple(params))
        except self._psycopg.OperationalError as exc:
            raise self._fail(exc, "writing") from exc

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        try:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        except self._psycopg.OperationalError as exc:
            raise self._fail(exc, "writing") from exc

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(self._sql(sql), tuple(params))
                return list(cur.fetchall())
        except self._psycopg.OperationalError as exc:
            raise self._fail(exc, "reading") from exc

    def _begin_write(self) -> None:
        self.execute("BEGIN")
        self.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_KEY,))

    def _commit(self) -> None:
        self.execute("COMMIT")

    def _rollback(self) -> None:
        # a connection that is gone needs nothing: the server rolls the transaction back
        with contextlib.suppress(self._psycopg.Error):
            self._conn.execute("ROLLBACK")

    def tables(self) -> set[str]:
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE'"
        )
        return {str(r[0]) for r in rows}

    def close(self) -> None:
        self._conn.close()


def open_database(url: str | IndexUrl) -> Database:
    """Connect to the index database at ``url`` (see the module docstring for the forms)."""
    parsed = url if isinstance(url, IndexUrl) else parse_index_url(url)
    if parsed.backend == "sqlite":
        return SqliteDatabase(parsed)
    return PostgresDatabase(parsed)
