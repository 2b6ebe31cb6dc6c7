"""Models every route family shares: the error body, event paths, rewards, api-version."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from serving.contract.fields import Body, EventId, Reward
from serving.contract.limits import API_VERSION_PATTERN

__all__ = ["ApiVersionQuery", "Error", "ErrorDetail", "EventPath", "RewardRequest"]


class ErrorDetail(BaseModel):
    """What went wrong: a Personalizer code, a message naming the field, the field's path."""

    code: str
    message: str
    target: str | None = None


class Error(BaseModel):
    """Every error answer, in the body shape Azure Personalizer used (serving/errors.py)."""

    error: ErrorDetail


class EventPath(Body):
    """The ``{eventId}`` of the reward and activate routes."""

    event_id: Annotated[EventId, Field(description="The event id returned by rank (or passed "
                                                   "to it).")]


class ApiVersionQuery(Body):
    """The query of the Personalizer route family versioned by ``?api-version=``."""

    api_version: Annotated[str, Field(
        alias="api-version", pattern=API_VERSION_PATTERN, examples=["2022-09-01-preview"],
        description="Personalizer API version, e.g. 2022-09-01-preview.")]


class RewardRequest(Body):
    """A reward of one event, ``{"value": number}``."""

    value: Reward
