"""Long-running jobs kept in the store: Personalizer's evaluations and feature importances.

A job is a row: who asked for what (its request, as JSON), where it stands
(``NotSubmitted`` -> ``Running`` -> ``Succeeded`` or ``Failed``, with a
message), when, and its result. Its binary artefacts (trained models, the
per-event arrays of an evaluation) sit beside it and go with it. One runner
claims jobs one at a time (docs/architecture.md §6); every HTTP worker reads
and writes rows.

:class:`JobStore` names what the runner and the routes need, and no more.
:class:`SQLJobStore` implements it once, in statements both databases run
(:class:`~banditkit.store.database.Database`): :class:`SQLiteJobStore` keeps
the rows in the data directory's SQLite file, :class:`PostgresJobStore` in the
PostgreSQL schema ``banditkit_jobs`` that every host shares, where runners
claim a job with ``FOR UPDATE SKIP LOCKED`` so that two never take the same one.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from banditkit.errors import BanditkitError, InvalidInputError
from banditkit.store.connections import ThreadConnections
from banditkit.store.database import Database, PostgresDatabase, SQLiteDatabase
from banditkit.store.schema import SCHEMA, prepare

__all__ = [
    "FAILED",
    "JOB_KINDS",
    "NOT_SUBMITTED",
    "RUNNING",
    "SUCCEEDED",
    "Job",
    "JobExistsError",
    "JobStore",
    "MIGRATIONS",
    "PostgresJobStore",
    "SQLJobStore",
    "SQLiteJobStore",
]

#: What a job computes.
JOB_KINDS = ("evaluation", "featureImportance")
NOT_SUBMITTED, RUNNING, SUCCEEDED, FAILED = "NotSubmitted", "Running", "Succeeded", "Failed"


class JobExistsError(BanditkitError):
    """A job of that kind and id exists with another request."""


@dataclass(frozen=True)
class Job:
    """One job's row.

    Attributes
    ----------
    row : int
        The store's own key (artefacts hang on it).
    kind : {"evaluation", "featureImportance"}
    job_id, name : str
        The caller's id and name.
    job_type : {"Manual", "Auto"}
    request : dict
        The request as validated and resolved (what the runner runs).
    status : str
    message : str
        Progress or the reason of a failure.
    created_at : float
        Unix seconds; ``started_at`` and ``finished_at`` too, None until then.
    attempts : int
        Times a runner claimed it.
    result : dict or None
        Once succeeded (None in pages of :meth:`JobStore.page`).
    """

    row: int
    kind: str
    job_id: str
    name: str
    job_type: str
    request: dict[str, Any]
    status: str
    message: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    result: dict[str, Any] | None


def _check_kind(kind: str) -> str:
    if kind not in JOB_KINDS:
        raise InvalidInputError(f"kind must be one of {JOB_KINDS}, got {kind!r}")
    return kind


def _canonical(request: Mapping[str, Any]) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"))


class JobStore(abc.ABC):
    """Jobs and their artefacts. Thread-safe; any process may call any method."""

    @abc.abstractmethod
    def create(self, kind: str, job_id: str, *, name: str, request: Mapping[str, Any],
               job_type: str = "Manual") -> tuple[Job, bool]:
        """Queue a job (``NotSubmitted``); returns it and whether it is new.

        The same id with the same request returns the existing job (a client's
        retry); with another request it raises :class:`JobExistsError`.
        """

    @abc.abstractmethod
    def get(self, kind: str, job_id: str) -> Job | None:
        """The job, with its result, or None."""

    @abc.abstractmethod
    def page(self, kind: str, *, skip: int, top: int, job_type: str | None = None,
             status: str | None = None) -> tuple[list[Job], int]:
        """Jobs oldest first from ``skip``, at most ``top``, without results; and how many
        match in all."""

    @abc.abstractmethod
    def delete(self, kind: str, job_id: str) -> bool:
        """Delete the job and its artefacts; False when there was none. A running job's
        runner finds it gone when it finishes and keeps nothing."""

    @abc.abstractmethod
    def claim_next(self, *, where: str | None = None) -> Job | None:
        """The oldest ``NotSubmitted`` job, now ``Running`` with one more attempt and a
        message saying ``where`` it runs (when given); None when none waits."""

    @abc.abstractmethod
    def finish(self, job: Job, *, status: str, message: str,
               result: Mapping[str, Any] | None = None,
               artifacts: Mapping[str, bytes] | None = None) -> bool:
        """Record a claimed job's end; False (nothing kept) when it was deleted, or queued
        again and claimed anew, meanwhile."""

    @abc.abstractmethod
    def recover(self, *, max_attempts: int) -> list[Job]:
        """Jobs left ``Running`` by a runner that stopped: queued again while they have
        had fewer than ``max_attempts`` attempts, else ``Failed`` naming why. Only
        the runner calls it, when it starts: no other runner can be running them."""

    @abc.abstractmethod
    def artifact(self, job: Job, name: str) -> bytes | None:
        """An artefact the job's end kept, or None."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's connections."""


_COLUMNS = ("rowid_, kind, job_id, name, job_type, request, status, message, created_at, "
            "started_at, finished_at, attempts")
#: The PostgreSQL job store's migrations, ``(name, SQL)`` in the order they apply
#: (schema ``banditkit_jobs``); released ones never change.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001-jobs", """
CREATE TABLE jobs (
    rowid_      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    job_type    TEXT NOT NULL,
    request     TEXT NOT NULL,
    status      TEXT NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    created_at  DOUBLE PRECISION NOT NULL,
    started_at  DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    attempts    INTEGER NOT NULL DEFAULT 0,
    result      TEXT,
    UNIQUE (kind, job_id)
);
CREATE INDEX jobs_queue ON jobs (status, created_at);
CREATE TABLE job_artifacts (
    job  BIGINT NOT NULL REFERENCES jobs (rowid_) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job, name)
);
"""),
)


class SQLJobStore(JobStore):
    """The :class:`JobStore` over a :class:`~banditkit.store.database.Database`: tables
    ``jobs`` and ``job_artifacts``. Build one of its subclasses with their ``open``.

    Parameters
    ----------
    database : Database
        Where the tables are.
    clock : callable, default=time.time
    """

    #: The oldest queued job, read in the claiming transaction.
    _NEXT: ClassVar[str] = (f"SELECT {_COLUMNS} FROM jobs WHERE status = ? "
                            "ORDER BY created_at, rowid_ LIMIT 1")

    def __init__(self, *, database: Database, clock: Any = time.time) -> None:
        self.database = database
        self.clock = clock


    @staticmethod
    def _job(row: tuple, result: str | None = None) -> Job:
        return Job(row=row[0], kind=row[1], job_id=row[2], name=row[3], job_type=row[4],
                   request=json.loads(row[5]), status=row[6], message=row[7],
                   created_at=row[8], started_at=row[9], finished_at=row[10],
                   attempts=row[11], result=None if result is None else json.loads(result))

    def create(self, kind: str, job_id: str, *, name: str, request: Mapping[str, Any],
               job_type: str = "Manual") -> tuple[Job, bool]:
        _check_kind(kind)
        text = _canonical(request)
        with self.database.transaction() as db:
            found = db.execute(f"SELECT {_COLUMNS}, result FROM jobs WHERE kind = ? "
                               "AND job_id = ?", (kind, job_id)).fetchone()
            if found is not None:
                if found[5] != text:
                    raise JobExistsError(f"a {kind} with id {job_id!r} exists with another "
                                         "request")
                return self._job(found[:-1], found[-1]), False
            db.execute("INSERT INTO jobs (kind, job_id, name, job_type, request, status, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (kind, job_id, name, job_type, text, NOT_SUBMITTED, self.clock()))
        job = self.get(kind, job_id)
        assert job is not None
        return job, True

    def get(self, kind: str, job_id: str) -> Job | None:
        with self.database.read() as db:
            found = db.execute(
                f"SELECT {_COLUMNS}, result FROM jobs WHERE kind = ? AND job_id = ?",
                (_check_kind(kind), job_id)).fetchone()
        return None if found is None else self._job(found[:-1], found[-1])

    def page(self, kind: str, *, skip: int, top: int, job_type: str | None = None,
             status: str | None = None) -> tuple[list[Job], int]:
        where, values = "kind = ?", [_check_kind(kind)]
        for column, value in (("job_type", job_type), ("status", status)):
            if value is not None:
                where += f" AND {column} = ?"
                values.append(value)
        with self.database.read() as db:
            total = db.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}",
                               values).fetchone()[0]
            rows = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE {where} ORDER BY "
                              "created_at, rowid_ LIMIT ? OFFSET ?",
                              [*values, top, skip]).fetchall()
        return [self._job(row) for row in rows], total

    def delete(self, kind: str, job_id: str) -> bool:
        with self.database.transaction() as db:
            deleted = db.execute("DELETE FROM jobs WHERE kind = ? AND job_id = ?",
                                 (_check_kind(kind), job_id)).rowcount
        return deleted > 0

    def claim_next(self, *, where: str | None = None) -> Job | None:
        # An idle runner asks every second: a read first, the write lock only for a job.
        with self.database.read() as db:
            waiting = db.execute("SELECT 1 FROM jobs WHERE status = ? LIMIT 1",
                                 (NOT_SUBMITTED,)).fetchone()
        if waiting is None:
            return None
        # Not exclusive: two claims meet on the row lock (PostgresJobStore's SKIP LOCKED).
        with self.database.transaction(exclusive=False) as db:
            found = db.execute(self._NEXT, (NOT_SUBMITTED,)).fetchone()
            if found is None:
                return None
            attempts = found[11] + 1
            message = "running" if where is None else f"running on {where}"
            if attempts > 1:
                message += f" (attempt {attempts})"
            db.execute("UPDATE jobs SET status = ?, started_at = ?, attempts = ?, message = ? "
                       "WHERE rowid_ = ?", (RUNNING, self.clock(), attempts, message, found[0]))
        return self.get(found[1], found[2])

    def finish(self, job: Job, *, status: str, message: str,
               result: Mapping[str, Any] | None = None,
               artifacts: Mapping[str, bytes] | None = None) -> bool:
        # Only the attempt that claimed it: a runner whose job was queued again and
        # claimed anew (recover) keeps nothing.
        with self.database.transaction() as db:
            updated = db.execute(
                "UPDATE jobs SET status = ?, message = ?, result = ?, finished_at = ? "
                "WHERE rowid_ = ? AND status = ? AND attempts = ?",
                (status, message, None if result is None else json.dumps(result),
                 self.clock(), job.row, RUNNING, job.attempts)).rowcount
            if updated:
                db.executemany("INSERT INTO job_artifacts (job, name, data) VALUES (?, ?, ?) "
                               "ON CONFLICT (job, name) DO UPDATE SET data = excluded.data",
                               [(job.row, name, data) for name, data in
                                (artifacts or {}).items()])
        return updated > 0

    def recover(self, *, max_attempts: int) -> list[Job]:
        with self.database.transaction() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE status = ?",
                              (RUNNING,)).fetchall()
            for row in rows:
                attempts = row[11]
                if attempts < max_attempts:
                    db.execute("UPDATE jobs SET status = ?, message = ? WHERE rowid_ = ?",
                               (NOT_SUBMITTED, f"queued again: the server stopped during "
                                               f"attempt {attempts}", row[0]))
                else:
                    db.execute("UPDATE jobs SET status = ?, message = ?, finished_at = ? "
                               "WHERE rowid_ = ?",
                               (FAILED, f"the server stopped during each of its {attempts} "
                                        f"attempts (JOBS_MAX_ATTEMPTS = {max_attempts})",
                                self.clock(), row[0]))
        return [job for row in rows if (job := self.get(row[1], row[2])) is not None]

    def artifact(self, job: Job, name: str) -> bytes | None:
        with self.database.read() as db:
            found = db.execute("SELECT data FROM job_artifacts WHERE job = ? AND name = ?",
                               (job.row, name)).fetchone()
        return None if found is None else bytes(found[0])

    def close(self) -> None:
        self.database.close()


class SQLiteJobStore(SQLJobStore):
    """The jobs of one data directory, in its SQLite file (``banditkit.sqlite3``) beside
    the decision store's tables; writers queue on ``BEGIN IMMEDIATE``."""

    @classmethod
    def open(cls, path: str | Path, *, clock: Any = time.time) -> SQLiteJobStore:
        """The job store of the SQLite file ``path`` (created with every table if new)."""
        connections = ThreadConnections(path=path, schema=SCHEMA, prepare=prepare)
        return cls(database=SQLiteDatabase(connections=connections), clock=clock)


class PostgresJobStore(SQLJobStore):
    """The jobs every host sharing a PostgreSQL database sees, in the schema
    ``banditkit_jobs``.

    A runner claims the oldest queued job with ``FOR UPDATE SKIP LOCKED``: runners
    of other hosts claiming at that moment skip the row and take the next, so each
    job is claimed once. The runners are the learner processes, and only the
    learner lease's holder runs one (docs/operations.md, PostgreSQL deployments).
    """

    _NEXT = SQLJobStore._NEXT + " FOR UPDATE SKIP LOCKED"

    @classmethod
    def open(cls, url: str, *, clock: Any = time.time) -> PostgresJobStore:
        """Connect, create or migrate the schema and return the store.

        Raises
        ------
        InvalidInputError
            A URL of the wrong form.
        psycopg.OperationalError
            When the server cannot be reached.
        """
        return cls(database=PostgresDatabase.open(url, schema="banditkit_jobs",
                                                  migrations=MIGRATIONS), clock=clock)
