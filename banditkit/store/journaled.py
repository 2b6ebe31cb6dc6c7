"""The journal-first decision store, whatever database holds its tables.

:class:`JournaledStore` is the logic the SQLite store of one host
(:class:`banditkit.store.Store`) and the PostgreSQL store
(:class:`banditkit.store.PostgresStore`) share: decisions, rewards and
activations are appended to this process's journal (:mod:`banditkit.store.journal`),
durable in one ``write``, and reach the tables when the learner joins or when a
reader needs them (:meth:`JournaledStore.ingest`); event ids are refused
through the claims and the stored-id filter (:mod:`banditkit.store.event_ids`);
the join, the unlogged joins, models and settings are the same statements in
both databases (docs/architecture.md §3, §5). Every other public method is
one transaction, committed before it returns.

Subclasses give the connections (:meth:`JournaledStore._any_connection`,
:meth:`JournaledStore._write_transaction`) and the few statements their SQL
dialects write differently. Shared statements use ``?`` placeholders.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from banditkit.bounded import drop_older_half
from banditkit.dsjson import full_line
from banditkit.errors import (
    BanditkitError,
    DuplicateEventError,
    InvalidInputError,
    UnknownEventError,
)
from banditkit.store.base import DecisionStore, Joined
from banditkit.store.connections import rows_in
from banditkit.store.event_ids import ChangeToken, EventClaims, StoredIdFilter, process_alive
from banditkit.store.journal import (
    JournalLine,
    JournalReader,
    JournalWriter,
    activation_line,
    decision_line,
    reward_line,
)
from banditkit.store.records import (
    ModelSnapshot,
    PendingEvent,
    RewardRecord,
    Unjoinable,
    UnloggedJoin,
)

__all__ = ["Fence", "JournaledStore", "LeaseLostError"]

_log = logging.getLogger(__name__)

# Event ids this process journaled, remembered (with what the caller asked to
# keep of each, e.g. a row page's slot ids) so its own rewards and duplicate
# checks need no ingestion; older ones are in the tables by then.
_RECENT_IDS = 100_000
# How long a claim outlives the ingestion of its decision (EventClaims): a
# process paused longer between claiming an id and journaling its decision
# leaves a duplicate to be caught at ingestion (journal_rejects).
_CLAIM_GRACE_SECONDS = 60.0
# At most one warning this often per process while the database cannot be reached.
_UNREACHABLE_WARNING_SECONDS = 10.0
# How long the hot path answers without trying the database after it failed to answer.
_RETRY_DATABASE_SECONDS = 1.0


class LeaseLostError(BanditkitError):
    """A learner whose lease passed to another learner tried to join, log or publish."""


@dataclasses.dataclass(frozen=True)
class Fence:
    """A learner lease's fencing token, checked inside the learner's write transactions.

    Every new holder of the lease raises the epoch (``LearnerLease``); a learner
    that lost its lease while its process lives on (its database session was
    ended, its host cut off) still holds the old epoch, so its joins and model
    snapshots are refused in the transaction that would write them.

    Parameters
    ----------
    statement : str
        Reads the current epoch and holds it for the transaction (a shared row
        lock: a new holder's raise waits for the transaction, or the transaction
        sees the raise).
    epoch : int
        The epoch this learner was given.
    """

    statement: str
    epoch: int

    def check(self, db: Any) -> None:
        """Raise :class:`LeaseLostError` unless ``epoch`` is still the current one."""
        row = db.execute(self.statement).fetchone()
        current = None if row is None else int(row[0])
        if current != self.epoch:
            raise LeaseLostError(f"this learner's lease (epoch {self.epoch}) passed to "
                                 f"another learner (epoch {current}); not writing")


class JournaledStore(DecisionStore):
    """A :class:`~banditkit.store.DecisionStore` whose writes go through journals.

    Parameters
    ----------
    local : path
        Where this host's files go, as a prefix: ``<local>-journal/`` (the
        journal folder), ``<local>-events.token``, ``<local>-models.token``
        and ``<local>-claims.sqlite3``.
    synchronous : {"NORMAL", "FULL"}, default="NORMAL"
        The journal's fsync policy (and SQLite's). NORMAL survives a killed
        process; FULL also survives power loss, at one fsync per call.
    journal_dir : path, default=None
        This store's journal folder; ``<local>-journal`` if None.
    journal_scope : str, default=""
        Whose journal offsets this store reads and writes in ``journal_files``
        (every host's journal folder has its own; one host's is ``""``).
    """

    #: The column that numbers rows in insertion order (the stored-id filter and
    #: the join update rows by it).
    row_key: ClassVar[str]
    #: The latest join sequence, never below the floor a log purge left.
    _LAST_JOIN_SEQ: ClassVar[str]
    #: Whether a reward or an activation for an event id the tables lack is
    #: accepted and kept in ``unmatched_outcomes`` until its decision arrives (a
    #: store hosts share: the decision may be on its way from another host);
    #: otherwise it is refused (:class:`~banditkit.errors.UnknownEventError`).
    accepts_unknown_events: ClassVar[bool] = False

    def __init__(self, *, local: Path, synchronous: str = "NORMAL",
                 journal_dir: Path | None = None, journal_scope: str = "") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidInputError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        local = Path(local)
        self.synchronous = synchronous
        self.journal_dir = journal_dir or local.parent / f"{local.name}-journal"
        self.journal_scope = journal_scope
        # Per thread: the open transaction's after-commit actions.
        self._local = threading.local()
        self._writer = JournalWriter(self.journal_dir, fsync=synchronous == "FULL")
        self._journal = JournalReader(self.journal_dir)
        self._recent: dict[str, object] = {}
        self._recent_lock = threading.Lock()
        self._events_token = ChangeToken(path=local.parent / f"{local.name}-events.token")
        self._models_token = ChangeToken(path=local.parent / f"{local.name}-models.token")
        self._stored_ids = StoredIdFilter(token=self._events_token, row_key=self.row_key)
        self._claims = EventClaims(path=local.parent / f"{local.name}-claims.sqlite3")
        #: The learner's fencing token (:class:`Fence`) once it holds a lease: joins and
        #: model snapshots are written only while it is current. None: not checked.
        self.fence: Fence | None = None
        # The last value of each hot-path read (settings, the model version), answered
        # while the database cannot be reached.
        self._last_reads: dict[tuple[str, str], object] = {}
        self._unreachable_warned_at = -_UNREACHABLE_WARNING_SECONDS
        self._retry_database_at = 0.0  # monotonic time; see _hot_read

    # -- connections (the database's own) ----------------------------------------

    @abc.abstractmethod
    def _any_connection(self) -> contextlib.AbstractContextManager[Any]:
        """A connection for reads and single-statement writes (each its own transaction).

        It takes the shared ``?`` statements: ``execute(sql, parameters)``
        returning a cursor, and ``executemany(sql, rows)``.
        """

    @abc.abstractmethod
    def _write_transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A connection inside a write transaction that writers of the store take one
        at a time; committed when the block ends, rolled back when it raises."""

    @abc.abstractmethod
    def _due_rows(self, db: Any, cutoff: float, limit: int) -> list[tuple]:
        """Due events, oldest first, at most ``limit``: ``(row key, event_id, created_at,
        deferred, activated_at, decision, context_at)`` (see the SQLite store's
        ``DUE_CREATED`` for which are due)."""

    def _unreachable_errors(self) -> tuple[type[BaseException], ...]:
        """What a read raises when the database cannot be reached; none for a database
        in a file of the host."""
        return ()

    def _hot_read(self, read: Callable[[], Any], fallback: Callable[[], Any] | None,
                  doing: str) -> Any:
        """``read()`` for a rank, a reward or an activation; ``fallback()`` (unless None:
        then it raises) while the database cannot be reached.

        After a read found it unreachable, reads of this process go straight to
        ``fallback`` for a second, so that only one call a second waits for the
        database (a subclass bounds that wait) until it answers again.
        """
        if fallback is not None and time.monotonic() < self._retry_database_at:
            return fallback()
        try:
            return read()
        except self._unreachable_errors() as error:
            if fallback is None:
                raise
            now = time.monotonic()
            self._retry_database_at = now + _RETRY_DATABASE_SECONDS
            if now - self._unreachable_warned_at >= _UNREACHABLE_WARNING_SECONDS:
                self._unreachable_warned_at = now
                _log.warning("the database cannot be reached (%s: %s); %s",
                             type(error).__name__, str(error).strip()[:200], doing)
            return fallback()

    def _remembered(self, key: tuple[str, str], read: Callable[[], object]) -> Any:
        """``read()``, remembered; while the database cannot be reached, the value it gave
        last (rankers go on with the settings and model they have)."""
        last = self._last_reads

        def remember() -> object:
            last[key] = value = read()
            return value

        return self._hot_read(remember, (lambda: last[key]) if key in last else None,
                              "answering with the last settings and model version read")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """The connection of this thread's open write transaction, if any (what a join
        callback reads must see what the transaction ingested), else any."""
        db = getattr(self._local, "transaction", None)
        if db is not None:
            yield db
            return
        with self._any_connection() as db:
            yield db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One write transaction (:meth:`_write_transaction`).

        What must only happen once the transaction's rows are durable (deleting
        a journal file whose lines it ingested, telling other processes about new
        events) is registered with :meth:`_after_commit` and runs after the
        commit; a rollback discards it.
        """
        actions: list[Callable[[], None]] = []
        with self._write_transaction() as db:
            self._local.after_commit = actions
            self._local.transaction = db
            try:
                yield db
            finally:
                self._local.after_commit = None
                self._local.transaction = None
        for action in actions:
            action()

    def _after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the calling thread's open transaction has committed."""
        actions = self._local.after_commit
        if action not in actions:
            actions.append(action)

    def close(self) -> None:
        self._writer.close()
        self._events_token.close()
        self._models_token.close()
        self._claims.close()
        self._local = threading.local()

    # -- decisions -----------------------------------------------------------

    def insert_events(self, events: Sequence[PendingEvent], *,
                      fresh_ids: bool = False, remember: Sequence[object] | None = None
                      ) -> None:
        """One journal write. An id is used when it is in the tables or claimed
        (:class:`~banditkit.store.event_ids.EventClaims`) by a decision not ingested
        yet; ``remember`` values come back from :meth:`_recent_value`."""
        text = "".join([decision_line(e.event_id, e.created_at, e.deferred, e.decision,
                                      e.context_at, e.tag) for e in events])
        ids = [event.event_id for event in events]
        recent = self._recent
        with self._recent_lock:
            if not fresh_ids:
                used = next((i for i in ids if i in recent), None) or self._claim(ids)
                if used is not None:
                    raise DuplicateEventError(f"event id {used!r} was already used; "
                                              f"event ids are unique")
            try:
                self._writer.append(text)
            except BaseException:
                if not fresh_ids:
                    self._claims.release(ids)  # nothing was recorded: the ids stay free
                raise
            recent.update(dict.fromkeys(ids) if remember is None
                          else zip(ids, remember, strict=True))
            drop_older_half(recent, _RECENT_IDS)

    def _claim(self, event_ids: list[str]) -> str | None:
        """Claim ids for decisions about to be journaled; returns one already used, if any.

        A claim whose process is gone without journaling its decision (it was
        killed in between) is stale: once ingestion shows the decision is not
        in the tables, the claim is taken over.
        """
        for _ in range(2):
            held = self._claims.claim(event_ids, time.time())
            if not held:
                taken = self._stored(event_ids)
                if not taken:
                    return None
                self._claims.release(event_ids)
                return next(i for i in event_ids if i in taken)
            live = [i for i, pid in held if pid == os.getpid() or process_alive(pid)]
            if live:
                return live[0]
            self.ingest()  # a dead process's journal is complete: its decisions arrive
            with self._connection() as db:
                taken = self._existing(db, [i for i, _ in held])
            if taken:
                return next(iter(taken))
            for event_id, pid in held:
                self._claims.release([event_id], pid=pid)
        return held[0][0]

    def _stored(self, event_ids: list[str]) -> Collection[str]:
        """Which of ``event_ids`` the tables hold, asking the database only for the stored-id
        filter's maybes. While the database cannot be reached, none: the decision is
        journaled, and a duplicate of an id stored earlier is caught at ingestion
        (``journal_rejects``), as one from another host is."""
        stored = self._stored_ids

        def read() -> Collection[str]:
            if stored.stale():  # the only read of a new id, once per ingestion
                with self._connection() as db:
                    stored.catch_up(db)
            maybe = stored.maybe(event_ids)
            if not maybe:
                return ()
            with self._connection() as db:
                return self._existing(db, maybe)  # one query a page

        return self._hot_read(read, tuple, "journaling decisions without checking their "
                                           "event ids against the stored ones (ingestion does)")

    def _recent_value(self, event_id: str) -> object | None:
        """What :meth:`insert_events` was asked to remember of an event this process
        journaled moments ago; None for any other."""
        return self._recent.get(event_id)

    def _event_row(self, event_id: str, columns: str, *, recent_ok: bool = False
                   ) -> tuple | None:
        """``columns`` of a known event; ingests the journals once if the tables lack it.

        A read, no write transaction, unless the event is not in the tables
        yet. With ``recent_ok``, an event this process journaled moments ago
        gives None instead of that ingestion, and so does any event the tables
        lack on a store that :attr:`accepts_unknown_events` (ingestion keeps its
        outcomes waiting for the decision).

        Raises
        ------
        UnknownEventError
        """
        query = f"SELECT {columns} FROM events WHERE event_id = ?"

        def read() -> tuple | None:
            with self._connection() as db:
                return db.execute(query, (event_id,)).fetchone()

        # Journaled unchecked while the database is down: ingestion finds its decision
        # (or keeps it waiting) and whether it came late.
        row = self._hot_read(read, (lambda: None) if recent_ok and self.accepts_unknown_events
                             else None, "journaling rewards and activations unchecked")
        if row is None and not (recent_ok and (self.accepts_unknown_events
                                               or event_id in self._recent)):
            self.ingest()
            with self._connection() as db:
                row = db.execute(query, (event_id,)).fetchone()
            if row is None:
                raise UnknownEventError(f"unknown event id {event_id!r}")
        return row

    def _joined(self, event_id: str) -> bool:
        """Whether a known event was joined already (see :meth:`_event_row`)."""
        row = self._event_row(event_id, "joined_at", recent_ok=True)
        return row is not None and row[0] is not None

    def add_reward(self, event_id: str, value: float, received_at: float) -> bool:
        """Record a reward; returns True when it came after the event was joined (late)."""
        late = self._joined(event_id)
        self._writer.append(reward_line(event_id, received_at, value))
        return late

    def activate(self, event_id: str, at: float) -> bool:
        """Record the activation (the first one counts); returns True if it came too late."""
        late = self._joined(event_id)
        self._writer.append(activation_line(event_id, at))
        return late

    # -- ingestion -------------------------------------------------------------

    def ingest(self) -> int:
        """Move every journal's new lines into the tables; returns how many lines."""
        with self._transaction() as db:
            return self._ingest(db)

    def _ingest(self, db: Any) -> int:
        """Ingest inside the caller's write transaction, so nothing is read twice.

        Decisions go first, then rewards and activations, whatever file they
        are in: an outcome is journaled only after its decision was. The offsets
        read are committed in the same transaction as the rows made from them.
        """
        reader = self._journal
        # Claims older than this are of decisions this ingestion reads (a claim is
        # journaled microseconds after it is made) or of ones never journaled.
        self._after_commit(functools.partial(self._claims.release_older_than,
                                             time.time() - _CLAIM_GRACE_SECONDS))
        scope = self.journal_scope
        offsets = dict(db.execute('SELECT name, "offset" FROM journal_files WHERE host = ?',
                                  (scope,)).fetchall())
        decisions: list[JournalLine] = []
        outcomes: list[JournalLine] = []
        finished = []
        unreadable: list[tuple[JournalLine, str]] = []
        names = reader.names()
        for chunk in reader.read(names, offsets):
            for line in chunk.lines:
                if line.kind == "?":
                    unreadable.append((line, f"unreadable line in {chunk.name}"))
                else:
                    (decisions if line.kind == "d" else outcomes).append(line)
            if chunk.torn:
                unreadable.append((JournalLine("?", "", 0.0, payload=chunk.torn),
                                   f"torn last line of {chunk.name} (its writer died "
                                   "mid-write, before acknowledging it)"))
            if chunk.offset != offsets.get(chunk.name):
                db.execute('INSERT INTO journal_files (host, name, "offset") VALUES (?, ?, ?) '
                           'ON CONFLICT (name) DO UPDATE SET "offset" = excluded."offset"',
                           (scope, chunk.name, chunk.offset))
            if chunk.finished:
                finished.append(chunk.name)
        decisions.sort(key=lambda line: line.at)  # of duplicates, the earliest is kept
        fresh = self._ingest_decisions(db, decisions)
        self._ingest_outcomes(db, self._take_unmatched(db, fresh) + outcomes)
        self._reject(db, unreadable)
        gone = [(name,) for name in offsets.keys() - set(names)]
        if gone:
            db.executemany("DELETE FROM journal_files WHERE name = ?", gone)
        # A finished file goes only once the rows made from it are committed; its
        # offset stays in journal_files until it is gone, so a crash in between
        # reads none of it twice.
        for name in finished:
            self._after_commit(functools.partial(reader.remove, name))
        return len(decisions) + len(outcomes)

    def _ingest_decisions(self, db: Any, lines: list[JournalLine]) -> list[str]:
        """Insert the decisions of new event ids; returns those ids."""
        taken = self._existing(db, [line.event_id for line in lines])
        fresh, rejects = [], []
        for line in lines:
            if line.event_id in taken:
                rejects.append((line, "duplicate event id"))
            else:
                taken.add(line.event_id)
                fresh.append((line.event_id, line.at, int(line.deferred), line.payload,
                              line.context_at, line.tag))
        if fresh:
            db.executemany("INSERT INTO events (event_id, created_at, deferred, decision, "
                           "context_at, tag) VALUES (?,?,?,?,?,?)", fresh)
            self._after_commit(self._events_token.change)  # readers of it see the rows
        self._reject(db, rejects)
        return [row[0] for row in fresh]

    def _ingest_outcomes(self, db: Any, lines: list[JournalLine]) -> None:
        known = self._existing(db, [line.event_id for line in lines])
        rewards, activations, others, unmatched = [], [], [], []
        for line in lines:
            if line.event_id not in known:  # not arrived yet, or removed by retention
                unmatched.append(line)
            elif line.kind == "r":
                rewards.append((line.event_id, line.value, line.at, line.event_id))
            elif line.kind == "a":
                activations.append((line.at, line.event_id, line.at))
            else:
                others.append(line)
        if rewards:
            db.executemany("INSERT INTO rewards (event_id, value, received_at, late) "
                           "SELECT ?, ?, ?, joined_at IS NOT NULL FROM events "
                           "WHERE event_id = ?", rewards)
        if activations:
            db.executemany("UPDATE events SET activated_at = ? WHERE event_id = ? "
                           "AND (activated_at IS NULL OR activated_at > ?)", activations)
        self._ingest_other_outcomes(db, others)
        self._keep_unmatched(db, unmatched)

    def _keep_unmatched(self, db: Any, lines: list[JournalLine]) -> None:
        """Outcomes whose event id the tables lack: kept waiting for the decision in
        ``unmatched_outcomes`` (:attr:`accepts_unknown_events`), else rejected."""
        if not self.accepts_unknown_events:
            self._reject(db, [(line, "unknown event id") for line in lines])
        elif lines:
            db.executemany("INSERT INTO unmatched_outcomes (kind, event_id, at, value, payload) "
                           "VALUES (?,?,?,?,?)",
                           [(line.kind, line.event_id, line.at, line.value, line.payload)
                            for line in lines])

    def _take_unmatched(self, db: Any, event_ids: list[str]) -> list[JournalLine]:
        """The outcomes kept in ``unmatched_outcomes`` for decisions just ingested (an
        orphan too: its decision came after all), removed from it, in arrival order."""
        if not self.accepts_unknown_events or not event_ids:
            return []
        lines = [JournalLine(kind, event_id, at, value=value, payload=payload)
                 for kind, event_id, at, value, payload in rows_in(
                     db, "DELETE FROM unmatched_outcomes WHERE event_id IN ({marks}) "
                     "RETURNING kind, event_id, at, value, payload", event_ids)]
        lines.sort(key=lambda line: line.at)
        return lines

    def _orphan_unmatched(self, db: Any, *, now: float, wait_seconds: float,
                          grace_seconds: float) -> None:
        """Mark as orphans the outcomes still without a decision ``wait_seconds +
        grace_seconds`` after they were received, with the reason, and warn."""
        if not self.accepts_unknown_events:
            return
        reason = (f"no decision with this event id reached the store within the reward wait "
                  f"({wait_seconds:g} s) and the orphan grace ({grace_seconds:g} s)")
        orphaned = db.execute(
            "UPDATE unmatched_outcomes SET orphaned_at = ?, reason = ? "
            "WHERE orphaned_at IS NULL AND at < ? RETURNING event_id",
            (now, reason, now - wait_seconds - grace_seconds)).fetchall()
        if orphaned:
            _log.warning("%d outcomes orphaned (event ids %s): %s; kept in unmatched_outcomes",
                         len(orphaned), sorted({row[0] for row in orphaned})[:10], reason)

    def unmatched_counts(self) -> tuple[int, int]:
        if not self.accepts_unknown_events:
            return 0, 0
        with self._connection() as db:
            waiting, orphaned = db.execute(
                "SELECT COUNT(*) FILTER (WHERE orphaned_at IS NULL), "
                "COUNT(*) FILTER (WHERE orphaned_at IS NOT NULL) "
                "FROM unmatched_outcomes").fetchone()
        return int(waiting), int(orphaned)

    def orphans(self) -> list[dict]:
        """Outcomes whose decision never arrived (``kind``, ``event_id``, ``at``,
        ``record``, ``reason``, ``orphaned_at``), oldest first; empty for a store that
        refuses unknown event ids."""
        if not self.accepts_unknown_events:
            return []
        keys = ("kind", "event_id", "at", "value", "payload", "reason", "orphaned_at")
        with self._connection() as db:
            rows = db.execute(
                f"SELECT {', '.join(keys)} FROM unmatched_outcomes "
                "WHERE orphaned_at IS NOT NULL ORDER BY at, id").fetchall()
        return [{"kind": kind, "event_id": event_id, "at": at,
                 "record": _rejected_record(JournalLine(kind, event_id, at, value=value,
                                                        payload=payload)),
                 "reason": reason, "orphaned_at": orphaned_at}
                for kind, event_id, at, value, payload, reason, orphaned_at in rows]

    def _ingest_other_outcomes(self, db: Any, lines: list[JournalLine]) -> None:
        """Outcomes of a kind a subclass records (the row store's slot rewards)."""
        self._reject(db, [(line, f"no {line.kind!r} records in this store") for line in lines])

    @staticmethod
    def _existing(db: Any, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        if len(event_ids) == 1:  # one decision: the statement the database keeps prepared
            row = db.execute("SELECT 1 FROM events WHERE event_id = ?", event_ids).fetchone()
            return set(event_ids) if row else set()
        return {row[0] for row in rows_in(db, "SELECT event_id FROM events WHERE event_id "
                                          "IN ({marks})", dict.fromkeys(event_ids))}

    @staticmethod
    def _reject(db: Any, rejects: list[tuple[JournalLine, str]]) -> None:
        if not rejects:
            return
        for line, reason in rejects:
            _log.warning("journal %s record for event %r rejected: %s; kept in journal_rejects",
                         line.kind, line.event_id, reason)
        db.executemany(
            "INSERT INTO journal_rejects (kind, event_id, at, record, reason) VALUES (?,?,?,?,?)",
            [(line.kind, line.event_id, line.at, _rejected_record(line), reason)
             for line, reason in rejects])

    def rejects(self) -> list[dict]:
        """Journal records ingestion could not apply (duplicates, events gone), oldest first."""
        self.ingest()
        keys = ("kind", "event_id", "at", "record", "reason")
        with self._connection() as db:
            return [dict(zip(keys, row, strict=True)) for row in db.execute(
                "SELECT kind, event_id, at, record, reason FROM journal_rejects "
                "ORDER BY id").fetchall()]

    # -- the join --------------------------------------------------------------

    def join_due(self, *, now: float, wait_seconds: float, limit: int,
                 join: Callable[[list[PendingEvent], dict[str, list[RewardRecord]]],
                                Sequence[Joined]],
                 grace_seconds: float = 0.0) -> tuple[int, list[tuple[int, Joined]]]:
        """The transaction ingests the journals first, so a reward that arrives
        after it is recorded as late; unjoinable events go to ``journal_rejects``."""
        cutoff = now - wait_seconds
        self._journal.remove_abandoned()  # the learner's housekeeping
        with self._transaction() as db:
            self._check_fence(db)
            self._ingest(db)  # what arrives after this transaction is late
            self._orphan_unmatched(db, now=now, wait_seconds=wait_seconds,
                                   grace_seconds=grace_seconds)
            rows = self._due_rows(db, cutoff, limit)
            if not rows:
                return 0, []
            events = [PendingEvent(r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows]
            rewards = self._rewards(db, [e.event_id for e in events])
            joined = join(events, rewards)
            if any(type(item) is Unjoinable for item in joined):
                rows, events, joined = self._set_aside(db, rows, events, joined, rewards)
                if not rows:
                    return 0, []
            seq = db.execute(self._LAST_JOIN_SEQ).fetchone()[0]
            db.executemany(
                "UPDATE events SET joined_at = ?, join_seq = ?, joined_line = ? "
                f"WHERE {self.row_key} = ?",
                [(now, seq + i + 1, item.stored if e.context_at is not None else item.line,
                  row[0])
                 for i, (row, e, item) in enumerate(zip(rows, events, joined, strict=True))])
            entry = db.execute("INSERT INTO unlogged_joins (first_seq, last_seq) VALUES (?, ?) "
                               "RETURNING id", (seq + 1, seq + len(joined))).fetchone()[0]
        return int(entry), [(seq + i + 1, item) for i, item in enumerate(joined)]

    def _set_aside(self, db: Any, rows: list, events: list[PendingEvent],
                   joined: Sequence[object], rewards: dict[str, list[RewardRecord]]
                   ) -> tuple[list, list[PendingEvent], list]:
        """Move the :class:`Unjoinable` events of a join, with their rewards, to
        ``journal_rejects``; returns the rows, events and items that remain."""
        kept: tuple[list, list, list] = ([], [], [])
        rejects: list[tuple[JournalLine, str]] = []
        for row, event, item in zip(rows, events, joined, strict=True):
            if type(item) is not Unjoinable:
                for part, value in zip(kept, (row, event, item), strict=True):
                    part.append(value)
                continue
            reason = f"decision cannot be joined: {item.reason}"
            rejects.append((JournalLine("d", event.event_id, event.created_at,
                                        payload=event.decision), reason))
            rejects.extend((JournalLine("r", event.event_id, r.received_at, value=r.value),
                            reason) for r in rewards.get(event.event_id, []))
            db.execute(f"DELETE FROM events WHERE {self.row_key} = ?", (row[0],))
        self._reject(db, rejects)
        return kept

    @staticmethod
    def _rewards(db: Any, event_ids: list[str]) -> dict[str, list[RewardRecord]]:
        out: dict[str, list[RewardRecord]] = {}
        for event_id, value, received_at in rows_in(
                db, "SELECT event_id, value, received_at FROM rewards WHERE event_id IN "
                "({marks}) ORDER BY received_at, id", event_ids):
            out.setdefault(event_id, []).append(RewardRecord(value, received_at))
        return out

    def _check_fence(self, db: Any) -> None:
        if self.fence is not None:
            self.fence.check(db)

    def check_fence(self) -> None:
        """Raise :class:`LeaseLostError` if this learner's lease passed to another
        (before appending joined lines to the log); nothing without a fence."""
        if self.fence is not None:
            with self._connection() as db:
                self.fence.check(db)

    def unlogged(self) -> list[UnloggedJoin]:
        """Joins whose lines may not be in the log (the learner stopped in between)."""
        entries = []
        with self._connection() as db:
            for entry, first, last in db.execute(
                    "SELECT id, first_seq, last_seq FROM unlogged_joins ORDER BY id").fetchall():
                lines = []
                for stored, decision, context_at in db.execute(
                        "SELECT joined_line, decision, context_at FROM events "
                        "WHERE join_seq BETWEEN ? AND ? ORDER BY join_seq",
                        (first, last)).fetchall():
                    lines.append((json.loads(stored)["Timestamp"],
                                  full_line(stored, decision, context_at)))
                entries.append(UnloggedJoin(entry, lines))
        return entries

    def mark_logged(self, entry: int) -> None:
        """The lines of an unlogged join are in the log now."""
        with self._connection() as db:
            db.execute("DELETE FROM unlogged_joins WHERE id = ?", (entry,))

    def joined_lines_after(self, seq: int) -> Iterator[tuple[int, str]]:
        """Joined lines with a join sequence above ``seq``, in join order (for replay)."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT join_seq, joined_line, decision, context_at FROM events "
                "WHERE join_seq > ? ORDER BY join_seq", (seq,)).fetchall()
        for join_seq, stored, decision, context_at in rows:
            yield join_seq, full_line(stored, decision, context_at)

    def last_join_seq(self) -> int:
        with self._connection() as db:
            return db.execute(self._LAST_JOIN_SEQ).fetchone()[0]

    def pending_count(self) -> int:
        self.ingest()
        with self._connection() as db:
            return db.execute(
                "SELECT COUNT(*) FROM events WHERE joined_at IS NULL").fetchone()[0]

    def event(self, event_id: str) -> dict | None:
        """The stored state of one event (for inspection and tests)."""
        self.ingest()
        with self._connection() as db:
            row = db.execute(
                "SELECT event_id, created_at, deferred, activated_at, decision, joined_at, "
                "joined_line, context_at FROM events WHERE event_id = ?",
                (event_id,)).fetchone()
            if row is None:
                return None
            rewards = db.execute("SELECT value, received_at, late FROM rewards "
                                 "WHERE event_id = ? ORDER BY received_at, id",
                                 (event_id,)).fetchall()
        keys = ("event_id", "created_at", "deferred", "activated_at", "decision", "joined_at",
                "joined_line")
        record = dict(zip(keys, row[:-1], strict=True))
        if record["joined_line"] is not None:
            record["joined_line"] = full_line(record["joined_line"], row[4], row[-1])
        record["rewards"] = [{"value": v, "received_at": t, "late": bool(late)}
                             for v, t, late in rewards]
        return record

    def events_since(self, created_after: float, *, tag: str | None = None,
                     with_features: bool = False
                     ) -> Iterator[tuple[str, float, str, str | None]]:
        """``(event_id, created_at, decision, joined or None)`` of events made after a time,
        the decision and the joined line as JSON without their features where the
        store keeps them apart (what reports read, at a fraction of the size).

        Reporting (per-variant impressions and takes) reads through this; joined
        events older than the retention period are only in the dsjson log.
        With ``tag``, only events with that tag (found by index) and events
        recorded before tags existed (untagged; the caller filters those).
        ``with_features`` gives both whole, as the audience breakdowns need.
        """
        self.ingest()
        where = "created_at > ?" if tag is None else (
            "(tag = ? OR tag IS NULL) AND created_at > ?")
        parameters = (created_after,) if tag is None else (tag, created_after)
        with self._connection() as db:
            for event_id, created_at, decision, joined, context_at in db.execute(
                    "SELECT event_id, created_at, decision, joined_line, context_at FROM events "
                    f"WHERE {where} ORDER BY created_at", parameters):
                if with_features:
                    whole = None if joined is None else full_line(joined, decision, context_at)
                    yield event_id, created_at, decision, whole
                    continue
                head = decision if context_at is None else decision[:context_at] + "}"
                yield event_id, created_at, head, joined

    def delete_joined_before(self, cutoff: float, keep_after_seq: int) -> int:
        """Drop joined events older than ``cutoff`` (their lines are in the log)."""
        with self._connection() as db:
            return db.execute("DELETE FROM events WHERE joined_at IS NOT NULL "
                              "AND joined_at < ? AND join_seq <= ?",
                              (cutoff, keep_after_seq)).rowcount

    def purge_events(self) -> int:
        """The tables that hang on events (rewards, a subclass's) go with them: their
        foreign keys cascade."""
        with self._transaction() as db:
            self._ingest(db)  # what was journaled before the purge goes too
            floor = db.execute(self._LAST_JOIN_SEQ).fetchone()[0]
            deleted = db.execute("DELETE FROM events").rowcount
            db.execute("DELETE FROM unlogged_joins")
            db.execute("DELETE FROM journal_rejects")
            if self.accepts_unknown_events:
                db.execute("DELETE FROM unmatched_outcomes")
            db.execute("INSERT INTO join_seq_floor (id, seq) VALUES (0, ?) "
                       "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq", (floor,))
            self._after_commit(self._events_token.change)  # id filters start over
        with self._recent_lock:
            self._recent.clear()
        return deleted

    # -- models --------------------------------------------------------------

    def publish_model(self, *, created_at: float, policy_args: str, banditkit_version: str,
                      through_seq: int, n_updates: int, data: bytes, origin: str = "learner",
                      replaces: int | None = None) -> int:
        """One statement in a write transaction, so the comparison with ``replaces``
        and the insert are atomic."""
        with self._transaction() as db:
            self._check_fence(db)
            row = db.execute(
                "INSERT INTO models (created_at, policy_args, banditkit_version, through_seq, "
                "n_updates, data, origin) SELECT ?,?,?,?,?,?,? "
                "WHERE CAST(? AS BIGINT) IS NULL "
                "OR (SELECT COALESCE(MAX(version), 0) FROM models) = ? RETURNING version",
                (created_at, policy_args, banditkit_version, through_seq, n_updates, data,
                 origin, replaces, replaces)).fetchone()
        if row is None:
            return 0
        if origin != "learner":
            self._models_token.change()
        return int(row[0])

    def model_token(self) -> bytes:
        return self._models_token.read()

    def model_versions(self) -> list[tuple[int, float]]:
        """``(version, created_at)`` of every kept model, oldest first."""
        with self._connection() as db:
            return [tuple(row) for row in db.execute(
                "SELECT version, created_at FROM models ORDER BY version").fetchall()]

    def delete_models(self, versions: Sequence[int]) -> None:
        """Drop model snapshots (the latest is never among those a caller drops)."""
        if versions:
            with self._connection() as db:
                db.executemany("DELETE FROM models WHERE version = ?",
                               [(version,) for version in versions])

    def latest_model_version(self) -> int:
        def read() -> int:
            with self._connection() as db:
                return db.execute("SELECT COALESCE(MAX(version), 0) FROM models").fetchone()[0]

        return self._remembered(("model", ""), read)

    def latest_model(self) -> ModelSnapshot | None:
        with self._connection() as db:
            row = db.execute(
                "SELECT version, created_at, policy_args, banditkit_version, through_seq, "
                "n_updates, data, origin FROM models ORDER BY version DESC LIMIT 1").fetchone()
        return None if row is None else ModelSnapshot(*row)

    # -- settings ------------------------------------------------------------

    def get_setting(self, key: str) -> object | None:
        def read() -> object | None:
            with self._connection() as db:
                row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            return None if row is None else json.loads(row[0])

        return self._remembered(("setting", key), read)

    def put_setting(self, key: str, value: object) -> None:
        with self._connection() as db:
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (key, json.dumps(value)))


def _rejected_record(line: JournalLine) -> str:
    """What ``journal_rejects`` keeps of a line: enough to apply it by hand."""
    if line.kind in "d?":
        return line.payload
    if line.kind == "s":
        return f"slot {line.payload!r}: {line.value!r}"
    return repr(line.value)
