"""The decision store in SQLite (WAL mode) under the data directory (docs/architecture.md §3).

:class:`Store` is the :class:`~banditkit.store.journaled.JournaledStore` of one
host: several processes may rank and reward through it at once; one learner
joins. What is not SQLite's own (the journals, the claims, the join) is the
journaled store's; here are the connections, one per thread, and the due
query written for SQLite's indexes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from banditkit.store.base import Joined
from banditkit.store.connections import ThreadConnections, write_transaction
from banditkit.store.journaled import JournaledStore
from banditkit.store.records import PendingEvent, RewardRecord
from banditkit.store.schema import DUE_ACTIVATED_EARLY, DUE_CREATED, LAST_JOIN_SEQ, SCHEMA, prepare

__all__ = ["Store"]

# The learner's page cache (SQLite's default is 2 MB): a batch of joined events
# takes more than 2 MB (see banditkit.store.connections on the page size).
_LEARNER_CACHE_KIB = 64 << 10


class Store(JournaledStore):
    """The SQLite :class:`~banditkit.store.DecisionStore` of one data directory.

    Parameters
    ----------
    path : path
        The database file; its folder is created. The journal folder, tokens
        and claims go beside it (``<stem>-journal``, ...).
    synchronous : {"NORMAL", "FULL"}, default="NORMAL"
        SQLite's and the journal's fsync policy. NORMAL survives a killed
        process; FULL also survives power loss, at one fsync per call.
    journal_dir : path, default=None
        This store's journal folder; ``<stem>-journal`` beside the database if None.
    """

    #: The tables a subclass's database holds (the row store adds its own).
    schema: ClassVar[str] = SCHEMA
    row_key = "rowid"
    _LAST_JOIN_SEQ = LAST_JOIN_SEQ

    def __init__(self, *, path: Path, synchronous: str = "NORMAL",
                 journal_dir: Path | None = None) -> None:
        self.path = Path(path)
        super().__init__(local=self.path.parent / self.path.stem, synchronous=synchronous,
                         journal_dir=journal_dir)
        self._connections = ThreadConnections(path=self.path, schema=self.schema,
                                              synchronous=synchronous, prepare=prepare)
        # Per thread: whether its connection has the learner's page cache.
        self._learner_cache = threading.local()

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (rank asks for it on every decision)."""
        return self._connections.get()

    @contextlib.contextmanager
    def _any_connection(self) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    def _write_transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """Taken at once (``BEGIN IMMEDIATE``) so concurrent writers queue, not deadlock."""
        return write_transaction(self._connections.get())

    def _due_rows(self, db: sqlite3.Connection, cutoff: float, limit: int) -> list[tuple]:
        rows = db.execute(DUE_CREATED, {"c": cutoff, "n": limit}).fetchall()
        if len(rows) < limit:  # all of those come first: they were created by the cutoff
            rows += db.execute(DUE_ACTIVATED_EARLY,
                               {"c": cutoff, "n": limit - len(rows)}).fetchall()
        return rows

    def join_due(self, *, now: float, wait_seconds: float, limit: int,
                 join: Callable[[list[PendingEvent], dict[str, list[RewardRecord]]],
                                Sequence[Joined]],
                 grace_seconds: float = 0.0) -> tuple[int, list[tuple[int, Joined]]]:
        """The learner's page cache, then the journaled store's join."""
        if not getattr(self._learner_cache, "on", False):
            self._db.execute(f"PRAGMA cache_size=-{_LEARNER_CACHE_KIB}")
            self._learner_cache.on = True
        return super().join_due(now=now, wait_seconds=wait_seconds, limit=limit,
                                grace_seconds=grace_seconds, join=join)

    def close(self) -> None:
        super().close()
        self._connections.close()
        self._learner_cache = threading.local()
