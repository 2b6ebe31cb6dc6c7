"""The decision record's one owner: Vowpal Wabbit's dsjson, written and read here.

A decision is logged as a head (``EventId`` ... ``_banditkit``) followed by its
features (``"c"``); joining it puts the label fields and outcomes in front and
the join's own fields into ``_banditkit``. The head writer
(:func:`decision_head`) and the splice that copies its text into the joined line
(:func:`joined_line_text`) sit side by side, so a change to one is a change to
the other. Reading goes through :func:`parse_event`, and the few fields a
scanner needs without a full parse through :func:`line_timestamp`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from banditkit.encoding import compact_json, dsjson_namespaces, json_string
from banditkit.types import Action, Features

__all__ = [
    "EXTRA_KEY",
    "JoinedEvent",
    "CcbSlot",
    "CcbSlotJoin",
    "JoinedLine",
    "JoinedPage",
    "ccb_decision_line",
    "ccb_slot_ids",
    "decision_head",
    "decision_line",
    "dsjson_context",
    "full_line",
    "joined_ccb_line",
    "joined_line_text",
    "joined_reward",
    "label_fields",
    "line_timestamp",
    "parse_event",
    "parse_page",
    "shortest_probability",
]

#: The one key of our own fields in a record; VW ignores it.
EXTRA_KEY = "_banditkit"


# --------------------------------------------------------------------------- writing


@functools.lru_cache(maxsize=4096)
def shortest_probability(probability: float) -> float:
    """The float whose ``repr`` is the shortest decimal of ``probability`` as a float32.

    Vowpal Wabbit computes probabilities in float32; written as float64 they
    carry noise (``0.06000000238418579``). This value reads back to the same
    float32 and prints as ``0.06``, so the log and every HTTP answer, which
    all call this function, show the same short number. A policy's
    probabilities take few distinct values, hence the cache: a lookup costs
    about a tenth of formatting.

    Parameters
    ----------
    probability : float
        A probability as the learner computed it (float32 precision).

    Returns
    -------
    float
        ``float(str(np.float32(probability)))``; equal to ``probability`` as a float32.
    """
    return float(str(np.float32(probability)))


def decision_head(event_id: str, timestamp: str, model_version: int | str,
                  order: Sequence[int], pmf: Sequence[float], actions: Sequence[Action],
                  extra: Mapping[str, Any]) -> str:
    """The decision's record without its features, and without its closing brace.

    Formatted directly as :data:`~banditkit.encoding.compact_json` writes the
    record (floats as ``repr``, strings escaped to ASCII): a third of the cost
    of encoding a dict, on every decision. :func:`_spliced` reads this layout.

    Parameters
    ----------
    order : sequence of int
        0-based action indices in ranked order, the chosen one first.
    pmf : sequence of float, length n_actions
        Probability of each action, in ``actions`` order, written as
        :func:`shortest_probability` gives it (as the HTTP answers are).
    actions : sequence of Action, length n_actions
        The eligible actions (``_multi`` order): their ids are written as ``actionIds``.
    extra : mapping
        Written into ``_banditkit`` after ``actionIds``.
    """
    if extra:
        extra_json = compact_json({"actionIds": [a.id for a in actions], **extra})
    else:
        extra_json = '{"actionIds":[' + ",".join([json_string(a.id) for a in actions]) + "]}"
    return (f'{{"EventId":{json_string(event_id)},"Timestamp":"{timestamp}","Version":"1",'
            f'"VWState":{{"m":"{model_version}"}},"a":[{",".join([str(i + 1) for i in order])}],'
            f'"p":[{",".join([repr(shortest_probability(pmf[i])) for i in order])}],'
            f'"{EXTRA_KEY}":{extra_json}')


def decision_line(head: str, shared: str) -> str:
    """The decision's record: ``head`` then ``"c"``, the encoded features ``shared``.

    The features begin at ``len(head)``: what the store keeps as ``context_at``.
    """
    return head + ',"c":' + shared + "}"


def label_fields(cost: float, probability: float, chosen_index: int) -> dict[str, Any]:
    """The label keys of a joined record, in VW's order (``chosen_index`` is 0-based)."""
    return {"_label_cost": cost, "_label_probability": probability,
            "_label_Action": chosen_index + 1, "_labelIndex": chosen_index}


def dsjson_context(context: Features, actions: Sequence[Features]) -> dict:
    """The dsjson ``c`` object: shared namespaces plus ``_multi``, one entry per action.

    Features of the default namespace ``""`` sit at the top level, as VW's JSON
    expects; :func:`parse_event` reverses this.
    """
    return {**dsjson_namespaces(context), "_multi": [dsjson_namespaces(a) for a in actions]}


class JoinedLine(NamedTuple):
    """A joined event as the learner step needs it.

    ``stored`` is what the store keeps of the line: without the features when
    they are the decision's own text (:func:`full_line` copies them back), else
    the line. ``learning_mode`` is the decision's ``_banditkit.learningMode``
    (None in online mode) and ``skip_learn`` its ``_skipLearn``: what the
    learner reads, so that nobody parses the line again.
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
                   record.get(EXTRA_KEY, {}).get("learningMode"),
                   bool(record.get("_skipLearn")))


def joined_line_text(decision: str, context_at: int | None, reward: float,
                     outcomes: list[dict], ignored: list[dict], deferred: bool,
                     skip_learn: bool, used_default: bool) -> JoinedLine:
    """The dsjson line of a joined decision.

    Label fields come first, as VW's own writers put them: ``_label_cost`` is
    minus the reward, ``_label_Action`` 1-based, ``_labelIndex`` 0-based. When
    the decision's features begin at ``context_at``, they are copied as text,
    last; a head in :func:`decision_head`'s layout is copied as text too
    (:func:`_spliced`); any other is decoded and the joined record encoded.

    Parameters
    ----------
    decision : str
        The decision's record as logged.
    context_at : int or None
        Where its ``,"c":`` begins, when known.
    outcomes : list of dict
        The ``o`` array (activation, then the rewards that counted).
    ignored : list of dict
        Rewards outside the window, kept under ``_banditkit.ignoredRewards``.
    """
    features = ""
    if context_at is not None:
        head = decision[:context_at] + "}"
        features = decision[context_at:-1]  # ',"c":{...}'
        spliced = _spliced(head, reward, outcomes, ignored, deferred, skip_learn, used_default)
        if spliced is not None:
            timestamp, stored, learning_mode = spliced
            return JoinedLine(timestamp, stored[:-1] + features + "}", stored, learning_mode,
                              skip_learn)
        decoded = _decoded(head)
    else:
        decoded = json.loads(decision)
    record = _joined_record(decoded, reward, outcomes, ignored, deferred, skip_learn,
                            used_default)
    stored = compact_json(record)
    line = stored[:-1] + features + "}" if features else stored
    return JoinedLine(record["Timestamp"], line, stored,
                      record[EXTRA_KEY].get("learningMode"), skip_learn)


def _joined_record(decision: dict, reward: float, outcomes: list[dict], ignored: list[dict],
                   deferred: bool, skip_learn: bool, used_default: bool) -> dict:
    """The joined record encoded by the slow path: the reference the splice must match."""
    chosen_action = decision["a"][0]
    record = {**label_fields(-reward, decision["p"][0], chosen_action - 1),
              "o": list(outcomes), **decision}
    if deferred:
        record["DeferredAction"] = True
    if skip_learn:
        record["_skipLearn"] = True
    extra = record.setdefault(EXTRA_KEY, {})
    extra["defaultReward"] = used_default
    if ignored:
        extra["ignoredRewards"] = ignored
    return record


# A head as decision_head writes it (compact_json's text: ASCII, escapes and all):
# these keys in this order, "_banditkit" last and not empty. Groups: the
# timestamp, the chosen action, its probability and the "_banditkit" object.
_ENGINE_HEAD = re.compile(
    r'\{"EventId":"(?:[^"\\]|\\.)*","Timestamp":"([^"\\]*)","Version":"1",'
    r'"VWState":\{"m":"[^"\\]*"\},"a":\[([0-9]+)(?:,[0-9]+)*\],'
    r'"p":\[(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)(?:,[^],]+)*\],'
    r'"_banditkit":(\{.+\})\}', re.DOTALL)
_DEFERRED_TEXT = ',"DeferredAction":true'
_SKIP_TEXT = ',"_skipLearn":true'


def _spliced(head: str, reward: float, outcomes: list[dict], ignored: list[dict],
             deferred: bool, skip_learn: bool, used_default: bool
             ) -> tuple[str, str, str | None] | None:
    """``(timestamp, stored, learning mode)`` of a head in the engine's layout, else None.

    Decoding the head and encoding the joined record cost more than the rest of
    the join; this copies the head as text into the joined object's text, which
    is byte for byte ``compact_json`` of :func:`_joined_record` (the head is
    that encoder's own output, and decoding and encoding it again gives it
    back). A head of another layout, one whose ``_banditkit`` holds a key the
    join writes there, or whose probability's text is not its ``repr``, is
    None: the caller decodes and encodes it.
    """
    match = _ENGINE_HEAD.fullmatch(head)
    if match is None or not head.isascii():
        return None
    timestamp, action, probability, extra = match.groups()
    cost = -reward
    if ('"defaultReward"' in extra or '"ignoredRewards"' in extra
            or not math.isfinite(cost) or repr(float(probability)) != probability):
        return None
    learning_mode = (_decoded(extra).get("learningMode") if '"learningMode"' in extra
                     else None)
    ignored_text = ',"ignoredRewards":' + compact_json(ignored) if ignored else ""
    # head[1:-2]: the decision's keys, "_banditkit" last and left open
    stored = (f'{{"_label_cost":{cost!r},"_label_probability":{probability},'
              f'"_label_Action":{action},"_labelIndex":{int(action) - 1},'
              f'"o":{compact_json(outcomes) if outcomes else "[]"},{head[1:-2]},'
              f'"defaultReward":{"true" if used_default else "false"}{ignored_text}}}'
              f'{_DEFERRED_TEXT if deferred else ""}'
              f'{_SKIP_TEXT if skip_learn else ""}}}')
    return timestamp, stored, learning_mode


def full_line(stored: str, decision: str, context_at: int | None) -> str:
    """A joined line from what the store keeps: features copied back from the decision."""
    if context_at is None:
        return stored
    return stored[:-1] + decision[context_at:-1] + "}"


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


# ----------------------------------------------------------------- pages (CCB)


class CcbSlot(NamedTuple):
    """One slot of a page decision, as its record holds it.

    Attributes
    ----------
    id : str
    features : Features
    eligible : list of int
        0-based indices of the actions the slot may show (``_inc``).
    actions : list of int
        0-based action indices in ranked order, the chosen one first (``_a``).
    probabilities : list of float
        Aligned with ``actions`` (``_p``).
    """

    id: str
    features: Features
    eligible: list[int]
    actions: list[int]
    probabilities: list[float]


def ccb_decision_line(event_id: str, timestamp: str, model_version: str, context: Features,
                      actions: Sequence[Features], slots: Sequence[CcbSlot],
                      extra: Mapping[str, Any]) -> str:
    """A page decision's CCB dsjson record, ``extra`` under ``_banditkit``."""
    shared = dsjson_context(context, actions)
    shared["_slots"] = [{"_id": slot.id, "_inc": list(slot.eligible),
                         **dsjson_namespaces(slot.features)} for slot in slots]
    outcomes = [{"_id": slot.id, "_a": list(slot.actions),
                 "_p": [shortest_probability(p) for p in slot.probabilities]}
                for slot in slots]
    # VW's parser needs "c" before "_outcomes" (the reverse crashes it).
    record = {"EventId": event_id, "Timestamp": timestamp, "Version": "1",
              "VWState": {"m": model_version}, "c": shared, "_outcomes": outcomes,
              EXTRA_KEY: dict(extra)}
    return json.dumps(record, separators=(",", ":"))


def ccb_slot_ids(decision: str) -> list[str]:
    """The slot ids of a page decision's record, in slot order."""
    return json.loads(decision)[EXTRA_KEY]["slotIds"]


class CcbSlotJoin(NamedTuple):
    """One slot's join: its reward and the rewards counted and ignored (``{"v", "t"}``)."""

    reward: float
    used_default: bool
    counted: list[dict]
    ignored: list[dict]


def joined_ccb_line(decision: str, slots: Mapping[str, CcbSlotJoin], *, deferred: bool,
                    activated_at: str | None, skip_learn: bool, page_reward: float,
                    page_used_default: bool, page_ignored: list[dict]) -> JoinedLine:
    """The CCB dsjson line of a joined page.

    Each slot's outcome gets ``_label_cost`` = minus its joined reward and
    ``_o``, the rewards that counted; the page reward goes to
    ``_banditkit.pageReward``.
    """
    record = json.loads(decision)
    outcomes = []
    for outcome in record["_outcomes"]:
        joined = slots[outcome["_id"]]
        outcomes.append({"_id": outcome["_id"], "_label_cost": -joined.reward or 0.0,
                         "_a": outcome["_a"], "_p": outcome["_p"], "_o": joined.counted})
    record["_outcomes"] = outcomes
    info = record.setdefault(EXTRA_KEY, {})
    if deferred:
        record["DeferredAction"] = True
        if activated_at is not None:
            info["activatedAt"] = activated_at
    if skip_learn:
        record["_skipLearn"] = True
    info["pageReward"] = page_reward
    info["pageRewardDefault"] = page_used_default
    info["defaultRewardSlots"] = [slot for slot, j in slots.items() if j.used_default]
    ignored = {slot: j.ignored for slot, j in slots.items() if j.ignored}
    if page_ignored:
        ignored["_page"] = page_ignored
    if ignored:
        info["ignoredRewards"] = ignored
    line = json.dumps(record, separators=(",", ":"))
    return JoinedLine.of_record(line, record)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class JoinedEvent:
    """One decision with its outcome, as read back from the log.

    Attributes
    ----------
    context : Features
        Shared features.
    actions : list of Features, length n_actions
        Features of each eligible action, in ``_multi`` order.
    action_ids : list of str, length n_actions
        Caller ids of the actions, aligned with ``actions``.
    chosen_index : int
        0-based index into ``actions`` of the action shown.
    probability : float
        Logging propensity of the chosen action.
    pmf : tuple of float, length n_actions
        Logging probability of every action, in ``_multi`` order.
    reward : float
        The joined reward (``-_label_cost``).
    skip_learn : bool
        True for deferred events that were never activated.
    """

    event_id: str
    timestamp: str
    context: Features
    actions: list[Features]
    action_ids: list[str]
    chosen_index: int
    probability: float
    pmf: tuple[float, ...]
    reward: float
    skip_learn: bool
    model_version: str
    extra: dict = field(default_factory=dict)


def parse_event(record: dict) -> JoinedEvent:
    """One joined dsjson object to a :class:`JoinedEvent`."""
    if "_outcomes" in record:
        raise ValueError("a page (multi-slot) event, not a single decision: a page log "
                         "is read with parse_page")
    shared = record["c"]
    actions = [_namespaces(entry) for entry in shared["_multi"]]
    pmf = [0.0] * len(actions)
    for action, probability in zip(record["a"], record["p"], strict=True):
        pmf[int(action) - 1] = float(probability)
    extra = record.get(EXTRA_KEY, {})
    ids = extra.get("actionIds") or [str(i + 1) for i in range(len(actions))]
    chosen = int(record["_labelIndex"])
    if not 0 <= chosen < len(actions):
        raise ValueError(f"_labelIndex {chosen} outside the {len(actions)} actions")
    return JoinedEvent(
        event_id=str(record["EventId"]),
        timestamp=str(record["Timestamp"]),
        context=_namespaces({k: v for k, v in shared.items() if k != "_multi"}),
        actions=actions,
        action_ids=list(ids),
        chosen_index=chosen,
        probability=float(record["_label_probability"]),
        pmf=tuple(pmf),
        reward=joined_reward(record),
        skip_learn=bool(record.get("_skipLearn", False)),
        model_version=str(record.get("VWState", {}).get("m", "")),
        extra=extra,
    )


def joined_reward(labelled: Mapping[str, Any]) -> float:
    """The joined reward of a record or of a page's slot outcome: minus its ``_label_cost``."""
    return -float(labelled["_label_cost"])


def _namespaces(obj: dict, *, skip_reserved: bool = False) -> Features:
    """Features of a dsjson object: a dict value is a namespace, any other value a
    feature of the default namespace ``""``.

    ``skip_reserved`` leaves out the keys starting with ``_`` (``_multi``,
    ``_id``...), as CCB objects need.
    """
    features: Features = {}
    for key, value in obj.items():
        if skip_reserved and key.startswith("_"):
            continue
        if isinstance(value, dict):
            features[key] = dict(value)
        else:
            features.setdefault("", {})[key] = value
    return features


@dataclass(frozen=True)
class JoinedPage:
    """One joined page (CCB) as read back from the log.

    Attributes
    ----------
    context : Features
        Shared features.
    rows : list of Features, length n_rows
        Candidate row features, in ``_multi`` order.
    slots : list of Features, length n_slots
        Slot features.
    chosen : list of int, length n_slots
        Row index shown in each slot.
    eligible : list of list of int, length n_slots
        Rows the rules allowed in each slot.
    probability : tuple of float, length n_slots
        Logging probability of each shown row given the rows above.
    reward : tuple of float, length n_slots
        Joined reward of each slot (``-_label_cost``).
    page_reward : float
    """

    event_id: str
    context: Features
    rows: list[Features]
    row_ids: list[str]
    slot_ids: list[str]
    slots: list[Features]
    chosen: list[int]
    eligible: list[list[int]]
    probability: tuple[float, ...]
    reward: tuple[float, ...]
    page_reward: float
    skip_learn: bool
    model_version: str


def parse_page(record: dict) -> JoinedPage:
    """One joined CCB dsjson object to a :class:`JoinedPage`."""
    shared = record["c"]
    rows = [_namespaces(entry, skip_reserved=True) for entry in shared["_multi"]]
    slots = shared["_slots"]
    outcomes = record["_outcomes"]
    if len(outcomes) != len(slots):
        raise ValueError(f"{len(outcomes)} outcomes for {len(slots)} slots")
    extra = record.get(EXTRA_KEY, {})
    n_rows = len(rows)
    eligible = [list(slot.get("_inc", range(n_rows))) for slot in slots]
    chosen = [int(outcome["_a"][0]) for outcome in outcomes]
    for k, (row, allowed) in enumerate(zip(chosen, eligible, strict=True)):
        if row not in allowed:
            raise ValueError(f"slot {k}: row {row} shown but not among _inc {allowed}")
    return JoinedPage(
        event_id=str(record["EventId"]), context=_namespaces(shared, skip_reserved=True),
        rows=rows,
        row_ids=list(extra.get("rowIds") or [str(i) for i in range(n_rows)]),
        slot_ids=[str(slot.get("_id", k + 1)) for k, slot in enumerate(slots)],
        slots=[_namespaces(slot, skip_reserved=True) for slot in slots], chosen=chosen,
        eligible=eligible,
        probability=tuple(float(outcome["_p"][0]) for outcome in outcomes),
        reward=tuple(joined_reward(outcome) for outcome in outcomes),
        page_reward=float(extra.get("pageReward", 0.0)),
        skip_learn=bool(record.get("_skipLearn", False)),
        model_version=str(record.get("VWState", {}).get("m", "")))


_TIMESTAMP = b'"Timestamp":"'


def line_timestamp(line: bytes) -> bytes | None:
    """The decision's ``Timestamp`` of a joined line, read without parsing it; None if absent.

    Label fields and outcomes (whose times are ``"t"``) precede the decision's
    own ``Timestamp``, so its first occurrence is the one.
    """
    at = line.find(_TIMESTAMP)
    if at < 0:
        return None
    start = at + len(_TIMESTAMP)
    return line[start:line.find(b'"', start)]
