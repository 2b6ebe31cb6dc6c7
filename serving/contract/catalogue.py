"""The artwork catalogue routes: titles, variants, trailer candidates, performance, images."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from banditkit.errors import InvalidInputError
from catalogue import ID_PATTERN, MEDIA_TYPES, check_id
from catalogue.fields import GENRE_PATTERN
from serving.contract.common import Error
from serving.contract.fields import Body, Query, text
from serving.contract.limits import ID_MAX_LENGTH
from serving.contract.operations import Answer, Operation
from serving.contract.validation import FieldError

__all__ = [
    "ArtworkWarning",
    "CANDIDATE_ID_PATTERN",
    "Candidate",
    "CandidateList",
    "CandidatePath",
    "DailyCounts",
    "DayCounts",
    "IMAGE_NAME_PATTERN",
    "ImagePath",
    "OPERATIONS",
    "Performance",
    "PerformanceQuery",
    "Title",
    "TitleCreate",
    "TitleDetail",
    "TitleList",
    "TitlePath",
    "TitleUpdate",
    "TrailerResult",
    "Upload",
    "VARIANT_ID_PATTERN",
    "Variant",
    "VariantList",
    "VariantPath",
    "VariantPerformance",
    "VariantUpdate",
]

VARIANT_ID_PATTERN = r"^v[0-9a-f]{12}$"
CANDIDATE_ID_PATTERN = r"^c[0-9a-f]{12}$"
#: An image's URL name: its SHA-256 and the extension of its media type.
IMAGE_NAME_PATTERN = r"^([0-9a-f]{64})\.(jpg|png|gif|webp|bmp|tiff)$"

_TitleId = Annotated[str, Field(pattern=ID_PATTERN)]
_Genres = Annotated[list[Annotated[str, Field(pattern=GENRE_PATTERN)]],
                   Field(max_length=32)]
_Metadata = dict[str, Any]
_Timestamp = str


class TitlePath(Body):
    title_id: Annotated[_TitleId, Field(description="Title id.")]


class VariantPath(TitlePath):
    variant_id: Annotated[str, Field(pattern=VARIANT_ID_PATTERN)]


class CandidatePath(TitlePath):
    candidate_id: Annotated[str, Field(pattern=CANDIDATE_ID_PATTERN)]


class ImagePath(Body):
    name: Annotated[str, Field(pattern=IMAGE_NAME_PATTERN)]


class PerformanceQuery(Query):
    """The window and the take rule of a performance report."""

    days: Annotated[int, Field(ge=1, le=366)] = 14
    confidence: Annotated[float, Field(ge=0.5, le=0.999)] = 0.95
    take_threshold: Annotated[float, Field(ge=-1e12, le=1e12, description="A joined reward "
                                           "above this is a take.")] = 0.0


class TitleUpdate(Body, extra="forbid"):
    """A title's fields to change; null leaves a field as it is."""

    name: text(ID_MAX_LENGTH) | None = None
    genres: _Genres | None = None
    metadata: _Metadata | None = None


class TitleCreate(TitleUpdate):
    """A new title; its name defaults to the id."""

    id: Annotated[str, Field(json_schema_extra={"pattern": ID_PATTERN})]

    @model_validator(mode="after")
    def _title_id(self) -> TitleCreate:
        # The id is the titleId of the title's URLs, and is refused as that.
        try:
            check_id(self.id, name="titleId")
        except InvalidInputError as exc:
            raise FieldError("titleId", str(exc)) from None
        return self


class Title(Body):
    id: str
    name: str
    genres: _Genres
    metadata: _Metadata
    created_at: _Timestamp
    variant_count: int
    active_variant_count: int


class TitleList(Body):
    titles: list[Title]


class ArtworkWarning(Body):
    code: str
    message: str


class Candidate(Body):
    """A trailer frame waiting for approval."""

    id: str
    title_id: str
    image_url: str
    content_hash: str
    media_type: str
    filename: str
    created_at: _Timestamp
    features: dict[str, dict[str, Any]]
    warnings: list[ArtworkWarning]
    details: dict[str, Any]


class Variant(Candidate):
    """An artwork variant of a title."""

    active: bool
    source: Literal["upload", "trailer"]
    near_duplicates: list[str]


class TitleDetail(Title):
    variants: list[Variant]
    candidates: list[Candidate]


class VariantList(Body):
    variants: list[Variant]


class VariantUpdate(Body, extra="forbid"):
    """Turn a variant on or off."""

    active: bool


class CandidateList(Body):
    candidates: list[Candidate]


class TrailerResult(Body):
    candidates: list[Candidate]
    frames: int
    shots: int
    fps: float


class DayCounts(Body):
    impressions: int
    joined: int
    takes: int
    share: float | None
    take_rate: float | None
    take_rate_low: float
    take_rate_high: float


class DailyCounts(DayCounts):
    day: str


class VariantPerformance(DayCounts):
    variant_id: str
    mean_reward: float | None
    daily: list[DailyCounts]


class Performance(Body):
    """Per-variant impressions, takes, take rate and share, per day."""

    title_id: str
    since: _Timestamp
    until: _Timestamp
    confidence: float
    days: list[str]
    impressions: int
    joined: int
    takes: int
    variants: list[VariantPerformance]


class Upload(Body, extra="forbid"):
    """A ``multipart/form-data`` body holding one ``file`` part."""

    file: bytes


_DONE = {204: Answer("Done.")}
_MULTIPART = "multipart/form-data"

#: The catalogue's routes by view name.
OPERATIONS = {
    "list_titles": Operation("List titles.", {200: Answer("Titles.", TitleList)}, errors=(400,)),
    "create_title": Operation("Create a title.", {201: Answer("Created.", Title)},
                              errors=(400, 409, 413, 415), request=TitleCreate),
    "get_title": Operation("A title with its variants and candidates.",
                           {200: Answer("The title.", TitleDetail)}, errors=(400, 404),
                           path=TitlePath),
    "update_title": Operation("Change a title's name, genres or metadata.",
                              {200: Answer("The title.", Title)}, errors=(400, 404, 413, 415),
                              request=TitleUpdate, path=TitlePath),
    "delete_title": Operation("Delete a title, its variants and candidates.", _DONE,
                              errors=(400, 404), path=TitlePath),
    "list_variants": Operation("A title's variants.", {200: Answer("Variants.", VariantList)},
                               errors=(400, 404), path=TitlePath),
    "upload_variant": Operation("Upload a poster variant (analysed by artwork/).",
                                {201: Answer("Created.", Variant)},
                                errors=(400, 404, 409, 413, 415), request=Upload,
                                request_media_type=_MULTIPART, path=TitlePath),
    "get_variant": Operation("One variant.", {200: Answer("The variant.", Variant)},
                             errors=(400, 404), path=VariantPath),
    "update_variant": Operation("Turn a variant on or off.",
                                {200: Answer("The variant.", Variant)},
                                errors=(400, 404, 413, 415), request=VariantUpdate,
                                path=VariantPath),
    "delete_variant": Operation("Delete a variant.", _DONE, errors=(400, 404),
                                path=VariantPath),
    "upload_trailer": Operation("Upload a trailer; its best frames become candidates.",
                                {201: Answer("Candidates mined.", TrailerResult)},
                                errors=(400, 404, 413, 415), request=Upload,
                                request_media_type=_MULTIPART, path=TitlePath),
    "list_candidates": Operation("Frame candidates waiting for approval.",
                                 {200: Answer("Candidates.", CandidateList)},
                                 errors=(400, 404), path=TitlePath),
    "approve_candidate": Operation("Approve a frame candidate as an active variant.",
                                   {201: Answer("The new variant.", Variant)},
                                   errors=(400, 404, 409), path=CandidatePath),
    "delete_candidate": Operation("Discard a frame candidate.", _DONE, errors=(400, 404),
                                  path=CandidatePath),
    "performance": Operation("Per-variant impressions, takes, take rate and share, per day.",
                             {200: Answer("The report.", Performance)}, errors=(400, 404),
                             path=TitlePath, query=PerformanceQuery),
    "image": Operation("An image by content hash (public).", {
        200: Answer("The image bytes.", bytes, tuple(sorted(set(MEDIA_TYPES.values())))),
        304: Answer("Not modified."),
        404: Answer("No such image.", Error)}, path=ImagePath),
}
