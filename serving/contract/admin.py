"""Personalizer's model and log administration routes (2022-09-01-preview), both families.

The model travels as bytes, not JSON: ``GET /model`` answers a Vowpal Wabbit
model file (or, signed, a zip holding it), and ``PUT /model`` takes one.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from serving.contract.fields import Body
from serving.contract.operations import Answer, Operation

__all__ = [
    "DateRange",
    "LogsProperties",
    "ModelProperties",
    "ModelQuery",
    "OCTET_STREAM",
    "OPERATIONS",
]

OCTET_STREAM = "application/octet-stream"
_TIME = Field(description="ISO-8601 in UTC, e.g. 2026-12-07T13:00:00Z.")


class ModelQuery(Body):
    """The query of ``GET /model``."""

    signed: Annotated[bool, Field(description="true: a zip of the model, its metadata and an "
                                              "HMAC signature by this server's key; false: "
                                              "the Vowpal Wabbit model file.")] = False


class ModelProperties(Body):
    """When the model that ranks now began (fresh, reset or imported) and last changed."""

    creation_time: Annotated[str, _TIME]
    last_modified_time: Annotated[str, _TIME]


class DateRange(Body):
    """The earliest and latest decision timestamps of the joined log."""

    from_: Annotated[str, Field(alias="from", description="ISO-8601 in UTC.")]
    to: Annotated[str, Field(description="ISO-8601 in UTC.")]


class LogsProperties(Body):
    """What the joined log covers."""

    date_range: DateRange


_UNSERVED = Operation(
    "Not served: banditkit records interactions through /rank and observations through "
    "/events/{eventId}/reward.", {}, errors=(400, 501))

#: The model and log routes, by view name.
OPERATIONS = {
    "export_model": Operation(
        "The model that ranks now (a fresh one before the first snapshot).",
        {200: Answer("The VW model file, or the signed zip.", bytes, (OCTET_STREAM,))},
        errors=(400,), query=ModelQuery),
    "import_model": Operation(
        "Replace the model with a VW model file or a zip exported signed by this server.",
        {204: Answer("Imported: the next decision of every worker uses it.")},
        errors=(400, 413), request=bytes, request_media_type=OCTET_STREAM),
    "reset_model": Operation("Replace the model with a fresh one for the policy in force.",
                             {204: Answer("Reset.")}, errors=(400,)),
    "model_properties": Operation("When the model began and last changed.",
                                  {200: Answer("Model properties.", ModelProperties)},
                                  errors=(400,)),
    "logs_properties": Operation("The date range of the joined log.",
                                 {200: Answer("Log properties.", LogsProperties)},
                                 errors=(400, 404)),
    "delete_logs": Operation(
        "Delete the joined log and every pending event; models, settings and keys stay.",
        {204: Answer("Deleted.")}, errors=(400,)),
    "log_interactions": _UNSERVED,
    "log_observations": _UNSERVED,
}
