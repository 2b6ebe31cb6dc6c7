"""The analyst's routes: the decision log's partitions, its export, evaluations on it."""

from __future__ import annotations

import functools
import math
import re
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from serving.contract.common import Error
from serving.contract.fields import Body, wire_name
from serving.contract.limits import MAX_NAMES
from serving.contract.operations import Answer, Operation
from serving.contract.validation import FieldError

__all__ = [
    "CI_METHODS",
    "DATE_MAX_LENGTH",
    "DateRangeQuery",
    "Estimate",
    "EvaluationReport",
    "LogPartition",
    "LogPartitionList",
    "NDJSON",
    "OPERATIONS",
    "POLICY_PATTERN",
    "PolicyEstimates",
    "SIMPLE_POLICIES",
    "evaluation_request",
]

NDJSON = "application/x-ndjson"
#: Policies an HTTP caller may name besides ``model:latest`` / ``model:vN``.
SIMPLE_POLICIES = ("logged", "baseline", "uniform", "offline")
#: The policy names ``POST /v1/evaluations`` resolves.
POLICY_PATTERN = rf"^(?:{'|'.join(SIMPLE_POLICIES)}|model:latest|model:v[0-9]{{1,18}})$"
_POLICY = re.compile(POLICY_PATTERN)
#: Interval methods an evaluation over HTTP may use (bootstrap needs every round in memory).
CI_METHODS = ("clt", "bernstein")
#: Most characters of a date, ``YYYY-MM-DD``.
DATE_MAX_LENGTH = 10


def _day(value: Any, info: ValidationInfo) -> date:
    name = wire_name(info)
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if len(value) > DATE_MAX_LENGTH:
        raise ValueError(f"{name} must be at most {DATE_MAX_LENGTH} characters, got "
                         f"{len(value)}")
    if not _DATE.fullmatch(value):
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name} is not a valid date: {value!r} ({exc})") from None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: A day, ``YYYY-MM-DD`` (no time, no other ISO form).
_Day = Annotated[date, PlainValidator(_day), WithJsonSchema({"type": "string",
                                                             "format": "date"})]


class DateRangeQuery(Body):
    """Inclusive days (UTC) of the log.

    At most ``max_days`` of the validation context (``ANALYST_MAX_RANGE_DAYS``).
    """

    from_: Annotated[_Day, Field(alias="from", description="First day (UTC), inclusive.",
                                 examples=["2024-01-01"])]
    to: Annotated[_Day, Field(description="Last day (UTC), inclusive.",
                              examples=["2024-01-31"])]

    @model_validator(mode="before")
    @classmethod
    def _both_days(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("from", "to"):
                if data.get(key) is None:
                    raise FieldError(key, f"{key} is required: a date YYYY-MM-DD")
        return data

    @model_validator(mode="after")
    def _span(self, info: ValidationInfo) -> DateRangeQuery:
        first, last = self.from_, self.to
        if first > last:
            raise FieldError("from", f"from ({first}) must not be after to ({last})")
        span = (last - first).days + 1
        max_days = (info.context or {}).get("max_days")
        if max_days is not None and span > max_days:
            raise FieldError("to", f"The range from {first} to {last} covers {span} days; at "
                                   f"most {max_days} are allowed (ANALYST_MAX_RANGE_DAYS)")
        return self


class LogPartition(Body):
    date: date
    bytes: Annotated[int, Field(ge=0)]
    events: Annotated[int, Field(ge=0)]
    first_timestamp: str | None
    last_timestamp: str | None


class LogPartitionList(Body):
    """The partitions, oldest first, and their totals."""

    partitions: list[LogPartition]
    events: Annotated[int, Field(ge=0)]
    bytes: Annotated[int, Field(ge=0)]


def _unique(values: list[str], info: ValidationInfo) -> list[str]:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{wire_name(info)} must not repeat a name, got "
                         f"{', '.join(repeated)} twice")
    return values


def _names(items: Any, description: str) -> Any:
    return Annotated[list[items], Field(min_length=1, max_length=MAX_NAMES,
                                        json_schema_extra={"uniqueItems": True},
                                        description=description),
                     AfterValidator(_unique)] | None


def _policy(name: str) -> str:
    if _POLICY.fullmatch(name):
        return name
    if name.startswith("model:"):
        raise ValueError(
            f"names {name!r}, which is not accepted over HTTP: the server reads no model file "
            "named by a request. Use model:latest or model:vN (a published version), or "
            "run banditkit evaluate --policy model:PATH on the exported log")
    raise ValueError(f"must be one of {', '.join(SIMPLE_POLICIES)}, model:latest or "
                     f"model:vN; got {name!r}")


def _estimator(name: str) -> str:
    from ope.evaluation import check_estimator_names

    try:
        (checked,) = check_estimator_names([name])
    except ValueError as exc:
        raise ValueError(f"is not an estimator: {exc}") from None
    return checked


def _ci_method(value: str) -> str:
    if value not in CI_METHODS:
        raise ValueError(f"ciMethod must be one of {', '.join(CI_METHODS)} (bootstrap needs "
                         f"every round in memory), got {value!r}")
    return value


def _open_interval(low: float, high: float = math.inf) -> Any:
    """A number strictly between ``low`` and ``high``."""
    def check(value: float, info: ValidationInfo) -> float:
        if not low < value < high:
            raise ValueError(f"{wire_name(info)} must be between {low:g} and {high:g} "
                             f"(exclusive), got {value!r}")
        return value

    bounds = {"exclusiveMinimum": low}
    if math.isfinite(high):
        bounds["exclusiveMaximum"] = high
    return Annotated[float, AfterValidator(check), Field(json_schema_extra=bounds)]


def _without_nulls(data: Any) -> Any:
    # null takes the default, as absent does.
    return {key: value for key, value in data.items() if value is not None} if isinstance(
        data, dict) else data


@functools.cache
def evaluation_request() -> type[DateRangeQuery]:
    """The model of an evaluation body; built on first use, as :mod:`ope` loads pandas.

    Validated, its lists and numbers hold the defaults of :mod:`ope.evaluation`
    where the body has none.
    """
    from ope.evaluation import (
        DEFAULT_DROS_SHRINKAGE,
        DEFAULT_ESTIMATORS,
        DEFAULT_LOG_POLICIES,
        DEFAULT_MAX_WEIGHT,
        DEFAULT_SWITCH_TAU,
        ESTIMATOR_NAMES,
    )

    policy = Annotated[str, AfterValidator(_policy),
                       Field(json_schema_extra={"pattern": POLICY_PATTERN})]
    estimator = Annotated[str, AfterValidator(_estimator), WithJsonSchema(
        {"type": "string", "enum": list(ESTIMATOR_NAMES)})]

    class EvaluationRequest(DateRangeQuery):
        """Policies and estimators to evaluate on a date range of the log."""

        policies: _names(policy, "logged, baseline, uniform, offline, model:latest or "
                                 "model:vN (the latest version).") = list(DEFAULT_LOG_POLICIES)
        estimators: _names(estimator, "Estimator names.") = list(DEFAULT_ESTIMATORS)
        confidence: _open_interval(0, 1) | None = 0.95
        max_weight: Annotated[_open_interval(0), Field(description="clipped_ips: the cap "
                                                       "of each weight.")
                              ] | None = DEFAULT_MAX_WEIGHT
        switch_tau: Annotated[float, Field(ge=0, description="switch_dr: rounds whose weight "
                                           "exceeds it keep only the model's term.")
                              ] | None = DEFAULT_SWITCH_TAU
        dros_shrinkage: Annotated[_open_interval(0), Field(description="dros: lambda of the "
                                                           "shrunk weight "
                                                           "lambda*w/(w^2+lambda).")
                                  ] | None = DEFAULT_DROS_SHRINKAGE
        ci_method: Annotated[str, AfterValidator(_ci_method), WithJsonSchema(
            {"type": "string", "enum": list(CI_METHODS)})] = "clt"

        _nulls = model_validator(mode="before")(_without_nulls)

    return EvaluationRequest


_Number = float | None


class Estimate(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: _Number
    ci: Annotated[list[_Number], Field(min_length=2, max_length=2)]
    ci_method: str | None = None
    confidence_level: float | None = None
    std_error: _Number = None
    n_rounds: int
    ess: _Number = None
    max_weight: _Number = None
    mean_weight: _Number = None
    weight_quantiles: dict[str, _Number] | None = None
    unsupported_share: _Number = None
    unsupported_mass: _Number = None


class PolicyEstimates(BaseModel):
    estimates: dict[str, Estimate]


class EvaluationReport(BaseModel):
    """Estimates with intervals, as ``banditkit evaluate --json`` writes them."""

    from_: Annotated[date, Field(alias="from")]
    to: date
    n_rounds: Annotated[int, Field(ge=0)]
    estimates: Annotated[dict[str, Estimate], Field(description="The first policy's "
                                                                "estimates.")]
    policies: dict[str, PolicyEstimates]
    notes: dict[str, Any] | None = None
    warnings: Annotated[list[str] | None, Field(
        description="Estimates no logged round informs (every importance weight 0), by "
                    "policy; absent when there are none.")] = None


#: The analyst's routes by view name.
OPERATIONS = {
    "list_logs": Operation(
        "The decision log's date partitions: bytes, events, first/last timestamp.",
        {200: Answer("The partitions, oldest first.", LogPartitionList)}, errors=(400,)),
    "export_logs": Operation(
        "The joined dsjson lines of a date range, streamed as NDJSON.",
        {200: Answer("One joined dsjson event per line.", str, (NDJSON,))}, errors=(400,),
        query=DateRangeQuery,
        description="Days are inclusive; a range without events is an empty body."),
    "create_evaluation": Operation(
        "Off-policy evaluation of policies on a date range of the log.",
        {200: Answer("Estimates with intervals, as banditkit evaluate --json.",
                     EvaluationReport),
         404: Answer("No (activated) event in the range.", Error)},
        errors=(400, 413, 415, 429), request=evaluation_request,
        description="Synchronous; the range may hold at most ANALYST_MAX_EVALUATION_EVENTS "
                    "events. 404 when it holds none."),
}
