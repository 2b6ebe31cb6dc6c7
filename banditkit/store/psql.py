"""psycopg plumbing every PostgreSQL table holder shares (docs/architecture.md §3).

The statements written once for SQLite and PostgreSQL use SQLite's ``?``
placeholders; :class:`QmarkConnection` runs them on a psycopg connection.
:class:`Pool` is a process's pool of autocommit connections with one schema
first on their ``search_path``, opened again after :meth:`Pool.close`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["READ_WAIT_SECONDS", "Pool", "QmarkConnection", "process_name", "session_name",
           "unreachable_errors"]

#: How long a read waits for a free connection of a pool: a reconnection while the
#: server is down never comes in time, and the callers have something to answer
#: from meanwhile (the last settings, model version or verified keys).
READ_WAIT_SECONDS = 0.5


def process_name() -> str:
    """This process among every host's: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def session_name(process: str | None = None) -> str:
    """The ``application_name`` of every session a process (:func:`process_name`; this
    one by default) opens, so that another process can find and end them all (a hung
    learner's, which may hold locks in an open transaction). At most 63 bytes, the
    server's limit: the pid comes first, so a long host name is what is cut."""
    host, _, pid = (process or process_name()).rpartition(":")
    return f"banditkit {pid}@{host}".encode()[:63].decode(errors="ignore")


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What psycopg raises when the server cannot be reached (or not in time)."""
    import psycopg
    from psycopg_pool import PoolTimeout

    return (psycopg.OperationalError, PoolTimeout)


class QmarkConnection:
    """A psycopg connection taking the ``?`` statements shared with SQLite.

    The shared statements hold no ``%`` and no literal ``?``.

    Parameters
    ----------
    connection : psycopg.Connection
    """

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> psycopg.Cursor:
        """Run one statement; its cursor."""
        return self.connection.execute(_pyformat(sql), parameters)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor:
        """Run one statement once per row of ``rows``; the cursor."""
        cursor = self.connection.cursor()
        cursor.executemany(_pyformat(sql), rows)
        return cursor


@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    return sql.replace("?", "%s")


class Pool:
    """A process's connections to one PostgreSQL schema.

    Opens psycopg's pool at once (``min_size`` connections kept, ``max_size`` at
    most, autocommit, ``schema`` first on the ``search_path``) and again on the
    first use after :meth:`close`, as the SQLite stores reopen their files.

    Parameters
    ----------
    url : str
        ``postgresql://user[:password]@host:port/database``.
    schema : str
        The schema the statements name their tables in.
    max_size : int
        Connections at most.
    min_size : int, default=1
        Connections kept open however idle; those above it close after
        ``max_idle`` seconds unused.
    max_idle : float, default=600.0
    """

    def __init__(self, url: str, *, schema: str, max_size: int, min_size: int = 1,
                 max_idle: float = 600.0) -> None:
        self.url = url
        self.schema = schema
        self.max_size = max_size
        self.min_size = min_size
        self.max_idle = max_idle
        self._pool = self._new()
        self._lock = threading.Lock()

    def _new(self) -> ConnectionPool:
        from psycopg_pool import ConnectionPool

        return ConnectionPool(self.url, min_size=self.min_size, max_size=self.max_size,
                              max_idle=self.max_idle, open=True,
                              kwargs={"autocommit": True,
                                      "options": f"-c search_path={self.schema}",
                                      "application_name": session_name()})

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A connection of the pool, returned to it when the block ends; waiting at most
        ``timeout`` seconds for one (None: the pool's own 30 s)."""
        from psycopg_pool import PoolTimeout

        pool = self._pool
        if pool.closed:
            with self._lock:
                if self._pool.closed:
                    self._pool = self._new()
                pool = self._pool
        try:
            connection = pool.getconn(timeout=timeout)
        except PoolTimeout:
            if pool.get_stats().get("connections_errors", 0):
                # Its connecting failed: the server is unreachable. The next caller gets a
                # new pool, which connects at once when the server is back, instead of
                # this one's reconnection backoff (up to 8 s between tries).
                with self._lock:
                    if self._pool is pool:
                        self._pool = self._new()
                # Its workers may sleep in that backoff: closed aside, not waited for.
                threading.Thread(target=pool.close, name="banditkit-pool-close",
                                 daemon=True).start()
            raise
        try:
            yield connection
        finally:
            pool.putconn(connection)  # rolls back what the block left open

    def close(self) -> None:
        """Close every connection (the next use opens the pool again)."""
        self._pool.close()
