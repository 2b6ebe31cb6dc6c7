"""banditkit's own event routes: ``POST /v1/events/{eventId}/reward`` and ``/activate``.

The same engine calls as the Personalizer routes, under banditkit's ``/v1``
API, for clients of ``/v1/artwork/rank`` (which another blueprint adds).
"""

from __future__ import annotations

from flask import Blueprint, Flask

from serving import openapi
from serving.auth import require_roles
from serving.contract.personalizer import EVENT_OPERATIONS
from serving.personalizer import activate_event, reward_event

__all__ = ["bp", "init_app"]

bp = Blueprint("events", __name__, url_prefix="/v1/events")


@bp.post("/<eventId>/reward")
@require_roles("client")
def reward(eventId: str) -> tuple[str, int]:  # noqa: N803 - the URL's own spelling
    """Record ``{"value": number}`` as a reward of the event: ``204``."""
    return reward_event(eventId, route="v1")


@bp.post("/<eventId>/activate")
@require_roles("client")
def activate(eventId: str) -> tuple[str, int]:  # noqa: N803
    """Mark a deferred event as shown, so its rewards count: ``204``."""
    return activate_event(eventId, route="v1")


def init_app(app: Flask) -> None:
    """Register the blueprint and its OpenAPI paths on ``app``."""
    app.register_blueprint(bp)
    openapi.add_operations(app, bp, EVENT_OPERATIONS, tag="events")
