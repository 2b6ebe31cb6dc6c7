"""Personalizer's evaluations, feature importances and apply (2022-09-01-preview), both families.

Also banditkit's own full reports of the same jobs (``/v1/evaluations/{id}``,
``/v1/featureImportances/{id}``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from serving.contract.common import Error
from serving.contract.fields import Body, EventId, Query, text, wire_name
from serving.contract.limits import ID_MAX_LENGTH, MAX_NAMES
from serving.contract.operations import Answer, Operation
from serving.contract.personalizer import PolicyContract

__all__ = [
    "EVALUATION_OPERATIONS",
    "FILTER_PATTERN",
    "INTERVALS_MINUTES",
    "JOB_STATUSES",
    "REPORT_OPERATIONS",
    "WINDOWS",
    "Evaluation",
    "EvaluationContract",
    "EvaluationList",
    "EvaluationListQuery",
    "EvaluationPath",
    "EvaluationQuery",
    "FeatureImportance",
    "FeatureImportanceContract",
    "FeatureImportanceList",
    "FeatureImportancePath",
    "JobReport",
    "ListQuery",
    "PolicyReferenceContract",
    "parse_date_time",
]

#: Time series intervals and windows Personalizer's evaluations offer.
INTERVALS_MINUTES = (5, 60, 360, 720, 1440)
WINDOWS = ("Expanding", "Rolling")
#: Personalizer's job statuses (EvaluationJobStatus).
JOB_STATUSES = ("Succeeded", "Running", "Failed", "NotSubmitted", "Timeout",
                "OptimalPolicyApplied", "OnlinePolicyRetained", "Canceled")
#: ``GET /evaluations?filter=``: conditions on evaluationType and status joined by ``and``.
FILTER_PATTERN = (r"^\s*(?:evaluationType|status)\s+eq\s+'[A-Za-z]+'"
                  r"(?:\s+and\s+(?:evaluationType|status)\s+eq\s+'[A-Za-z]+')*\s*$")
_INT32_MAX = 2**31 - 1
_DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}):(\d{2})(\.\d+)?"
                        r"([Zz]|[+-]\d{2}:\d{2})$")


def parse_date_time(value: str, *, name: str) -> datetime:
    """An RFC 3339 date-time (``2026-12-01T00:00:00Z``, ``...00.000+01:00``) as aware UTC.

    Raises
    ------
    ValueError
        Naming ``name``, the expected form and the value.
    """
    match = _DATE_TIME.match(value)
    if match is None:
        raise ValueError(f"{name} must be an RFC 3339 date-time with an offset, e.g. "
                         f"2026-12-01T00:00:00Z; got {value!r}")
    day, minutes, seconds, fraction, offset = match.groups()
    seconds = min(int(seconds), 59)  # a leap second
    fraction = (fraction or ".0")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{day}T{minutes}:{seconds:02d}{fraction}{offset}")
    except ValueError as error:
        raise ValueError(f"{name} is not a valid date-time: {value!r} ({error})") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00: past the last time Python holds
        return (datetime.max if moment.year > 1 else datetime.min).replace(tzinfo=UTC)


def _date_time(value: Any, info: ValidationInfo) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return parse_date_time(value, name=wire_name(info))


#: A date-time on the wire, aware UTC once validated.
DateTime = Annotated[datetime, PlainValidator(_date_time), WithJsonSchema(
    {"type": "string", "format": "date-time", "examples": ["2026-12-01T00:00:00Z"]})]
_TIME = Field(json_schema_extra={"format": "date-time"},
              description="UTC, e.g. 2026-12-07T13:00:00Z.")
Time = Annotated[str, _TIME]


class EvaluationContract(Body):
    """An evaluation to run: the time range of the log, Custom policies, optimization."""

    name: text(ID_MAX_LENGTH)
    start_time: Annotated[DateTime, Field(description="First decision time evaluated.")]
    end_time: Annotated[DateTime, Field(description="Decisions before it are evaluated.")]
    policies: Annotated[list[PolicyContract], Field(
        max_length=MAX_NAMES, description="Custom learning settings to evaluate; names "
                                          "unique and none of Online, Baseline, Random, "
                                          "Optimized.")] = []
    enable_policy_optimization: Annotated[bool, Field(
        description="Also search learning settings better than the online ones.")] = False
    multi_slot: Annotated[bool | None, Field(
        description="banditkit: evaluate the multi-slot (row engine's) log instead of the "
                    "single-slot one. Absent or null: the single-slot log when it holds "
                    "events in the range, else the multi-slot log. A multi-slot evaluation "
                    "gives Online, Baseline and Random for the whole page (slotId \"\") "
                    "and for each slot.")] = None


class FeatureImportanceContract(Body):
    """A feature importance to compute over a time range of the log."""

    name: text(ID_MAX_LENGTH)
    start_time: DateTime
    end_time: DateTime


class PolicyReferenceContract(Body):
    """The policy of a finished evaluation to make the live one."""

    evaluation_id: EventId
    policy_name: text(ID_MAX_LENGTH)


class EvaluationPath(Body):
    evaluation_id: EventId


class FeatureImportancePath(Body):
    feature_importance_id: EventId


def _interval(value: int) -> int:
    if value not in INTERVALS_MINUTES:
        raise ValueError(f"intervalInMinutes must be one of "
                         f"{', '.join(map(str, INTERVALS_MINUTES))}, got {value!r}")
    return value


def _window(value: str) -> str:
    if value not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {value!r}")
    return value


class EvaluationQuery(Query):
    """What time series ``GET /evaluations/{id}`` draws; the summary is the whole evaluation's."""

    start_time: Annotated[DateTime | None, Field(
        description="First point's range (default: the evaluation's start).")] = None
    end_time: Annotated[DateTime | None, Field(
        description="Last point's range (default: the evaluation's end).")] = None
    interval_in_minutes: Annotated[int, AfterValidator(_interval), WithJsonSchema(
        {"type": "integer", "enum": list(INTERVALS_MINUTES)})] = 5
    window: Annotated[str, AfterValidator(_window), WithJsonSchema(
        {"type": "string", "enum": list(WINDOWS)})] = "Expanding"


class ListQuery(Query):
    """Paging of ``GET /featureImportances``, and of ``GET /evaluations`` with its filter."""

    top: Annotated[int | None, Field(ge=0, le=_INT32_MAX,
                                     description="Most items in all pages.")] = None
    skip: Annotated[int, Field(ge=0, le=_INT32_MAX, description="Items skipped.")] = 0
    maxpagesize: Annotated[int, Field(ge=1, le=_INT32_MAX,
                                      description="Most items per page.")] = 100


class EvaluationListQuery(ListQuery):
    """Paging and filter of ``GET /evaluations``."""

    filter: Annotated[str | None, Field(
        pattern=FILTER_PATTERN, examples=["evaluationType eq 'Manual'"],
        description="evaluationType eq '...' and/or status eq '...', joined by "
                    "and.")] = None


class Summary(Body):
    expected_reward: float | None
    confidence_interval: list[float | None]


class DataPoint(Body):
    time_stamp: Time
    expected_reward: float | None
    confidence_interval: list[float | None]


class TimeSeries(Body):
    data: list[DataPoint]


class PolicyResult(Body):
    name: str
    slot_id: str = ""
    arguments: str
    policy_source: Annotated[str, Field(json_schema_extra={"enum": [
        "Online", "Baseline", "Random", "Custom", "OfflineExperimentation"]})]
    summary: Summary
    timeseries: TimeSeries


class EvaluationResult(Body):
    start_time: Time
    end_time: Time
    interval_in_minutes: int
    value: list[PolicyResult]


_STATUS = Field(json_schema_extra={"enum": list(JOB_STATUSES)})


class FeatureImportanceDetails(Body):
    """What every job lists: its id and name, its window, when it was made, where it stands."""

    id: str
    name: str
    start_time: Time
    end_time: Time
    creation_time: Time
    status: Annotated[str, _STATUS]


class EvaluationDetails(FeatureImportanceDetails):
    evaluation_type: Annotated[str, Field(json_schema_extra={"enum": ["Manual", "Auto"]})]


class Evaluation(EvaluationDetails):
    """An evaluation: where it stands and, once succeeded, its results."""

    description: str | None = None
    optimal_policy: str | None = None
    content: EvaluationResult | None = None


class EvaluationList(Body):
    """A page of evaluations; ``nextLink`` (absolute) is the next page's URL."""

    value: list[EvaluationDetails]
    next_link: str | None = None


class FeatureScore(Body):
    namespace: str
    feature_name: str
    score: float


class FeatureImportance(FeatureImportanceDetails):
    """A feature importance: where it stands and, once succeeded, normalised scores."""

    description: str | None = None
    feature_scores: Annotated[list[FeatureScore] | None, Field(
        description="Sorted, highest first; the most important scores 1.")] = None


class FeatureImportanceList(Body):
    value: list[FeatureImportanceDetails]
    next_link: str | None = None


class JobReport(BaseModel):
    """banditkit's full report of a job: the request it ran and everything it found
    (every estimate with its diagnostics, the search trace, the drops behind the
    feature scores)."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    name: str
    status: str
    description: str
    creation_time: Annotated[Time, Field(alias="creationTime")]
    attempts: int
    request: dict[str, Any]
    result: dict[str, Any] | None = None


_NOT_FOUND = Answer("No such job.", Error)
_JOB_ERRORS = (400,)


def _job_operations(kind: str, title: str, contract: type[BaseModel], one: type[BaseModel],
                    page: type[BaseModel], path: type[BaseModel], list_query: type[BaseModel],
                    query: type[BaseModel] | None = None) -> dict[str, Operation]:
    return {
        f"create_{kind}": Operation(
            f"Queue a {title} over a time range of the log.",
            {200: Answer("Queued (or already queued with this very body).", one),
             404: Answer("NoLogsExistInDateRange: no joined event in the range.", Error),
             409: Answer(f"A {title} with this id exists with another body.", Error)},
            errors=(400, 413, 415), request=contract, path=path,
            description="The job runs in the learner process; poll GET until its status "
                        "is Succeeded or Failed."),
        f"get_{kind}": Operation(f"A {title}: status and, once succeeded, results.",
                                 {200: Answer(f"The {title}.", one), 404: _NOT_FOUND},
                                 errors=_JOB_ERRORS, path=path, query=query),
        f"delete_{kind}": Operation(f"Delete a {title} (a running one keeps nothing).",
                                    {204: Answer("Deleted."), 404: _NOT_FOUND},
                                    errors=_JOB_ERRORS, path=path),
        f"list_{kind}s": Operation(f"The {title}s, oldest first, a page at a time.",
                                   {200: Answer("A page; nextLink names the next.", page)},
                                   errors=_JOB_ERRORS, query=list_query),
    }


#: The Personalizer routes of evaluations, feature importances and apply, by view name.
EVALUATION_OPERATIONS = {
    **_job_operations("evaluation", "evaluation", EvaluationContract, Evaluation,
                      EvaluationList, EvaluationPath, EvaluationListQuery, EvaluationQuery),
    **_job_operations("feature_importance", "feature importance", FeatureImportanceContract,
                      FeatureImportance, FeatureImportanceList, FeatureImportancePath,
                      ListQuery),
    "apply_from_evaluation": Operation(
        "Make a finished evaluation's policy (its learning settings and model) the live one.",
        {204: Answer("Applied."),
         404: Answer("EvaluationNotFound or LearningSettingsNotFound.", Error),
         409: Answer("OperationNotAllowed: the evaluation has not finished.", Error)},
        errors=(400, 413, 415), request=PolicyReferenceContract),
}

#: banditkit's reports of the same jobs (``/v1``), by view name.
REPORT_OPERATIONS = {
    "evaluation_report": Operation(
        "An evaluation's full report: every estimate with diagnostics, the search trace.",
        {200: Answer("The report.", JobReport), 404: _NOT_FOUND}, errors=_JOB_ERRORS,
        path=EvaluationPath),
    "feature_importance_report": Operation(
        "A feature importance's full report: each feature's drop and its interval.",
        {200: Answer("The report.", JobReport), 404: _NOT_FOUND}, errors=_JOB_ERRORS,
        path=FeatureImportancePath),
}
