"""The reward join: Personalizer's rules as pure functions (DESIGN.md §4).

A decision's rewards count inside its window: ``reward_wait_seconds`` from the
decision, or from its activation when activation was deferred. Several rewards
combine by ``earliest`` or ``sum``; with none, the default reward is learned.
A deferred event never activated is logged with ``_skipLearn`` and not learned.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

from banditkit.encoding import compact_json
from banditkit.eventlog import iso_timestamp
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, RewardRecord

__all__ = ["JoinOutcome", "JoinedLine", "join_event", "joined_line"]


class JoinedLine(NamedTuple):
    """A joined event as the learner step needs it.

    ``stored`` is what the store keeps of the line: without the features when
    they are the decision's own text (the store copies them back), else the
    line. ``learning_mode`` is the decision's ``_banditkit.learningMode`` (None
    in online mode) and ``skip_learn`` its ``_skipLearn``: what the learner
    reads, so that nobody parses the line again.
    """

    timestamp: str
    line: str
    stored: str
    learning_mode: str | None
    skip_learn: bool

    @property
    def record(self) -> dict:
        """The joined object, its features (``c``) left out where ``stored`` leaves them.

        Decoded on demand: only apprentice-mode metrics and replays need it.
        """
        return json.loads(self.stored)

    @classmethod
    def of_record(cls, line: str, record: dict) -> JoinedLine:
        """The joined line ``line`` encoding ``record`` (kept whole by the store)."""
        return cls(record["Timestamp"], line, line,
                   record.get("_banditkit", {}).get("learningMode"),
                   bool(record.get("_skipLearn")))


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
    the event knows where its features begin (``context_at``), they are copied
    as text, last; a decision in the engine's layout is copied as text too
    (:func:`_spliced`); any other is decoded and the joined record encoded.
    """
    features = ""
    if event.context_at is not None:
        head = event.decision[:event.context_at] + "}"
        features = event.decision[event.context_at:-1]  # ',"c":{...}'
        spliced = _spliced(head, event, outcome)
        if spliced is not None:
            timestamp, stored, learning_mode = spliced
            return JoinedLine(timestamp, stored[:-1] + features + "}", stored, learning_mode,
                              outcome.skip_learn)
        decision = _decoded(head)
    else:
        decision = json.loads(event.decision)
    chosen_action = decision["a"][0]
    record = {"_label_cost": -outcome.reward, "_label_probability": decision["p"][0],
              "_label_Action": chosen_action, "_labelIndex": chosen_action - 1,
              "o": _outcome_records(event, outcome), **decision}
    if event.deferred:
        record["DeferredAction"] = True
    if outcome.skip_learn:
        record["_skipLearn"] = True
    extra = record.setdefault("_banditkit", {})
    extra["defaultReward"] = outcome.used_default
    if outcome.ignored:
        extra["ignoredRewards"] = _ignored_records(outcome)
    stored = compact_json(record)
    line = stored[:-1] + features + "}" if features else stored
    return JoinedLine(decision["Timestamp"], line, stored, extra.get("learningMode"),
                      outcome.skip_learn)


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


# A decision's head as Engine._decide writes it (compact_json's text: ASCII, escapes
# and all): these keys in this order, "_banditkit" last and not empty. Groups: the
# timestamp, the chosen action, its probability and the "_banditkit" object.
_ENGINE_HEAD = re.compile(
    r'\{"EventId":"(?:[^"\\]|\\.)*","Timestamp":"([^"\\]*)","Version":"1",'
    r'"VWState":\{"m":"[^"\\]*"\},"a":\[([0-9]+)(?:,[0-9]+)*\],'
    r'"p":\[(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)(?:,[^],]+)*\],'
    r'"_banditkit":(\{.+\})\}', re.DOTALL)
_DEFERRED_TEXT = ',"DeferredAction":true'
_SKIP_TEXT = ',"_skipLearn":true'


def _spliced(head: str, event: PendingEvent, outcome: JoinOutcome
             ) -> tuple[str, str, str | None] | None:
    """``(timestamp, stored, learning mode)`` of a head in the engine's layout, else None.

    Decoding the head and encoding the joined record cost more than the rest of
    the join; this copies the head as text into the joined object's text, which
    is byte for byte ``compact_json`` of the joined record (the head is that
    encoder's own output, and decoding and encoding it again gives it back).
    A head of another layout, one whose ``_banditkit`` holds a key the join
    writes there, or whose probability's text is not its ``repr``, is None:
    the caller decodes and encodes it.
    """
    match = _ENGINE_HEAD.fullmatch(head)
    if match is None or not head.isascii():
        return None
    timestamp, action, probability, extra = match.groups()
    cost = -outcome.reward
    if ('"defaultReward"' in extra or '"ignoredRewards"' in extra
            or not math.isfinite(cost) or repr(float(probability)) != probability):
        return None
    learning_mode = (_decoded(extra).get("learningMode") if '"learningMode"' in extra
                     else None)
    outcomes = _outcome_records(event, outcome) if outcome.counted or event.deferred else None
    ignored = (',"ignoredRewards":' + compact_json(_ignored_records(outcome))
               if outcome.ignored else "")
    # head[1:-2]: the decision's keys, "_banditkit" last and left open
    stored = (f'{{"_label_cost":{cost!r},"_label_probability":{probability},'
              f'"_label_Action":{action},"_labelIndex":{int(action) - 1},'
              f'"o":{compact_json(outcomes) if outcomes else "[]"},{head[1:-2]},'
              f'"defaultReward":{"true" if outcome.used_default else "false"}{ignored}}}'
              f'{_DEFERRED_TEXT if event.deferred else ""}'
              f'{_SKIP_TEXT if outcome.skip_learn else ""}}}')
    return timestamp, stored, learning_mode


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
