"""The analyst's routes: read the decision log, export it, evaluate policies on it.

The ``analyst`` role reads logs, exports and evaluates; these routes
(``admin`` may use them too) do that over HTTP, on the engine's dsjson log
(``<data>/logs/dt=YYYY-MM-DD/events.dsjson``, docs/architecture.md §3):

* ``GET /v1/logs``: the date partitions, with bytes, events and the first and
  last decision timestamps of each.
* ``GET /v1/logs/export?from=YYYY-MM-DD&to=YYYY-MM-DD``: the joined dsjson
  lines of those days (inclusive) as ``application/x-ndjson``, streamed from
  the files block by block (never loaded whole); an empty range is an empty
  200 body.
* ``POST /v1/evaluations``: off-policy evaluation of named policies on those
  days, synchronously, through :func:`ope.evaluation.evaluate_log` (what
  ``banditkit evaluate --json`` runs); the response is that command's JSON.
  A range without events is 404. Only policies the server resolves itself
  are accepted: ``logged``, ``baseline``, ``uniform``, ``offline``,
  ``model:latest`` and ``model:vN`` naming the latest published version;
  ``model:PATH`` never (a request names no file on the server).
* ``GET /v1/evaluations/{id}`` and ``GET /v1/featureImportances/{id}``: the
  full reports of Personalizer's evaluation and feature-importance jobs
  (:mod:`serving.personalizer_evaluations`): every estimate with its
  diagnostics (ESS, weight quantiles), the policy search's trace, each
  feature's drop and its interval.

Config keys (``ANALYST_`` namespace)
------------------------------------
ANALYST_MAX_RANGE_DAYS : int, default=366
    Most days one export or evaluation may span.
ANALYST_MAX_EVALUATION_EVENTS : int, default=200000
    Most logged events one evaluation may read; larger ranges get 400 (use
    ``banditkit evaluate`` on the files, which streams any size).
ANALYST_EXPORT_CHUNK_BYTES : int, default=65536
    Size of the blocks an export reads and sends.
ANALYST_MAX_CONCURRENT_EVALUATIONS : int, default=1
    Evaluations one worker process runs at once; another request meanwhile
    gets 429 (an evaluation holds a core for seconds, and ranking shares it).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from flask import Blueprint, Flask, Response, current_app, request

from banditkit.dsjson import line_timestamp
from banditkit.eventlog import EventLogWriter
from serving import openapi
from serving._parsing import json_body
from serving.auth import require_roles
from serving.config import get_config
from serving.contract.analyst import NDJSON, OPERATIONS, DateRangeQuery, evaluation_request
from serving.contract.evaluations import (
    REPORT_OPERATIONS,
    EvaluationPath,
    FeatureImportancePath,
)
from serving.contract.validation import validate
from serving.errors import ApiError
from serving.runtime import get_engine

__all__ = [
    "LogPartition",
    "bp",
    "export_chunks",
    "init_app",
    "json_ready",
    "log_partitions",
    "partition_files",
    "run_evaluation",
]

bp = Blueprint("analyst", __name__, url_prefix="/v1")

_EVALUATION_SLOTS = "banditkit.analyst.evaluation_slots"  # app.extensions key
_PARTITION_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_MODEL_VERSION = re.compile(r"^model:v(\d{1,18})$")


def _config(name: str) -> int:
    return getattr(get_config(), f"analyst_{name.lower()}")


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class LogPartition:
    """One day of the decision log.

    Attributes
    ----------
    day : date
    path : Path
        Its ``events.dsjson`` file.
    n_bytes : int
        Size of the complete lines (a line being appended is not counted).
    n_events : int
        Complete lines, one joined event each.
    first_timestamp, last_timestamp : str or None
        Earliest and latest decision ``Timestamp`` in the file; None when empty.
    """

    day: date
    path: Path
    n_bytes: int
    n_events: int
    first_timestamp: str | None
    last_timestamp: str | None

    def to_json(self) -> dict[str, Any]:
        return {"date": self.day.isoformat(), "bytes": self.n_bytes, "events": self.n_events,
                "firstTimestamp": self.first_timestamp, "lastTimestamp": self.last_timestamp}


def _partition_path(log: EventLogWriter, day: date) -> Path:
    # The writer's own layout (dt=YYYY-MM-DD/events.dsjson) for that day.
    return log.partition(day.isoformat())


def _partition_days(root: Path) -> list[date]:
    days = []
    if root.is_dir():
        for entry in root.iterdir():
            match = _PARTITION_DIR.match(entry.name)
            if match and entry.is_dir():
                try:
                    days.append(date.fromisoformat(match.group(1)))
                except ValueError:
                    continue  # dt=2024-13-45: not a partition of ours
    return sorted(days)


def _complete_blocks(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    """The file's complete lines, in blocks of about ``chunk_bytes``.

    Reads up to the size the file had when opened and holds back a last line
    without its newline (one the learner is appending), so a reader never
    sees half an event.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, also when abandoned
    except FileNotFoundError:
        return
    with handle:
        remaining = os.fstat(handle.fileno()).st_size
        tail = b""
        while remaining > 0:
            block = handle.read(min(chunk_bytes, remaining))
            if not block:
                break
            remaining -= len(block)
            cut = block.rfind(b"\n")
            if cut < 0:
                tail += block
                continue
            yield tail + block[:cut + 1]
            tail = block[cut + 1:]


def _scan(path: Path, day: date) -> LogPartition:
    n_bytes = n_events = 0
    first: bytes | None = None
    last: bytes | None = None
    for block in _complete_blocks(path, 1 << 20):
        n_bytes += len(block)
        for line in block.splitlines():
            if not line.strip():
                continue
            n_events += 1
            stamp = line_timestamp(line)
            if stamp is None:
                continue
            first = stamp if first is None or stamp < first else first
            last = stamp if last is None or stamp > last else last
    return LogPartition(day=day, path=path, n_bytes=n_bytes, n_events=n_events,
                        first_timestamp=None if first is None else first.decode("ascii", "replace"),
                        last_timestamp=None if last is None else last.decode("ascii", "replace"))


def log_partitions(log: EventLogWriter) -> list[LogPartition]:
    """Every date partition of an event log, oldest first.

    Parameters
    ----------
    log : banditkit.eventlog.EventLogWriter
        The engine's log (``engine.log``): its ``root`` and partition layout.

    Returns
    -------
    list of LogPartition
        One per ``dt=YYYY-MM-DD`` folder holding an ``events.dsjson`` file.
        Each file is read once (O(bytes)), counting its complete lines.
    """
    out = []
    for day in _partition_days(Path(log.root)):
        path = _partition_path(log, day)
        if path.is_file():
            out.append(_scan(path, day))
    return out


def partition_files(log: EventLogWriter, start: date, end: date) -> list[Path]:
    """The existing partition files of the days ``start`` to ``end`` (inclusive), in order.

    Reads the log's folder, not every day of the range: a range of centuries
    costs what the partitions there are cost.
    """
    paths = (_partition_path(log, day) for day in _partition_days(Path(log.root))
             if start <= day <= end)
    return [path for path in paths if path.is_file()]


def export_chunks(files: Sequence[Path], *, chunk_bytes: int) -> Iterator[bytes]:
    """The complete lines of ``files``, concatenated, in blocks of about ``chunk_bytes``."""
    for path in files:
        yield from _complete_blocks(path, chunk_bytes)


# --------------------------------------------------------------------------- evaluation


def _resolve_model(name: str, *, latest: int, target: str) -> str:
    """``model:latest`` / ``model:vN`` as the name :func:`ope.dsjson.make_policy` takes."""
    if latest <= 0:
        raise ApiError(f"{target}: {name} cannot be evaluated: no model has been published "
                       "yet.", target=target, status=400)
    match = _MODEL_VERSION.match(name)
    if match and int(match.group(1)) != latest:
        raise ApiError(f"{target}: only the latest published model (model:v{latest}) can be "
                       f"evaluated over HTTP, got {name}.", target=target)
    return "model:latest"


def json_ready(value: Any) -> Any:
    """``value`` as strict JSON: non-finite numbers null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(key): json_ready(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(inner) for inner in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_evaluation(engine: Any, spec: Any, *, data_dir: Path,
                   max_events: int) -> dict[str, Any]:
    """Evaluate ``spec`` on the engine's log; the ``banditkit evaluate --json`` document.

    Parameters
    ----------
    engine : banditkit.engine.Engine
    spec : serving.contract.analyst.evaluation_request()
        A validated evaluation body.
    data_dir : Path
        The data directory whose store holds the published models.
    max_events : int
        Most logged events (lines) the range may hold.

    Returns
    -------
    dict
        ``{"from", "to", "n_rounds", "estimates", "policies", "notes"}``, and
        ``"warnings"`` when some estimate has no logged support.

    Raises
    ------
    ApiError
        404 when the range holds no (activated) event; 400 when it holds more
        than ``max_events`` or a policy cannot be resolved.
    """
    from ope.dsjson import count_events
    from ope.evaluation import evaluate_log, make_estimators

    files = partition_files(engine.log, spec.from_, spec.to)
    n_events = count_events(files) if files else 0
    if n_events == 0:
        raise ApiError(f"The log holds no events from {spec.from_} to {spec.to}.", status=404,
                       code="NoEvents")
    if n_events > max_events:
        raise ApiError(
            f"The range from {spec.from_} to {spec.to} holds {n_events} events; an evaluation "
            f"over HTTP reads at most {max_events} (ANALYST_MAX_EVALUATION_EVENTS). Narrow the "
            "range, or export it and run banditkit evaluate.", target="from")
    latest = engine.store.latest_model_version()
    policies = [_resolve_model(name, latest=latest, target=f"policies[{index}]")
                if name.startswith("model:") else name
                for index, name in enumerate(spec.policies)]
    if len(set(policies)) != len(policies):
        raise ApiError("policies name the latest model twice (model:latest and "
                       f"model:v{latest}).", target="policies")
    estimators = make_estimators(list(spec.estimators), max_weight=spec.max_weight,
                                 switch_tau=spec.switch_tau, dros_shrinkage=spec.dros_shrinkage,
                                 confidence_level=spec.confidence, ci_method=spec.ci_method)
    try:
        report = evaluate_log(files, policies=policies, estimators=estimators,
                              data_dir=data_dir)
    except ValueError as exc:
        if "no activated events" in str(exc):  # every event of the range was skipped
            raise ApiError(f"The log holds no activated events from {spec.from_} to "
                           f"{spec.to}.", status=404, code="NoEvents") from None
        raise ApiError(f"The evaluation failed: {exc}.") from None
    return json_ready({"from": spec.from_.isoformat(), "to": spec.to.isoformat(),
                        **report.to_dict()})


# --------------------------------------------------------------------------- routes


@bp.get("/logs")
@require_roles("analyst")
def list_logs() -> tuple[dict[str, Any], int]:
    """The log's date partitions: ``{"partitions": [...], "events", "bytes"}``."""
    partitions = log_partitions(get_engine().log)
    return {"partitions": [p.to_json() for p in partitions],
            "events": sum(p.n_events for p in partitions),
            "bytes": sum(p.n_bytes for p in partitions)}, 200


@bp.get("/logs/export")
@require_roles("analyst")
def export_logs() -> Response:
    """The dsjson lines of ``from`` to ``to`` (inclusive days), streamed as NDJSON."""
    days = validate(DateRangeQuery, request.args.to_dict(),
                    context={"max_days": _config("MAX_RANGE_DAYS")})
    start, end = days.from_, days.to
    files = partition_files(get_engine().log, start, end)
    body = export_chunks(files, chunk_bytes=_config("EXPORT_CHUNK_BYTES"))
    name = f"banditkit-events-{start.isoformat()}_{end.isoformat()}.ndjson"
    return Response(body, mimetype=NDJSON,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.post("/evaluations")
@require_roles("analyst")
def create_evaluation() -> tuple[dict[str, Any], int]:
    """Off-policy evaluation on a date range of the log: 200 with the estimates."""
    spec = validate(evaluation_request(), json_body(),
                    context={"max_days": _config("MAX_RANGE_DAYS")})
    slots = current_app.extensions[_EVALUATION_SLOTS]
    if not slots.acquire(blocking=False):
        raise ApiError(f"{_config('MAX_CONCURRENT_EVALUATIONS')} evaluation(s) already running "
                       "in this worker (ANALYST_MAX_CONCURRENT_EVALUATIONS); retry when they "
                       "finish.", status=429)
    try:
        return run_evaluation(get_engine(), spec,
                              data_dir=get_config().engine_data_dir,
                              max_events=_config("MAX_EVALUATION_EVENTS")), 200
    finally:
        slots.release()


@bp.get("/evaluations/<evaluationId>")
@require_roles("analyst")
def evaluation_report(evaluationId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """The full report of a Personalizer evaluation job: 200."""
    from serving.personalizer_evaluations import job_report

    validate(EvaluationPath, {"evaluationId": evaluationId})
    return job_report("evaluation", evaluationId), 200


@bp.get("/featureImportances/<featureImportanceId>")
@require_roles("analyst")
def feature_importance_report(featureImportanceId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """The full report of a Personalizer feature importance job: 200."""
    from serving.personalizer_evaluations import job_report

    validate(FeatureImportancePath, {"featureImportanceId": featureImportanceId})
    return job_report("featureImportance", featureImportanceId), 200


def init_app(app: Flask) -> None:
    """Register the analyst routes and their OpenAPI description on ``app``.

    Parameters
    ----------
    app : Flask
        The application (``ANALYST_`` config keys, see the module docstring).
    """
    app.extensions[_EVALUATION_SLOTS] = threading.BoundedSemaphore(
        get_config(app).analyst_max_concurrent_evaluations)
    app.register_blueprint(bp)
    openapi.add_operations(app, bp, {**OPERATIONS, **REPORT_OPERATIONS}, tag="analyst")
