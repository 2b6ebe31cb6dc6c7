"""The records the decision store takes and gives back (docs/architecture.md §3).

They are the vocabulary of :class:`~banditkit.store.DecisionStore`, shared by
every implementation, the engines and the joins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

__all__ = [
    "JoinedItem",
    "ModelSnapshot",
    "PendingEvent",
    "RewardRecord",
    "UnloggedJoin",
    "Unjoinable",
]


class JoinedItem(Protocol):
    """What a join gives per event: the joined dsjson ``line``, its ``timestamp``
    (the log partition) and what the store keeps of it (``stored``)."""

    timestamp: str
    line: str
    stored: str


class PendingEvent(NamedTuple):
    """A decision as the store keeps it until it is joined.

    A named tuple: every decision and every joined event builds one, and a
    frozen dataclass costs three times as much to construct.
    """

    event_id: str
    created_at: float
    deferred: bool
    activated_at: float | None
    decision: str
    context_at: int | None = None  # where ``,"c":`` starts in ``decision``, when known
    tag: str | None = None         # what reports group decisions by (a title id)


@dataclass(frozen=True)
class RewardRecord:
    """One reward of an event: its ``value`` and when it arrived (Unix seconds)."""

    value: float
    received_at: float


@dataclass(frozen=True)
class ModelSnapshot:
    """A published model: its bytes, the policy that made it and the join sequence
    it has learned through, so a learner resumes from it (docs/architecture.md §4).

    ``origin`` says what published it: ``learner`` (a snapshot of the learner),
    ``policy`` (a fresh model for a new policy), ``import`` or ``reset``; a
    learner follows a snapshot of any other origin instead of overwriting it.
    """

    version: int
    created_at: float
    policy_args: str
    banditkit_version: str
    through_seq: int
    n_updates: int
    data: bytes
    origin: str = "learner"


class Unjoinable(NamedTuple):
    """What a join gives for an event whose decision record cannot be joined; the
    store keeps the event and its rewards aside with ``reason`` (``journal_rejects``)."""

    reason: str


@dataclass(frozen=True)
class UnloggedJoin:
    """Joined lines, ``(timestamp, line)``, that may not be in the dsjson log yet."""

    id: int
    lines: list[tuple[str, str]]
