"""The reward join: Personalizer's rules as pure functions (DESIGN.md §4).

A decision's rewards count inside its window: ``reward_wait_seconds`` from the
decision, or from its activation when activation was deferred. Several rewards
combine by ``earliest`` or ``sum``; with none, the default reward is learned.
A deferred event never activated is logged with ``_skipLearn`` and not learned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import NamedTuple

from banditkit.encoding import compact_json
from banditkit.eventlog import iso_timestamp
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, RewardRecord

__all__ = ["JoinOutcome", "JoinedLine", "join_event", "joined_line"]


class JoinedLine(NamedTuple):
    """A joined event as the learner step needs it.

    ``record`` is the joined object, its features (``c``) possibly left out:
    what the learner and its observers read, so that nobody parses the line again.
    ``stored`` is what the store keeps of the line: without the features when
    they are the decision's own text (the store copies them back), else the line.
    """

    timestamp: str
    line: str
    record: dict
    stored: str


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
    """The dsjson line of a joined event.

    Label fields come first, as VW's own writers put them: ``_label_cost`` is
    minus the reward, ``_label_Action`` 1-based, ``_labelIndex`` 0-based. When
    the event knows where its features begin (``context_at``), only the part
    before them is parsed and the features are copied as text, last; the rest
    of the decision is copied as text too when its shape allows
    (:func:`_spliced_text`), instead of encoding the joined record again.
    """
    if event.context_at is None:
        head = features = ""
        decision = json.loads(event.decision)
    else:
        head = event.decision[:event.context_at] + "}"
        features = event.decision[event.context_at:-1]  # ',"c":{...}'
        decision = _decoded(head)
    chosen_action = decision["a"][0]
    activated = event.deferred and event.activated_at is not None
    outcomes = _outcome_records(event, outcome.counted) if outcome.counted or activated else []
    ignored = ([{"v": r.value, "t": iso_timestamp(r.received_at)} for r in outcome.ignored]
               if outcome.ignored else [])
    record = {"_label_cost": -outcome.reward, "_label_probability": decision["p"][0],
              "_label_Action": chosen_action, "_labelIndex": chosen_action - 1, "o": outcomes,
              **decision}
    stored = head and _spliced_text(head, decision, record, deferred=event.deferred,
                                    outcome=outcome, ignored=ignored)
    if event.deferred:
        record["DeferredAction"] = True
    if outcome.skip_learn:
        record["_skipLearn"] = True
    extra = record.setdefault("_banditkit", {})
    extra["defaultReward"] = outcome.used_default
    if ignored:
        extra["ignoredRewards"] = ignored
    stored = stored or compact_json(record)
    line = stored[:-1] + features + "}" if features else stored
    return JoinedLine(decision["Timestamp"], line, record, stored)


def _outcome_records(event: PendingEvent, counted: tuple[RewardRecord, ...]) -> list[dict]:
    """The ``o`` array: the activation of a deferred event, then the rewards that counted."""
    outcomes: list[dict] = []
    if event.deferred and event.activated_at is not None:
        outcomes.append({"EventId": event.event_id, "ActionTaken": True,
                         "t": iso_timestamp(event.activated_at)})
    outcomes.extend({"EventId": event.event_id, "v": r.value, "t": iso_timestamp(r.received_at)}
                    for r in counted)
    return outcomes


_SCAN = json.JSONDecoder().scan_once


def _decoded(text: str) -> dict:
    """``json.loads(text)`` a third faster for text without leading or trailing whitespace.

    ``json.loads`` matches whitespace around the value with two regular
    expressions; a decision's head, written by ``compact_json``, has none.
    """
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # raises, explaining the error
    return value if end == len(text) else json.loads(text)


_JSON_BOOLEAN = {True: "true", False: "false"}
_DEFERRED_TEXT = ',"DeferredAction":true'
_SKIP_TEXT = ',"_skipLearn":true'
# Keys the join writes around the decision's own: a decision holding one is encoded.
_JOIN_KEYS = frozenset(("_label_cost", "_label_probability", "_label_Action", "_labelIndex",
                        "o", "DeferredAction", "_skipLearn"))


def _spliced_text(head: str, decision: dict, record: dict, *, deferred: bool,
                  outcome: JoinOutcome, ignored: list[dict]) -> str:
    """``compact_json(record)`` once the join's keys are in, the decision copied from ``head``.

    Encoding the joined record cost more than the rest of the join. ``head`` is
    the decision without its features as the engine wrote it: ``compact_json``'s
    own output (ASCII, escapes and all), which decoding and encoding again gives
    back unchanged. It is spliced when the decision has the engine's shape:
    ASCII text, ``_banditkit`` last and a non-empty object without the keys the
    join adds to it, none of the keys the join writes around it, and label
    numbers whose ``repr`` is their JSON.

    Parameters
    ----------
    decision : dict
        ``head`` decoded.
    record : dict
        The joined record before the keys that follow the decision's are added.

    Returns
    -------
    str
        The text, or ``""`` when the decision has another shape: the caller
        then encodes the record.
    """
    extra = decision.get("_banditkit")
    cost, probability = record["_label_cost"], record["_label_probability"]
    action, outcomes = record["_label_Action"], record["o"]
    if (not head.isascii() or type(extra) is not dict or not extra
            or next(reversed(decision)) != "_banditkit"
            or "defaultReward" in extra or "ignoredRewards" in extra
            or not _JOIN_KEYS.isdisjoint(decision) or type(action) is not int
            or type(cost) not in (int, float) or not math.isfinite(cost)
            or type(probability) not in (int, float) or not math.isfinite(probability)):
        return ""
    outcomes_text = compact_json(outcomes) if outcomes else "[]"
    ignored_text = ',"ignoredRewards":' + compact_json(ignored) if ignored else ""
    # head[1:-2]: the decision's keys, "_banditkit" last and left open
    return (f'{{"_label_cost":{cost!r},"_label_probability":{probability!r},'
            f'"_label_Action":{action!r},"_labelIndex":{action - 1!r},"o":{outcomes_text},'
            f'{head[1:-2]},"defaultReward":{_JSON_BOOLEAN[outcome.used_default]}{ignored_text}}}'
            f'{_DEFERRED_TEXT if deferred else ""}{_SKIP_TEXT if outcome.skip_learn else ""}}}')
