"""The row store: a decision store plus rewards per slot.

:class:`PageStore` is what the row engine needs of it; :class:`RowStore` is the
SQLite one, :class:`banditkit.store.Store` with a table more, and
:class:`PostgresRowStore` the PostgreSQL one (the same table in its migrations). A page is one
event of the store (its decision is the CCB dsjson object before
the join), so durability, activation, the journaled join and model snapshots
are the store's own. Page-level rewards use the store's ``rewards`` table;
this module adds ``slot_rewards``, one row per reward of one slot. A slot
reward is journaled as a reward is (one ``write``, no write transaction to
wait for while the learner holds one) and ingested at the next join.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from typing import Any

from banditkit.dsjson import EXTRA_KEY
from banditkit.errors import InvalidInputError
from banditkit.store import DecisionStore, PendingEvent, PostgresStore, RewardRecord, Store
from banditkit.store.connections import rows_in
from banditkit.store.journal import JournalLine, slot_reward_line
from banditkit.store.schema import SCHEMA

__all__ = ["PageStore", "PostgresRowStore", "RowStore"]

_ROW_SCHEMA = """
CREATE TABLE IF NOT EXISTS slot_rewards (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    slot_id     TEXT NOT NULL,
    value       REAL NOT NULL,
    received_at REAL NOT NULL,
    late        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS slot_rewards_event ON slot_rewards (event_id);
"""
_ROW_MIGRATION = """
CREATE TABLE slot_rewards (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    slot_id     TEXT NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    late        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX slot_rewards_event ON slot_rewards (event_id);
"""


class PageStore(DecisionStore):
    """A :class:`~banditkit.store.DecisionStore` whose events are pages, with rewards
    per slot."""

    @abc.abstractmethod
    def insert_page(self, event: PendingEvent, slot_ids: Sequence[str]) -> None:
        """Record a page durably (:meth:`insert_events`) with the ids of its slots.

        Raises
        ------
        DuplicateEventError
        """

    @abc.abstractmethod
    def add_slot_rewards(self, event_id: str, rewards: Sequence[tuple[str, float]],
                         received_at: float) -> bool:
        """Record rewards of slots of one page durably, all or none.

        Parameters
        ----------
        rewards : sequence of (slot_id, value)
            Slot ids must be slots of the page.

        Returns
        -------
        bool
            True when they came after the page was joined (late: kept, not learned).

        Raises
        ------
        UnknownEventError
            When the event id was never ranked (a store hosts share accepts it: the
            page may be on its way from another host, and ingestion checks its
            slot ids, keeping a reward naming no slot of the page in
            ``journal_rejects``).
        InvalidInputError
            When a slot id is not one of the page's slots.
        """

    @abc.abstractmethod
    def slot_rewards(self, event_ids: Sequence[str]) -> dict[str, dict[str, list[RewardRecord]]]:
        """``{event_id: {slot_id: [RewardRecord, ...]}}`` in arrival order."""


class _SlotRewards(PageStore):
    """:class:`PageStore`'s slot rewards over a journaled store, in either database."""

    def insert_page(self, event: PendingEvent, slot_ids: Sequence[str]) -> None:
        """Remembers the slot ids: a slot reward before the learner ingested the page
        needs no ingestion (a write transaction) of its own."""
        self.insert_events([event], remember=[list(slot_ids)])

    def add_slot_rewards(self, event_id: str, rewards: Sequence[tuple[str, float]],
                         received_at: float) -> bool:
        """Journaled as one line per slot, in one ``write``."""
        recent = self._recent_value(event_id)
        row = self._event_row(event_id, "joined_at, decision",
                              recent_ok=recent is not None or self.accepts_unknown_events)
        if row is None:  # not in the tables yet (nor joined): this process's page, or
            # another host's on its way (accepts_unknown_events), checked at ingestion
            joined_at, slot_ids = None, recent
        else:
            joined_at, slot_ids = row[0], _slot_ids(row[1])
        unknown = [slot for slot, _ in rewards
                   if slot_ids is not None and slot not in slot_ids]
        if unknown:
            raise InvalidInputError(
                f"slot id {unknown[0]!r} is not a slot of event {event_id!r}; "
                f"its slots are {slot_ids}")
        # One write for all: a killed process leaves all of them or none.
        self._writer.append("".join([slot_reward_line(event_id, received_at, slot, value)
                                     for slot, value in rewards]))
        return joined_at is not None

    def _ingest_other_outcomes(self, db: Any, lines: list[JournalLine]) -> None:
        """Slot rewards go to ``slot_rewards``; one naming no slot of its page (accepted on
        a host that did not have the page yet) to ``journal_rejects``."""
        slots = [line for line in lines if line.kind == "s"]
        rejects = []
        if slots and self.accepts_unknown_events:
            pages = self._slots_of(db, sorted({line.event_id for line in slots}))
            rejects = [(line, f"slot id {line.payload!r} is not a slot of event "
                              f"{line.event_id!r}; its slots are {pages[line.event_id]}")
                       for line in slots if line.payload not in pages[line.event_id]]
            slots = [line for line in slots if line.payload in pages[line.event_id]]
        self._reject(db, rejects)
        if slots:
            db.executemany(
                "INSERT INTO slot_rewards (event_id, slot_id, value, received_at, late) "
                "SELECT ?, ?, ?, ?, joined_at IS NOT NULL FROM events WHERE event_id = ?",
                [(line.event_id, line.payload, line.value, line.at, line.event_id)
                 for line in slots])
        super()._ingest_other_outcomes(db, [line for line in lines if line.kind != "s"])

    @staticmethod
    def _slots_of(db: Any, event_ids: list[str]) -> dict[str, list[str]]:
        """The slot ids of stored pages."""
        return {event_id: _slot_ids(decision) for event_id, decision in rows_in(
            db, "SELECT event_id, decision FROM events WHERE event_id IN ({marks})",
            event_ids)}

    def slot_rewards(self, event_ids: Sequence[str]) -> dict[str, dict[str, list[RewardRecord]]]:
        out: dict[str, dict[str, list[RewardRecord]]] = {}
        with self._connection() as db:
            for event_id, slot, value, received_at in rows_in(
                    db, "SELECT event_id, slot_id, value, received_at FROM slot_rewards "
                    "WHERE event_id IN ({marks}) ORDER BY received_at, id", event_ids):
                out.setdefault(event_id, {}).setdefault(slot, []).append(
                    RewardRecord(value, received_at))
        return out

    def page(self, event_id: str) -> dict | None:
        """The stored state of one page, with its slot rewards (for inspection and tests)."""
        record = self.event(event_id)
        if record is None:
            return None
        with self._connection() as db:
            record["slot_rewards"] = [
                {"slot_id": s, "value": v, "received_at": t, "late": bool(late)}
                for s, v, t, late in db.execute(
                    "SELECT slot_id, value, received_at, late FROM slot_rewards "
                    "WHERE event_id = ? ORDER BY received_at, id", (event_id,)).fetchall()]
        return record


def _slot_ids(decision: str) -> list[str]:
    """The slot ids a page's decision record names."""
    return json.loads(decision).get(EXTRA_KEY, {}).get("slotIds", [])


class RowStore(_SlotRewards, Store):
    """The SQLite :class:`PageStore` of the row engine (its own database file).

    Its parameters are those of :class:`~banditkit.store.Store`.
    """

    schema = SCHEMA + _ROW_SCHEMA


class PostgresRowStore(_SlotRewards, PostgresStore):
    """The PostgreSQL :class:`PageStore` of the row engine (a schema of its own).

    Its parameters are those of :class:`~banditkit.store.PostgresStore`.
    """

    migrations = (*PostgresStore.migrations, ("rows-0001-slot-rewards", _ROW_MIGRATION))
