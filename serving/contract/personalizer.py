"""The Personalizer-compatible single-slot routes and banditkit's ``/v1/events``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    SkipValidation,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from banditkit.settings import AGGREGATIONS, check_policy_args
from serving.contract.common import RewardRequest, event_operations
from serving.contract.fields import (
    Body,
    ConfigLimit,
    EventId,
    FeatureList,
    Id,
    Probability,
    Reward,
    integer,
    text,
    wire_name,
)
from serving.contract.limits import FOREVER_DAYS, ID_MAX_LENGTH, POLICY_ARGUMENTS_MAX_LENGTH
from serving.contract.operations import Answer, Operation
from serving.durations import DURATION_PATTERN, parse_duration

__all__ = [
    "ActionExplanation",
    "ApprenticeBatchMetrics",
    "ApprenticeModeMetrics",
    "EVENT_OPERATIONS",
    "FeatureContribution",
    "LEARNING_MODES",
    "OPERATIONS",
    "PolicyContract",
    "RankRequest",
    "RankResponse",
    "RankableAction",
    "RankedAction",
    "ServiceConfiguration",
]

#: Personalizer's ``learningMode`` names by the engine's.
LEARNING_MODES = {"online": "Online", "apprentice": "Apprentice", "logging_only": "LoggingOnly"}


def _any_case_pattern(values: tuple[str, ...]) -> str:
    """A pattern matching exactly ``values``, in any letter case (``sum``, ``Sum``, ``SUM``)."""
    alternatives = ("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c)
                            for c in value) for value in values)
    return f"^(?:{'|'.join(alternatives)})$"


class RankableAction(Body):
    # Personalizer required features; banditkit takes an action without them
    # (no features, as null does).
    id: Id
    features: FeatureList | None = None


class RankRequest(Body):
    """A Personalizer rank body."""

    context_features: FeatureList | None = None
    actions: Annotated[list[RankableAction], Field(min_length=1, max_length=50),
                       ConfigLimit("maxItems", "RANK_MAX_ACTIONS")]
    excluded_actions: list[Id] | None = None
    event_id: EventId | None = None
    defer_activation: bool | None = False


class RankedAction(Body):
    id: str
    probability: Probability


class FeatureContribution(Body):
    name: Annotated[str, Field(description="Namespace.feature; an interaction joins its "
                                           "features with ^.")]
    score: Annotated[float, Field(description="Weight times value, signed as reward: "
                                              "positive raises the action's estimate.")]


class ActionExplanation(Body):
    id: str
    features: Annotated[list[FeatureContribution], Field(
        description="The largest contributions, largest magnitude first.")]


class RankResponse(Body):
    """The decision: each action's probability and the one to show."""

    event_id: EventId
    ranking: list[RankedAction]
    reward_action_id: str | None
    inference_explanation: Annotated[list[ActionExplanation] | None, Field(
        description="With isInferenceExplainabilityEnabled: each ranked action's (not "
                    "excluded) feature contributions to the model's score.")] = None


class ApprenticeBatchMetrics(Body):
    number_of_events: Annotated[int, Field(ge=0)] = 0
    sum_of_rewards: float = 0.0
    sum_of_imitated_rewards: Annotated[float, Field(
        description="Rewards of the events where the model's top action was the baseline "
                    "shown.")] = 0.0


class ApprenticeModeMetrics(ApprenticeBatchMetrics):
    start_time: Annotated[str, Field(json_schema_extra={"format": "date-time"})] = ""
    last_processed_event_time: Annotated[str, Field(
        json_schema_extra={"format": "date-time"})] = ""
    last_batch_metrics: ApprenticeBatchMetrics | None = None


def _retention(value: int) -> int:
    if value == 0:
        raise ValueError("logRetentionDays must be -1 (forever) or a number of days >= 1, got 0")
    return value


def _one_of(names: tuple[str, ...]) -> str:
    return f"One of {', '.join(names)} (any letter case)."


def _seconds(value: Any, info: ValidationInfo) -> float:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{wire_name(info)}: {exc}") from None


_LEARNING_MODES_IN = {value.lower(): key for key, value in LEARNING_MODES.items()}


def _learning_mode(value: str) -> str:
    mode = _LEARNING_MODES_IN.get(value.lower())
    if mode is None:
        raise ValueError(f"learningMode must be one of {', '.join(LEARNING_MODES.values())}; "
                         f"got {value!r}")
    return mode


def _unsupported(value: bool | None, info: ValidationInfo) -> bool | None:
    if value:
        raise ValueError(f"{wire_name(info)}=true is not supported by banditkit")
    return value


def _date_time(value: Any, info: ValidationInfo) -> float:
    from serving.contract.evaluations import parse_date_time  # it imports this module

    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    # within the times Python formats back: the last second of year 9999 at most
    return min(parse_date_time(value, name=wire_name(info)).timestamp(), 253402300799.0)


#: An RFC 3339 date-time on the wire; its Unix seconds once validated.
_DateTime = Annotated[float, PlainValidator(_date_time), WithJsonSchema(
    {"type": "string", "format": "date-time"})]
#: An ISO-8601 duration on the wire; its seconds once validated
#: (:func:`serving.durations.parse_duration`, whose messages name the problem).
_Duration = Annotated[float, PlainValidator(_seconds), WithJsonSchema(
    {"type": "string", "pattern": DURATION_PATTERN})]
_Unsupported = Annotated[bool | None, AfterValidator(_unsupported), WithJsonSchema(
    {"anyOf": [{"const": False, "type": "boolean"}, {"type": "null"}]}), Field(
    description="Not supported by banditkit: false or absent.")]


# Validated, the durations hold seconds and learningMode the engine's name
# (logging_only); the aggregation's and the exploration's ranges are LoopSettings'
# own checks, which the schema states.
class ServiceConfiguration(Body):
    """The loop settings, Personalizer's ``ServiceConfiguration``."""

    reward_wait_time: Annotated[_Duration, Field(description="ISO-8601 duration, e.g. PT10M.")]
    default_reward: Reward
    reward_aggregation: Annotated[str, AfterValidator(str.lower), Field(
        json_schema_extra={"pattern": _any_case_pattern(AGGREGATIONS)},
        description=_one_of(AGGREGATIONS))]
    exploration_percentage: Annotated[float, Field(json_schema_extra={"minimum": 0,
                                                                      "maximum": 1})]
    model_export_frequency: Annotated[_Duration, Field(description="ISO-8601 duration, "
                                                                  "e.g. PT1M.")]
    log_retention_days: Annotated[integer(-1, FOREVER_DAYS), AfterValidator(_retention), Field(
        description="Days, or -1 to keep forever.", json_schema_extra={"not": {"enum": [0]}})]
    model_retrain_days: integer(0, FOREVER_DAYS) | None = None
    learning_mode: Annotated[str, AfterValidator(_learning_mode), Field(
        json_schema_extra={"pattern": _any_case_pattern(tuple(LEARNING_MODES.values()))},
        description=_one_of(tuple(LEARNING_MODES.values())))] | None = None
    log_mirror_enabled: _Unsupported = None
    is_auto_optimization_enabled: Annotated[bool | None, Field(
        description="Run an evaluation with policy optimization every "
                    "autoOptimizationFrequency and apply its optimum when it beats the "
                    "online policy beyond both intervals.")] = None
    auto_optimization_frequency: Annotated[_Duration | None, Field(
        description="ISO-8601 duration between auto-optimizations, and the log each one "
                    "evaluates; at least PT1H (default P7D).")] = None
    auto_optimization_start_date: Annotated[_DateTime | None, Field(
        description="When the first auto-optimization may run (RFC 3339).")] = None
    is_inference_explainability_enabled: Annotated[bool | None, Field(
        description="Rank answers carry inferenceExplanation; kept when absent or "
                    "null.")] = None
    # Ignored on update: a client sends back what it read.
    latest_apprentice_mode_metrics: Annotated[ApprenticeModeMetrics | None, SkipValidation,
                                              Field(
        json_schema_extra={"readOnly": True},
        description="Present once apprentice mode has joined events; ignored on "
                    "update.")] = None


def _policy_arguments(value: str) -> str:
    check_policy_args(value)  # options that touch files, sockets or the logs
    return value


class PolicyContract(Body):
    """The learning policy: a name and Vowpal Wabbit arguments."""

    name: text(ID_MAX_LENGTH)
    arguments: Annotated[text(POLICY_ARGUMENTS_MAX_LENGTH), AfterValidator(_policy_arguments),
                         Field(description="Vowpal Wabbit arguments, e.g. --cb_explore_adf "
                                           "--epsilon 0.2.")]


_SETTINGS = Answer("Settings in force.", ServiceConfiguration)
_POLICY = Answer("Policy in force.", PolicyContract)
#: The reward and activate routes, by view name (both route families and ``/v1/events``).
EVENT_OPERATIONS = event_operations(
    "Report the reward of an event.", "Activate a deferred event so its rewards count.",
    request=RewardRequest, done=("Reward recorded.", "Event activated."))

#: The Personalizer single-slot routes, by view name.
OPERATIONS = {
    "rank": Operation("Rank actions for a context; returns the action to show.",
                      {201: Answer("The decision.", RankResponse)},
                      errors=(400, 409, 413, 415), request=RankRequest),
    **EVENT_OPERATIONS,
    "get_service_configuration": Operation("The loop settings.",
                                           {200: _SETTINGS},
                                           errors=(400,)),
    "update_service_configuration": Operation("Replace the loop settings.",
                                              {200: _SETTINGS},
                                              errors=(400, 413, 415),
                                              request=ServiceConfiguration),
    "get_policy": Operation("The learning policy (Vowpal Wabbit arguments).",
                            {200: _POLICY}, errors=(400,)),
    "update_policy": Operation("Replace the learning policy.", {200: _POLICY},
                               errors=(400, 413, 415), request=PolicyContract),
    "reset_policy": Operation("Restore the default learning policy.", {200: _POLICY},
                              errors=(400,)),
}
