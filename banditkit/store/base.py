"""What the engines, the joins and the learner loop need of a decision store.

:class:`DecisionStore` names it; :class:`banditkit.store.Store` (SQLite, one host)
implements it, and a store shared by many hosts implements the same methods
without the engines changing (docs/architecture.md §3). Every implementation
keeps the durability rules of docs/architecture.md §5: a decision, reward or
activation is durable when its method returns.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from banditkit.store.records import (
    JoinedItem,
    ModelSnapshot,
    PendingEvent,
    RewardRecord,
    UnloggedJoin,
)

__all__ = ["DecisionStore", "Joined"]

Joined = TypeVar("Joined", bound=JoinedItem)


class DecisionStore(abc.ABC):
    """Pending decisions, their rewards and activations, the join, model snapshots
    and settings of one engine.

    Thread-safe: ranking, rewards and activations come from many threads and
    processes at once; :meth:`join_due` from one learner.
    """

    # -- decisions and outcomes ------------------------------------------------------

    @abc.abstractmethod
    def insert_events(self, events: Sequence[PendingEvent], *, fresh_ids: bool = False,
                      remember: Sequence[object] | None = None) -> None:
        """Record decisions durably; all or none.

        Parameters
        ----------
        events : sequence of PendingEvent
        fresh_ids : bool, default=False
            The ids were just generated (random UUIDs): skip the duplicate check.
        remember : sequence, default=None
            One value per event that the store gives back to its own subclass
            until the event is ingested (a row page's slot ids).

        Raises
        ------
        DuplicateEventError
            When an event id was used before, by any process of the store.
        """

    @abc.abstractmethod
    def add_reward(self, event_id: str, value: float, received_at: float) -> bool:
        """Record a reward durably; returns True when it came after the event was
        joined (late: kept, not learned).

        Raises
        ------
        UnknownEventError
        """

    @abc.abstractmethod
    def activate(self, event_id: str, at: float) -> bool:
        """Record an activation durably (the first one counts); returns True when it
        came after the event was joined.

        Raises
        ------
        UnknownEventError
        """

    @abc.abstractmethod
    def ingest(self) -> int:
        """Bring what was recorded but not yet in the tables into them; returns how
        many records (0 for a store that writes its tables at once)."""

    def unmatched_counts(self) -> tuple[int, int]:
        """``(waiting, orphaned)``: outcomes accepted for an event id the tables did not
        hold, still waiting for its decision, and those whose decision never came.
        ``(0, 0)`` for a store that refuses an unknown event id."""
        return 0, 0

    @abc.abstractmethod
    def rejects(self) -> list[dict]:
        """Records kept aside (``kind``, ``event_id``, ``at``, ``record``, ``reason``),
        oldest first: duplicates, outcomes of events gone (on a store that refuses unknown
        event ids; another keeps them as orphans), unreadable or unjoinable ones."""

    # -- the join ------------------------------------------------------------------------

    @abc.abstractmethod
    def join_due(self, *, now: float, wait_seconds: float, limit: int,
                 join: Callable[[list[PendingEvent], dict[str, list[RewardRecord]]],
                                Sequence[Joined]],
                 grace_seconds: float = 0.0) -> tuple[int, list[tuple[int, Joined]]]:
        """Join the due events, at most ``limit``, oldest first, in one transaction.

        ``join(events, rewards)`` receives the due events and their rewards in
        arrival order and returns one :class:`~banditkit.store.JoinedItem` per
        event, or an :class:`~banditkit.store.Unjoinable`: that event and its
        rewards are kept aside (:meth:`rejects`) so that one bad record never
        stops the loop. The same transaction records the joined events as
        unlogged (:meth:`unlogged`), so a crash before the caller appended the
        lines to the log and called :meth:`mark_logged` is repaired. On a store
        that accepts outcomes before their decision (:meth:`unmatched_counts`),
        the same transaction makes orphans of those still without a decision
        ``wait_seconds + grace_seconds`` after they were received.

        Returns
        -------
        (int, list)
            The unlogged entry to pass to :meth:`mark_logged`, and ``(join_seq,
            item)`` per joined event in join order (empty when nothing was due).
        """

    @abc.abstractmethod
    def unlogged(self) -> list[UnloggedJoin]:
        """Joins whose lines may not be in the log (the learner stopped in between)."""

    @abc.abstractmethod
    def mark_logged(self, entry: int) -> None:
        """The lines of an unlogged join are in the log now."""

    @abc.abstractmethod
    def joined_lines_after(self, seq: int) -> Iterator[tuple[int, str]]:
        """``(join_seq, joined line)`` above ``seq``, in join order (replay after a restart)."""

    @abc.abstractmethod
    def last_join_seq(self) -> int:
        """The newest join sequence (0 before the first join)."""

    @abc.abstractmethod
    def pending_count(self) -> int:
        """How many recorded events are not joined yet."""

    @abc.abstractmethod
    def event(self, event_id: str) -> dict | None:
        """The stored state of one event with its rewards (inspection and tests)."""

    @abc.abstractmethod
    def events_since(self, created_after: float, *, tag: str | None = None,
                     with_features: bool = False
                     ) -> Iterator[tuple[str, float, str, str | None]]:
        """``(event_id, created_at, decision, joined line or None)`` of the events made
        after a time, oldest first, the JSON without features (what reports read)
        unless ``with_features``.

        With ``tag``, the events of that tag and the untagged ones (the caller
        filters those).
        """

    @abc.abstractmethod
    def delete_joined_before(self, cutoff: float, keep_after_seq: int) -> int:
        """Drop joined events older than ``cutoff`` whose join sequence is at most
        ``keep_after_seq`` (their lines are in the log); returns how many."""

    @abc.abstractmethod
    def purge_events(self) -> int:
        """Delete every event, joined or pending, with its rewards, the unlogged joins
        and the records kept aside, in one transaction, after ingesting what was
        recorded; returns how many events. The join sequence goes on past the
        deleted ones (:meth:`last_join_seq` does not go back), so a learner
        that has learned through it learns every later join.
        """

    # -- models --------------------------------------------------------------------------

    @abc.abstractmethod
    def publish_model(self, *, created_at: float, policy_args: str, banditkit_version: str,
                      through_seq: int, n_updates: int, data: bytes, origin: str = "learner",
                      replaces: int | None = None) -> int:
        """Keep a model snapshot; returns its version (increasing), or 0 when refused.

        Parameters
        ----------
        origin : {"learner", "policy", "import", "reset"}, default="learner"
            What made it (:class:`~banditkit.store.ModelSnapshot`). Any origin but
            ``learner`` changes :meth:`model_token`.
        replaces : int, default=None
            Compare and publish: keep the snapshot only while the newest version
            is still this one (the learner passes the version its model grew
            from, so that it never overwrites a model imported meanwhile); None
            keeps it unconditionally.
        """

    @abc.abstractmethod
    def model_token(self) -> bytes:
        """A few bytes every process reads cheaply that change whenever a snapshot not
        made by the learner (an import, a reset, a new policy) is published, so
        that rankers load it at their next decision (docs/architecture.md §4)."""

    @abc.abstractmethod
    def model_versions(self) -> list[tuple[int, float]]:
        """``(version, created_at)`` of every kept model, oldest first."""

    @abc.abstractmethod
    def delete_models(self, versions: Sequence[int]) -> None:
        """Drop model snapshots (the latest is never among those a caller drops)."""

    @abc.abstractmethod
    def latest_model_version(self) -> int:
        """The newest model's version (0 before the first)."""

    @abc.abstractmethod
    def latest_model(self) -> ModelSnapshot | None:
        """The newest model, or None before the first."""

    # -- settings and resources ----------------------------------------------------------

    @abc.abstractmethod
    def get_setting(self, key: str) -> object | None:
        """The JSON value stored under ``key``, or None."""

    @abc.abstractmethod
    def put_setting(self, key: str, value: object) -> None:
        """Store a JSON value under ``key``, replacing any previous one."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files (a later call opens them again)."""
