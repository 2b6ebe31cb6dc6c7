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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app

from banditkit.errors import InvalidInputError
from banditkit.rows import PageDecision, PageRules, Row, RowEngine, Slot
from banditkit.settings import LoopSettings
from banditkit.types import check_features
from serving import openapi
from serving._parsing import (
    ACTION_ID_MAX_LENGTH,
    check_event_id,
    json_body,
    optional_bool,
    optional_event_id,
    personalizer_features,
    require_list,
    require_object,
    require_reward,
    require_str,
)
from serving.auth import require_roles
from serving.config import get_config
from serving.errors import ApiError
from serving.metrics import get_metrics
from serving.personalizer import (
    API_VERSION_PATTERN,
    DEFAULT_NAMESPACE,
    MODEL_VERSION_HEADER,
    require_api_version,
)
from serving.runtime import ENGINE_EXTENSION, get_engine

__all__ = ["close", "follows_main_settings", "get_row_engine", "init_app",
           "page_rules_from_json"]

_logger = logging.getLogger(__name__)
ROWS_EXTENSION = "banditkit.rows"
_FOLLOW_EXTENSION = "banditkit.rows.follow"
_MAX_INT = 2**53
#: Longest genre of a candidate row.
GENRE_MAX_LENGTH = 256

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
            if type(leaf) is int and abs(leaf) > _MAX_INT:
                raise ApiError(f"{target}[{namespace!r}][{feature!r}] is an integer too large "
                               f"for a feature, got {leaf}.", target=target)
    return value


def _id(value: Any, *, target: str) -> str:
    return require_str(value, target=target, max_length=ACTION_ID_MAX_LENGTH)


def _id_list(value: Any, *, target: str) -> list[str]:
    if value is None:
        return []
    return [_id(item, target=f"{target}[{i}]")
            for i, item in enumerate(require_list(value, target=target))]


def _int(value: Any, *, target: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"{target} must be an integer, got {value!r}.", target=target)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ApiError(f"{target} must be {bound}, got {value}.", target=target)
    return value


def page_rules_from_json(value: Any, *, target: str = "rules") -> PageRules | None:
    """:class:`~banditkit.rows.PageRules` from ``{"pinned", "noAdjacentSameGenre", ...}``."""
    if value is None:
        return None
    body = require_object(value, target=target)
    unknown = sorted(set(body) - {"pinned", "noAdjacentSameGenre", "minDistinctGenres",
                                  "distinctGenresWithin"})
    if unknown:
        raise ApiError(f"{target}: unknown fields {unknown}.", target=f"{target}.{unknown[0]}")
    pinned_raw = body.get("pinned") or {}
    pinned = {_id(key, target=f"{target}.pinned"):
              _int(position, target=f"{target}.pinned.{key}", minimum=1)
              for key, position in require_object(pinned_raw, target=f"{target}.pinned").items()}
    try:
        return PageRules(
            pinned=pinned,
            no_adjacent_same_genre=optional_bool(body, "noAdjacentSameGenre"),
            min_distinct_genres=_int(body.get("minDistinctGenres") or 0,
                                     target=f"{target}.minDistinctGenres", minimum=0),
            distinct_genres_within=_int(body.get("distinctGenresWithin") or 0,
                                        target=f"{target}.distinctGenresWithin", minimum=0))
    except InvalidInputError as exc:
        raise ApiError(f"{target}: {exc}", target=target) from None


def _parse_rank(body: Any, *, max_rows: int, max_slots: int) -> dict[str, Any]:
    body = require_object(body, target="")
    unknown = sorted(set(body) - {"context", "rows", "slots", "rules", "excludedRows",
                                  "eventId", "deferActivation"})
    if unknown:
        raise ApiError(f"Unknown fields {unknown}; expected context, rows, slots, rules, "
                       "excludedRows, eventId, deferActivation.", target=unknown[0])
    if body.get("rows") is None:
        raise ApiError("rows is required: the candidate rows, [{id, features, genre}].",
                       target="rows")
    raw_rows = require_list(body["rows"], target="rows")
    if not raw_rows or len(raw_rows) > max_rows:
        raise ApiError(f"rows must hold between 1 and {max_rows} rows (ROWS_MAX_ROWS), "
                       f"got {len(raw_rows)}.", target="rows")
    rows = []
    for i, raw in enumerate(raw_rows):
        where = f"rows[{i}]"
        raw = require_object(raw, target=where)
        if raw.get("id") is None:
            raise ApiError(f"{where}.id is required.", target=f"{where}.id")
        genre = raw.get("genre")
        if genre is not None:
            genre = require_str(genre, target=f"{where}.genre", max_length=GENRE_MAX_LENGTH)
        rows.append(Row(id=_id(raw["id"], target=f"{where}.id"),
                        features=_features(raw.get("features"), target=f"{where}.features"),
                        genre=genre))
    raw_slots = body.get("slots")
    if raw_slots is None:
        raise ApiError("slots is required: a number of slots, or [{id, features, baseline, "
                       "excludedRows}].", target="slots")
    n_slots, slots = None, None
    if isinstance(raw_slots, list):
        if not raw_slots or len(raw_slots) > max_slots:
            raise ApiError(f"slots must hold between 1 and {max_slots} slots (ROWS_MAX_SLOTS), "
                           f"got {len(raw_slots)}.", target="slots")
        slots = []
        for i, raw in enumerate(raw_slots):
            where = f"slots[{i}]"
            raw = require_object(raw, target=where)
            if raw.get("id") is None:
                raise ApiError(f"{where}.id is required.", target=f"{where}.id")
            baseline = raw.get("baseline")
            slots.append(Slot(
                id=_id(raw["id"], target=f"{where}.id"),
                features=_features(raw.get("features"), target=f"{where}.features"),
                baseline=None if baseline is None else _id(baseline, target=f"{where}.baseline"),
                excluded=tuple(_id_list(raw.get("excludedRows"),
                                        target=f"{where}.excludedRows"))))
    else:
        n_slots = _int(raw_slots, target="slots", minimum=1, maximum=max_slots)
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
        "slots": [{"id": s.slot_id, "rowId": s.row_id, "probability": s.probability,
                   "eligibleRows": s.n_eligible} for s in decision.slots],
        "pageProbability": decision.probability,
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
    body = require_object(json_body(), target="")
    unknown = sorted(set(body) - {"rewards", "pageReward"})
    if unknown:
        raise ApiError(f"Unknown fields {unknown}; expected rewards, pageReward.",
                       target=unknown[0])
    pairs = _slot_rewards(body.get("rewards"), target="rewards")
    page = body.get("pageReward")
    if not pairs and page is None:
        raise ApiError("Give rewards ([{slotId, value}]) or pageReward.", target="rewards")
    engine = get_row_engine()
    late = False
    if pairs:
        late = engine.reward_slots(event_id, pairs)
    if page is not None:
        late = engine.reward_page(event_id, require_reward(page, target="pageReward"))
    get_metrics().rewards.labels(route="rows", late=str(bool(late)).lower()).inc()
    return "", 204


@rows_bp.post("/events/<eventId>/activate")
@require_roles("client")
def activate(eventId: str) -> tuple[str, int]:  # noqa: N803
    """Mark a deferred page as shown, so its rewards count: ``204``."""
    get_row_engine().activate(check_event_id(eventId))
    get_metrics().activations.labels(route="rows").inc()
    return "", 204


def _slot_rewards(value: Any, *, target: str) -> list[tuple[str, float]]:
    if value is None:
        return []
    pairs = []
    for i, item in enumerate(require_list(value, target=target)):
        where = f"{target}[{i}]"
        item = require_object(item, target=where)
        if item.get("slotId") is None or "value" not in item:
            raise ApiError(f"{where} needs slotId and value.", target=where)
        pairs.append((_id(item["slotId"], target=f"{where}.slotId"),
                      require_reward(item["value"], target=f"{where}.value")))
    return pairs


# -------------------------------------------------------- Personalizer multi-slot


def parse_multislot_rank(body: Any, *, max_actions: int, max_slots: int) -> dict[str, Any]:
    """Validate a Personalizer ``MultiSlotRankRequest`` into ``rank_rows`` arguments."""
    body = require_object(body, target="")
    if body.get("actions") is None:
        raise ApiError("actions is required: an array of {id, features}.", target="actions")
    raw_actions = require_list(body["actions"], target="actions")
    if not raw_actions or len(raw_actions) > max_actions:
        raise ApiError(f"actions must hold between 1 and {max_actions} actions, "
                       f"got {len(raw_actions)}.", target="actions")
    rows = []
    for i, raw in enumerate(raw_actions):
        where = f"actions[{i}]"
        raw = require_object(raw, target=where)
        if raw.get("id") is None:
            raise ApiError(f"{where}.id is required.", target=f"{where}.id")
        rows.append(Row(id=_id(raw["id"], target=f"{where}.id"),
                        features=personalizer_features(raw.get("features"),
                                                       target=f"{where}.features",
                                                       default_namespace=DEFAULT_NAMESPACE)))
    ids = [row.id for row in rows]
    if len(set(ids)) != len(ids):
        raise ApiError("actions ids must be unique.", target="actions")
    if body.get("slots") is None:
        raise ApiError("slots is required: an array of {id, baselineAction}.", target="slots")
    raw_slots = require_list(body["slots"], target="slots")
    if not raw_slots or len(raw_slots) > min(max_slots, len(rows)):
        raise ApiError(f"slots must hold between 1 and {min(max_slots, len(rows))} slots "
                       f"(no more than actions), got {len(raw_slots)}.", target="slots")
    slots, baselines = [], set()
    for i, raw in enumerate(raw_slots):
        where = f"slots[{i}]"
        raw = require_object(raw, target=where)
        if raw.get("id") is None:
            raise ApiError(f"{where}.id is required.", target=f"{where}.id")
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
    body = require_object(json_body(), target="")
    if body.get("reward") is None:
        raise ApiError("reward is required: an array of {slotId, value}.", target="reward")
    pairs = _slot_rewards(body["reward"], target="reward")
    if not pairs:
        raise ApiError("reward must name at least one slot.", target="reward")
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
                            rules=rules, max_rows=config.rows_max_rows)
    if follow and ENGINE_EXTENSION in app.extensions:
        engine.follow(get_engine(app).settings)
    app.extensions[ROWS_EXTENSION] = engine
    app.extensions[_FOLLOW_EXTENSION] = follow
    weakref.finalize(app, engine.close)  # apps without a learner thread close it when dropped
    for blueprint in (rows_bp, multislot_v1, multislot_versioned):
        app.register_blueprint(blueprint)
    openapi.add_paths(app, _paths(), _schemas(max_rows=config.rows_max_rows,
                                              max_slots=config.rows_max_slots,
                                              max_actions=config.rank_max_actions))


# ---------------------------------------------------------------------- OpenAPI

_EVENT_ID = openapi.event_id_parameter("The page's event id, from rank.")
_API_VERSION_PARAMETER = {"name": "api-version", "in": "query", "required": True,
                          "description": "Personalizer API version, e.g. 2022-09-01-preview.",
                          "schema": {"type": "string", "pattern": API_VERSION_PATTERN},
                          "example": "2022-09-01-preview"}


def _operation(tag: str, operation_id: str, summary: str, *, body: str | None,
               ok: dict[str, Any], errors: tuple[int, ...],
               parameters: list[dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {"tags": [tag], "summary": summary, "operationId": operation_id,
                                 "responses": {**ok, **openapi.errors(*errors)}}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = openapi.json_body(body)
    return openapi.protected(operation, ("client",))


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/v1/rows/rank": {"post": _operation(
            "rows", "rows_rank", "Fill a page's slots from candidate rows (one event per page).",
            body="RowsRankRequest",
            ok={"201": openapi.json_response("Each slot's row and probability.",
                                             "RowsRankResponse")},
            errors=(400, 409, 413, 415), parameters=[])},
        "/v1/rows/events/{eventId}/reward": {"post": _operation(
            "rows", "rows_reward", "Report rewards of slots and/or of the page.",
            body="RowsRewardRequest", ok={"204": {"description": "Recorded."}},
            errors=(400, 404, 413, 415), parameters=[_EVENT_ID])},
        "/v1/rows/events/{eventId}/activate": {"post": _operation(
            "rows", "rows_activate", "Activate a deferred page so its rewards count.",
            body=None, ok={"204": {"description": "Activated."}}, errors=(400, 404),
            parameters=[_EVENT_ID])},
    }
    for prefix, versioned in (("/personalizer/v1.0/multislot", False),
                              ("/personalizer/multislot", True)):
        tag = "personalizer-api-version" if versioned else "personalizer-v1.0"
        extra = [_API_VERSION_PARAMETER] if versioned else []
        paths[f"{prefix}/rank"] = {"post": _operation(
            tag, f"{tag}_multislot_rank", "Multi-slot rank: the action to show in each slot.",
            body="MultiSlotRankRequest",
            ok={"201": openapi.json_response("One action per slot.", "MultiSlotRankResponse")},
            errors=(400, 409, 413, 415), parameters=extra)}
        paths[f"{prefix}/events/{{eventId}}/reward"] = {"post": _operation(
            tag, f"{tag}_multislot_reward", "Multi-slot reward: one value per slot.",
            body="MultiSlotRewardRequest", ok={"204": {"description": "Recorded."}},
            errors=(400, 404, 413, 415), parameters=[_EVENT_ID, *extra])}
        paths[f"{prefix}/events/{{eventId}}/activate"] = {"post": _operation(
            tag, f"{tag}_multislot_activate", "Multi-slot activate a deferred event.",
            body=None, ok={"204": {"description": "Activated."}}, errors=(400, 404),
            parameters=[_EVENT_ID, *extra])}
    return paths


def _schemas(*, max_rows: int, max_slots: int, max_actions: int) -> dict[str, Any]:
    scalar = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
    namespaced = {"type": "object", "nullable": True,
                  "description": "Namespaced features, e.g. {\"Row\": {\"genre\": \"comedy\"}}.",
                  "additionalProperties": {"type": "object", "additionalProperties": scalar}}
    ident = openapi.text_schema(ACTION_ID_MAX_LENGTH)
    ids = {"type": "array", "nullable": True, "items": ident}
    feature_list = {"type": "array", "nullable": True,
                    "items": {"type": "object", "additionalProperties": True,
                              "nullable": True}}
    slot_reward = {"type": "object", "required": ["slotId", "value"],
                   "properties": {"slotId": ident, "value": openapi.reward_schema()}}
    return {
        "RowsRankRequest": {
            "type": "object", "required": ["rows", "slots"], "additionalProperties": False,
            "properties": {
                "context": namespaced,
                "rows": {"type": "array", "minItems": 1, "maxItems": max_rows, "items": {
                    "type": "object", "required": ["id"],
                    "properties": {"id": ident, "features": namespaced,
                                   "genre": openapi.text_schema(GENRE_MAX_LENGTH,
                                                                nullable=True)}}},
                "slots": {"oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": max_slots},
                    {"type": "array", "minItems": 1, "maxItems": max_slots, "items": {
                        "type": "object", "required": ["id"],
                        "properties": {"id": ident, "features": namespaced,
                                       "baseline": {**ident, "nullable": True},
                                       "excludedRows": ids}}}]},
                "rules": {"type": "object", "nullable": True, "additionalProperties": False,
                          "properties": {
                              "pinned": {"type": "object", "nullable": True,
                                         "additionalProperties": {"type": "integer",
                                                                  "minimum": 1}},
                              "noAdjacentSameGenre": {"type": "boolean", "nullable": True},
                              "minDistinctGenres": {"type": "integer", "minimum": 0,
                                                    "nullable": True},
                              "distinctGenresWithin": {"type": "integer", "minimum": 0,
                                                       "nullable": True}}},
                "excludedRows": ids,
                "eventId": openapi.event_id_schema(nullable=True),
                "deferActivation": {"type": "boolean", "nullable": True, "default": False},
            },
        },
        "RowsRankResponse": {
            "type": "object", "required": ["eventId", "modelVersion", "slots",
                                           "pageProbability"],
            "properties": {
                "eventId": openapi.event_id_schema(), "modelVersion": {"type": "string"},
                "pageProbability": {"type": "number", "minimum": 0, "maximum": 1},
                "slots": {"type": "array", "items": {
                    "type": "object",
                    "required": ["id", "rowId", "probability", "eligibleRows"],
                    "properties": {"id": {"type": "string"}, "rowId": {"type": "string"},
                                   "probability": {"type": "number", "minimum": 0,
                                                   "maximum": 1},
                                   "eligibleRows": {"type": "integer", "minimum": 1}}}},
            },
        },
        "RowsRewardRequest": {
            "type": "object", "additionalProperties": False,
            "description": "At least one of a non-empty rewards and a pageReward.",
            "properties": {"rewards": {"type": "array", "nullable": True, "items": slot_reward},
                           "pageReward": openapi.reward_schema(nullable=True)},
            "anyOf": [
                {"required": ["rewards"],
                 "properties": {"rewards": {"type": "array", "minItems": 1}}},
                {"required": ["pageReward"],
                 "properties": {"pageReward": {"type": "number"}}},
            ],
        },
        "MultiSlotRankRequest": {
            "type": "object", "required": ["actions", "slots"],
            "properties": {
                "contextFeatures": feature_list,
                "actions": {"type": "array", "minItems": 1, "maxItems": max_actions,
                            "items": {"type": "object", "required": ["id"],
                                      "properties": {"id": ident,
                                                     "features": feature_list}}},
                "slots": {"type": "array", "minItems": 1, "maxItems": max_slots, "items": {
                    "type": "object", "required": ["id", "baselineAction"],
                    "properties": {"id": ident, "baselineAction": ident,
                                   "features": feature_list, "excludedActions": ids}}},
                "eventId": openapi.event_id_schema(nullable=True),
                "deferActivation": {"type": "boolean", "nullable": True, "default": False},
            },
        },
        "MultiSlotRankResponse": {
            "type": "object", "required": ["eventId", "slots"],
            "properties": {
                "eventId": openapi.event_id_schema(),
                "slots": {"type": "array", "items": {
                    "type": "object", "required": ["id", "rewardActionId"],
                    "properties": {"id": {"type": "string"},
                                   "rewardActionId": {"type": "string", "nullable": True}}}},
            },
        },
        "MultiSlotRewardRequest": {
            "type": "object", "required": ["reward"],
            "properties": {"reward": {"type": "array", "minItems": 1, "items": slot_reward}},
        },
    }
