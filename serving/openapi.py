"""The OpenAPI 3.1 description of every route, served at ``/openapi.json``.

Nothing here is written by hand per route: each component declares its views'
operations (:class:`serving.contract.operations.Operation`, with the pydantic
models of their bodies and parameters) when it registers
(:func:`add_operations`), and the document is generated from those models and
the app's URL rules (docs/architecture.md §3). Roles come from the views'
:func:`serving.auth.require_roles`: protected operations carry
``x-banditkit-roles``, the roles that may call them. A test checks that every
URL rule of the app appears here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from werkzeug.wrappers import Response

import banditkit
from serving.config import ServerConfig, get_config
from serving.contract.common import ApiVersionQuery, Error
from serving.contract.fields import CONFIG_LIMIT
from serving.contract.operations import JSON, Answer, Operation

__all__ = ["add_operations", "bp", "build_spec", "init_app", "openapi_path"]

_EXTENSION = "banditkit.openapi"
_REF = "#/components/schemas/{model}"
_SECURITY = [{"subscriptionKey": []}, {"bearerKey": []}]
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
#: Answers ``banditkit serve`` may give any request, before the app sees it.
_SERVER_ERRORS = (414, 431)

bp = Blueprint("openapi", __name__)


@dataclass(frozen=True)
class _Documented:
    operation: Operation
    tag: str
    operation_id: str
    family_query: type[BaseModel] | None


class _Generator(GenerateJsonSchema):
    """pydantic's JSON schema without a title on every property."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def add_operations(app: Flask, blueprint: Blueprint, operations: Mapping[str, Operation], *,
                   tag: str, operation_prefix: str | None = None,
                   api_version: bool = False) -> None:
    """Declare the operations of ``blueprint``'s views in the app's document.

    Parameters
    ----------
    app : Flask
        The application (:func:`init_app` must have run).
    blueprint : Blueprint
        The registered blueprint whose views these are.
    operations : mapping of str to Operation
        By view name (the endpoint within the blueprint).
    tag : str
        The operations' tag.
    operation_prefix : str, default=None
        Prefix of the operation ids (the view name follows); None uses ``tag + "_"``.
    api_version : bool, default=False
        Whether every operation takes Personalizer's ``api-version`` query parameter.
    """
    prefix = f"{tag}_" if operation_prefix is None else operation_prefix
    registry = app.extensions[_EXTENSION]
    for name, operation in operations.items():
        registry[f"{blueprint.name}.{name}"] = _Documented(
            operation, tag, f"{prefix}{name}", ApiVersionQuery if api_version else None)


def openapi_path(rule: str) -> str:
    """The OpenAPI path of a werkzeug rule (``/a/<eventId>`` -> ``/a/{eventId}``)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _models(registry: Mapping[str, _Documented]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Error": Error}
    for documented in registry.values():
        operation = documented.operation
        for body in (operation.request_model(),
                     *(answer.body for answer in operation.responses.values())):
            if isinstance(body, type) and issubclass(body, BaseModel):
                found[body.__name__] = body
    return list(found.values())


def _schema(body: Any, refs: Mapping[tuple[type, str], Any]) -> dict[str, Any]:
    if (body, "validation") in refs:
        return refs[(body, "validation")]
    return TypeAdapter(body).json_schema(ref_template=_REF, schema_generator=_Generator)


def _content(body: Any, media_types: tuple[str, ...],
             refs: Mapping[tuple[type, str], Any]) -> dict[str, Any]:
    schema = _schema(body, refs)
    return {media_type: {"schema": schema} for media_type in media_types}


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=_REF, schema_generator=_Generator)
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        field = dict(field)
        parameter: dict[str, Any] = {"name": name, "in": where,
                                     "required": where == "path" or name in required}
        if "description" in field:
            parameter["description"] = field.pop("description")
        if "examples" in field:
            parameter["example"] = field.pop("examples")[0]
        parameter["schema"] = field
        parameters.append(parameter)
    return parameters


def _errors(statuses: tuple[int, ...], refs: Mapping[tuple[type, str], Any]
            ) -> dict[str, Any]:
    return {str(status): {"description": _ERROR_TEXT.get(status, "Error."),
                          "content": _content(Error, (JSON,), refs)} for status in statuses}


def _answer(answer: Answer, refs: Mapping[tuple[type, str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.body is not None:
        out["content"] = _content(answer.body, answer.media_types, refs)
    return out


def _operation(documented: _Documented, roles: tuple[str, ...] | None,
               refs: Mapping[tuple[type, str], Any]) -> dict[str, Any]:
    operation = documented.operation
    out: dict[str, Any] = {"tags": [documented.tag], "summary": operation.summary,
                           "operationId": documented.operation_id}
    if operation.description:
        out["description"] = operation.description
    parameters = [*_parameters(operation.path, "path"), *_parameters(operation.query, "query"),
                  *_parameters(documented.family_query, "query")]
    if parameters:
        out["parameters"] = parameters
    request = operation.request_model()
    if request is not None:
        out["requestBody"] = {"required": True, "content": _content(
            request, (operation.request_media_type,), refs)}
    responses = {str(status): _answer(answer, refs)
                 for status, answer in operation.responses.items()}
    for status, response in _errors(operation.errors, refs).items():
        responses.setdefault(status, response)
    if roles:
        out["security"] = _SECURITY
        out["x-banditkit-roles"] = list(roles)
        responses.update(_errors((401, 403), refs))
    else:
        out["security"] = []
    for status, response in _errors(_SERVER_ERRORS, refs).items():
        responses.setdefault(status, response)
    out["responses"] = responses
    return out


def _with_config_limits(value: Any, config: ServerConfig) -> Any:
    """``value`` with each :class:`~serving.contract.fields.ConfigLimit` set from ``config``."""
    if isinstance(value, list):
        return [_with_config_limits(item, config) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: _with_config_limits(inner, config) for key, inner in value.items()
           if key != CONFIG_LIMIT}
    for keyword, key in value.get(CONFIG_LIMIT, {}).items():
        out[keyword] = getattr(config, key.lower())
    return out


def build_spec(app: Flask | None = None) -> dict[str, Any]:
    """The full OpenAPI document of ``app``, from its rules and declared operations."""
    app = app or current_app
    registry: Mapping[str, _Documented] = app.extensions[_EXTENSION]
    refs, definitions = models_json_schema(
        [(model, "validation") for model in _models(registry)], ref_template=_REF,
        schema_generator=_Generator)
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        documented = registry.get(rule.endpoint)
        if documented is None:
            continue
        roles = getattr(app.view_functions[rule.endpoint], "banditkit_roles", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = _operation(
                documented, roles, refs)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "banditkit",
            "version": banditkit.__version__,
            "description": "Contextual-bandit decisions with Azure Personalizer-compatible routes.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "subscriptionKey": {"type": "apiKey", "in": "header",
                                    "name": "Ocp-Apim-Subscription-Key"},
                "bearerKey": {"type": "http", "scheme": "bearer"},
            },
        },
    }
    return _with_config_limits(document, get_config(app))


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """Serve the OpenAPI document."""
    return jsonify(build_spec())


_OPERATIONS = {"openapi_json": Operation("This document.", {
    200: Answer("OpenAPI 3.1 document.", dict[str, Any])})}


def init_app(app: Flask) -> None:
    """Create the app's document and serve it at ``/openapi.json``."""
    app.extensions[_EXTENSION] = {}
    app.register_blueprint(bp)
    add_operations(app, bp, _OPERATIONS, tag="ops", operation_prefix="")
