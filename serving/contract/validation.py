"""Validation through the contract's models, answering in the service's error shape.

:func:`validate` runs a model over a decoded JSON body (``serving._parsing.json_body``
keeps the strict JSON rules) or a query string's parameters, and turns
pydantic's first error into the :class:`~serving.errors.ApiError` every handler
raises: 400, the field's JSON path as ``target`` and a message naming the path,
the expectation and what was received (docs/architecture.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from serving.contract.limits import NOT_BLANK_PATTERN
from serving.errors import ApiError

__all__ = [
    "FieldError",
    "describe",
    "json_path",
    "validate",
]

M = TypeVar("M", bound=BaseModel)

_EXPECTED = {"string_type": "a string", "float_type": "a number", "int_type": "an integer",
             "bool_type": "true or false", "list_type": "an array",
             "dict_type": "a JSON object", "model_type": "a JSON object",
             "model_attributes_type": "a JSON object", "int_parsing": "an integer",
             "float_parsing": "a number", "bool_parsing": "true or false"}
_TEMPLATES = {
    "string_too_short": "{path} must not be empty.",
    "string_too_long": "{path} must be at most {max_length} characters, got {length}.",
    "string_pattern_mismatch": "{path} must match {pattern}, got {value!r}.",
    "too_short": "{path} must hold at least {min_length} items, got {length}.",
    "too_long": "{path} may hold at most {max_length} items, got {length}.",
    "greater_than_equal": "{path} must be at least {ge:g}, got {value!r}.",
    "less_than_equal": "{path} must be at most {le:g}, got {value!r}.",
    "greater_than": "{path} must be above {gt:g}, got {value!r}.",
    "less_than": "{path} must be below {lt:g}, got {value!r}.",
    "extra_forbidden": "Unknown field {path}.",
    "finite_number": "{path} must be a finite number, got {value!r}.",
    "literal_error": "{path} must be {expected}, got {value!r}.",
}


class FieldError(ValueError):
    """A model validator's finding about one of its fields, which the 400 names as target.

    A rule between fields (``from`` after ``to``) is checked by the model as a
    whole; raising this names the field the caller should change.

    Parameters
    ----------
    field : str
        The field's JSON name, within the model that raises.
    message : str
        What is wrong; a message starting with ``field`` gets its whole path.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def describe(value: Any) -> str:
    """What a JSON value is, for messages: ``null``, ``a string``, ``an array``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def json_path(location: tuple[int | str, ...]) -> str:
    """``("actions", 2, "id")`` as ``actions[2].id``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _message(error: ErrorDetails, path: str) -> str:
    kind, value, context = error["type"], error["input"], error.get("ctx", {})
    if kind == "float_type" and type(value) is int:
        return f"{path} must be a finite number, got an integer beyond the float range."
    if kind in _EXPECTED:
        return f"{path or 'The request body'} must be {_EXPECTED[kind]}, got {describe(value)}."
    if kind == "string_pattern_mismatch" and context["pattern"] == NOT_BLANK_PATTERN:
        kind = "string_too_short"  # a blank string
    if kind == "too_short" and context["min_length"] == 1:
        return f"{path} must hold at least one item, got {describe(value)} with none."
    if kind in _TEMPLATES:
        length = len(value) if isinstance(value, str | list | dict) else None
        return _TEMPLATES[kind].format(path=path, value=value, length=length, **context)
    if kind == "value_error":
        # The contract's checks name the field; a nested one gets its whole path.
        # A list item's own check (its model validator) is led by the item's path.
        message = str(context["error"])
        name = error["loc"][-1] if error["loc"] else ""
        if isinstance(name, str) and message.startswith(name):
            message = path + message[len(name):]
        elif isinstance(name, int):
            message = f"{path} {message}"
        return f"{message}."
    return f"{path}: {error['msg']}."


def _location(error: ErrorDetails) -> tuple[int | str, ...]:
    found = error.get("ctx", {}).get("error")
    return (*error["loc"], found.field) if isinstance(found, FieldError) else error["loc"]


def validate(model: type[M], body: Any, *, context: Mapping[str, Any] | None = None) -> M:
    """``body`` as ``model``, or the :class:`~serving.errors.ApiError` of its first problem.

    Parameters
    ----------
    model : type of BaseModel
        A model of :mod:`serving.contract`.
    body : object
        The decoded JSON body, or a query string's parameters.
    context : mapping, default=None
        What the model's validators read from the app (its config's limits).

    Raises
    ------
    ApiError
        400; all the missing fields are named together.
    """
    try:
        return model.model_validate(body, context=context)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    missing = [json_path(error["loc"]) for error in errors if error["type"] == "missing"]
    if missing:
        raise ApiError(f"Missing required fields: {', '.join(missing)}.",
                       target=missing[0]) from None
    location = _location(errors[0])
    path = json_path(location)
    raise ApiError(_message({**errors[0], "loc": location}, path), target=path) from None
