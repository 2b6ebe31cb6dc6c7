"""The analyst's routes: the decision log's partitions, its export, evaluations on it."""

from __future__ import annotations

import functools
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.contract.common import Error
from serving.contract.fields import Body
from serving.contract.limits import MAX_NAMES
from serving.contract.operations import Answer, Operation

__all__ = [
    "CI_METHODS",
    "DATE_MAX_LENGTH",
    "DateRangeQuery",
    "ESTIMATOR_NAME_MAX_LENGTH",
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
POLICY_PATTERN = rf"^(?:{'|'.join(SIMPLE_POLICIES)}|model:latest|model:v\d{{1,18}})$"
#: Interval methods an evaluation over HTTP may use (bootstrap needs every round in memory).
CI_METHODS = ("clt", "bernstein")
#: Most characters of a date, ``YYYY-MM-DD``.
DATE_MAX_LENGTH = 10
#: Most characters of an estimator's name.
ESTIMATOR_NAME_MAX_LENGTH = 64


class DateRangeQuery(Body):
    """Inclusive days (UTC) of the log."""

    from_: Annotated[date, Field(alias="from", description="First day (UTC), inclusive.",
                                 examples=["2024-01-01"])]
    to: Annotated[date, Field(description="Last day (UTC), inclusive.",
                              examples=["2024-01-31"])]


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


def _names(items: Any, description: str) -> Any:
    return Annotated[list[items], Field(min_length=1, max_length=MAX_NAMES,
                                        json_schema_extra={"uniqueItems": True},
                                        description=description)]


@functools.cache
def evaluation_request() -> type[BaseModel]:
    """The model of an evaluation body; built on first use, as :mod:`ope` loads pandas."""
    from ope.evaluation import (
        DEFAULT_DROS_SHRINKAGE,
        DEFAULT_MAX_WEIGHT,
        DEFAULT_SWITCH_TAU,
        ESTIMATOR_NAMES,
    )

    class EvaluationRequest(Body):
        """Policies and estimators to evaluate on a date range of the log."""

        from_: Annotated[date, Field(alias="from", description="First day.")]
        to: Annotated[date, Field(description="Last day.")]
        policies: _names(Annotated[str, Field(pattern=POLICY_PATTERN)],
                         "logged, baseline, uniform, offline, model:latest or model:vN (the "
                         "latest version). Default: logged, baseline, uniform.") | None = None
        estimators: _names(Literal[ESTIMATOR_NAMES],  # type: ignore[valid-type]
                           "Default: ips, snips, dr.") | None = None
        # null takes the default, as absent does.
        confidence: Annotated[float, Field(gt=0, lt=1)] | None = 0.95
        max_weight: Annotated[float, Field(gt=0, description="clipped_ips: the cap of each "
                                           "weight.")] | None = DEFAULT_MAX_WEIGHT
        switch_tau: Annotated[float, Field(ge=0, description="switch_dr: rounds whose weight "
                                           "exceeds it keep only the model's term.")
                              ] | None = DEFAULT_SWITCH_TAU
        dros_shrinkage: Annotated[float, Field(gt=0, description="dros: lambda of the shrunk "
                                               "weight lambda*w/(w^2+lambda).")
                                  ] | None = DEFAULT_DROS_SHRINKAGE
        ci_method: Literal[CI_METHODS] = "clt"  # type: ignore[valid-type]

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
