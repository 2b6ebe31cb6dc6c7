"""Row ordering over HTTP: ``/v1/rows/...`` and Personalizer's multi-slot routes.

banditkit's own routes take namespaced features and page rules:

* ``POST /v1/rows/rank``: fill a page's slots from candidate rows (201);
* ``POST /v1/rows/events/{eventId}/reward``: ``{"rewards": [{"slotId", "value"}],
  "pageReward": number}`` (204);
* ``POST /v1/rows/events/{eventId}/activate`` (204).

The Personalizer multi-slot routes, in both families (``/personalizer/v1.0/
multislot/...`` and ``/personalizer/multislot/...?api-version=``), take the
Azure bodies unchanged: ``rank`` with ``slots[{id, baselineAction, features,
excludedActions}]`` answers ``{"eventId", "slots": [{"id", "rewardActionId"}]}``;
``events/{eventId}/reward`` takes ``{"reward": [{"slotId", "value"}]}``;
``events/{eventId}/activate``.

Handlers parse, call :class:`banditkit.rows.RowEngine` and serialise. The row
engine shares the data directory (its own folder ``rows/``: database, CCB log,
models) and, unless ``ROWS_SETTINGS`` is set, follows the main engine's loop
settings but its policy, so a Personalizer ``configurations/service`` update
applies to multi-slot decisions too.

Config keys (``ROWS_`` namespace)
---------------------------------
ROWS_SETTINGS : dict, default=None
    :class:`~banditkit.settings.LoopSettings` fields of the row loop; None
    follows the main engine's settings (reward wait, default reward,
    aggregation, exploration, mode, ...) and their later updates, all but
    ``policy_args``: the row loop keeps the default policy, read as
    ``--ccb_explore_adf``.
ROWS_RULES : dict, default=None
    Default page rules: ``{"pinned": {rowId: position}, "noAdjacentSameGenre",
    "minDistinctGenres", "distinctGenresWithin"}``.
ROWS_MAX_ROWS : int, default=100
    Most candidate rows per page.
ROWS_MAX_SLOTS : int, default=50
    Most slots per page.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app

from banditkit.dsjson import shortest_probability
from banditkit.errors import InvalidInputError
from banditkit.rows import PageDecision, PageRules, Row, RowEngine, Slot
from banditkit.settings import LoopSettings
from banditkit.types import check_features
from serving import openapi
from serving._parsing import (
    check_event_id,
    json_body,
    optional_bool,
    optional_event_id,
    personalizer_features,
    require_int,
    require_list,
    require_object,
    require_str,
)
from serving.auth import require_roles
from serving.config import get_config
from serving.contract.limits import (
    DEFAULT_NAMESPACE,
    FEATURE_INT_MAX,
    ID_MAX_LENGTH,
    MODEL_VERSION_HEADER,
)
from serving.contract.rows import (
    MULTISLOT_OPERATIONS,
    ROWS_OPERATIONS,
    MultiSlotRewardRequest,
    RowsRewardRequest,
    SlotReward,
)
from serving.contract.validation import validate
from serving.errors import ApiError
from serving.metrics import get_metrics
from serving.personalizer import require_api_version
from serving.runtime import ENGINE_EXTENSION, get_engine

__all__ = ["close", "follows_main_settings", "get_row_engine", "init_app",
           "page_rules_from_json"]

_logger = logging.getLogger(__name__)
ROWS_EXTENSION = "banditkit.rows"
_FOLLOW_EXTENSION = "banditkit.rows.follow"

rows_bp = Blueprint("rows", __name__, url_prefix="/v1/rows")
multislot_v1 = Blueprint("personalizer_multislot_v1", __name__,
                         url_prefix="/personalizer/v1.0/multislot")
multislot_versioned = Blueprint("personalizer_multislot", __name__,
                                url_prefix="/personalizer/multislot")


def follows_main_settings(app: Flask | None = None) -> bool:
    """Whether the row loop adopts the main loop's settings (no ``ROWS_SETTINGS``)."""
    return (app or current_app).extensions[_FOLLOW_EXTENSION]


def get_row_engine(app: Flask | None = None) -> RowEngine:
    """The app's :class:`~banditkit.rows.RowEngine`."""
    return (app or current_app).extensions[ROWS_EXTENSION]


multislot_versioned.before_request(require_api_version)


# ------------------------------------------------------------------- parsing


def _features(value: Any, *, target: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    require_object(value, target=target)
    try:
        check_features(value, name=target)
    except InvalidInputError as exc:
        raise ApiError(str(exc), target=target) from None
    for namespace, group in value.items():
        for feature, leaf in group.items():
            if type(leaf) is int and abs(leaf) > FEATURE_INT_MAX:
                raise ApiError(f"{target}[{namespace!r}][{feature!r}] is an integer too large "
                               f"for a feature, got {leaf}.", target=target)
    return value


def _id(value: Any, *, target: str) -> str:
    return require_str(value, target=target, max_length=ID_MAX_LENGTH)


def _id_list(value: Any, *, target: str) -> list[str]:
    if value is None:
        return []
    return [_id(item, target=f"{target}[{i}]")
            for i, item in enumerate(require_list(value, target=target))]


def page_rules_from_json(value: Any, *, target: str = "rules") -> PageRules | None:
    """:class:`~banditkit.rows.PageRules` from ``{"pinned", "noAdjacentSameGenre", ...}``."""
    if value is None:
        return None
    body = require_object(value, target=target)
    unknown = sorted(set(body) - {"pinned", "noAdjacentSameGenre", "minDistinctGenres",
                                  "distinctGenresWithin"})
    if unknown:
        raise ApiError(f"{target}: unknown fields {unknown}.", target=f"{target}.{unknown[0]}")
    # null leaves a rule out, as absent does (RowsRankRequest's rules).
    pinned_raw = {} if body.get("pinned") is None else body["pinned"]
    pinned = {_id(key, target=f"{target}.pinned"):
              require_int(position, target=f"{target}.pinned.{key}", minimum=1)
              for key, position in require_object(pinned_raw, target=f"{target}.pinned").items()}

    def count(key: str) -> int:
        value = body.get(key)
        return 0 if value is None else require_int(value, target=f"{target}.{key}", minimum=0)

    try:
        return PageRules(
            pinned=pinned,
            no_adjacent_same_genre=optional_bool(body, "noAdjacentSameGenre"),
            min_distinct_genres=count("minDistinctGenres"),
            distinct_genres_within=count("distinctGenresWithin"))
    except InvalidInputError as exc:
        raise ApiError(f"{target}: {exc}", target=target) from None


_SLOTS_HINT = "a number of slots, or [{id, features, baseline, excludedRows}]"


def _listed(body: dict[str, Any], key: str, *, maximum: int, hint: str,
            limit: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path, item)`` of ``body[key]``: 1 to ``maximum`` objects, each with an id."""
    if body.get(key) is None:
        raise ApiError(f"{key} is required: {hint}.", target=key)
    items = require_list(body[key], target=key)
    if not items or len(items) > maximum:
        raise ApiError(f"{key} must hold between 1 and {maximum} {key}{limit}, "
                       f"got {len(items)}.", target=key)
    for i, raw in enumerate(items):
        where = f"{key}[{i}]"
        raw = require_object(raw, target=where)
        if raw.get("id") is None:
            raise ApiError(f"{where}.id is required.", target=f"{where}.id")
        yield where, raw


def _parse_rank(body: Any, *, max_rows: int, max_slots: int) -> dict[str, Any]:
    body = require_object(body, target="")
    unknown = sorted(set(body) - {"context", "rows", "slots", "rules", "excludedRows",
                                  "eventId", "deferActivation"})
    if unknown:
        raise ApiError(f"Unknown fields {unknown}; expected context, rows, slots, rules, "
                       "excludedRows, eventId, deferActivation.", target=unknown[0])
    rows = []
    for where, raw in _listed(body, "rows", maximum=max_rows, limit=" (ROWS_MAX_ROWS)",
                              hint="the candidate rows, [{id, features, genre}]"):
        genre = raw.get("genre")
        if genre is not None:
            genre = require_str(genre, target=f"{where}.genre", max_length=ID_MAX_LENGTH)
        rows.append(Row(id=_id(raw["id"], target=f"{where}.id"),
                        features=_features(raw.get("features"), target=f"{where}.features"),
                        genre=genre))
    raw_slots = body.get("slots")
    if raw_slots is None:
        raise ApiError(f"slots is required: {_SLOTS_HINT}.", target="slots")
    n_slots, slots = None, None
    if isinstance(raw_slots, list):
        slots = []
        for where, raw in _listed(body, "slots", maximum=max_slots, limit=" (ROWS_MAX_SLOTS)",
                                  hint=_SLOTS_HINT):
            baseline = raw.get("baseline")
            slots.append(Slot(
                id=_id(raw["id"], target=f"{where}.id"),
                features=_features(raw.get("features"), target=f"{where}.features"),
                baseline=None if baseline is None else _id(baseline, target=f"{where}.baseline"),
                excluded=tuple(_id_list(raw.get("excludedRows"),
                                        target=f"{where}.excludedRows"))))
    else:
        n_slots = require_int(raw_slots, target="slots", minimum=1, maximum=max_slots)
    return {
        "context": _features(body.get("context"), target="context"),
        "candidate_rows": rows, "n_slots": n_slots, "slots": slots,
        "rules": page_rules_from_json(body.get("rules")),
        "excluded": _id_list(body.get("excludedRows"), target="excludedRows"),
        "event_id": optional_event_id(body),
        "defer_activation": optional_bool(body, "deferActivation"),
    }


def _page_json(decision: PageDecision) -> dict[str, Any]:
    return {
        "eventId": decision.event_id,
        "modelVersion": decision.model_version,
        "slots": [{"id": s.slot_id, "rowId": s.row_id,
                   "probability": shortest_probability(s.probability),
                   "eligibleRows": s.n_eligible} for s in decision.slots],
        "pageProbability": shortest_probability(decision.probability),
    }


def _rank(arguments: dict[str, Any], *, route: str) -> PageDecision:
    started = time.perf_counter()
    decision = get_row_engine().rank_rows(**arguments)
    get_metrics().ranked(route, time.perf_counter() - started)
    return decision


# -------------------------------------------------------------------- /v1/rows


@rows_bp.post("/rank")
@require_roles("client")
def rank() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Fill a page's slots from candidate rows: ``201`` with each slot's row and probability."""
    config = get_config()
    arguments = _parse_rank(json_body(), max_rows=config.rows_max_rows,
                            max_slots=config.rows_max_slots)
    decision = _rank(arguments, route="rows")
    return _page_json(decision), 201, {MODEL_VERSION_HEADER: decision.model_version}


@rows_bp.post("/events/<eventId>/reward")
@require_roles("client")
def reward(eventId: str) -> tuple[str, int]:  # noqa: N803 - the URL's own spelling
    """Record slot rewards and/or a page reward: ``204``."""
    event_id = check_event_id(eventId)
    body = validate(RowsRewardRequest, json_body())
    engine = get_row_engine()
    late = False
    if body.rewards:
        late = engine.reward_slots(event_id, _pairs(body.rewards))
    if body.page_reward is not None:
        late = engine.reward_page(event_id, body.page_reward)
    get_metrics().rewards.labels(route="rows", late=str(bool(late)).lower()).inc()
    return "", 204


@rows_bp.post("/events/<eventId>/activate")
@require_roles("client")
def activate(eventId: str) -> tuple[str, int]:  # noqa: N803
    """Mark a deferred page as shown, so its rewards count: ``204``."""
    get_row_engine().activate(check_event_id(eventId))
    get_metrics().activations.labels(route="rows").inc()
    return "", 204


def _pairs(rewards: list[SlotReward]) -> list[tuple[str, float]]:
    return [(reward.slot_id, reward.value) for reward in rewards]


# -------------------------------------------------------- Personalizer multi-slot


def parse_multislot_rank(body: Any, *, max_actions: int, max_slots: int) -> dict[str, Any]:
    """Validate a Personalizer ``MultiSlotRankRequest`` into ``rank_rows`` arguments."""
    body = require_object(body, target="")
    rows = []
    for where, raw in _listed(body, "actions", maximum=max_actions,
                              hint="an array of {id, features}"):
        rows.append(Row(id=_id(raw["id"], target=f"{where}.id"),
                        features=personalizer_features(raw.get("features"),
                                                       target=f"{where}.features",
                                                       default_namespace=DEFAULT_NAMESPACE)))
    ids = [row.id for row in rows]
    if len(set(ids)) != len(ids):
        raise ApiError("actions ids must be unique.", target="actions")
    slots, baselines = [], set()
    for where, raw in _listed(body, "slots", maximum=min(max_slots, len(rows)),
                              limit=" (no more than actions)",
                              hint="an array of {id, baselineAction}"):
        if raw.get("baselineAction") is None:
            raise ApiError(f"{where}.baselineAction is required: the action shown there "
                           "without personalization.", target=f"{where}.baselineAction")
        baseline = _id(raw["baselineAction"], target=f"{where}.baselineAction")
        excluded = _id_list(raw.get("excludedActions"), target=f"{where}.excludedActions")
        if baseline not in ids:
            raise ApiError(f"{where}.baselineAction {baseline!r} is not an action id.",
                           target=f"{where}.baselineAction")
        if baseline in excluded:
            raise ApiError(f"{where}.baselineAction {baseline!r} is among its excludedActions.",
                           target=f"{where}.baselineAction")
        if baseline in baselines:
            raise ApiError(f"{where}.baselineAction {baseline!r} is the baseline of another "
                           "slot; each slot needs its own.", target=f"{where}.baselineAction")
        baselines.add(baseline)
        unknown = [a for a in excluded if a not in ids]
        if unknown:
            raise ApiError(f"{where}.excludedActions names unknown actions {unknown}.",
                           target=f"{where}.excludedActions")
        slots.append(Slot(id=_id(raw["id"], target=f"{where}.id"),
                          features=personalizer_features(raw.get("features"),
                                                         target=f"{where}.features",
                                                         default_namespace=DEFAULT_NAMESPACE),
                          baseline=baseline, excluded=tuple(excluded)))
    if len({slot.id for slot in slots}) != len(slots):
        raise ApiError("slots ids must be unique.", target="slots")
    return {
        "context": personalizer_features(body.get("contextFeatures"), target="contextFeatures",
                                         default_namespace=DEFAULT_NAMESPACE),
        "candidate_rows": rows, "slots": slots,
        "event_id": optional_event_id(body),
        "defer_activation": optional_bool(body, "deferActivation"),
    }


@require_roles("client")
def multislot_rank() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Personalizer multi-slot rank: ``201``, one ``{"id", "rewardActionId"}`` per slot."""
    config = get_config()
    arguments = parse_multislot_rank(json_body(),
                                     max_actions=config.rank_max_actions,
                                     max_slots=config.rows_max_slots)
    decision = _rank(arguments, route="personalizer_multislot")
    body = {"eventId": decision.event_id,
            "slots": [{"id": s.slot_id, "rewardActionId": s.row_id} for s in decision.slots]}
    return body, 201, {MODEL_VERSION_HEADER: decision.model_version}


@require_roles("client")
def multislot_reward(eventId: str) -> tuple[str, int]:  # noqa: N803
    """Personalizer multi-slot reward ``{"reward": [{"slotId", "value"}]}``: ``204``."""
    event_id = check_event_id(eventId)
    pairs = _pairs(validate(MultiSlotRewardRequest, json_body()).reward)
    late = get_row_engine().reward_slots(event_id, pairs)
    get_metrics().rewards.labels(route="personalizer_multislot",
                                 late=str(bool(late)).lower()).inc()
    return "", 204


@require_roles("client")
def multislot_activate(eventId: str) -> tuple[str, int]:  # noqa: N803
    """Personalizer multi-slot activate: ``204``."""
    get_row_engine().activate(check_event_id(eventId))
    get_metrics().activations.labels(route="personalizer_multislot").inc()
    return "", 204


_MULTISLOT_ROUTES: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("/rank", multislot_rank),
    ("/events/<eventId>/reward", multislot_reward),
    ("/events/<eventId>/activate", multislot_activate),
)
for _blueprint in (multislot_v1, multislot_versioned):
    for _rule, _view in _MULTISLOT_ROUTES:
        _blueprint.add_url_rule(_rule, view_func=_view, methods=["POST"],
                                endpoint=_view.__name__)


def close(app: Flask) -> None:
    """Close the row engine (idempotent); the app's learner is stopped first."""
    engine = app.extensions.pop(ROWS_EXTENSION, None)
    if engine is not None:
        engine.close()


# ------------------------------------------------------------------ registration


def init_app(app: Flask, *, data_dir: Path) -> None:
    """Open the row engine in ``data_dir``, register the routes and document them."""
    config = get_config(app)
    raw = config.rows_settings
    follow = raw is None
    rules_raw = config.rows_rules
    with app.test_request_context():
        rules = page_rules_from_json(rules_raw, target="ROWS_RULES")
    engine = RowEngine.open(data_dir, settings=LoopSettings(**raw) if raw else None,
                            rules=rules, max_rows=config.rows_max_rows,
                            database_url=config.database_url,
                            log_dir=config.engine_options.get("log_dir"))
    if follow and ENGINE_EXTENSION in app.extensions:
        engine.follow(get_engine(app).settings)
    app.extensions[ROWS_EXTENSION] = engine
    app.extensions[_FOLLOW_EXTENSION] = follow
    weakref.finalize(app, engine.close)  # apps without a learner thread close it when dropped
    for blueprint in (rows_bp, multislot_v1, multislot_versioned):
        app.register_blueprint(blueprint)
    openapi.add_operations(app, rows_bp, ROWS_OPERATIONS, tag="rows")
    for blueprint, tag, versioned in ((multislot_v1, "personalizer-v1.0", False),
                                      (multislot_versioned, "personalizer-api-version", True)):
        openapi.add_operations(app, blueprint, MULTISLOT_OPERATIONS, tag=tag,
                               api_version=versioned)
