"""Which event ids are taken: the events table's, and those claimed but not ingested yet.

A decision made with the caller's event id must refuse an id used before.
Asking SQLite costs a read transaction: two ``fcntl`` calls on the WAL index
and cold caches, 10-20 µs of a 60 µs decision (benchmarks/bench_loop.py).
:class:`StoredIdFilter` keeps a Bloom filter of the table's ids in each
process: an id it never saw is new for sure; only a "maybe" asks SQLite.

The filter follows the table by rowid: SQLite gives a new row a rowid above
every present one, so the rows past the newest one the filter read are the
rows it lacks. Every process that inserts events writes a fresh random
:class:`ChangeToken` just after its commit; a filter that sees a token it has
not read brings itself up to date before it answers. The one window left is
the microseconds between another process's commit and its token write: a
duplicate made in it is still refused at ingestion (``journal_rejects``).

A decision is journaled long before it reaches the table, so the table alone
cannot refuse an id another process used moments ago. :class:`EventClaims`
closes that gap: every caller-chosen id is claimed in a small shared SQLite
database of its own (not the store's, whose write lock the learner holds for
a whole join) before its decision is journaled, and its claim is dropped
once the decision is in the table.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from banditkit.store.connections import rows_in, when_unlocked

__all__ = ["ChangeToken", "EventClaims", "StoredIdFilter", "process_alive"]

_TOKEN_BYTES = 8
# Bloom filter: 5 probes and one byte (8 bits) per id of capacity. At capacity
# 2.2% of new ids ask SQLite; at half (just after a rebuild), 0.14%.
_PROBES = 5
_MIN_CAPACITY = 1 << 16
# At most 64 MB per process: past 67M stored ids more new ids ask SQLite (8% at
# 100M) rather than the filter growing further.
_MAX_BITS = 1 << 29
# Rows read per decision while the filter catches up with a large table (about
# 1 ms); meanwhile every id asks SQLite.
_CATCH_UP_ROWS = 2000


class ChangeToken:
    """Eight shared bytes that change whenever a process commits new events.

    Parameters
    ----------
    path : path
        The token file; created on first use, never truncated (it is mapped).
    """

    def __init__(self, *, path: Path) -> None:
        self.path = path
        self._mapped: mmap.mmap | None = None  # mapped on first use, unmapped by close

    @property
    def _map(self) -> mmap.mmap:
        if self._mapped is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < _TOKEN_BYTES:  # only ever grows
                    os.ftruncate(fd, _TOKEN_BYTES)
                self._mapped = mmap.mmap(fd, _TOKEN_BYTES)
            finally:
                os.close(fd)
        return self._mapped

    def read(self) -> bytes:
        return self._map[:_TOKEN_BYTES]

    def change(self) -> None:
        """Called after a commit that inserted events: a value no reader holds."""
        self._map[:_TOKEN_BYTES] = os.urandom(_TOKEN_BYTES)

    def close(self) -> None:
        mapped, self._mapped = self._mapped, None
        if mapped is not None:
            mapped.close()


class StoredIdFilter:
    """A Bloom filter of the ids in the events table, kept up to date by rowid.

    Not thread-safe: the store calls it under its own lock.

    Parameters
    ----------
    token : ChangeToken
        The data directory's token, changed by every commit that inserts events.
    min_capacity : int, default=65536
        Ids the filter is sized for at least; it doubles past the table's size.
    row_key : str, default="rowid"
        The events table's column numbering rows in insertion order (SQLite's
        rowid; PostgreSQL's identity column, assigned under the store's write lock).
    """

    def __init__(self, *, token: ChangeToken, min_capacity: int = _MIN_CAPACITY,
                 row_key: str = "rowid") -> None:
        self.token = token
        self.min_capacity = min_capacity
        self.row_key = row_key
        self._token_read: bytes | None = None  # the token when the filter last caught up
        self._complete = False  # holds every id of the table (else every id asks SQLite)
        self._mark: tuple[int, str | None] | None = None  # the newest row read; None: none yet
        # The filter, made by _reset on first use.
        self._bits = bytearray()
        self._mask = 0
        self._capacity = 0
        self._added = 0

    def stale(self) -> bool:
        """Whether a commit added events since the filter last read the table."""
        return self.token.read() != self._token_read

    def catch_up(self, db: Any) -> None:
        """Read the rows added since the last call (:meth:`stale` says whether any)."""
        # The token is read before the rows: a commit after them changes it again.
        self._catch_up(db, self.token.read())

    def maybe(self, event_ids: Sequence[str]) -> list[str]:
        """The ids the table may hold, as of the last :meth:`catch_up`: only these need
        asking the database (all of them while the filter is not complete)."""
        if not self._complete:
            return list(event_ids)
        bits, mask = self._bits, self._mask
        maybe = []
        for event_id in event_ids:
            h = hash(event_id) & 0xFFFF_FFFF_FFFF_FFFF
            low, step = h & 0xFFFF_FFFF, (h >> 32) | 1
            for probe in range(_PROBES):
                index = (low + probe * step) & mask
                if not bits[index >> 3] & (1 << (index & 7)):
                    break
            else:
                maybe.append(event_id)
        return maybe

    def _catch_up(self, db: Any, token: bytes) -> None:
        """Read the next rows past the newest one read, in one read transaction."""
        self._complete = False  # until this returns: every id asks SQLite if it raises
        key = self.row_key
        db.execute("BEGIN")
        try:
            mark = self._mark
            if mark is None or self._added > self._capacity or mark[0] and db.execute(
                    f"SELECT event_id FROM events WHERE {key} = ?",
                    (mark[0],)).fetchone() != (mark[1],):
                # First use, full, or the newest row read is gone (retention emptied
                # the table): later rowids may reuse older ones, so start over.
                self._reset(db)
            rows = db.execute(f"SELECT {key}, event_id FROM events WHERE {key} > ? "
                              f"ORDER BY {key} LIMIT ?",
                              (self._mark[0], _CATCH_UP_ROWS)).fetchall()
        finally:
            db.execute("COMMIT")
        if rows:
            self._add([event_id for _, event_id in rows])
            self._mark = rows[-1]
        # Past capacity, the next call starts over with a filter sized for the table.
        self._complete = len(rows) < _CATCH_UP_ROWS and self._added <= self._capacity
        self._token_read = token if self._complete else None

    def _reset(self, db: Any) -> None:
        low, high = db.execute(
            f"SELECT MIN({self.row_key}), MAX({self.row_key}) FROM events").fetchone()
        rows = 0 if high is None else high - low + 1  # an upper bound of the row count
        capacity = max(self.min_capacity, 2 * rows)  # ids added before starting over
        n_bits = min(1 << (8 * capacity - 1).bit_length(), _MAX_BITS)
        self._bits = bytearray(n_bits // 8)
        self._mask = n_bits - 1
        self._capacity = capacity
        self._added = 0
        self._mark = (0, None)

    def _add(self, event_ids: list[str]) -> None:
        hashes = np.fromiter(map(hash, event_ids), dtype=np.int64,
                             count=len(event_ids)).view(np.uint64)
        low, step = hashes & np.uint64(0xFFFF_FFFF), (hashes >> np.uint64(32)) | np.uint64(1)
        bits = np.frombuffer(self._bits, dtype=np.uint8)
        for probe in range(_PROBES):
            index = (low + np.uint64(probe) * step) & np.uint64(self._mask)
            np.bitwise_or.at(bits, index >> np.uint64(3),
                             np.left_shift(1, index & np.uint64(7)).astype(np.uint8))
        self._added += len(event_ids)


_CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    event_id   TEXT PRIMARY KEY,
    pid        INTEGER NOT NULL,   -- the claiming process, to tell a stale claim
    claimed_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_age ON claims (claimed_at);
"""


class EventClaims:
    """Caller-chosen event ids claimed by the processes of one host, until ingested.

    A claim is one row in a SQLite database in WAL mode (an insert is one short
    write transaction, no fsync); the primary key refuses a second claim of the
    same id from any process. Thread-safe: one connection per thread.

    Writers queue on an ``flock`` of ``<path>.lock`` before they write: the
    kernel wakes the next one when the lock is released, where SQLite's own
    busy handler, meeting a held write lock, sleeps a millisecond or more.

    Parameters
    ----------
    path : path
        The claims database; created on first use.
    """

    def __init__(self, *, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock_files: list[TextIO] = []
        self._connections_lock = threading.Lock()

    @property
    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=30.0,
                                         check_same_thread=False)
            when_unlocked(lambda: connection.execute("PRAGMA journal_mode=WAL"))
            connection.execute("PRAGMA synchronous=NORMAL")
            # Each thread its own open file: flock excludes open files, not processes.
            self._local.lock = open(f"{self.path}.lock", "a")  # noqa: SIM115 - closed in close
            with self._connections_lock:
                when_unlocked(lambda: connection.executescript(_CLAIMS_SCHEMA))
                self._connections.append(connection)
                self._lock_files.append(self._local.lock)
            self._local.connection = connection
        return connection

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, with the writers' lock held."""
        db = self._db
        fd = self._local.lock.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield db
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def claim(self, event_ids: Sequence[str], at: float) -> list[tuple[str, int]]:
        """Claim every id, all or none; returns ``(event_id, pid)`` of the ids claimed
        already (nothing is claimed then), else an empty list."""
        rows = [(event_id, _PID[0], at) for event_id in event_ids]
        try:
            with self._writing() as db:
                if len(rows) == 1:  # autocommit: one statement, one transaction
                    db.execute("INSERT INTO claims VALUES (?, ?, ?)", rows[0])
                else:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        db.executemany("INSERT INTO claims VALUES (?, ?, ?)", rows)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
        except sqlite3.IntegrityError:
            return self._holders(event_ids)
        return []

    def _holders(self, event_ids: Sequence[str]) -> list[tuple[str, int]]:
        return list(rows_in(self._db, "SELECT event_id, pid FROM claims WHERE event_id IN "
                            "({marks})", event_ids))

    def release(self, event_ids: Sequence[str], *, pid: int | None = None) -> None:
        """Drop the claims of ``event_ids`` (only those of process ``pid`` if given)."""
        if not event_ids:
            return
        with self._writing() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if pid is None:
                    db.executemany("DELETE FROM claims WHERE event_id = ?",
                                   [(event_id,) for event_id in event_ids])
                else:
                    db.executemany("DELETE FROM claims WHERE event_id = ? AND pid = ?",
                                   [(event_id, pid) for event_id in event_ids])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def release_older_than(self, cutoff: float) -> int:
        """Drop claims made before ``cutoff``: those whose decision was never journaled
        (the claimer died in between) and whose id nobody used again."""
        with self._writing() as db:
            return db.execute("DELETE FROM claims WHERE claimed_at < ?", (cutoff,)).rowcount

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            for lock_file in self._lock_files:
                lock_file.close()
            self._connections.clear()
            self._lock_files.clear()
        self._local = threading.local()


# This process's id, renewed in a forked child (``os.getpid()`` is a system call).
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (a claim's holder may still journal it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
