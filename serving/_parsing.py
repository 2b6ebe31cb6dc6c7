"""Request parsing: JSON bodies, typed fields and Personalizer feature lists.

Route functions call these helpers so that every malformed request becomes an
:class:`~serving.errors.ApiError` (400/415) naming the field, the expectation
and what was received, never a 500.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from flask import request

from banditkit.encoding import ContentMemo, FrozenFeatures
from banditkit.errors import InvalidInputError
from banditkit.types import check_event_id as _check_event_id
from serving.contract.limits import FLOAT32_MAX, MAX_FEATURE_DEPTH, NOT_BLANK_PATTERN
from serving.contract.validation import describe
from serving.errors import ApiError

__all__ = [
    "check_event_id",
    "json_body",
    "optional_bool",
    "optional_event_id",
    "FeatureMemory",
    "personalizer_features",
    "require_finite_number",
    "require_int",
    "require_list",
    "require_object",
    "require_str",
]

_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)
# A \uD800-\uDFFF escape: only then can the parsed text hold an unpaired surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_TYPES = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_STRICT_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def json_body() -> Any:
    """Parse the request body as strict JSON.

    ``NaN``/``Infinity`` literals, bodies that are not UTF-8, strings holding an
    unpaired UTF-16 surrogate (``"\\ud800"``, which no UTF-8 consumer such as
    Vowpal Wabbit's JSON parser accepts) and nesting too deep for the parser are
    all rejected with 400; a non-JSON content type with 415. The body size
    limit is enforced by Flask (``MAX_CONTENT_LENGTH``) before this is called.

    Returns
    -------
    object
        The decoded JSON value.
    """
    mimetype = request.mimetype
    if mimetype and not _JSON_TYPES.match(mimetype):
        raise ApiError(
            f"Content-Type must be application/json, got {request.content_type!r}.",
            status=415,
        )
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError("The request body is empty; a JSON object was expected.")
    try:
        text = raw.decode("utf-8")  # strict: no encoded surrogates, no UTF-16
        value = _STRICT_JSON.decode(text)
    except UnicodeDecodeError:
        raise ApiError("The request body is not valid UTF-8 JSON.") from None
    except RecursionError:
        raise ApiError("The request body nests too deeply.") from None
    except ValueError as exc:
        raise ApiError(f"The request body is not valid JSON: {exc}.") from None
    if ("\\ud" in text or "\\uD" in text) and _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(
                "The request body has a string with an unpaired UTF-16 surrogate "
                "(\\ud800-\\udfff escape); such text cannot be stored or learned."
            ) from None
    return value


def require_object(value: Any, *, target: str) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object, else raise 400 naming ``target``."""
    if not isinstance(value, dict):
        where = target or "The request body"
        raise ApiError(f"{where} must be a JSON object, got {describe(value)}.", target=target)
    return value


def require_list(value: Any, *, target: str) -> list[Any]:
    """Return ``value`` if it is a JSON array, else raise 400 naming ``target``."""
    if not isinstance(value, list):
        raise ApiError(f"{target} must be an array, got {describe(value)}.", target=target)
    return value


def require_str(
    value: Any, *, target: str, max_length: int | None = None, allow_empty: bool = False
) -> str:
    """Return ``value`` if it is a string within the length limits, else raise 400."""
    if not isinstance(value, str):
        raise ApiError(f"{target} must be a string, got {describe(value)}.", target=target)
    if not allow_empty and not _NOT_BLANK.search(value):
        raise ApiError(f"{target} must not be empty.", target=target)
    if max_length is not None and len(value) > max_length:
        raise ApiError(
            f"{target} must be at most {max_length} characters, got {len(value)}.",
            target=target,
        )
    return value


def optional_bool(body: Mapping[str, Any], key: str, *, default: bool = False) -> bool:
    """``body[key]`` as a boolean, ``default`` when absent or null."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(f"{key} must be true or false, got {describe(value)}.", target=key)
    return value


def require_finite_number(value: Any, *, target: str) -> float:
    """Return ``value`` as a float within ±:data:`FLOAT32_MAX`, else raise 400.

    Strings, booleans, NaN, infinities and numbers beyond the 32-bit float
    range (which Vowpal Wabbit would read as infinite) are refused.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(f"{target} must be a number, got {describe(value)}.", target=target)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ApiError(f"{target} must be a finite number, got {value!r}.", target=target)
    if abs(number) > FLOAT32_MAX:
        raise ApiError(
            f"{target} must be within ±3.4e38 (the 32-bit float range the learner "
            f"uses), got {value!r}.",
            target=target,
        )
    return number


def require_int(value: Any, *, target: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; an integral number (``12.0``) counts.

    JSON Schema, which ``/openapi.json`` states, calls ``12.0`` an integer, so
    clients that send it get what the document promises.
    """
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value != int(value)):
        raise ApiError(f"{target} must be an integer, got {value!r}.", target=target)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ApiError(f"{target} must be {bound}, got {value!r}.", target=target)
    return int(value)


def check_event_id(event_id: Any, *, target: str = "eventId") -> str:
    """Validate an event id from the URL path or a body (:func:`banditkit.types.check_event_id`)."""
    if not isinstance(event_id, str):
        raise ApiError(f"{target} must be a string, got {describe(event_id)}.", target=target)
    try:
        return _check_event_id(event_id, name=target)
    except InvalidInputError as exc:
        raise ApiError(f"{exc}.", target=target) from None


def optional_event_id(body: Mapping[str, Any], key: str = "eventId") -> str | None:
    """``body[key]`` as a valid event id, or None when absent or null (rank makes one)."""
    value = body.get(key)
    return None if value is None else check_event_id(value, target=key)


# Integers below this magnitude are within the 32-bit float range (see _scalar).
_SAFE_INT = 2**127


def _scalar(value: Any, *, target: str) -> str | float | int | bool:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        require_finite_number(value, target=target)
        return value
    raise ApiError(f"{target} must be a string, number or boolean.", target=target)


def _flatten(
    value: Any,
    name: str,
    into: dict[str, str | float | int | bool],
    *,
    target: str,
    depth: int,
) -> None:
    # Nested objects and arrays become dotted / indexed feature names in the
    # enclosing namespace, so the whole structure keeps one stable name each.
    if depth > MAX_FEATURE_DEPTH:
        raise ApiError(
            f"{target} nests deeper than {MAX_FEATURE_DEPTH} levels.", target=target
        )
    if value is None:
        return
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{name}.{key}" if name else key, into,
                     target=f"{target}.{key}", depth=depth + 1)
        return
    if isinstance(value, list):
        for index, inner in enumerate(value):
            _flatten(inner, f"{name}[{index}]", into,
                     target=f"{target}[{index}]", depth=depth + 1)
        return
    into[name] = _scalar(value, target=target)


def personalizer_features(
    value: Any, *, target: str, default_namespace: str
) -> dict[str, dict[str, str | float | int | bool]]:
    """Turn a Personalizer feature list into banditkit's namespaced features.

    Personalizer sends features as a list of JSON objects. Within each
    object, a key whose value is an object names a namespace (Vowpal Wabbit's
    JSON convention); a key with a scalar value is a feature of the
    ``default_namespace``. Deeper objects and arrays are flattened into
    ``outer.inner`` and ``name[i]`` feature names; nulls are dropped.

    Parameters
    ----------
    value : list of dict or None
        The ``contextFeatures`` or an action's ``features``. None means no features.
    target : str
        The JSON path used in error messages.
    default_namespace : str
        Namespace for top-level scalar features.

    Returns
    -------
    dict of str to dict
        ``{namespace: {feature: value}}``.
    """
    if value is None:
        return {}
    items = require_list(value, target=target)
    features: dict[str, dict[str, str | float | int | bool]] = {}
    for index, item in enumerate(items):
        where = f"{target}[{index}]"
        if item is None:
            continue
        require_object(item, target=where)
        for key, inner in item.items():
            if isinstance(inner, dict):
                if key and not key[0].isascii():
                    # VW indexes namespaces by their first byte; a non-ASCII first
                    # character crashes the learner process (abort/segfault).
                    raise ApiError(
                        f"{where}: namespace {key!r} must start with an ASCII character.",
                        target=f"{where}.{key}",
                    )
                namespace = features.setdefault(key, {})
                for name, leaf in inner.items():
                    # Fast path for the common flat leaf (a request carries hundreds):
                    # the same acceptance as _scalar, without building its error path.
                    kind = type(leaf)
                    if kind is str or kind is bool or (
                            kind is float and -FLOAT32_MAX <= leaf <= FLOAT32_MAX) or (
                            kind is int and -_SAFE_INT < leaf < _SAFE_INT):
                        namespace[name] = leaf
                    else:
                        _flatten(leaf, name, namespace, target=f"{where}.{key}.{name}",
                                 depth=2)
            else:
                namespace = features.setdefault(default_namespace, {})
                _flatten(inner, key, namespace, target=f"{where}.{key}", depth=1)
    return {namespace: values for namespace, values in features.items() if values}


class FeatureMemory:
    """:func:`personalizer_features` that remembers the lists it converted.

    Personalizer clients send every action's features again with each rank
    call; converting and validating them was a third of a request's CPU.
    Lists are remembered by their pickle (exact types and values), as
    read-only :class:`~banditkit.encoding.FrozenFeatures`, so a hit is shared
    safely and the engine takes its encoded text as is. Thread-safe; an entry
    of 40 features is about 7 KB, so the default holds under 60 MB.
    """

    def __init__(self, max_entries: int = 8_192) -> None:
        self.features: ContentMemo[FrozenFeatures] = ContentMemo(max_entries)

    def __call__(self, value: Any, *, target: str, default_namespace: str) -> FrozenFeatures:
        """As :func:`personalizer_features`, frozen.

        Raises
        ------
        ApiError, InvalidInputError
            Naming ``target``.
        """
        return self.features.get((default_namespace, value), lambda: FrozenFeatures(
            personalizer_features(value, target=target, default_namespace=default_namespace),
            name=target))
