"""The OpenAPI 3.0 description of every route, served at ``/openapi.json``.

Each component contributes its paths and schemas when it registers
(:func:`add_paths`), so a blueprint added later (the artwork catalogue, the
marketer page) documents itself the same way; a test checks that every URL
rule of the app appears here. Protected operations carry
``x-banditkit-roles``, the roles that may call them.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from werkzeug.wrappers import Response

import banditkit
from banditkit.loop import EVENT_ID_MAX_LENGTH, EVENT_ID_PATTERN
from banditkit.settings import AGGREGATIONS
from banditkit.types import REWARD_LIMIT
from serving._parsing import (
    ACTION_ID_MAX_LENGTH,
    NOT_BLANK_PATTERN,
    POLICY_ARGUMENTS_MAX_LENGTH,
    POLICY_NAME_MAX_LENGTH,
)
from serving.durations import DURATION_PATTERN

__all__ = [
    "add_paths",
    "bp",
    "build_spec",
    "event_id_parameter",
    "event_id_schema",
    "init_app",
    "reward_schema",
    "text_schema",
]

_EXTENSION = "banditkit.openapi"
JSON = "application/json"
SECURITY = [{"subscriptionKey": []}, {"bearerKey": []}]

bp = Blueprint("openapi", __name__)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR_TEXT = {
    400: "Malformed request; the body names the problem.",
    401: "Missing, unknown or revoked API key.",
    403: "The key's role may not use this route.",
    404: "Unknown event id or route.",
    409: "The event id is already used.",
    413: "The body is larger than SERVER_MAX_BODY_BYTES.",
    414: "The request line is longer than the server accepts (LIMIT_REQUEST_LINE).",
    415: "The body is not JSON.",
    429: "Too many requests of this kind are running; retry later.",
    431: "Too many header fields, or one too long (LIMIT_REQUEST_FIELDS/_FIELD_SIZE).",
}


def errors(*statuses: int) -> dict[str, Any]:
    """OpenAPI responses for error ``statuses``, all with the ``Error`` body."""
    return {
        str(status): {
            "description": _ERROR_TEXT.get(status, "Error."),
            "content": {JSON: {"schema": _ref("Error")}},
        }
        for status in statuses
    }


def json_body(schema_name: str) -> dict[str, Any]:
    """A required JSON request body of component ``schema_name``."""
    return {"required": True, "content": {JSON: {"schema": _ref(schema_name)}}}


def json_response(description: str, schema_name: str) -> dict[str, Any]:
    """A JSON response of component ``schema_name``."""
    return {"description": description, "content": {JSON: {"schema": _ref(schema_name)}}}


def protected(operation: dict[str, Any], roles: tuple[str, ...]) -> dict[str, Any]:
    """Mark ``operation`` as needing a key with one of ``roles`` (admin always may)."""
    operation["security"] = SECURITY
    operation["x-banditkit-roles"] = sorted(set(roles) | {"admin"})
    operation.setdefault("responses", {}).update(errors(401, 403))
    return operation


def text_schema(max_length: int, *, nullable: bool = False) -> dict[str, Any]:
    """The schema of a string :func:`serving._parsing.require_str` accepts: not blank."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": max_length,
                              "pattern": NOT_BLANK_PATTERN}
    if nullable:
        schema["nullable"] = True
    return schema


def event_id_schema(*, nullable: bool = False) -> dict[str, Any]:
    """The schema of every eventId: :func:`banditkit.loop.check_event_id`'s rule."""
    schema: dict[str, Any] = {
        "type": "string", "minLength": 1, "maxLength": EVENT_ID_MAX_LENGTH,
        "pattern": EVENT_ID_PATTERN,
        "description": f"1 to {EVENT_ID_MAX_LENGTH} characters: no control character, no "
                       "white space, no '/', and not '.' or '..'.",
    }
    if nullable:
        schema["nullable"] = True
    return schema


def event_id_parameter(description: str) -> dict[str, Any]:
    """The ``{eventId}`` path parameter."""
    return {"name": "eventId", "in": "path", "required": True, "description": description,
            "schema": event_id_schema()}


def reward_schema(*, nullable: bool = False) -> dict[str, Any]:
    """The schema of a reward value: :func:`banditkit.loop.check_reward`'s bound."""
    schema: dict[str, Any] = {
        "type": "number", "minimum": -REWARD_LIMIT, "maximum": REWARD_LIMIT,
        "description": f"A finite number within ±{REWARD_LIMIT:g} (larger ones overflow the "
                       "learner's 32-bit weights; Personalizer asked for [-1, 1])."}
    if nullable:
        schema["nullable"] = True
    return schema


_EVENT_ID = event_id_parameter("The event id returned by rank (or passed to it).")
_API_VERSION = {
    "name": "api-version",
    "in": "query",
    "required": True,
    "description": "Personalizer API version, e.g. 2022-09-01-preview.",
    "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(-preview(\.\d+)?)?$"},
    "example": "2022-09-01-preview",
}


def event_paths(prefix: str, *, tag: str = "events") -> dict[str, Any]:
    """Paths of ``{prefix}/{eventId}/reward`` and ``/activate``."""
    return {
        f"{prefix}/{{eventId}}/reward": {
            "post": protected(
                {
                    "tags": [tag],
                    "summary": "Report the reward of an event.",
                    "operationId": f"{tag}_reward".replace("-", "_"),
                    "parameters": [_EVENT_ID],
                    "requestBody": json_body("RewardRequest"),
                    "responses": {
                        "204": {"description": "Reward recorded."},
                        **errors(400, 404, 413, 415),
                    },
                },
                ("client",),
            )
        },
        f"{prefix}/{{eventId}}/activate": {
            "post": protected(
                {
                    "tags": [tag],
                    "summary": "Activate a deferred event so its rewards count.",
                    "operationId": f"{tag}_activate".replace("-", "_"),
                    "parameters": [_EVENT_ID],
                    "responses": {
                        "204": {"description": "Event activated."},
                        **errors(400, 404),
                    },
                },
                ("client",),
            )
        },
    }


def personalizer_paths(prefix: str, *, versioned: bool) -> dict[str, Any]:
    """The Personalizer-compatible paths under ``prefix``.

    Parameters
    ----------
    prefix : str
        ``/personalizer/v1.0`` or ``/personalizer``.
    versioned : bool
        Whether every operation takes the ``api-version`` query parameter.
    """
    tag = "personalizer-api-version" if versioned else "personalizer-v1.0"
    extra = [_API_VERSION] if versioned else []
    paths: dict[str, Any] = {
        f"{prefix}/rank": {
            "post": protected(
                {
                    "tags": [tag],
                    "summary": "Rank actions for a context; returns the action to show.",
                    "operationId": f"{tag}_rank",
                    "requestBody": json_body("RankRequest"),
                    "responses": {
                        "201": json_response("The decision.", "RankResponse"),
                        **errors(400, 409, 413, 415),
                    },
                },
                ("client",),
            )
        },
        f"{prefix}/configurations/service": {
            "get": protected(
                {
                    "tags": [tag],
                    "summary": "The loop settings.",
                    "operationId": f"{tag}_get_service_configuration",
                    "responses": {
                        "200": json_response("Settings in force.", "ServiceConfiguration"),
                        **errors(400),
                    },
                },
                ("analyst",),
            ),
            "put": protected(
                {
                    "tags": [tag],
                    "summary": "Replace the loop settings.",
                    "operationId": f"{tag}_update_service_configuration",
                    "requestBody": json_body("ServiceConfiguration"),
                    "responses": {
                        "200": json_response("Settings in force.", "ServiceConfiguration"),
                        **errors(400, 413, 415),
                    },
                },
                (),
            ),
        },
        f"{prefix}/configurations/policy": {
            "get": protected(
                {
                    "tags": [tag],
                    "summary": "The learning policy (Vowpal Wabbit arguments).",
                    "operationId": f"{tag}_get_policy",
                    "responses": {
                        "200": json_response("Policy in force.", "PolicyContract"),
                        **errors(400),
                    },
                },
                ("analyst",),
            ),
            "put": protected(
                {
                    "tags": [tag],
                    "summary": "Replace the learning policy.",
                    "operationId": f"{tag}_update_policy",
                    "requestBody": json_body("PolicyContract"),
                    "responses": {
                        "200": json_response("Policy in force.", "PolicyContract"),
                        **errors(400, 413, 415),
                    },
                },
                (),
            ),
            "delete": protected(
                {
                    "tags": [tag],
                    "summary": "Restore the default learning policy.",
                    "operationId": f"{tag}_reset_policy",
                    "responses": {
                        "200": json_response("Policy in force.", "PolicyContract"),
                        **errors(400),
                    },
                },
                (),
            ),
        },
    }
    paths.update(event_paths(f"{prefix}/events", tag=tag))
    if extra:
        for item in paths.values():
            for operation in item.values():
                operation["parameters"] = [*operation.get("parameters", []), *extra]
    return paths


_APPRENTICE_SUMS = {
    "numberOfEvents": {"type": "integer", "minimum": 0},
    "sumOfRewards": {"type": "number"},
    "sumOfImitatedRewards": {"type": "number",
                             "description": "Rewards of the events where the model's top "
                                            "action was the baseline shown."},
}


def any_case_pattern(values: tuple[str, ...]) -> str:
    """A pattern matching exactly ``values``, in any letter case (``sum``, ``Sum``, ``SUM``)."""
    alternatives = ("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c)
                            for c in value) for value in values)
    return f"^(?:{'|'.join(alternatives)})$"


def personalizer_schemas(*, max_actions: int, learning_modes: tuple[str, ...],
                         forever_days: int) -> dict[str, Any]:
    """Component schemas of the Personalizer-compatible routes.

    Parameters
    ----------
    max_actions : int
        Most actions of a rank request.
    learning_modes : tuple of str
        The ``learningMode`` names, read in any letter case.
    forever_days : int
        Most ``logRetentionDays``; -1 keeps the logs forever.
    """
    features = {
        "type": "array",
        "description": "Feature objects: a key with an object value names a namespace.",
        "items": {"type": "object", "additionalProperties": True, "nullable": True,
                  "description": "A null item is skipped."},
    }
    unsupported = {"type": "boolean", "nullable": True, "enum": [False, None],
                   "description": "Not supported by banditkit: false or absent."}
    return {
        "RankableAction": {
            "type": "object",
            # Personalizer required features; banditkit takes an action without
            # them (no features, as null does).
            "required": ["id"],
            "properties": {
                "id": text_schema(ACTION_ID_MAX_LENGTH),
                "features": {**features, "nullable": True},
            },
        },
        "RankRequest": {
            "type": "object",
            "required": ["actions"],
            "properties": {
                "contextFeatures": {**features, "nullable": True},
                "actions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_actions,
                    "items": _ref("RankableAction"),
                },
                "excludedActions": {
                    "type": "array",
                    "nullable": True,
                    "items": text_schema(ACTION_ID_MAX_LENGTH),
                },
                "eventId": event_id_schema(nullable=True),
                "deferActivation": {"type": "boolean", "default": False, "nullable": True},
            },
        },
        "RankedAction": {
            "type": "object",
            "required": ["id", "probability"],
            "properties": {
                "id": {"type": "string"},
                "probability": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "RankResponse": {
            "type": "object",
            "required": ["eventId", "ranking", "rewardActionId"],
            "properties": {
                "eventId": event_id_schema(),
                "ranking": {"type": "array", "items": _ref("RankedAction")},
                "rewardActionId": {"type": "string", "nullable": True},
            },
        },
        "ServiceConfiguration": {
            "type": "object",
            "required": [
                "rewardWaitTime",
                "defaultReward",
                "rewardAggregation",
                "explorationPercentage",
                "modelExportFrequency",
                "logRetentionDays",
            ],
            "properties": {
                "rewardWaitTime": {
                    "type": "string",
                    "pattern": DURATION_PATTERN,
                    "description": "ISO-8601 duration, e.g. PT10M.",
                },
                "defaultReward": reward_schema(),
                "rewardAggregation": {
                    "type": "string", "pattern": any_case_pattern(AGGREGATIONS),
                    "description": f"One of {', '.join(AGGREGATIONS)} (any letter case)."},
                "explorationPercentage": {"type": "number", "minimum": 0, "maximum": 1},
                "modelExportFrequency": {
                    "type": "string",
                    "pattern": DURATION_PATTERN,
                    "description": "ISO-8601 duration, e.g. PT1M.",
                },
                "logRetentionDays": {
                    "type": "integer", "minimum": -1, "maximum": forever_days,
                    "not": {"enum": [0]}, "description": "Days, or -1 to keep forever."},
                "modelRetrainDays": {"type": "integer", "minimum": 0, "maximum": forever_days,
                                     "nullable": True},
                "learningMode": {
                    "type": "string", "pattern": any_case_pattern(learning_modes),
                    "nullable": True,
                    "description": f"One of {', '.join(learning_modes)} (any letter case)."},
                "logMirrorEnabled": unsupported,
                "isAutoOptimizationEnabled": unsupported,
                "latestApprenticeModeMetrics": {
                    "type": "object", "readOnly": True,
                    "description": "Present once apprentice mode has joined events; "
                                   "ignored on update.",
                    "properties": {
                        "startTime": {"type": "string", "format": "date-time"},
                        "lastProcessedEventTime": {"type": "string", "format": "date-time"},
                        "lastBatchMetrics": _ref("ApprenticeBatchMetrics"),
                        **_APPRENTICE_SUMS,
                    },
                },
            },
        },
        "ApprenticeBatchMetrics": {"type": "object", "properties": _APPRENTICE_SUMS},
        "PolicyContract": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {
                "name": text_schema(POLICY_NAME_MAX_LENGTH),
                "arguments": {
                    **text_schema(POLICY_ARGUMENTS_MAX_LENGTH),
                    "description": "Vowpal Wabbit arguments, e.g. --cb_explore_adf --epsilon 0.2.",
                },
            },
        },
    }


def ops_paths() -> dict[str, Any]:
    """Paths of the operator routes."""
    plain = {"type": "object", "additionalProperties": True}
    return {
        "/healthz": {
            "get": {
                "tags": ["ops"],
                "summary": "Liveness.",
                "operationId": "healthz",
                "security": [],
                "responses": {"200": {"description": "Alive.",
                                      "content": {JSON: {"schema": plain}}}},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["ops"],
                "summary": "Readiness: engine, key store and learner.",
                "operationId": "readyz",
                "security": [],
                "responses": {
                    "200": {"description": "Ready.", "content": {JSON: {"schema": plain}}},
                    "503": {"description": "Not ready; the body lists failed checks.",
                            "content": {JSON: {"schema": plain}}},
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["ops"],
                "summary": "Prometheus metrics.",
                "operationId": "metrics",
                "security": [],
                "responses": {"200": {"description": "Text exposition format.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        },
    }


def add_paths(app: Flask, paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add a component's ``paths`` and component ``schemas`` to the app's document.

    Parameters
    ----------
    app : Flask
        The application (its ``init_app`` must have run).
    paths : dict
        OpenAPI path items by path (``{name}`` placeholders).
    schemas : dict
        Component schemas by name.
    """
    document = app.extensions[_EXTENSION]
    for path, item in paths.items():
        document["paths"].setdefault(path, {}).update(item)
    document["schemas"].update(schemas)


def build_spec(app: Flask | None = None) -> dict[str, Any]:
    """The full OpenAPI document of ``app``."""
    document = (app or current_app).extensions[_EXTENSION]
    schemas = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "target": {"type": "string"},
                    },
                }
            },
        },
        "RewardRequest": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": reward_schema()},
        },
        **document["schemas"],
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "banditkit",
            "version": banditkit.__version__,
            "description": "Contextual-bandit decisions with Azure Personalizer-compatible routes.",
        },
        "paths": _with_server_limits(copy.deepcopy(dict(sorted(document["paths"].items())))),
        "components": {
            "schemas": copy.deepcopy(schemas),
            "securitySchemes": {
                "subscriptionKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Ocp-Apim-Subscription-Key",
                },
                "bearerKey": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _with_server_limits(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with the answers ``banditkit serve`` may give any request (414, 431)."""
    for item in paths.values():
        for operation in item.values():
            for status, response in errors(414, 431).items():
                operation.setdefault("responses", {}).setdefault(status, response)
    return paths


def openapi_path(rule: str) -> str:
    """The OpenAPI path of a werkzeug rule (``/a/<eventId>`` -> ``/a/{eventId}``)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """Serve the OpenAPI document."""
    return jsonify(build_spec())


def init_app(app: Flask) -> None:
    """Create the app's document and serve it at ``/openapi.json``."""
    app.extensions[_EXTENSION] = {"paths": {}, "schemas": {}}
    app.register_blueprint(bp)
    document = {"type": "object", "additionalProperties": True}
    operation = {
        "tags": ["ops"],
        "summary": "This document.",
        "operationId": "openapi",
        "security": [],
        "responses": {
            "200": {"description": "OpenAPI 3.0 document.",
                    "content": {JSON: {"schema": document}}}
        },
    }
    add_paths(app, {"/openapi.json": {"get": operation}}, {})
