"""``POST /v1/artwork/rank``: the artwork of a whole page in one call."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from catalogue import ID_PATTERN
from serving.contract.fields import Body, ConfigLimit, EventId, NamespacedFeatures, Probability
from serving.contract.limits import SURFACE_MAX_LENGTH
from serving.contract.operations import Answer, Operation

__all__ = [
    "ArtworkRankRequest",
    "ArtworkRankResponse",
    "OPERATIONS",
    "TitleArtwork",
]


class ArtworkRankRequest(Body, extra="forbid"):
    """A member's context and the page's titles."""

    context: Annotated[NamespacedFeatures | None, Field(
        description='Member context: namespaced features, e.g. {"Member": {"country": '
                    '"BR"}}.')] = None
    titles: Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(
        min_length=1, max_length=100, json_schema_extra={"uniqueItems": True}),
        ConfigLimit("maxItems", "ARTWORK_RANK_MAX_TITLES")]
    defer_activation: bool | None = False
    surface: Annotated[str | None, Field(
        max_length=SURFACE_MAX_LENGTH,
        description="Where the page is shown (logged, not a feature).")] = None


class TitleArtwork(Body):
    title_id: str
    variant_id: str | None
    image_url: str | None
    event_id: EventId | None
    probability: Probability | None
    reason: str | None = None


class ArtworkRankResponse(Body):
    """One result per title, in request order."""

    model_version: str
    results: list[TitleArtwork]


#: The route by view name.
OPERATIONS = {"rank": Operation(
    "Choose one artwork variant per title for a member (a page in one call).",
    {201: Answer("One result per title, in request order.", ArtworkRankResponse)},
    errors=(400, 404, 409, 413, 415), request=ArtworkRankRequest)}
