"""``POST /v1/artwork/rank``: the artwork of a whole page in one call.

The UI sends the member's context features and the page's title ids; the
catalogue supplies each title's active variants and their action features
(image features, the title's genres as ``Genre``, the variant id as ``Id``).
One decision per title, all recorded in one transaction
(:meth:`banditkit.engine.Engine.rank_many`); rewards and activations go through
``POST /v1/events/{eventId}/reward`` and ``/activate``.

Request::

    {"context": {"Member": {"country": "BR", "device": "tv"}},
     "titles": ["stranger-things", "the-crown"],
     "deferActivation": false}

Response (201)::

    {"modelVersion": "3",
     "results": [{"titleId": "stranger-things", "variantId": "v0a1b2c3d4e5f",
                  "imageUrl": "/v1/artwork/images/<sha256>.jpg",
                  "eventId": "...", "probability": 0.85}, ...]}

A title without active variants gets ``variantId``, ``imageUrl``,
``eventId`` and ``probability`` null and a ``reason``; no decision is logged
for it. An unknown title fails the whole call with 404 naming it.

Config keys (``ARTWORK_RANK_`` namespace)
-----------------------------------------
ARTWORK_RANK_MAX_TITLES : int, default=100
    Most titles in one call.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask

from banditkit.engine import RankRequest
from banditkit.errors import InvalidInputError
from banditkit.types import check_features
from catalogue import check_id
from serving import openapi
from serving._parsing import json_body, optional_bool, require_list, require_object
from serving.auth import require_roles
from serving.catalogue import get_catalogue, image_url
from serving.config import get_config
from serving.contract.artwork import OPERATIONS
from serving.contract.limits import FEATURE_INT_MAX, MODEL_VERSION_HEADER, SURFACE_MAX_LENGTH
from serving.errors import ApiError
from serving.metrics import get_metrics
from serving.runtime import get_engine

__all__ = ["bp", "init_app"]

bp = Blueprint("artwork_rank", __name__, url_prefix="/v1/artwork")


def _parse(body: Any, *, max_titles: int) -> tuple[dict[str, Any], list[str], bool, str | None]:
    body = require_object(body, target="")
    unknown = sorted(set(body) - {"context", "titles", "deferActivation", "surface"})
    if unknown:
        raise ApiError(f"Unknown fields {unknown}; expected context, titles, deferActivation, "
                       "surface.", target=unknown[0])
    context = body.get("context")
    if context is None:
        context = {}
    require_object(context, target="context")
    try:
        check_features(context, name="context")
    except InvalidInputError as exc:
        raise ApiError(str(exc), target="context") from None
    for namespace, group in context.items():
        for feature, value in group.items():
            if type(value) is int and abs(value) > FEATURE_INT_MAX:
                raise ApiError(f"context[{namespace!r}][{feature!r}] is an integer too large "
                               f"for a feature, got {value}.", target="context")
    if "titles" not in body:
        raise ApiError("titles is required: the page's title ids.", target="titles")
    titles = require_list(body["titles"], target="titles")
    if not titles:
        raise ApiError("titles must contain at least one title id.", target="titles")
    if len(titles) > max_titles:
        raise ApiError(f"titles may contain at most {max_titles} ids "
                       f"(ARTWORK_RANK_MAX_TITLES), got {len(titles)}.", target="titles")
    seen: set[str] = set()
    for index, title_id in enumerate(titles):
        try:
            check_id(title_id, name=f"titles[{index}]")
        except InvalidInputError as exc:
            raise ApiError(str(exc), target=f"titles[{index}]") from None
        if title_id in seen:
            raise ApiError(f"titles[{index}]: {title_id!r} appears twice.",
                           target=f"titles[{index}]")
        seen.add(title_id)
    surface = body.get("surface")
    if surface is not None and (not isinstance(surface, str)
                                or len(surface) > SURFACE_MAX_LENGTH):
        raise ApiError(f"surface must be a string of at most {SURFACE_MAX_LENGTH} characters.",
                       target="surface")
    return context, titles, optional_bool(body, "deferActivation"), surface


@bp.post("/rank")
@require_roles("client")
def rank() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Choose one artwork variant per title for a member: 201."""
    max_titles = get_config().artwork_rank_max_titles
    context, titles, defer, surface = _parse(json_body(), max_titles=max_titles)
    variants = get_catalogue().active_variants(titles)
    requests: list[RankRequest] = []
    for title_id in titles:
        if not variants[title_id]:
            continue
        extra: dict[str, Any] = {"title": title_id,
                                 "variantIds": [v.id for v in variants[title_id]]}
        if surface is not None:
            extra["surface"] = surface
        requests.append(RankRequest(
            context=context, actions=[v.action for v in variants[title_id]], tag=title_id,
            defer_activation=defer, extra=extra))
    engine = get_engine()
    decisions = {}
    model_version = engine.model_version
    if requests:
        started = time.perf_counter()
        made = engine.rank_many(requests)
        model_version = made[0].model_version
        get_metrics().ranked("artwork", time.perf_counter() - started, decisions=len(made),
                             model_version=model_version, fallbacks=engine.model_fallbacks)
        decisions = {r.extra["title"]: d for r, d in zip(requests, made, strict=True)}
    results: list[dict[str, Any]] = []
    for title_id in titles:
        decision = decisions.get(title_id)
        if decision is None:
            results.append({"titleId": title_id, "variantId": None, "imageUrl": None,
                            "eventId": None, "probability": None,
                            "reason": "the title has no active variants"})
            continue
        chosen = next(v for v in variants[title_id] if v.id == decision.reward_action_id)
        results.append({"titleId": title_id, "variantId": chosen.id,
                        "imageUrl": image_url(chosen.content_hash, chosen.media_type),
                        "eventId": decision.event_id,
                        "probability": decision.probability})
    return ({"modelVersion": model_version, "results": results}, 201,
            {MODEL_VERSION_HEADER: model_version})


def init_app(app: Flask) -> None:
    """Register the route and document it (after :func:`serving.catalogue.init_app`)."""
    app.register_blueprint(bp)
    openapi.add_operations(app, bp, OPERATIONS, tag="artwork")
