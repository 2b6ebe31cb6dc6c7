"""Operator routes: ``/healthz``, ``/readyz``, ``/metrics``. No key needed.

``/healthz`` says the process answers; ``/readyz`` says it can serve decisions
(engine open, key store reachable, the learner alive and its steps not failing
in a row, whether it is a thread of this process or the learner process of
``banditkit serve``), so a load balancer can hold traffic back until then.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving import openapi
from serving.auth import get_key_store
from serving.config import get_config
from serving.contract.ops import OPS_OPERATIONS
from serving.metrics import exposition_registry
from serving.runtime import get_engine, get_learner, learner_health

__all__ = ["bp", "init_app"]

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    """Liveness: 200 whenever the process can answer."""
    return {"status": "ok"}, 200


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: 200 when every check passes, else 503 listing the failures."""
    checks: dict[str, str] = {}
    try:
        get_engine().settings  # noqa: B018 - touching the engine is the check
        checks["engine"] = "ok"
    except Exception as exc:  # a readiness probe reports, never raises
        checks["engine"] = f"failed: {exc}"
    try:
        get_key_store().list()
        checks["keys"] = "ok"
    except Exception as exc:
        checks["keys"] = f"failed: {exc}"
    learner = get_learner()
    health_path = get_config().learner_health_path
    if learner is not None:
        checks["learner"] = learner.health()
    elif health_path is not None:
        checks["learner"] = learner_health(health_path)
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, (
        200 if ready else 503
    )


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition of the loop's metrics."""
    return Response(generate_latest(exposition_registry()), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Register the blueprint and its OpenAPI paths on ``app``."""
    app.register_blueprint(bp)
    openapi.add_operations(app, bp, OPS_OPERATIONS, tag="ops", operation_prefix="")
