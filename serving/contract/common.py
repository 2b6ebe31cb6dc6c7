"""Models every route family shares: the error body, event paths, rewards, api-version."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from serving.contract.fields import Body, EventId, Reward
from serving.contract.limits import API_VERSION_PATTERN
from serving.contract.operations import Answer, Operation

__all__ = [
    "ApiVersionQuery",
    "Error",
    "ErrorDetail",
    "EventPath",
    "RewardRequest",
    "event_operations",
]


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


def event_operations(reward: str, activate: str, *, request: type[BaseModel],
                     done: tuple[str, str] = ("Recorded.", "Activated.")
                     ) -> dict[str, Operation]:
    """The ``reward`` and ``activate`` operations of an ``events/{eventId}`` family.

    Parameters
    ----------
    reward, activate : str
        Their summaries.
    request : type of BaseModel
        The model of the reward body.
    done : tuple of str, default=("Recorded.", "Activated.")
        The descriptions of their 204 answers.
    """
    return {
        "reward": Operation(reward, {204: Answer(done[0])}, errors=(400, 404, 413, 415),
                            request=request, path=EventPath),
        "activate": Operation(activate, {204: Answer(done[1])}, errors=(400, 404),
                              path=EventPath),
    }
