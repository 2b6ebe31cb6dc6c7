"""Where a component keeps its tables: a SQLite file or a PostgreSQL schema, one API
(docs/architecture.md §3).

The catalogue, the server's keys and metadata and the evaluation jobs write
their statements once, in the SQL both databases run, with ``?`` placeholders,
against a :class:`Database`: :meth:`~Database.read` lends a connection for
reads, :meth:`~Database.transaction` one inside a write transaction that
writers take one at a time (SQLite's ``BEGIN IMMEDIATE``; in PostgreSQL a
transaction-scoped advisory lock per schema). :func:`open_database` is the one
place that chooses, as :func:`~banditkit.store.factory.open_store` chooses the
decision store's.
"""

from __future__ import annotations

import abc
import contextlib
import sqlite3
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from banditkit.store.connections import ThreadConnections, write_transaction
from banditkit.store.postgres import check_database_url, migrate
from banditkit.store.psql import READ_WAIT_SECONDS, Pool, QmarkConnection, unreachable_errors

__all__ = ["Database", "PostgresDatabase", "SQLiteDatabase", "open_database"]

# How long an unused connection of a component's pool stays open.
_IDLE_SECONDS = 60.0


class Database(abc.ABC):
    """The tables of one component, in SQLite or PostgreSQL.

    Attributes
    ----------
    shared : bool
        Whether other hosts read and write the same tables (PostgreSQL): what a
        process caches from them can be changed by a process it cannot signal.
    integrity_errors : tuple of exception types
        What a broken ``UNIQUE`` or foreign key raises.
    unreachable_errors : tuple of exception types
        What a read raises when the database cannot be reached (none for a file of
        the host): a caller with a cached answer gives it instead.
    """

    shared: bool
    integrity_errors: tuple[type[Exception], ...]
    unreachable_errors: tuple[type[BaseException], ...] = ()

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractContextManager[Any]:
        """A connection (``execute``, ``executemany``) for reads; fetch inside the block."""

    @abc.abstractmethod
    def transaction(self, *, exclusive: bool = True) -> contextlib.AbstractContextManager[Any]:
        """A connection inside a write transaction, committed when the block ends, rolled
        back on any exception.

        Exclusive transactions run one at a time. A PostgreSQL one that is not
        relies on its row locks alone (``FOR UPDATE``); SQLite's writers always
        run one at a time.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection (the next use opens them again)."""


class SQLiteDatabase(Database):
    """A SQLite file of the data directory, a connection per thread in WAL mode.

    Parameters
    ----------
    connections : ThreadConnections
        Of the file, with the component's schema.
    """

    shared = False
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, *, connections: ThreadConnections) -> None:
        self.connections = connections

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        yield self.connections.get()

    def transaction(self, *, exclusive: bool = True
                    ) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.connections.get())

    def close(self) -> None:
        self.connections.close()


class PostgresDatabase(Database):
    """A PostgreSQL schema, reached through this process's pool. Build it with :meth:`open`.

    Parameters
    ----------
    pool : Pool
        This process's connections, ``schema`` on their search path.
    schema : str
        The migrated schema.
    """

    shared = True

    def __init__(self, *, pool: Pool, schema: str) -> None:
        import psycopg

        self.pool = pool
        self.schema = schema
        self.integrity_errors = (psycopg.IntegrityError,)
        self.unreachable_errors = unreachable_errors()
        self._write_lock = zlib.crc32(f"banditkit:{schema}:write".encode())

    @classmethod
    def open(cls, url: str, *, schema: str, migrations: Sequence[tuple[str, str]],
             max_connections: int = 4) -> PostgresDatabase:
        """Connect, create or migrate ``schema`` (:func:`~banditkit.store.postgres.migrate`,
        safe when hosts start at once) and return it.

        Parameters
        ----------
        url : str
            ``postgresql://user[:password]@host:port/database``.
        schema : str
            The component's schema (a name the code gives, not a user).
        migrations : sequence of (str, str)
            The schema's migrations, ``(name, SQL)`` in the order they apply.
        max_connections : int, default=4
            Connections of this process's pool at most.

        Raises
        ------
        InvalidInputError
            A URL of the wrong form.
        psycopg.OperationalError
            When the server cannot be reached.
        """
        import psycopg

        check_database_url(url)
        with psycopg.connect(url, autocommit=True) as connection:
            migrate(connection, schema=schema, migrations=migrations)
        # Catalogue, keys and jobs are read now and then (the catalogue and keys
        # through caches): an idle process keeps no connection of theirs.
        return cls(pool=Pool(url, schema=schema, max_size=max_connections, min_size=0,
                             max_idle=_IDLE_SECONDS), schema=schema)

    @contextlib.contextmanager
    def read(self) -> Iterator[QmarkConnection]:
        with self.pool.connection(timeout=READ_WAIT_SECONDS) as connection:
            yield QmarkConnection(connection)

    @contextlib.contextmanager
    def transaction(self, *, exclusive: bool = True) -> Iterator[QmarkConnection]:
        with self.pool.connection() as connection, connection.transaction():
            if exclusive:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_lock,))
            yield QmarkConnection(connection)

    def close(self) -> None:
        self.pool.close()


def open_database(*, path: str | Path, sqlite_schema: str,
                  prepare: Callable[[sqlite3.Connection], None] | None = None,
                  database_url: str | None = None, schema: str = "",
                  migrations: Sequence[tuple[str, str]] = ()) -> Database:
    """A component's tables: the SQLite file ``path``, or with ``database_url`` the
    PostgreSQL ``schema`` brought up to date by ``migrations``.

    Parameters
    ----------
    path : path
        The SQLite file (unused with a URL).
    sqlite_schema : str
        SQL script run on each new SQLite connection (``CREATE ... IF NOT EXISTS``).
    prepare : callable, default=None
        Called with each new SQLite connection after the script (its migrations).
    database_url : str, default=None
        ``postgresql://user@host:port/database``; None keeps the tables in SQLite.
    schema : str, default=""
        The PostgreSQL schema (required with a URL).
    migrations : sequence of (str, str), default=()
        The PostgreSQL schema's migrations.
    """
    if database_url is None:
        return SQLiteDatabase(connections=ThreadConnections(path=path, schema=sqlite_schema,
                                                            prepare=prepare))
    return PostgresDatabase.open(database_url, schema=schema, migrations=migrations)
