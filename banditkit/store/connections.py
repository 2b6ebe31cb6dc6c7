"""One SQLite connection per thread, for the stores of a data directory (docs/architecture.md §3).

The decision store, the catalogue and the server's key and meta stores each own
one :class:`ThreadConnections` as a plain attribute: a thread's first query opens
its connection in WAL mode and applies the schema; :meth:`ThreadConnections.close`
closes every thread's.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ThreadConnections", "rows_in", "when_unlocked", "write_transaction"]

#: Ids per ``IN (...)`` statement: under SQLite's historic limit of 999 variables.
_IN_CHUNK = 500


def rows_in(db: Any, sql: str, ids: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql`` for every id of ``ids``, in statements of at most 500 ids.

    ``sql`` holds ``{marks}`` where the ``IN (...)`` placeholders go; ``db`` is any
    connection taking ``?`` statements (SQLite's, or a PostgreSQL one through
    :class:`~banditkit.store.psql.QmarkConnection`). Each chunk's rows come in the
    order its statement gives.
    """
    ids = list(ids)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        yield from db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()


# Page size of a new database (SQLite's default is 4 KiB). A joined event's row
# takes about 1.5 KB, a batch of them more than 2 MB, and the WAL writes each
# page with two system calls: with 4 KiB pages the learner wrote pages out and
# read them back mid-step. With the learner's page cache (banditkit.store.sqlite)
# this cut its page reads and writes from 15,100 to 2,400 per 5,000 events, and
# its time by 7% (benchmarks/bench_loop.py).
_PAGE_SIZE = 16_384
# How long a connection waits for another process's lock (SQLite's busy timeout).
_BUSY_SECONDS = 30.0


def when_unlocked(step: Callable[[], object]) -> None:
    """Run ``step``, again while SQLite says "database is locked", for up to _BUSY_SECONDS.

    Opening a WAL database can be refused at once, without SQLite's busy handler,
    while another process closes its last connection (and checkpoints) or
    recovers the WAL index; a worker booting or a thread's first query at that
    moment must wait, not fail.
    """
    deadline = time.monotonic() + _BUSY_SECONDS
    pause = 0.01
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``db`` inside a write transaction taken at once (``BEGIN IMMEDIATE``), so that
    concurrent writers queue rather than deadlock; rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class ThreadConnections:
    """The connections of one SQLite file, one per thread, each opened on first use.

    Connections are in autocommit mode (transactions are explicit), WAL journal,
    foreign keys on, and may be closed from another thread (:meth:`close`).

    Parameters
    ----------
    path : path
        The database file; its folder is created.
    schema : str
        SQL script run on each new connection (``CREATE ... IF NOT EXISTS``).
    synchronous : {"NORMAL", "FULL"}, default="NORMAL"
        SQLite's fsync policy.
    prepare : callable, default=None
        Called with each new connection after ``schema`` (migrations, pragmas).
    """

    def __init__(self, *, path: str | Path, schema: str, synchronous: str = "NORMAL",
                 prepare: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self.path = Path(path)
        self.schema = schema
        self.synchronous = synchronous
        self.prepare = prepare
        self._local = threading.local()
        # Each connection with the thread it serves: a thread that has ended leaves
        # its connection here, closed when the next thread opens one, so that a
        # server starting a thread per request does not run out of file handles.
        self._opened: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()  # the schema is applied by one thread at a time

    def get(self) -> sqlite3.Connection:
        """The calling thread's connection (opened now if it has none)."""
        connection = getattr(self._local, "connection", None)
        return self._open() if connection is None else connection

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_SECONDS,
                                     check_same_thread=False)
        try:
            when_unlocked(lambda: self._prepare(connection))
        except BaseException:
            connection.close()
            raise
        with self._lock:
            ended = [pair for pair in self._opened if not pair[0].is_alive()]
            for pair in ended:
                pair[1].close()
                self._opened.remove(pair)
            self._opened.append((threading.current_thread(), connection))
        self._local.connection = connection
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        connection.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # when it creates the file
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")
        connection.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            connection.executescript(self.schema)
            if self.prepare is not None:
                self.prepare(connection)

    def close(self) -> None:
        """Close every thread's connection; the next query opens a fresh one."""
        with self._lock:
            for _, connection in self._opened:
                connection.close()
            self._opened.clear()
        self._local = threading.local()
