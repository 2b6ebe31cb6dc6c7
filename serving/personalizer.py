"""Azure Personalizer-compatible routes, so a migrating team changes only its base URL.

Two route families share the same handlers:

* ``/personalizer/v1.0/...`` (the REST v1.0 API, used by
  ``azure-cognitiveservices-personalizer``);
* ``/personalizer/...?api-version=YYYY-MM-DD[-preview]`` (used by
  ``azure-ai-personalizer``'s ``PersonalizerClient`` and
  ``PersonalizerAdministrationClient``).

Handlers parse and validate, call the engine, and serialise; the contract is
written down in ``docs/personalizer-compat.md``.

Config keys (``RANK_`` namespace)
---------------------------------
RANK_MAX_ACTIONS : int, default=50
    Most actions one rank request may carry (Personalizer's own limit was 50).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, current_app, request

from banditkit.encoding import ContentMemo
from banditkit.engine import ApprenticeMetrics
from banditkit.errors import InvalidInputError
from banditkit.settings import LoopSettings
from banditkit.types import Action, Decision
from serving import openapi
from serving._parsing import (
    FeatureMemory,
    check_event_id,
    json_body,
    optional_bool,
    optional_event_id,
    personalizer_features,
    require_list,
    require_object,
    require_str,
)
from serving.auth import require_roles
from serving.config import get_config
from serving.contract.common import RewardRequest
from serving.contract.fields import utc_text
from serving.contract.limits import (
    API_VERSION_PATTERN,
    DEFAULT_NAMESPACE,
    FOREVER_DAYS,
    ID_MAX_LENGTH,
    MODEL_VERSION_HEADER,
)
from serving.contract.personalizer import (
    LEARNING_MODES,
    OPERATIONS,
    PolicyContract,
    ServiceConfiguration,
)
from serving.contract.validation import validate
from serving.durations import format_duration
from serving.errors import ApiError
from serving.jobs import AUTO_OPTIMIZATION_MIN_SECONDS, AutoOptimization
from serving.meta import MetaStore
from serving.metrics import get_metrics
from serving.runtime import get_engine

__all__ = [
    "activate_event",
    "apply_policy",
    "decision_json",
    "init_app",
    "parse_rank_request",
    "parse_reward",
    "parse_service_configuration",
    "require_api_version",
    "reward_event",
    "service_configuration_json",
]

_API_VERSION = re.compile(API_VERSION_PATTERN)
_META_EXTENSION = "banditkit.meta"
_FEATURES_EXTENSION = "banditkit.personalizer_features"
_ACTION_LISTS_EXTENSION = "banditkit.personalizer_action_lists"
# Converted actions arrays kept whole; an entry of 8 analysed posters is about 10 KB.
_ACTION_LISTS_KEPT = 2_048
_POLICY_NAME_KEY = "personalizer.policy_name"
_DEFAULT_POLICY_NAME = "banditkit default"

v1 = Blueprint("personalizer_v1", __name__, url_prefix="/personalizer/v1.0")
versioned = Blueprint("personalizer", __name__, url_prefix="/personalizer")


@versioned.before_request
def require_api_version() -> None:
    """Refuse a request of the ``?api-version=`` route family that lacks a valid version."""
    # Checked before auth: without a version the request means nothing here.
    version = request.args.get("api-version")
    if version is None:
        raise ApiError(
            "The api-version query parameter is required, e.g. ?api-version=2022-09-01-preview.",
            target="api-version",
        )
    if not _API_VERSION.match(version):
        raise ApiError(
            f"api-version must look like 2022-09-01-preview, got {version!r}.",
            target="api-version",
        )


# --------------------------------------------------------------------------- rank


def parse_rank_request(
    body: Any, *, max_actions: int, action_features: Callable[..., Mapping] = personalizer_features,
    action_lists: ContentMemo[tuple[Action, ...]] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Action], dict[str, Any]]:
    """Validate a Personalizer rank body and turn it into engine arguments.

    Parameters
    ----------
    body : object
        The decoded JSON body.
    max_actions : int
        Most actions allowed.
    action_features : callable, default=personalizer_features
        Converts an action's feature list (the server passes its
        :class:`~serving._parsing.FeatureMemory`).
    action_lists : ContentMemo, default=None
        Remembers converted ``actions`` arrays whole: a client sends the same
        candidates (a title's artwork) again and again, and one pickle of the
        array costs less than checking each action's (the server passes one).

    Returns
    -------
    context : dict
        Namespaced context features.
    actions : list of Action
        In request order (the first is the baseline).
    options : dict
        ``event_id``, ``excluded`` and ``defer_activation`` keyword arguments.
    """
    body = require_object(body, target="")
    if body.get("actions") is None:
        raise ApiError("actions is required: an array of {id, features}.", target="actions")
    raw_actions = require_list(body["actions"], target="actions")
    if not raw_actions:
        raise ApiError("actions must contain at least one action.", target="actions")
    if len(raw_actions) > max_actions:
        raise ApiError(
            f"actions may contain at most {max_actions} actions, got {len(raw_actions)}.",
            target="actions",
        )
    def convert() -> tuple[Action, ...]:
        return tuple(_action(raw, index, action_features) for index, raw in enumerate(raw_actions))

    actions = list(convert() if action_lists is None else action_lists.get(raw_actions, convert))
    context = personalizer_features(
        body.get("contextFeatures"), target="contextFeatures", default_namespace=DEFAULT_NAMESPACE
    )
    excluded: list[str] = []
    if body.get("excludedActions") is not None:
        raw_excluded = require_list(body["excludedActions"], target="excludedActions")
        for index, value in enumerate(raw_excluded):
            where = f"excludedActions[{index}]"
            excluded.append(require_str(value, target=where, max_length=ID_MAX_LENGTH))
    options = {
        "event_id": optional_event_id(body),
        "excluded": tuple(excluded),
        "defer_activation": optional_bool(body, "deferActivation"),
    }
    return context, actions, options


def _action(raw: Any, index: int, action_features: Callable[..., Mapping]) -> Action:
    where = f"actions[{index}]"
    raw = require_object(raw, target=where)
    if raw.get("id") is None:
        raise ApiError(f"{where}.id is required.", target=f"{where}.id")
    action_id = require_str(raw["id"], target=f"{where}.id", max_length=ID_MAX_LENGTH)
    features = action_features(
        raw.get("features"), target=f"{where}.features", default_namespace=DEFAULT_NAMESPACE
    )
    return Action(id=action_id, features=features)


def decision_json(decision: Decision) -> dict[str, Any]:
    """The Personalizer ``RankResponse`` for ``decision``, with ``inferenceExplanation``
    when the decision carries one."""
    out: dict[str, Any] = {
        "eventId": decision.event_id,
        "ranking": [
            {"id": ranked.id, "probability": ranked.probability}
            for ranked in decision.ranking
        ],
        "rewardActionId": decision.reward_action_id,
    }
    if decision.explanation is not None:
        out["inferenceExplanation"] = [
            {"id": action_id, "features": [{"name": name, "score": score}
                                           for name, score in features]}
            for action_id, features in decision.explanation]
    return out


@require_roles("client")
def rank() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Rank the actions for a context: ``201`` with the decision.

    The ``X-Banditkit-Model-Version`` response header names the model snapshot
    that decided (Personalizer clients ignore it).
    """
    max_actions = get_config().rank_max_actions
    context, actions, options = parse_rank_request(
        json_body(), max_actions=max_actions,
        action_features=current_app.extensions[_FEATURES_EXTENSION],
        action_lists=current_app.extensions[_ACTION_LISTS_EXTENSION])
    engine = get_engine()
    started = time.perf_counter()
    decision = engine.rank(context, actions, **options)
    get_metrics().ranked("personalizer", time.perf_counter() - started,
                         model_version=decision.model_version,
                         fallbacks=engine.model_fallbacks)
    return decision_json(decision), 201, {MODEL_VERSION_HEADER: decision.model_version}


# ------------------------------------------------------------------ reward / activate


def parse_reward(body: Any) -> float:
    """The ``value`` of a reward body ``{"value": number}`` (:class:`RewardRequest`)."""
    return validate(RewardRequest, body).value


def reward_event(event_id: str, *, route: str) -> tuple[str, int]:
    """Record the request's ``{"value": number}`` as a reward of ``event_id``: ``204``.

    Parameters
    ----------
    event_id : str
        As the URL carries it (checked here).
    route : str
        The route family, the metrics' label.
    """
    checked = check_event_id(event_id)
    late = get_engine().reward(checked, parse_reward(json_body()))
    get_metrics().rewards.labels(route=route, late=str(bool(late)).lower()).inc()
    return "", 204


def activate_event(event_id: str, *, route: str) -> tuple[str, int]:
    """Mark the deferred event ``event_id`` as shown, so its rewards count: ``204``."""
    get_engine().activate(check_event_id(event_id))
    get_metrics().activations.labels(route=route).inc()
    return "", 204


@require_roles("client")
def reward(eventId: str) -> tuple[str, int]:  # noqa: N803 - the URL's own spelling
    """Report the reward of an event: ``204``."""
    return reward_event(eventId, route="personalizer")


@require_roles("client")
def activate(eventId: str) -> tuple[str, int]:  # noqa: N803
    """Activate a deferred event: ``204``."""
    return activate_event(eventId, route="personalizer")


# ------------------------------------------------------------------ configurations


def service_configuration_json(settings: LoopSettings,
                               apprentice: ApprenticeMetrics | None = None,
                               auto: AutoOptimization | None = None) -> dict[str, Any]:
    """Personalizer's ``ServiceConfiguration`` for the engine's ``settings``, with
    ``latestApprenticeModeMetrics`` once apprentice mode has joined events, and the
    auto-optimization settings ``auto``."""
    auto = auto or AutoOptimization()
    configuration = {
        "rewardWaitTime": format_duration(settings.reward_wait_seconds),
        "defaultReward": float(settings.default_reward),
        "rewardAggregation": settings.reward_aggregation,
        "explorationPercentage": float(settings.exploration_percentage),
        "modelExportFrequency": format_duration(settings.model_update_seconds),
        "logRetentionDays": (
            -1 if settings.log_retention_days >= FOREVER_DAYS else int(settings.log_retention_days)
        ),
        "modelRetrainDays": 0,
        "learningMode": LEARNING_MODES.get(settings.learning_mode, settings.learning_mode),
        "logMirrorEnabled": False,
        "isAutoOptimizationEnabled": auto.enabled,
        "autoOptimizationFrequency": format_duration(auto.frequency_seconds),
        "isInferenceExplainabilityEnabled": settings.inference_explainability,
    }
    if auto.start_at is not None:
        configuration["autoOptimizationStartDate"] = utc_text(auto.start_at)
    if apprentice is not None:
        n, rewards, imitated = apprentice.last_batch
        configuration["latestApprenticeModeMetrics"] = {
            "startTime": apprentice.started_at,
            "lastProcessedEventTime": apprentice.last_event_at,
            "lastBatchMetrics": {"numberOfEvents": n, "sumOfRewards": rewards,
                                 "sumOfImitatedRewards": imitated},
            "numberOfEvents": apprentice.n_events,
            "sumOfRewards": apprentice.sum_of_rewards,
            "sumOfImitatedRewards": apprentice.sum_of_imitated_rewards,
        }
    return configuration


def parse_service_configuration(body: Any, current: LoopSettings) -> LoopSettings:
    """New settings from a ``ServiceConfiguration`` body, keeping what it does not set.

    Parameters
    ----------
    body : object
        The decoded JSON body, validated by :class:`ServiceConfiguration`.
    current : LoopSettings
        The settings in force (for ``learningMode`` when absent, and the policy).
    """
    return _settings_of(validate(ServiceConfiguration, body), current)


def _settings_of(config: ServiceConfiguration, current: LoopSettings) -> LoopSettings:
    changes: dict[str, Any] = {
        "reward_wait_seconds": config.reward_wait_time,
        "default_reward": config.default_reward,
        "reward_aggregation": config.reward_aggregation,
        "exploration_percentage": config.exploration_percentage,
        "model_update_seconds": config.model_export_frequency,
        "log_retention_days": (FOREVER_DAYS if config.log_retention_days == -1
                               else config.log_retention_days),
    }
    if config.learning_mode is not None:
        changes["learning_mode"] = config.learning_mode
    if config.is_inference_explainability_enabled is not None:
        changes["inference_explainability"] = config.is_inference_explainability_enabled
    return _replace_settings(current, changes)


def _replace_settings(current: LoopSettings, changes: dict[str, Any]) -> LoopSettings:
    try:
        return dataclasses.replace(current, **changes)
    except (InvalidInputError, ValueError, TypeError) as exc:
        raise ApiError(f"Invalid settings: {exc}") from None


def _update_settings(settings: LoopSettings) -> None:
    try:
        get_engine().update_settings(settings)
    except (InvalidInputError, ValueError, TypeError) as exc:
        raise ApiError(f"Invalid settings: {exc}") from None


def _auto_optimization_of(config: ServiceConfiguration,
                          current: AutoOptimization) -> AutoOptimization:
    """The auto-optimization settings a body asks for; what it leaves out stays."""
    frequency = config.auto_optimization_frequency
    if frequency is not None and frequency < AUTO_OPTIMIZATION_MIN_SECONDS:
        raise ApiError(f"Invalid settings: autoOptimizationFrequency must be at least "
                       f"{format_duration(AUTO_OPTIMIZATION_MIN_SECONDS)} (each run evaluates "
                       f"that much of the log), got {format_duration(frequency)}.",
                       target="autoOptimizationFrequency")
    changes = {"enabled": config.is_auto_optimization_enabled, "frequency_seconds": frequency,
               "start_at": config.auto_optimization_start_date}
    return dataclasses.replace(current, **{k: v for k, v in changes.items() if v is not None})


def _configuration_json() -> dict[str, Any]:
    engine = get_engine()
    return service_configuration_json(engine.settings, engine.apprentice_metrics(),
                                      AutoOptimization.read(engine.store))


@require_roles("analyst")
def get_service_configuration() -> tuple[dict[str, Any], int]:
    """The loop settings as a Personalizer ``ServiceConfiguration``."""
    return _configuration_json(), 200


@require_roles()
def update_service_configuration() -> tuple[dict[str, Any], int]:
    """Replace the loop settings and the auto-optimization ones (admin only); returns the
    configuration in force."""
    engine = get_engine()
    config = validate(ServiceConfiguration, json_body())
    settings = _settings_of(config, engine.settings)
    current = AutoOptimization.read(engine.store)
    auto = _auto_optimization_of(config, current)
    _update_settings(settings)
    if auto != current:
        auto.write(engine.store)
    return _configuration_json(), 200


def _meta() -> MetaStore:
    return current_app.extensions[_META_EXTENSION]


def _policy_json(settings: LoopSettings) -> dict[str, Any]:
    name = _meta().get(_POLICY_NAME_KEY, _DEFAULT_POLICY_NAME)
    return {"name": name, "arguments": settings.policy_args}


@require_roles("analyst")
def get_policy() -> tuple[dict[str, Any], int]:
    """The learning policy: ``{"name", "arguments"}`` (Vowpal Wabbit arguments)."""
    return _policy_json(get_engine().settings), 200


@require_roles()
def update_policy() -> tuple[dict[str, Any], int]:
    """Replace the learning policy (admin only); returns the policy in force.

    Under epsilon-greedy, ``explorationPercentage`` sets the epsilon: an
    ``--epsilon`` in the arguments must equal it (400 otherwise) and is not stored.
    """
    policy = validate(PolicyContract, json_body())
    apply_policy(policy.name, policy.arguments)
    return _policy_json(get_engine().settings), 200


def apply_policy(name: str, arguments: str) -> None:
    """Make ``arguments`` the learning policy, named ``name``: a new policy starts a fresh
    model, as Personalizer did (``PUT /configurations/policy``, and apply from an
    evaluation).

    Raises
    ------
    ApiError
        400 when the settings refuse the arguments, naming why.
    """
    try:
        settings = get_engine().settings.with_policy_args(arguments)
    except InvalidInputError as exc:
        raise ApiError(f"{exc}.", target="arguments") from None
    _update_settings(settings)
    _meta().set(_POLICY_NAME_KEY, name)


@require_roles()
def reset_policy() -> tuple[dict[str, Any], int]:
    """Restore the default learning policy (admin only); returns it."""
    engine = get_engine()
    default = LoopSettings().policy_args
    _update_settings(_replace_settings(engine.settings, {"policy_args": default}))
    _meta().set(_POLICY_NAME_KEY, _DEFAULT_POLICY_NAME)
    return _policy_json(engine.settings), 200


# ------------------------------------------------------------------ registration

_ROUTES: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    ("/rank", "POST", rank),
    ("/events/<eventId>/reward", "POST", reward),
    ("/events/<eventId>/activate", "POST", activate),
    ("/configurations/service", "GET", get_service_configuration),
    ("/configurations/service", "PUT", update_service_configuration),
    ("/configurations/policy", "GET", get_policy),
    ("/configurations/policy", "PUT", update_policy),
    ("/configurations/policy", "DELETE", reset_policy),
)

for _blueprint in (v1, versioned):
    for _rule, _method, _view in _ROUTES:
        _blueprint.add_url_rule(_rule, view_func=_view, methods=[_method],
                                endpoint=f"{_view.__name__}")


def init_app(app: Flask, *, meta: MetaStore) -> None:
    """Register both route families and their OpenAPI description on ``app``.

    Parameters
    ----------
    app : Flask
        The application.
    meta : MetaStore
        Where the policy name is kept.
    """
    app.extensions[_META_EXTENSION] = meta
    app.extensions[_FEATURES_EXTENSION] = FeatureMemory()
    app.extensions[_ACTION_LISTS_EXTENSION] = ContentMemo(_ACTION_LISTS_KEPT)
    app.register_blueprint(v1)
    app.register_blueprint(versioned)
    openapi.add_operations(app, v1, OPERATIONS, tag="personalizer-v1.0")
    openapi.add_operations(app, versioned, OPERATIONS, tag="personalizer-api-version",
                           api_version=True)
