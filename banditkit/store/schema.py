"""The SQLite decision store's tables and its hot queries (docs/architecture.md §3).

:data:`SCHEMA` creates the tables of a new data directory; :func:`prepare`
brings an older one up to date and tunes each new connection. The due-event
and join-sequence queries are here beside the indexes they are written for.
"""

from __future__ import annotations

import contextlib
import sqlite3

__all__ = [
    "DUE_ACTIVATED_EARLY",
    "DUE_CREATED",
    "LAST_JOIN_SEQ",
    "SCHEMA",
    "prepare",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id     TEXT PRIMARY KEY,
    created_at   REAL NOT NULL,
    deferred     INTEGER NOT NULL,
    activated_at REAL,
    decision     TEXT NOT NULL,   -- the dsjson object before the join
    context_at   INTEGER,         -- where its ',"c":' features begin, if known
    joined_at    REAL,
    join_seq     INTEGER,         -- order of joining, for replay after a restart
    joined_line  TEXT             -- the joined dsjson line; without "c" when context_at is
                                  -- known (the decision holds the features)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (created_at) WHERE joined_at IS NULL;
CREATE INDEX IF NOT EXISTS events_join_seq ON events (join_seq) WHERE join_seq IS NOT NULL;
-- Retention deletes by joined_at: without it, every learner step read every kept event.
CREATE INDEX IF NOT EXISTS events_joined ON events (joined_at) WHERE joined_at IS NOT NULL;
-- Pending deferred events activated before their creation time (another process's
-- clock): the only due events created after the cutoff, so the due scan can stop there.
CREATE INDEX IF NOT EXISTS events_activated_early ON events (activated_at)
    WHERE joined_at IS NULL AND activated_at < created_at;
CREATE TABLE IF NOT EXISTS rewards (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    value       REAL NOT NULL,
    received_at REAL NOT NULL,
    late        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rewards_event ON rewards (event_id);
CREATE TABLE IF NOT EXISTS models (
    version           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at        REAL NOT NULL,
    policy_args       TEXT NOT NULL,
    banditkit_version TEXT NOT NULL,
    through_seq       INTEGER NOT NULL,
    n_updates         INTEGER NOT NULL,
    data              BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The join sequence reached before the joined events were deleted (a log purge), so
-- that joins after it go on numbering past what every learner has learned.
CREATE TABLE IF NOT EXISTS join_seq_floor (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS unlogged_joins (
    id        INTEGER PRIMARY KEY,  -- joined events whose lines may not be in the log yet
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_files (
    name   TEXT PRIMARY KEY,        -- a file of the journal folder
    offset INTEGER NOT NULL,        -- bytes already ingested
    host   TEXT NOT NULL DEFAULT '' -- whose journal folder ('' for the one host)
);
CREATE TABLE IF NOT EXISTS journal_rejects (
    id     INTEGER PRIMARY KEY,
    kind   TEXT NOT NULL,           -- d(ecision), r(eward) or a(ctivation)
    event_id TEXT NOT NULL,
    at     REAL NOT NULL,
    record TEXT NOT NULL,           -- the decision JSON or the reward value
    reason TEXT NOT NULL
);
-- Long-running jobs (Personalizer's evaluations and feature importances), run by the
-- learner process's job runner (banditkit/store/jobs.py).
CREATE TABLE IF NOT EXISTS jobs (
    rowid_      INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,          -- evaluation | featureImportance
    job_id      TEXT NOT NULL,          -- the caller's id
    name        TEXT NOT NULL,
    job_type    TEXT NOT NULL,          -- Manual | Auto
    request     TEXT NOT NULL,          -- JSON: the request as validated and resolved
    status      TEXT NOT NULL,          -- NotSubmitted, Running, Succeeded, Failed, ...
    message     TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    result      TEXT,                   -- JSON, once succeeded
    UNIQUE (kind, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS job_artifacts (
    job  INTEGER NOT NULL REFERENCES jobs (rowid_) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job, name)
);
"""

# What the WAL may gain before a commit copies its pages into the database
# (SQLite's default is 1000 pages, 4 MB). The learner writes every event twice
# (ingested, then joined): checkpointing ten times less often copies a page once
# where it copied it several times, a sixth of a learner step
# (benchmarks/bench_loop.py). Durability is the WAL's either way.
_WAL_CHECKPOINT_BYTES = 40 << 20
# Columns added after a data directory may have been created: (table, column, type).
# models.origin: what published a snapshot (learner, policy, import, reset);
# journal_files.host: whose journal folder a file is in (the journaled store's scope).
_ADDED_COLUMNS = [("events", "context_at", "INTEGER"), ("events", "tag", "TEXT"),
                  ("models", "origin", "TEXT NOT NULL DEFAULT 'learner'"),
                  ("journal_files", "host", "TEXT NOT NULL DEFAULT ''")]
# Indexes on added columns: created once the columns exist.
_ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS events_tag ON events (tag, created_at);"

#: The latest join sequence, read from the partial index on join_seq: without the
#: WHERE, SQLite cannot use that index and scans every event the retention keeps.
#: Never below the floor a log purge left (``join_seq_floor``).
LAST_JOIN_SEQ = (
    "SELECT MAX((SELECT COALESCE(MAX(join_seq), 0) FROM events WHERE join_seq IS NOT NULL), "
    "(SELECT COALESCE(MAX(seq), 0) FROM join_seq_floor))")
# Due events (not joined; deferred ones counted from their activation, if any), oldest
# first, in two parts so that no query reads the pending events that are not due yet.
# Those created by the cutoff come by the pending index, its scan stopping at the cutoff
# (DUE_CREATED). After them come the deferred ones created after it but activated by
# it: activated before their creation time, by another process's clock, and found by
# their own index (DUE_ACTIVATED_EARLY).
_DUE_COLUMNS = "rowid, event_id, created_at, deferred, activated_at, decision, context_at"
DUE_CREATED = (
    f"SELECT {_DUE_COLUMNS} FROM events WHERE joined_at IS NULL AND created_at <= :c "
    "AND (deferred = 0 OR COALESCE(activated_at, created_at) <= :c) "
    "ORDER BY created_at, rowid LIMIT :n")
DUE_ACTIVATED_EARLY = (
    f"SELECT {_DUE_COLUMNS} FROM events INDEXED BY events_activated_early "
    "WHERE joined_at IS NULL AND activated_at < created_at AND deferred = 1 "
    "AND activated_at <= :c AND created_at > :c ORDER BY created_at, rowid LIMIT :n")


def prepare(connection: sqlite3.Connection) -> None:
    """Add the columns and indexes a database made by an older banditkit lacks, and
    set the WAL checkpoint size; run once on each new connection, after :data:`SCHEMA`.
    """
    for table, column, kind in _ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            with contextlib.suppress(sqlite3.OperationalError):  # another did it
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    connection.executescript(_ADDED_INDEXES)
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_BYTES // page_size}")
