"""The reward join: Personalizer's rules as pure functions (docs/architecture.md §4).

A decision's rewards count inside its window: ``reward_wait_seconds`` from the
decision, or from its activation when activation was deferred. Several rewards
combine by ``earliest`` or ``sum``; with none, the default reward is learned.
A deferred event never activated is logged with ``_skipLearn`` and not learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from banditkit.dsjson import JoinedLine, joined_line_text
from banditkit.eventlog import iso_timestamp
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, RewardRecord

__all__ = ["JoinOutcome", "JoinedLine", "join_event", "joined_line"]


class JoinOutcome(NamedTuple):
    """The result of joining one event.

    A named tuple: the learner builds one per joined event, and a frozen
    dataclass costs three times as much to construct.

    Attributes
    ----------
    reward : float
        The reward to learn (aggregate, or the default when none counted).
    skip_learn : bool
        True when a deferred event was never activated.
    counted : tuple of RewardRecord
        Rewards inside the window.
    ignored : tuple of RewardRecord
        Rewards outside it (before activation or after the wait): kept in the
        log for audit, not learned.
    used_default : bool
        True when no reward counted.
    """

    reward: float
    skip_learn: bool
    counted: tuple[RewardRecord, ...]
    ignored: tuple[RewardRecord, ...]
    used_default: bool


def join_event(event: PendingEvent, rewards: Sequence[RewardRecord],
               settings: LoopSettings) -> JoinOutcome:
    """Apply the join rules to one event and its rewards (in arrival order)."""
    start = event.activated_at if event.deferred else event.created_at
    if start is None:  # deferred, never activated
        return JoinOutcome(settings.default_reward, True, (), tuple(rewards), True)
    if not rewards:  # most events
        return JoinOutcome(settings.default_reward, False, (), (), True)
    end = start + settings.reward_wait_seconds
    counted = tuple(r for r in rewards if start <= r.received_at <= end)
    ignored = tuple(r for r in rewards if not start <= r.received_at <= end)
    if not counted:
        reward = settings.default_reward
    elif settings.reward_aggregation == "sum":
        reward = float(sum(r.value for r in counted))
    else:
        reward = counted[0].value
    return JoinOutcome(reward, False, counted, ignored, not counted)


def joined_line(event: PendingEvent, outcome: JoinOutcome) -> JoinedLine:
    """The dsjson line of a joined event (:func:`banditkit.dsjson.joined_line_text`)."""
    # Positional: every joined event makes this call.
    return joined_line_text(
        event.decision, event.context_at, outcome.reward,
        _outcome_records(event, outcome) if outcome.counted or event.deferred else _NONE,
        _ignored_records(outcome) if outcome.ignored else _NONE,
        event.deferred, outcome.skip_learn, outcome.used_default)


_NONE: list[dict] = []  # read, never written


def _outcome_records(event: PendingEvent, outcome: JoinOutcome) -> list[dict]:
    """The ``o`` array: the activation of a deferred event, then the rewards that counted."""
    outcomes: list[dict] = []
    if event.deferred and event.activated_at is not None:
        outcomes.append({"EventId": event.event_id, "ActionTaken": True,
                         "t": iso_timestamp(event.activated_at)})
    outcomes.extend({"EventId": event.event_id, "v": r.value, "t": iso_timestamp(r.received_at)}
                    for r in outcome.counted)
    return outcomes


def _ignored_records(outcome: JoinOutcome) -> list[dict]:
    return [{"v": r.value, "t": iso_timestamp(r.received_at)} for r in outcome.ignored]
