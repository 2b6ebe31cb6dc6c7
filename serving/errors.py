"""JSON error responses, in the body shape Azure Personalizer used.

Every error the service returns, whatever raised it, is
``{"error": {"code": ..., "message": ..., "target": ...}}`` with a 4xx status
for anything the caller can fix. Azure's SDKs parse this shape
(``ErrorResponse``/``PersonalizerError``), so a migrating client sees our
messages in its exceptions unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from banditkit.errors import (
    BanditkitError,
    DuplicateEventError,
    InvalidInputError,
    UnknownEventError,
)

__all__ = ["ApiError", "error_json", "error_response", "init_app"]

_logger = logging.getLogger(__name__)

#: Personalizer-style error codes by HTTP status.
_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "ResourceNotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    411: "LengthRequired",
    413: "PayloadTooLarge",
    414: "UriTooLong",
    415: "UnsupportedMediaType",
    417: "ExpectationFailed",
    429: "TooManyRequests",
    431: "RequestHeaderFieldsTooLarge",
    500: "InternalServerError",
    501: "NotImplemented",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An error the caller can act on, turned into a JSON response.

    Parameters
    ----------
    message : str
        What was wrong, naming the field, the expectation and the value received.
    status : int, default=400
        The HTTP status code.
    target : str, default=None
        The JSON path of the offending field (``"actions[2].id"``), if any.
    code : str, default=None
        A machine-readable code; defaults to the Personalizer code for ``status``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        target: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.target = target
        self.code = code


def error_json(
    status: int, message: str, *, target: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The error body ``{"error": {"code", "message", "target"}}`` for ``status``.

    Parameters
    ----------
    status : int
        HTTP status code.
    message : str
        Human-readable explanation.
    target : str, default=None
        The field the error is about.
    code : str, default=None
        Machine-readable code; defaults to the Personalizer code for ``status``.
    """
    error: dict[str, Any] = {"code": code or _CODES.get(status, "Error"), "message": message}
    if target is not None:
        error["target"] = target
    return {"error": error}


def error_response(
    status: int, message: str, *, target: str | None = None, code: str | None = None
) -> Response:
    """The response of status ``status`` whose body is :func:`error_json`'s."""
    response = jsonify(error_json(status, message, target=target, code=code))
    response.status_code = status
    return response


def _handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, target=exc.target, code=exc.code)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 413:
        message = "The request body is larger than this server accepts " + (
            "(SERVER_MAX_BODY_BYTES)."
        )
    else:
        message = exc.description or exc.name
    response = error_response(status, message)
    if status == 405 and exc.response is None:
        valid = getattr(exc, "valid_methods", None)
        if valid:
            response.headers["Allow"] = ", ".join(valid)
    return response


def _handle_banditkit_error(exc: BanditkitError) -> Response:
    # The engine's messages already name the problem; map the class to a status.
    if isinstance(exc, UnknownEventError):
        return error_response(404, str(exc), target="eventId")
    if isinstance(exc, DuplicateEventError):
        return error_response(409, str(exc), target="eventId")
    if isinstance(exc, InvalidInputError):
        return error_response(400, str(exc))
    return error_response(400, str(exc))


def _handle_unexpected(exc: Exception) -> Response:
    # Never a stack trace to the caller, always JSON; logged for the operator.
    _logger.exception("unhandled error while serving a request")
    return error_response(500, "The server failed to process the request; see its logs.")


def init_app(app: Flask) -> None:
    """Register the JSON error handlers on ``app``.

    Parameters
    ----------
    app : Flask
        The application.
    """
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(BanditkitError, _handle_banditkit_error)
    app.register_error_handler(Exception, _handle_unexpected)
