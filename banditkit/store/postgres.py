"""The decision store in PostgreSQL, the store that many hosts can share (docs/architecture.md §3).

:class:`PostgresStore` is the :class:`~banditkit.store.journaled.JournaledStore`
whose tables live in a PostgreSQL schema: the journals, claims and tokens stay
files of the host (a rank never waits for the database, docs/operations.md,
"PostgreSQL"), and ingestion moves journal lines into the tables with their
offsets in the same transaction. Connections come from a psycopg 3 pool, each
in autocommit mode with the store's schema first on its ``search_path``.

The schema is created and brought up to date when a store opens
(:func:`migrate`): versioned migrations, each applied once and recorded in
``schema_migrations``, under a transaction-scoped advisory lock so that hosts
starting at once apply them one after the other.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from banditkit.errors import InvalidInputError
from banditkit.store.journaled import Fence, JournaledStore
from banditkit.store.psql import (
    READ_WAIT_SECONDS,
    Pool,
    QmarkConnection,
    process_name,
    session_name,
    unreachable_errors,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["MIGRATIONS", "LearnerLease", "PostgresStore", "check_database_url", "migrate"]

_log = logging.getLogger(__name__)

#: The decision store's migrations, ``(name, SQL)`` in the order they apply. A
#: migration once released never changes; a change to the tables is a new one.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001-decisions", """
CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,  -- insertion order
    event_id     TEXT PRIMARY KEY,
    created_at   DOUBLE PRECISION NOT NULL,
    deferred     INTEGER NOT NULL,
    activated_at DOUBLE PRECISION,
    decision     TEXT NOT NULL,   -- the dsjson object before the join
    context_at   INTEGER,         -- where its ',"c":' features begin, if known
    tag          TEXT,
    joined_at    DOUBLE PRECISION,
    join_seq     BIGINT,          -- order of joining, for replay after a restart
    joined_line  TEXT             -- without "c" when context_at is known
);
CREATE INDEX events_pending ON events (created_at, id) WHERE joined_at IS NULL;
CREATE INDEX events_join_seq ON events (join_seq) WHERE join_seq IS NOT NULL;
CREATE INDEX events_joined ON events (joined_at) WHERE joined_at IS NOT NULL;
CREATE INDEX events_activated_early ON events (activated_at)
    WHERE joined_at IS NULL AND activated_at < created_at;
CREATE INDEX events_tag ON events (tag, created_at);
CREATE TABLE rewards (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    value       DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    late        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX rewards_event ON rewards (event_id);
CREATE TABLE models (
    version           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at        DOUBLE PRECISION NOT NULL,
    policy_args       TEXT NOT NULL,
    banditkit_version TEXT NOT NULL,
    through_seq       BIGINT NOT NULL,
    n_updates         BIGINT NOT NULL,
    data              BYTEA NOT NULL,
    origin            TEXT NOT NULL DEFAULT 'learner'
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE join_seq_floor (id INTEGER PRIMARY KEY CHECK (id = 0), seq BIGINT NOT NULL);
CREATE TABLE unlogged_joins (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_seq BIGINT NOT NULL,
    last_seq  BIGINT NOT NULL
);
CREATE TABLE journal_files (       -- files are named <pid>-<uuid>: unique among hosts
    name     TEXT PRIMARY KEY,
    "offset" BIGINT NOT NULL,         -- bytes already ingested
    host     TEXT NOT NULL            -- the host and journal folder it is in
);
CREATE INDEX journal_files_host ON journal_files (host);
CREATE TABLE journal_rejects (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind     TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at       DOUBLE PRECISION NOT NULL,
    record   TEXT NOT NULL,
    reason   TEXT NOT NULL
);
"""),
    ("0002-unmatched-outcomes", """
CREATE TABLE unmatched_outcomes (  -- outcomes ingested before their decision
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,              -- a journal record's kind: r, a, s
    event_id    TEXT NOT NULL,
    at          DOUBLE PRECISION NOT NULL,  -- when the host received it
    value       DOUBLE PRECISION NOT NULL,
    payload     TEXT NOT NULL,              -- the slot id of a slot reward
    orphaned_at DOUBLE PRECISION,           -- set when its decision never came
    reason      TEXT
);
CREATE INDEX unmatched_outcomes_event ON unmatched_outcomes (event_id);
CREATE INDEX unmatched_outcomes_waiting ON unmatched_outcomes (at) WHERE orphaned_at IS NULL;
"""),
    ("0003-learner-epoch", """
CREATE TABLE learner_epoch (       -- the learner lease's fencing token
    id          INTEGER PRIMARY KEY CHECK (id = 0),
    epoch       BIGINT NOT NULL,            -- raised by each new holder of the lease
    holder      TEXT NOT NULL,              -- host and pid of that holder
    since       DOUBLE PRECISION NOT NULL,
    backend_pid INTEGER NOT NULL,           -- its lease session, on the server
    beat_at     DOUBLE PRECISION NOT NULL   -- the server's time of its last heartbeat
);
"""),
    # A decision (several KB of action features) is compressed when stored: pglz,
    # PostgreSQL's default, cost the server about a third of its work per decision,
    # lz4 a fraction of that (docs/operations.md, "PostgreSQL deployments"). A server
    # built without lz4 keeps pglz.
    ("0004-lz4-decisions", """
DO $$
BEGIN
    EXECUTE 'ALTER TABLE events ALTER COLUMN decision SET COMPRESSION lz4, '
            'ALTER COLUMN joined_line SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE WARNING 'lz4 compression is not available: decisions stay pglz-compressed';
END $$;
"""),
)

_URL = re.compile(r"postgres(ql)?://\S*")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Advisory lock keys: one for every store's migrations (CREATE SCHEMA too), one
# per schema for its writers.
_MIGRATION_LOCK = zlib.crc32(b"banditkit:migrations")
_DUE_COLUMNS = "id, event_id, created_at, deferred, activated_at, decision, context_at"
# The lease's connection is declared dead after 4 + 3 x 2 = 10 s without an answer,
# by the server (its session ends, the lock goes to the next learner) and by the
# client (the holder sees it lost the lease); unacknowledged writes time out as soon.
_LEASE_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 4, "keepalives_interval": 2,
                     "keepalives_count": 3, "tcp_user_timeout": 10_000}
# The database server's clock, so that heartbeats compare whatever the hosts' clocks say.
_SERVER_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION"
_LEASE_SERVER_OPTIONS = ("-c tcp_keepalives_idle=4 -c tcp_keepalives_interval=2 "
                         "-c tcp_keepalives_count=3 -c tcp_user_timeout=10000")


def check_database_url(url: str) -> str:
    """``url`` when it is a PostgreSQL URL (``postgresql://user@host:port/db``).

    Raises
    ------
    InvalidInputError
        Naming the expectation and the value (passwords are not repeated).
    """
    if not isinstance(url, str) or not _URL.fullmatch(url):
        shown = url.split("@")[-1] if isinstance(url, str) else url
        raise InvalidInputError(f"database_url must be a postgresql://user@host:port/database "
                                f"URL, got {shown!r}")
    return url


def migrate(connection: psycopg.Connection, *, schema: str,
            migrations: Sequence[tuple[str, str]] = MIGRATIONS) -> list[str]:
    """Create ``schema`` and apply the migrations it lacks, in one transaction; returns
    the names applied.

    Holds an advisory lock for the transaction, so two hosts starting at once
    apply each migration once. Migrations recorded in the database but unknown
    here (a newer banditkit made them) are left alone with a warning.
    """
    applied_now = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        connection.execute(f"SET LOCAL search_path TO {schema}")
        connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           "name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        applied = {row[0] for row in connection.execute("SELECT name FROM schema_migrations")}
        for name, sql in migrations:
            if name not in applied:
                connection.execute(sql)
                connection.execute("INSERT INTO schema_migrations VALUES (%s, %s)",
                                   (name, time.time()))
                applied_now.append(name)
        unknown = applied - {name for name, _ in migrations}
        if unknown:
            _log.warning("schema %s has migrations this banditkit does not know (%s): a "
                         "newer version made them", schema, ", ".join(sorted(unknown)))
    return applied_now


class PostgresStore(JournaledStore):
    """The PostgreSQL :class:`~banditkit.store.DecisionStore`. Build it with :meth:`open`.

    Parameters
    ----------
    pool : Pool
        This process's connections, ``schema`` on their search path.
    schema : str
        The PostgreSQL schema holding the tables (migrated).
    local, synchronous, journal_dir
        Those of :class:`~banditkit.store.journaled.JournaledStore`: this host's
        journal folder, claims and tokens.
    """

    #: The migrations of this store's schema (the row store adds its own).
    migrations: ClassVar[tuple[tuple[str, str], ...]] = MIGRATIONS
    row_key = "id"
    # An event ranked on another host reaches the tables when that host ships it.
    accepts_unknown_events = True
    _LAST_JOIN_SEQ = (
        "SELECT GREATEST((SELECT COALESCE(MAX(join_seq), 0) FROM events "
        "WHERE join_seq IS NOT NULL), (SELECT COALESCE(MAX(seq), 0) FROM join_seq_floor))")
    _DUE_CREATED = (
        f"SELECT {_DUE_COLUMNS} FROM events WHERE joined_at IS NULL AND created_at <= ? "
        "AND (deferred = 0 OR COALESCE(activated_at, created_at) <= ?) "
        "ORDER BY created_at, id LIMIT ?")
    _DUE_ACTIVATED_EARLY = (
        f"SELECT {_DUE_COLUMNS} FROM events WHERE joined_at IS NULL "
        "AND activated_at < created_at AND deferred = 1 AND activated_at <= ? "
        "AND created_at > ? ORDER BY created_at, id LIMIT ?")

    def __init__(self, *, pool: Pool, schema: str, local: Path,
                 synchronous: str = "NORMAL", journal_dir: Path | None = None) -> None:
        journal_dir = journal_dir or local.parent / f"{local.name}-journal"
        # Each host ingests (ships) its own folder's files and forgets only those.
        super().__init__(local=local, synchronous=synchronous, journal_dir=journal_dir,
                         journal_scope=f"{socket.gethostname()}:{journal_dir.resolve()}")
        self.pool = pool
        self.schema = schema
        # Writers of the schema take this transaction-scoped lock one at a time,
        # as SQLite's BEGIN IMMEDIATE queues them.
        self._write_lock = zlib.crc32(f"banditkit:{schema}:write".encode())

    @classmethod
    def open(cls, url: str, *, local: Path, schema: str = "banditkit",
             synchronous: str = "NORMAL", journal_dir: Path | None = None,
             max_connections: int = 8) -> PostgresStore:
        """Connect, create or migrate ``schema``, and return the store.

        Parameters
        ----------
        url : str
            ``postgresql://user[:password]@host:port/database``.
        local : path
            This host's prefix for its journal folder, claims and tokens.
        schema : str, default="banditkit"
            Lower-case letters, digits and ``_``.
        max_connections : int, default=8
            Connections of this process's pool at most.

        Raises
        ------
        InvalidInputError
            A URL or schema name of the wrong form.
        psycopg.OperationalError
            When the server cannot be reached (its message names why).
        """
        import psycopg

        check_database_url(url)
        if not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidInputError(f"schema must be lower-case letters, digits and _, "
                                    f"got {schema!r}")
        with psycopg.connect(url, autocommit=True) as connection:
            migrate(connection, schema=schema, migrations=cls.migrations)
        return cls(pool=Pool(url, schema=schema, max_size=max_connections), schema=schema,
                   local=local,
                   synchronous=synchronous, journal_dir=journal_dir)

    # -- connections -----------------------------------------------------------

    @contextlib.contextmanager
    def _any_connection(self) -> Iterator[QmarkConnection]:
        # A read waits a moment for a connection, not the pool's 30 s: while the
        # server is down, rankers answer from what they know (JournaledStore._hot_read).
        with self.pool.connection(timeout=READ_WAIT_SECONDS) as connection:
            yield QmarkConnection(connection)

    def _unreachable_errors(self) -> tuple[type[BaseException], ...]:
        return unreachable_errors()

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[QmarkConnection]:
        with self.pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_lock,))
            yield QmarkConnection(connection)

    def _due_rows(self, db: QmarkConnection, cutoff: float, limit: int) -> list[tuple]:
        rows = db.execute(self._DUE_CREATED, (cutoff, cutoff, limit)).fetchall()
        if len(rows) < limit:  # all of those come first: they were created by the cutoff
            rows += db.execute(self._DUE_ACTIVATED_EARLY,
                               (cutoff, cutoff, limit - len(rows))).fetchall()
        return rows

    def close(self) -> None:
        super().close()
        self.pool.close()


class LearnerLease:
    """The right to be the one learner of a PostgreSQL store, among every host.

    A session-level advisory lock held on a connection of its own: it ends with
    the session, so when the holder dies the server releases it at once, and
    when the holder's host goes silent, within about 10 s (the connection's
    keepalives). A learner waits until :meth:`acquire` gives it the lease and
    stops learning as soon as :meth:`held` says it lost it.

    Each acquisition raises the schema's learner epoch (``learner_epoch``) in
    the same session: :meth:`fence` gives the token the holder's stores check
    inside every join and model snapshot, so a holder that lost the lease
    without noticing (its session ended while its process lives on) writes
    nothing once another learner took it. The holder's :meth:`held` is also its
    heartbeat; a holder whose heartbeat is older than ``stale_seconds`` (its
    process is stopped or hung while its host still answers the keepalives) is
    deposed by the next :meth:`acquire` of another learner, which ends its
    lease session: safe, since the epoch fences it.

    Parameters
    ----------
    url : str
        The store's database (its schema migrated).
    schema : str, default="banditkit"
        The store's schema: one learner per schema.
    stale_seconds : float, default=10.0
        A holder's heartbeat older than this (by the database server's clock)
        deposes it; call :meth:`held` more often than that.
    """

    def __init__(self, *, url: str, schema: str = "banditkit",
                 stale_seconds: float = 10.0) -> None:
        self.url = check_database_url(url)
        if not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidInputError(f"schema must be lower-case letters, digits and _, "
                                    f"got {schema!r}")
        if not stale_seconds > 0:
            raise InvalidInputError(f"stale_seconds must be > 0, got {stale_seconds!r}")
        self.schema = schema
        self.stale_seconds = stale_seconds
        self.epoch = 0  # the epoch of the latest acquisition; 0 before it
        self._key = zlib.crc32(f"banditkit:{schema}:learner".encode())
        self._connection: psycopg.Connection | None = None  # while held or asked for

    def acquire(self) -> bool:
        """Take the lease if nobody holds it (and raise the epoch); True when this
        object holds it. A holder whose heartbeat is stale is deposed (its session
        ended), so that a later call takes the lease."""
        import psycopg

        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.url, autocommit=True,
                                               options=_LEASE_SERVER_OPTIONS,
                                               application_name=session_name(),
                                               **_LEASE_KEEPALIVES)
            migrate(self._connection, schema=self.schema)  # the epoch's table
        connection = self._connection
        if not connection.execute("SELECT pg_try_advisory_lock(%s)",
                                  (self._key,)).fetchone()[0]:
            self._depose_stale(connection)
            return False
        holder = process_name()
        self.epoch = int(connection.execute(
            f"INSERT INTO {self.schema}.learner_epoch "
            "(id, epoch, holder, since, backend_pid, beat_at) "
            f"VALUES (0, 1, %s, %s, pg_backend_pid(), {_SERVER_NOW}) "
            "ON CONFLICT (id) DO UPDATE SET epoch = learner_epoch.epoch + 1, "
            "holder = excluded.holder, since = excluded.since, "
            "backend_pid = excluded.backend_pid, beat_at = excluded.beat_at "
            "RETURNING epoch", (holder, time.time())).fetchone()[0])
        return True

    def _depose_stale(self, connection: psycopg.Connection) -> None:
        """End the sessions of a holder whose heartbeat is older than ``stale_seconds``:
        its lease session, and every other session of its process, since a process
        stopped inside a transaction holds that transaction's locks (the learner
        epoch's row, the store's write lock) until its session ends."""
        row = connection.execute(
            f"SELECT holder, epoch, {_SERVER_NOW} - beat_at, pg_terminate_backend(backend_pid) "
            f"FROM {self.schema}.learner_epoch WHERE id = 0 AND beat_at < {_SERVER_NOW} - %s",
            (self.stale_seconds,)).fetchone()
        if row is None:
            return
        others = connection.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database() "
            "AND pid <> pg_backend_pid()", (session_name(row[0]),)).fetchone()[0]
        _log.warning("the learner lease holder %s (epoch %s) gave no heartbeat for %.0f s; "
                     "ended its lease session (%s) and %d other sessions of its process",
                     row[0], row[1], row[2], "done" if row[3] else "refused", others)

    def fence(self) -> Fence:
        """The fencing token of the latest acquisition, for the holder's stores (any schema
        of the database)."""
        if not self.epoch:
            raise RuntimeError("the learner lease was never acquired")
        return Fence(statement=f"SELECT epoch FROM {self.schema}.learner_epoch "
                               "WHERE id = 0 FOR SHARE", epoch=self.epoch)

    def held(self) -> bool:
        """Whether the lease is still this object's (its session answers and its epoch is
        the current one); records the holder's heartbeat."""
        import psycopg

        if self._connection is None or self._connection.closed:
            return False
        try:
            beat = self._connection.execute(
                f"UPDATE {self.schema}.learner_epoch SET beat_at = {_SERVER_NOW} "
                "WHERE id = 0 AND epoch = %s", (self.epoch,))
        except psycopg.Error:
            self.release()
            return False
        if beat.rowcount != 1:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Give the lease up (closing the session releases the lock)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
