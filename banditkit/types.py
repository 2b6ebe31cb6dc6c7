"""The data types every part of banditkit speaks (docs/architecture.md §3).

Features are namespaced dicts, the Vowpal Wabbit and Personalizer convention:
``{"Member": {"country": "BR", "hour": 21}, "Taste": {"comedy": 0.7}}``.
Strings are categorical, numbers numeric, ``True`` a present flag. The empty
namespace ``""`` holds features without a namespace (VW's default namespace).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from banditkit.errors import InvalidInputError
from banditkit.sampling import new_event_id

__all__ = [
    "Action",
    "Decision",
    "EVENT_ID_MAX_LENGTH",
    "EVENT_ID_PATTERN",
    "FeatureValue",
    "FLOAT32_MAX",
    "REWARD_LIMIT",
    "WHITESPACE",
    "Features",
    "RankedAction",
    "check_actions",
    "check_event_id",
    "check_features",
    "check_reward",
]

FeatureValue = str | float | int | bool
FLOAT32_MAX = 3.4028234663852886e38
#: Every character ``str.strip`` removes (``str.isspace``), as a regular
#: expression class that reads the same in Python and ECMAScript.
WHITESPACE = (r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
              r"\u3000")
#: Largest absolute reward (and default reward) accepted. Vowpal Wabbit learns in
#: 32-bit floats and squares costs: past about 1e19 its weights overflow and its
#: probabilities turn non-finite. 1e6 leaves that far behind and still holds
#: minutes played or revenue; Personalizer asked for rewards in [-1, 1].
REWARD_LIMIT = 1e6
Features = dict[str, dict[str, FeatureValue]]


#: Most characters in an event id (Personalizer's limit).
EVENT_ID_MAX_LENGTH = 256
# Characters no event id may hold: control characters (C0, DEL, C1), which no
# log line or URL should carry, and '/': the reward and activate routes take the
# id as one URL path segment, where '/' cannot stand even percent-encoded
# (servers decode it before routing). Spaces are fine (percent-encoded in URLs).
_EVENT_ID_FORBIDDEN = r"\x00-\x1f\x7f-\x9f/"
#: What an event id may hold, as a regular expression that reads the same in
#: Python and ECMAScript (the OpenAPI ``pattern`` of every eventId): none of the
#: forbidden characters, and not the path segment ``.`` or ``..``, which URL
#: normalisation removes. The length is :data:`EVENT_ID_MAX_LENGTH`, checked apart.
EVENT_ID_PATTERN = rf"^(?!\.\.?$)(?![\s\S]*[{_EVENT_ID_FORBIDDEN}])"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_EVENT_ID_FORBIDDEN_CHARACTER = re.compile(f"[{_EVENT_ID_FORBIDDEN}]")


@dataclass(frozen=True)
class Action:
    """One candidate: an artwork variant or a row.

    Parameters
    ----------
    id : str
        Caller's identifier, unique within one decision.
    features : Features
        Action features, e.g. ``{"Artwork": {"theme": "romance", "brightness": 0.4}}``.
    """

    id: str
    features: Features


class RankedAction(NamedTuple):
    """One action of a ranking and its probability of being shown.

    A named tuple: a rank call makes one per action, at a third of a frozen
    dataclass's cost.
    """

    id: str
    probability: float


class Decision(NamedTuple):
    """The answer to a rank call.

    A named tuple, as :class:`RankedAction` is: every rank call makes one.

    Attributes
    ----------
    event_id : str
        Identifies the decision for rewards and activation.
    ranking : tuple of RankedAction
        Every action: the chosen one first, then by decreasing probability,
        excluded actions last with probability 0.
    reward_action_id : str
        The action to show; rewards are credited to it.
    model_version : str
        The model snapshot that decided.
    explanation : tuple of (str, tuple of (str, float)), default=None
        With inference explainability on: per ranked action that was not
        excluded, its id and its largest feature contributions
        (``VWLearner.explain``); None otherwise.
    """

    event_id: str
    ranking: tuple[RankedAction, ...]
    reward_action_id: str
    model_version: str
    explanation: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] | None = None

    @property
    def probability(self) -> float:
        """Probability with which the shown action was chosen (its propensity)."""
        return self.ranking[0].probability


def check_features(features: object, *, name: str = "features") -> Features:
    """Validate namespaced features and return them unchanged.

    Raises
    ------
    InvalidInputError
        Naming the offending namespace or feature when the structure is not
        ``{str: {str: str | number | bool}}`` or a number is NaN or infinite.
    """
    if type(features) is not dict and not isinstance(features, Mapping):
        raise InvalidInputError(
            f"{name} must be an object of namespaces, got {type(features).__name__}")
    for namespace, group in features.items():
        if type(namespace) is not str or namespace[:1] == "_" or not _is_text(namespace):
            raise InvalidInputError(
                f"{name}: namespace names must be valid strings not starting with '_', "
                f"got {namespace!r}")
        if namespace and not namespace[0].isascii():
            # Vowpal Wabbit indexes namespaces by their first byte and aborts otherwise.
            raise InvalidInputError(
                f"{name}: namespace names must start with an ASCII character, "
                f"got {namespace!r}")
        if type(group) is not dict and not isinstance(group, Mapping):
            raise InvalidInputError(
                f"{name}[{namespace!r}] must be an object of features, "
                f"got {type(group).__name__}")
        for feature, value in group.items():
            kind = type(value)
            if (type(feature) is str and feature and feature[0] != "_" and _is_text(feature)
                    and ((kind is str and _is_text(value)) or kind is bool
                         or ((kind is int or kind is float)
                             and -FLOAT32_MAX <= value <= FLOAT32_MAX))):
                continue  # the common case, checked cheaply: rank calls this per feature
            _raise_feature_error(name, namespace, feature, value)
    return features  # type: ignore[return-value]


def _is_text(text: str) -> bool:
    """False for strings Vowpal Wabbit's JSON reader rejects: unpaired surrogates."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_feature_error(name: str, namespace: str, feature: object, value: object) -> None:
    if (not isinstance(feature, str) or not feature or feature.startswith("_")
            or not _is_text(feature)):
        raise InvalidInputError(
            f"{name}[{namespace!r}]: feature names must be non-empty valid strings "
            f"not starting with '_', got {feature!r}")
    if isinstance(value, str):
        raise InvalidInputError(
            f"{name}[{namespace!r}][{feature!r}] must be valid Unicode text "
            f"(no unpaired surrogates), got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not abs(value) <= FLOAT32_MAX:  # also NaN, inf and ints beyond any float
            raise InvalidInputError(
                f"{name}[{namespace!r}][{feature!r}] must be finite and within ±3.4e38 "
                f"(the learner computes in 32-bit floats), got {value}")
        return  # a numeric subclass (numpy scalar): accepted
    raise InvalidInputError(
        f"{name}[{namespace!r}][{feature!r}] must be a string, number or "
        f"boolean, got {type(value).__name__}")


def check_actions(actions: object, *, max_actions: int | None = None,
                  validate_features: bool = True) -> Sequence[Action]:
    """Validate a non-empty list of actions with unique ids and (unless told not to,
    when the caller validates them its own way) valid features."""
    if (type(actions) not in (list, tuple)  # the common types first: an ABC check is slow
            and (not isinstance(actions, Sequence) or isinstance(actions, str)) or not actions):
        raise InvalidInputError("actions must be a non-empty list of Action")
    if max_actions is not None and len(actions) > max_actions:
        raise InvalidInputError(
            f"too many actions: at most {max_actions} per decision, got {len(actions)}")
    if not validate_features:  # the common case in one pass: rank checks every decision
        ids = {a.id for a in actions if type(a) is Action and type(a.id) is str and a.id}
        if len(ids) == len(actions):
            return actions
    seen: set[str] = set()
    for position, action in enumerate(actions):
        if not isinstance(action, Action):
            raise InvalidInputError(
                f"actions[{position}] must be an Action, got {type(action).__name__}")
        if not isinstance(action.id, str) or not action.id:
            raise InvalidInputError(f"actions[{position}].id must be a non-empty string")
        if action.id in seen:
            raise InvalidInputError(f"duplicate action id {action.id!r}")
        seen.add(action.id)
        if validate_features:
            check_features(action.features, name=f"actions[{position}].features")
    return actions


def check_event_id(event_id: object, *, name: str = "event id") -> str:
    """The caller's event id, validated, or a new one when None.

    An event id is 1 to :data:`EVENT_ID_MAX_LENGTH` characters matching
    :data:`EVENT_ID_PATTERN`: no control character, no space, no ``/``, and
    not ``.`` or ``..``, so that it stands unchanged as a URL path segment.

    Raises
    ------
    InvalidInputError
        Naming ``name``, what is wrong and the value received.
    """
    if event_id is None:
        return new_event_id()
    if not isinstance(event_id, str):
        raise InvalidInputError(f"{name} must be a string, got {event_id!r}")
    problem = _event_id_problem(event_id)
    if problem is not None:
        raise InvalidInputError(f"{name} {problem}")
    return event_id


def _event_id_problem(event_id: str) -> str | None:
    """What makes ``event_id`` break the rule of :data:`EVENT_ID_PATTERN`, or None."""
    if not event_id:
        return "must not be empty, got ''"
    if len(event_id) > EVENT_ID_MAX_LENGTH:
        return (f"must be at most {EVENT_ID_MAX_LENGTH} characters, got {len(event_id)} "
                f"characters starting {event_id[:32]!r}")
    if _EVENT_ID.search(event_id):
        return None
    forbidden = _EVENT_ID_FORBIDDEN_CHARACTER.search(event_id)
    if forbidden is None:
        return (f"must not be '.' or '..' (URLs drop such path segments, so its reward "
                f"could never reach it), got {event_id!r}")
    character = forbidden.group()
    if character == "/":
        kind = "'/' (it is one URL path segment of the reward and activate routes)"
    else:
        kind = f"control characters (U+{ord(character):04X})"
    return f"must not contain {kind}, got {event_id!r}"


def check_reward(value: object, *, name: str = "reward value") -> float:
    """A reward as a float: finite and within ±:data:`~banditkit.types.REWARD_LIMIT`.

    Raises
    ------
    InvalidInputError
        Naming ``name``, the bound and the value received.
    """
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not abs(value) <= REWARD_LIMIT):
        raise InvalidInputError(
            f"{name} must be a finite number within ±{REWARD_LIMIT:g}, got {value!r}")
    return float(value)
