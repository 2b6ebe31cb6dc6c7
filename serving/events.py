"""banditkit's own event routes: ``POST /v1/events/{eventId}/reward`` and ``/activate``.

The same engine calls as the Personalizer routes, under banditkit's ``/v1``
API, for clients of ``/v1/artwork/rank`` (which another blueprint adds).
"""

from __future__ import annotations

from flask import Blueprint, Flask

from serving import openapi
from serving._parsing import check_event_id, json_body
from serving.auth import require_roles
from serving.metrics import get_metrics
from serving.personalizer import parse_reward
from serving.runtime import get_engine

__all__ = ["bp", "init_app"]

bp = Blueprint("events", __name__, url_prefix="/v1/events")


@bp.post("/<eventId>/reward")
@require_roles("client")
def reward(eventId: str) -> tuple[str, int]:  # noqa: N803 - the URL's own spelling
    """Record ``{"value": number}`` as a reward of the event: ``204``."""
    event_id = check_event_id(eventId)
    value = parse_reward(json_body())
    late = get_engine().reward(event_id, value)
    get_metrics().rewards.labels(route="v1", late=str(bool(late)).lower()).inc()
    return "", 204


@bp.post("/<eventId>/activate")
@require_roles("client")
def activate(eventId: str) -> tuple[str, int]:  # noqa: N803
    """Mark a deferred event as shown, so its rewards count: ``204``."""
    event_id = check_event_id(eventId)
    get_engine().activate(event_id)
    get_metrics().activations.labels(route="v1").inc()
    return "", 204


def init_app(app: Flask) -> None:
    """Register the blueprint and its OpenAPI paths on ``app``."""
    app.register_blueprint(bp)
    openapi.add_paths(app, openapi.event_paths("/v1/events"), {})
