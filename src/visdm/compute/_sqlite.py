"""What the node's SQLite files share: durable settings, all-or-nothing transactions and the
cursor of the chain follower that owns the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

__all__ = ["DurableSqlite"]


class DurableSqlite:
    """A SQLite file in WAL mode with ``synchronous=FULL``: a committed transaction survives a
    SIGKILL or a power cut. One connection per thread; ``read_only`` opens without writing the
    schema (for readers in another thread or process)."""

    SCHEMA: ClassVar[str] = ""
    CURSOR_TABLE: ClassVar[str] = "cursor"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        if read_only:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(self.SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together, or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def cursor(self) -> int | None:
        """The last block fully processed, or ``None`` before the first run."""
        row = self._db.execute(
            f"SELECT block FROM {self.CURSOR_TABLE} WHERE id = 1"  # noqa: S608 - a class constant
        ).fetchone()
        return None if row is None else int(row[0])

    def ranges(self, first_block: int, head: int, max_blocks: int) -> Iterator[tuple[int, int]]:
        """The block ranges still to follow, from after the cursor (or ``first_block``) up to
        ``head``, at most ``max_blocks`` each; the caller commits each with :meth:`set_cursor`."""
        cursor = self.cursor()
        start = first_block if cursor is None else cursor + 1
        while start <= head:
            end = min(head, start + max_blocks - 1)
            yield start, end
            start = end + 1

    def set_cursor(self, block: int) -> None:
        self._db.execute(
            f"INSERT INTO {self.CURSOR_TABLE} (id, block) VALUES (1, ?) "  # noqa: S608
            "ON CONFLICT (id) DO UPDATE SET block = excluded.block",
            (block,),
        )
