"""Personalizer's evaluations, feature importances and apply, in both route families.

``PUT/GET/DELETE /evaluations/{id}``, ``GET /evaluations``, the same for
``/featureImportances``, and ``POST /configurations/applyFromEvaluation``,
under ``/personalizer/v1.0`` and ``/personalizer`` (``?api-version=``), as
the 2022-09-01-preview contract has them (``docs/personalizer-compat.md``).

A create only checks the request and queues a job in the store; the job
runner (:mod:`serving.jobs`) runs it in the learner process, and the client
polls GET until the status is ``Succeeded`` or ``Failed``. A create repeated
with the same body answers 200 again (azure-core re-sends a PUT whose answer
was lost); with another body, 409 ``EvaluationAlreadyExists``. Errors carry
Personalizer's codes in the body and the ``x-ms-error-code`` header.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, request

from banditkit.dsjson import line_timestamp
from banditkit.errors import InvalidInputError
from banditkit.eventlog import EventLogWriter
from banditkit.store.factory import open_job_store
from banditkit.store.jobs import SUCCEEDED, Job, JobExistsError, JobStore
from serving import openapi
from serving._parsing import json_body
from serving.analyst import export_chunks, json_ready, partition_files
from serving.auth import current_key, require_roles
from serving.config import get_config
from serving.contract.evaluations import (
    EVALUATION_OPERATIONS,
    EvaluationContract,
    EvaluationListQuery,
    EvaluationPath,
    EvaluationQuery,
    FeatureImportanceContract,
    FeatureImportancePath,
    ListQuery,
    PolicyReferenceContract,
)
from serving.contract.fields import utc_text
from serving.contract.validation import validate
from serving.errors import ApiError
from serving.jobs import (
    JobLimits,
    JobRunner,
    model_artifact,
    publish_model,
    rounds_artifact,
    without_epsilon,
)
from serving.model_admin import with_error_code
from serving.personalizer import apply_policy, require_api_version
from serving.rows import get_row_engine
from serving.runtime import get_engine

__all__ = ["close", "get_jobs", "init_app", "job_report"]

_JOBS_EXTENSION = "banditkit.jobs"
_RUNNER_EXTENSION = "banditkit.job_runner"
_EXPORT_CHUNK = 1 << 20
_logger = logging.getLogger("banditkit.admin")

v1 = Blueprint("evaluations_v1", __name__, url_prefix="/personalizer/v1.0")
versioned = Blueprint("evaluations", __name__, url_prefix="/personalizer")
versioned.before_request(require_api_version)


def get_jobs(app: Flask | None = None) -> JobStore:
    """The app's :class:`~banditkit.store.jobs.JobStore`."""
    return (app or current_app).extensions[_JOBS_EXTENSION]


def _job_id(path_model: type, value: str, name: str) -> str:
    validate(path_model, {name: value})
    return value


def _not_found(kind: str, job_id: str) -> ApiError:
    if kind == "evaluation":
        return ApiError(f"No evaluation with id {job_id!r}.", status=404,
                        code="EvaluationNotFound")
    return ApiError(f"No feature importance with id {job_id!r}.", status=404,
                    code="FeatureImportanceNotFound")


def _found(kind: str, job_id: str) -> Job:
    job = get_jobs().get(kind, job_id)
    if job is None:
        raise _not_found(kind, job_id)
    return job


# ------------------------------------------------------------------ creating


def _events_between(log: EventLogWriter, start: datetime, end: datetime) -> int:
    """Joined events of ``log`` decided in ``[start, end)``, counted from the date partitions."""
    count = 0
    for path in partition_files(log, start.date(), end.date()):
        day = date.fromisoformat(path.parent.name.removeprefix("dt="))
        whole = start.date() < day < end.date()
        for block in export_chunks([path], chunk_bytes=_EXPORT_CHUNK):
            if whole:
                count += block.count(b"\n")
                continue
            for line in block.splitlines():
                stamp = line_timestamp(line)
                if stamp is None:
                    continue
                try:
                    moment = datetime.fromisoformat(stamp.decode("ascii", "replace"))
                except ValueError:
                    continue  # not a decision time: the job's window leaves the line out too
                moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
                count += start <= moment < end
    return count


def _time_range(start: datetime, end: datetime, *,
                multi_slot: bool | None = False) -> dict[str, Any]:
    """The request's window and the log it reads, once that log holds events in it (404)
    and not too many (400).

    ``multi_slot`` None picks the single-slot log when it holds events in the range,
    else the row engine's (multi-slot) log.
    """
    asked, count = multi_slot, 0
    if start < end and multi_slot is not True:
        count = _events_between(get_engine().log, start, end)
    if start < end and (multi_slot is True or (multi_slot is None and count == 0)):
        count = _events_between(get_row_engine().log, start, end)
        multi_slot = True
    if count == 0:
        empty = " (startTime is not before endTime: the range is empty)" if start >= end \
            else ""
        which = {True: "multi-slot ", False: "single-slot "}.get(asked, "")
        raise ApiError(f"No joined {which}event was decided from {start.isoformat()} to "
                       f"{end.isoformat()}{empty}.", status=404,
                       code="NoLogsExistInDateRange")
    limit = get_config().jobs_max_events
    if count > limit:
        raise ApiError(f"The range holds {count} events; a job reads at most {limit} "
                       "(JOBS_MAX_EVENTS). Narrow the range.", target="endTime",
                       code="LogsSizeExceedAllowedLimit")
    return {"startTime": utc_text(start), "endTime": utc_text(end),
            "start": start.timestamp(), "end": end.timestamp(), "multiSlot": bool(multi_slot)}


def _check_policies(contract: EvaluationContract) -> list[dict[str, str]]:
    """The Custom policies, once VW builds each (400 InvalidPolicyContract) and their names
    are unique and none of the reserved ones (400 DuplicateCustomPolicyNames)."""
    from banditkit.vw import ProgressiveScorer
    from ope.personalizer import RESERVED_NAMES

    for index, policy in enumerate(contract.policies):
        try:
            ProgressiveScorer(args=policy.arguments).to_bytes()
        except (InvalidInputError, RuntimeError) as error:
            raise ApiError(f"policy arguments of policies[{index}] ({policy.name!r}) cannot "
                           f"be evaluated: {error}.", target=f"policies[{index}].arguments",
                           code="InvalidPolicyContract") from None
    seen: set[str] = set()
    reserved = {name.lower() for name in RESERVED_NAMES}
    for index, policy in enumerate(contract.policies):
        name = policy.name.strip().lower()
        if name in reserved:
            raise ApiError(f"policies[{index}].name must differ from "
                           f"{', '.join(RESERVED_NAMES)} (any letter case), got "
                           f"{policy.name!r}.", target=f"policies[{index}].name",
                           code="InvalidPolicyContract")
        if name in seen:
            raise ApiError(f"Custom policy names must be unique (any letter case); "
                           f"{policy.name!r} is repeated.", target=f"policies[{index}].name",
                           code="DuplicateCustomPolicyNames")
        seen.add(name)
    return [{"name": p.name, "arguments": p.arguments} for p in contract.policies]


def _contract(model: type[Any], code: str) -> Any:
    """The body as ``model``; a refusal carries Personalizer's code (a policy's own
    problems ``InvalidPolicyContract``, the rest ``code``)."""
    try:
        return validate(model, json_body())
    except ApiError as error:
        policy = (error.target or "").startswith("policies")
        error.code = "InvalidPolicyContract" if policy else code
        raise


def _create(kind: str, job_id: str, name: str, request_json: dict[str, Any],
            exists_code: str) -> Job:
    try:
        job, created = get_jobs().create(kind, job_id, name=name, request=request_json)
    except JobExistsError:
        raise ApiError(f"A {'feature importance' if kind != 'evaluation' else kind} with id "
                       f"{job_id!r} already exists with another request.", status=409,
                       code=exists_code) from None
    if created:
        _audit(f"{kind} queued", id=job_id)
    return job


@require_roles("analyst")
def create_evaluation(evaluationId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """Queue an evaluation: ``200`` with it (``NotSubmitted``)."""
    job_id = _job_id(EvaluationPath, evaluationId, "evaluationId")
    contract = _contract(EvaluationContract, "InvalidEvaluationContract")
    policies = _check_policies(contract)
    window = _time_range(contract.start_time, contract.end_time, multi_slot=contract.multi_slot)
    if window["multiSlot"] and (policies or contract.enable_policy_optimization):
        target = "policies" if policies else "enablePolicyOptimization"
        raise ApiError("A multi-slot evaluation scores Online, Baseline and Random only: "
                       "Custom policies and policy optimization run single-slot policies "
                       "and are not evaluated on the multi-slot log.", target=target,
                       code="InvalidEvaluationContract")
    job = _create("evaluation", job_id, contract.name,
                  {"name": contract.name, **window, "policies": policies,
                   "enablePolicyOptimization": contract.enable_policy_optimization},
                  "EvaluationAlreadyExists")
    return _evaluation_json(job, EvaluationQuery()), 200


@require_roles("analyst")
def create_feature_importance(featureImportanceId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """Queue a feature importance: ``200`` with it (``NotSubmitted``)."""
    job_id = _job_id(FeatureImportancePath, featureImportanceId, "featureImportanceId")
    contract = _contract(FeatureImportanceContract, "InvalidContract")
    window = _time_range(contract.start_time, contract.end_time)
    window.pop("multiSlot")
    job = _create("featureImportance", job_id, contract.name,
                  {"name": contract.name, **window}, "FeatureImportanceAlreadyExists")
    return _feature_importance_json(job), 200


# ------------------------------------------------------------------ reading


def _details(job: Job) -> dict[str, Any]:
    return {"id": job.job_id, "name": job.name, "startTime": job.request["startTime"],
            "endTime": job.request["endTime"], "creationTime": utc_text(job.created_at),
            "status": job.status}


def _evaluation_json(job: Job, query: EvaluationQuery) -> dict[str, Any]:
    """Personalizer's ``Evaluation``; ``content`` once succeeded, its time series drawn
    at the query's interval and window over the query's time range."""
    from ope.personalizer import EvaluationRounds

    out = {**_details(job), "evaluationType": job.job_type, "description": job.message}
    if job.result is None:  # queued, running or failed
        return out
    result = job.result
    start = query.start_time.timestamp() if query.start_time else job.request["start"]
    end = query.end_time.timestamp() if query.end_time else job.request["end"]
    rounds: dict[str, EvaluationRounds | None] = {}
    values = []
    for policy in result["value"]:
        slot = policy.get("slotId", "")
        if slot not in rounds:
            data = get_jobs().artifact(job, rounds_artifact(slot))
            rounds[slot] = EvaluationRounds.from_bytes(data) if data is not None else None
        series = {"data": []}
        if rounds[slot] is not None:
            series = rounds[slot].series(policy["name"],
                                         interval_minutes=query.interval_in_minutes,
                                         window=query.window, start=start, end=end).to_dict()
        values.append({"name": policy["name"], "slotId": slot, "arguments": policy["arguments"],
                       "policySource": policy["policySource"], "summary": policy["summary"],
                       "timeseries": series})
    if result.get("optimalPolicy"):
        out["optimalPolicy"] = result["optimalPolicy"]
    out["content"] = {"startTime": utc_text(query.start_time) if query.start_time
                      else job.request["startTime"],
                      "endTime": utc_text(query.end_time) if query.end_time
                      else job.request["endTime"],
                      "intervalInMinutes": query.interval_in_minutes, "value": values}
    return json_ready(out)


def _feature_importance_json(job: Job) -> dict[str, Any]:
    out = {**_details(job), "description": job.message}
    if job.status == SUCCEEDED and job.result is not None:
        out["featureScores"] = [{"namespace": s["namespace"], "featureName": s["featureName"],
                                 "score": s["score"]} for s in job.result["featureScores"]]
    return out


@require_roles("analyst")
def get_evaluation(evaluationId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """An evaluation: ``200``."""
    job = _found("evaluation", _job_id(EvaluationPath, evaluationId, "evaluationId"))
    return _evaluation_json(job, validate(EvaluationQuery, request.args.to_dict())), 200


@require_roles("analyst")
def get_feature_importance(featureImportanceId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """A feature importance: ``200``."""
    job_id = _job_id(FeatureImportancePath, featureImportanceId, "featureImportanceId")
    return _feature_importance_json(_found("featureImportance", job_id)), 200


def job_report(kind: str, job_id: str) -> dict[str, Any]:
    """banditkit's full report of a job (``GET /v1/evaluations/{id}``): the request it ran,
    its status, and its whole result (every estimate with diagnostics, the search
    trace, each feature's drop and interval).

    Raises
    ------
    ApiError
        404 ``EvaluationNotFound`` or ``FeatureImportanceNotFound``.
    """
    job = _found(kind, job_id)
    return {"id": job.job_id, "kind": job.kind, "name": job.name, "status": job.status,
            "description": job.message, "creationTime": utc_text(job.created_at),
            "attempts": job.attempts,
            "request": {k: v for k, v in job.request.items() if k not in ("start", "end")},
            "result": job.result}


def _filter(text: str | None) -> dict[str, str]:
    conditions: dict[str, str] = {}
    for condition in (text or "").split(" and "):
        if condition.strip():
            field, _, value = condition.strip().partition(" eq ")
            conditions[field.strip()] = value.strip().strip("'")
    return conditions


def _page(kind: str, to_json: Callable[[Job], dict[str, Any]]) -> tuple[dict[str, Any], int]:
    evaluations = kind == "evaluation"
    query = validate(EvaluationListQuery if evaluations else ListQuery, request.args.to_dict())
    conditions = _filter(query.filter) if evaluations else {}
    top = query.top if query.top is not None else 2**31 - 1
    size = min(query.maxpagesize, top)
    jobs, total = get_jobs().page(kind, skip=query.skip, top=size,
                                  job_type=conditions.get("evaluationType"),
                                  status=conditions.get("status"))
    out: dict[str, Any] = {"value": [to_json(job) for job in jobs]}
    if jobs and query.skip + len(jobs) < total and top - len(jobs) > 0:
        following = {**request.args.to_dict(), "skip": query.skip + len(jobs),
                     "top": top - len(jobs)}
        out["nextLink"] = f"{request.base_url}?{urlencode(following)}"
    return out, 200


@require_roles("analyst")
def list_evaluations() -> tuple[dict[str, Any], int]:
    """A page of evaluations: ``200``."""
    return _page("evaluation", lambda job: {**_details(job), "evaluationType": job.job_type})


@require_roles("analyst")
def list_feature_importances() -> tuple[dict[str, Any], int]:
    """A page of feature importances: ``200``."""
    return _page("featureImportance", _details)


def _delete(kind: str, job_id: str) -> tuple[str, int]:
    if not get_jobs().delete(kind, job_id):
        raise _not_found(kind, job_id)
    _audit(f"{kind} deleted", id=job_id)
    return "", 204


@require_roles("analyst")
def delete_evaluation(evaluationId: str) -> tuple[str, int]:  # noqa: N803
    """Delete an evaluation: ``204``."""
    return _delete("evaluation", _job_id(EvaluationPath, evaluationId, "evaluationId"))


@require_roles("analyst")
def delete_feature_importance(featureImportanceId: str) -> tuple[str, int]:  # noqa: N803
    """Delete a feature importance: ``204``."""
    return _delete("featureImportance", _job_id(FeatureImportancePath, featureImportanceId,
                                                "featureImportanceId"))


# ------------------------------------------------------------------ apply


@require_roles()
def apply_from_evaluation() -> tuple[str, int]:
    """Make an evaluation's policy the live one (learning settings, and its model when the
    live exploration lets it rank as trained): ``204``."""
    reference = validate(PolicyReferenceContract, json_body())
    job = _found("evaluation", reference.evaluation_id)
    if job.result is None:
        raise ApiError(f"Evaluation {job.job_id!r} is {job.status}; only a finished one can "
                       "be applied.", status=409, code="OperationNotAllowed")
    names = [p["name"] for p in job.result["value"]]
    policy = next((p for p in job.result["value"]
                   if p["name"].lower() == reference.policy_name.lower()), None)
    if policy is None or policy["policySource"] in ("Baseline", "Random"):
        raise ApiError(f"Evaluation {job.job_id!r} has no learning settings named "
                       f"{reference.policy_name!r}; it has "
                       f"{', '.join(n for n in names if n not in ('Baseline', 'Random'))}.",
                       status=404, target="policyName", code="LearningSettingsNotFound")
    if policy["policySource"] == "Online":
        return "", 204  # the live policy already
    apply_policy(policy["name"], without_epsilon(policy["arguments"]))
    model = get_jobs().artifact(job, model_artifact(policy["name"]))
    version = None if model is None else publish_model(get_engine(), model)
    _audit("policy applied from evaluation", evaluation=job.job_id, policy=policy["name"],
           arguments=policy["arguments"], model_version=version)
    return "", 204


def _audit(message: str, **fields: Any) -> None:
    key = current_key()
    _logger.warning(json.dumps({"message": message, **fields,
                                "key_id": key.key_id if key else None}))


# ------------------------------------------------------------------ registration

_ROUTES: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    ("/evaluations/<evaluationId>", "PUT", create_evaluation),
    ("/evaluations/<evaluationId>", "GET", get_evaluation),
    ("/evaluations/<evaluationId>", "DELETE", delete_evaluation),
    ("/evaluations", "GET", list_evaluations),
    ("/featureImportances/<featureImportanceId>", "PUT", create_feature_importance),
    ("/featureImportances/<featureImportanceId>", "GET", get_feature_importance),
    ("/featureImportances/<featureImportanceId>", "DELETE", delete_feature_importance),
    ("/featureImportances", "GET", list_feature_importances),
    ("/configurations/applyFromEvaluation", "POST", apply_from_evaluation),
)

for _blueprint in (v1, versioned):
    _blueprint.after_request(with_error_code)
    for _rule, _method, _view in _ROUTES:
        _blueprint.add_url_rule(_rule, view_func=_view, methods=[_method],
                                endpoint=_view.__name__)


def init_app(app: Flask) -> None:
    """Register both route families, open the job store and, where the learner runs in
    this app (``LEARNER_ENABLED``, ``JOBS_ENABLED``), start the job runner."""
    config = get_config(app)
    engine = get_engine(app)
    jobs = open_job_store(config.engine_data_dir, database_url=config.database_url)
    app.extensions[_JOBS_EXTENSION] = jobs
    if config.learner_enabled and config.jobs_enabled:
        runner = JobRunner(jobs=jobs, engine=engine, limits=JobLimits.from_config(config),
                           rows=get_row_engine(app))
        app.extensions[_RUNNER_EXTENSION] = runner
        runner.start()
    app.register_blueprint(v1)
    app.register_blueprint(versioned)
    openapi.add_operations(app, v1, EVALUATION_OPERATIONS, tag="personalizer-v1.0",
                           operation_prefix="personalizer-v1.0_")
    openapi.add_operations(app, versioned, EVALUATION_OPERATIONS,
                           tag="personalizer-api-version",
                           operation_prefix="personalizer-api-version_", api_version=True)


def close(app: Flask) -> None:
    """Stop the app's job runner (a job under way finishes in its thread) and close the
    job store (idempotent)."""
    runner = app.extensions.pop(_RUNNER_EXTENSION, None)
    if runner is not None:
        runner.stop(timeout=1.0)
    jobs = app.extensions.pop(_JOBS_EXTENSION, None)
    if jobs is not None:
        jobs.close()
