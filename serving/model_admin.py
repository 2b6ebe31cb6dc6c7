"""Personalizer's model and log administration, in both route families.

``GET/PUT/DELETE /model``, ``GET /model/properties``, ``GET /logs/properties``
and ``DELETE /logs`` under ``/personalizer/v1.0`` and ``/personalizer``
(``?api-version=``, checked as :mod:`serving.personalizer` checks it), as the
2022-09-01-preview contract has them (``docs/personalizer-compat.md``).
Errors carry Personalizer's codes in the body and the ``x-ms-error-code``
header.

An imported model is checked before anything publishes it, so a bad file
leaves the current model ranking; once published, every worker's next
decision uses it (the store's model token, docs/architecture.md §4).

A signed export is a zip of ``model.vw``, ``metadata.json`` and
``signature``: the hex HMAC-SHA256 of the metadata followed by the model,
keyed by ``<data dir>/model-signing.key`` (32 random bytes made on first
use, mode 0600, shared by the workers through the file). Copy that file to
import a signed model on another server.

Config keys (``MODEL_`` namespace)
----------------------------------
MODEL_MAX_IMPORT_BYTES : int, default=268435456
    Largest model ``PUT /model`` takes (413 ``PayloadSizeExceeded``).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import zipfile
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

import banditkit
from banditkit.errors import InvalidInputError
from banditkit.eventlog import EventLogWriter
from serving import openapi, rows
from serving.analyst import log_partitions
from serving.auth import current_key, require_roles
from serving.config import get_config
from serving.contract.admin import OCTET_STREAM, OPERATIONS
from serving.contract.fields import utc_text
from serving.errors import ApiError
from serving.personalizer import require_api_version
from serving.runtime import get_engine

__all__ = ["SIGNING_KEY_FILE", "init_app", "with_error_code"]

#: The signing key of exported models, in the data directory.
SIGNING_KEY_FILE = "model-signing.key"
_ERROR_CODE_HEADER = "x-ms-error-code"
_ZIP_MAGIC = b"PK\x03\x04"
_MODEL_MEMBER, _METADATA_MEMBER, _SIGNATURE_MEMBER = "model.vw", "metadata.json", "signature"
_FORMAT = "banditkit-model/1"
_KEY_BYTES = 32
_FALSE, _TRUE = ("false", "0"), ("true", "1")
_logger = logging.getLogger("banditkit.admin")

v1 = Blueprint("model_admin_v1", __name__, url_prefix="/personalizer/v1.0")
versioned = Blueprint("model_admin", __name__, url_prefix="/personalizer")
versioned.before_request(require_api_version)


def with_error_code(response: Response) -> Response:
    """Personalizer's ``x-ms-error-code`` header on an error: its body's ``error.code``."""
    if response.status_code >= 400 and response.is_json:
        error = (response.get_json(silent=True) or {}).get("error")
        if isinstance(error, dict) and "code" in error:
            response.headers[_ERROR_CODE_HEADER] = str(error["code"])
    return response


# ------------------------------------------------------------------ model


def _signed_query() -> bool:
    value = request.args.get("signed", "false").lower()
    if value not in _FALSE + _TRUE:
        raise ApiError(f"signed must be true or false, got {value!r}.", target="signed")
    return value in _TRUE


def _signing_key() -> bytes:
    """The server's signing key, made (0600) by whichever process needs it first."""
    path = get_config().engine_data_dir / SIGNING_KEY_FILE
    if not path.exists():
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, os.urandom(_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(partial, path)  # fails if another process made it first: theirs stays
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return path.read_bytes()


def _signature(metadata: bytes, model: bytes) -> str:
    return hmac.new(_signing_key(), metadata + model, hashlib.sha256).hexdigest()


def _signed_zip(version: int, model: bytes) -> bytes:
    engine = get_engine()
    metadata = json.dumps({
        "format": _FORMAT, "version": version, "policyArgs": engine.settings.learner_args(),
        "banditkitVersion": banditkit.__version__,
        "sha256": hashlib.sha256(model).hexdigest()}, sort_keys=True).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_MODEL_MEMBER, model)
        archive.writestr(_METADATA_MEMBER, metadata)
        archive.writestr(_SIGNATURE_MEMBER, _signature(metadata, model))
    return buffer.getvalue()


@require_roles("analyst")
def export_model() -> Response:
    """The model that ranks now, as a VW file or (``signed=true``) a signed zip: ``200``."""
    signed = _signed_query()
    version, model = get_engine().model_bytes()
    body = _signed_zip(version, model) if signed else model
    name = f"model-v{version}.{'zip' if signed else 'vw'}"
    return Response(body, mimetype=OCTET_STREAM,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _request_bytes(limit: int) -> bytes:
    """The body, at most ``limit`` bytes (chunked bodies too)."""
    request.max_content_length = limit
    try:
        return request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise ApiError(f"The model is larger than this server imports "
                       f"(MODEL_MAX_IMPORT_BYTES = {limit} bytes).", status=413,
                       code="PayloadSizeExceeded") from None


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ApiError(f"The model zip has no {name}; it holds {archive.namelist()}.",
                       target="file",
                       code="InvalidModelMetadata") from None
    if info.file_size > limit:
        raise ApiError(f"{name} in the zip unpacks to {info.file_size} bytes, more than "
                       f"MODEL_MAX_IMPORT_BYTES = {limit}.", status=413,
                       code="PayloadSizeExceeded")
    return archive.read(info)


def _unsigned_model(data: bytes, limit: int) -> bytes:
    """The model inside a signed zip, once its metadata and signature check out."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            model = _member(archive, _MODEL_MEMBER, limit)
            metadata = _member(archive, _METADATA_MEMBER, limit)
            signature = _member(archive, _SIGNATURE_MEMBER, limit)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
        raise ApiError(f"The body starts like a zip but is not one: {error}.",
                       target="file",
                       code="InvalidModelImportFormat") from None
    if not hmac.compare_digest(signature.decode("ascii", "replace").strip(),
                               _signature(metadata, model)):
        raise ApiError("The model's signature does not match this server's signing key "
                       f"({SIGNING_KEY_FILE}): export it here, or copy that key file from "
                       "the server that signed it.", target="file",
                       code="InvalidModelImportSignature")
    try:
        fields = json.loads(metadata)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or fields.get("format") != _FORMAT:
        raise ApiError(f"metadata.json must be a JSON object with format {_FORMAT!r}.",
                       target="file",
                       code="InvalidModelMetadata")
    if fields.get("sha256") != hashlib.sha256(model).hexdigest():
        raise ApiError("metadata.json's sha256 does not match model.vw.",
                       target="file",
                       code="InvalidModelMetadata")
    return model


@require_roles()
def import_model() -> tuple[str, int]:
    """Replace the model with the body (a VW model file or a signed zip): ``204``."""
    limit = get_config().model_max_import_bytes
    data = _request_bytes(limit)
    if data.startswith(_ZIP_MAGIC):
        data = _unsigned_model(data, limit)
    try:
        version = get_engine().replace_model(data, origin="import")
    except InvalidInputError as error:
        raise ApiError(f"Not a model this server can rank with: {error}.",
                       target="file",
                       code="InvalidModelImportFormat") from None
    _audit("model imported", version=version, bytes=len(data))
    return "", 204


@require_roles()
def reset_model() -> tuple[str, int]:
    """Replace the model with a fresh one for the policy in force: ``204``."""
    _audit("model reset", version=get_engine().replace_model(None, origin="reset"))
    return "", 204


@require_roles("analyst")
def model_properties() -> tuple[dict[str, Any], int]:
    """``creationTime`` and ``lastModifiedTime`` of the model that ranks now: ``200``."""
    created, modified = get_engine().model_times()
    return {"creationTime": utc_text(created), "lastModifiedTime": utc_text(modified)}, 200


# ------------------------------------------------------------------ logs


def _logs() -> list[EventLogWriter]:
    """The joined logs: the single-slot engine's and the row engine's (multi-slot)."""
    return [get_engine().log, rows.get_row_engine().log]


@require_roles("analyst")
def logs_properties() -> tuple[dict[str, Any], int]:
    """``dateRange`` of the joined log (first and last decision timestamps): ``200``."""
    stamps = [stamp for log in _logs() for part in log_partitions(log)
              for stamp in (part.first_timestamp, part.last_timestamp) if stamp is not None]
    if not stamps:
        raise ApiError("The log holds no joined event.", status=404,
                       code="LogsPropertiesNotFound")
    return {"dateRange": {"from": min(stamps), "to": max(stamps)}}, 200


@require_roles()
def delete_logs() -> tuple[str, int]:
    """Delete the joined logs and every pending event; models, settings and keys stay: ``204``.

    Each engine deletes under its log lock, which its learner holds per batch
    (:meth:`banditkit.loop.LoopEngine.purge_log`), so no batch is half deleted.
    """
    engines = {"single": get_engine(), "rows": rows.get_row_engine()}
    deleted = {name: engine.purge_log() for name, engine in engines.items()}
    _audit("logs deleted", **{f"{name}_events": events for name, (events, _) in deleted.items()},
           partitions=sum(partitions for _, partitions in deleted.values()))
    return "", 204


def _not_served(alternative: str) -> Callable[[], Any]:
    def view() -> Any:
        raise ApiError(f"banditkit does not take VW binary logs; record decisions with "
                       f"{alternative}.", status=501, code="NotImplemented")

    return view


def _audit(message: str, **fields: Any) -> None:
    """One JSON line in the server log naming the change and the key that made it."""
    key = current_key()
    _logger.warning(json.dumps({"message": message, **fields,
                                "key_id": key.key_id if key else None}))


# ------------------------------------------------------------------ registration

_ROUTES: tuple[tuple[str, str, str, Callable[..., Any]], ...] = (
    ("/model", "GET", "export_model", export_model),
    ("/model", "PUT", "import_model", import_model),
    ("/model", "DELETE", "reset_model", reset_model),
    ("/model/properties", "GET", "model_properties", model_properties),
    ("/logs/properties", "GET", "logs_properties", logs_properties),
    ("/logs", "DELETE", "delete_logs", delete_logs),
    ("/logs/interactions", "POST", "log_interactions", _not_served("/rank")),
    ("/logs/observations", "POST", "log_observations",
     _not_served("/events/{eventId}/reward (and /events/{eventId}/activate)")),
)

for _blueprint in (v1, versioned):
    _blueprint.after_request(with_error_code)
    for _rule, _method, _name, _view in _ROUTES:
        _blueprint.add_url_rule(_rule, view_func=_view, methods=[_method], endpoint=_name)


def init_app(app: Flask) -> None:
    """Register both route families and their OpenAPI description on ``app``."""
    app.register_blueprint(v1)
    app.register_blueprint(versioned)
    openapi.add_operations(app, v1, OPERATIONS, tag="personalizer-v1.0",
                           operation_prefix="personalizer-v1.0_")
    openapi.add_operations(app, versioned, OPERATIONS, tag="personalizer-api-version",
                           operation_prefix="personalizer-api-version_", api_version=True)
