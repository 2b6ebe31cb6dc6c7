"""The artwork catalogue routes: titles, variants, trailer candidates, performance, images."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from banditkit.errors import InvalidInputError
from catalogue import ID_PATTERN, MEDIA_TYPES, VISUAL_TAGS, check_id
from catalogue.fields import GENRE_PATTERN
from catalogue.tags import LABEL_MAX_LENGTH, TAG_MAX_LENGTH, TAG_MAX_PER_FIELD, THEME_PATTERN
from serving.contract.common import Error
from serving.contract.fields import Body, Query, integer, text
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
    "Insights",
    "InsightsQuery",
    "OPERATIONS",
    "Performance",
    "PerformanceQuery",
    "SegmentInsight",
    "Title",
    "TitleCreate",
    "TitleDetail",
    "TitleList",
    "TitlePath",
    "TitleUpdate",
    "TagsUpdate",
    "ThemeList",
    "ThemesAdd",
    "TrailerResult",
    "Upload",
    "VARIANT_ID_PATTERN",
    "Variant",
    "VariantInsight",
    "VariantList",
    "VariantPath",
    "VariantPerformance",
    "VariantRevision",
    "VariantRevisionList",
    "VariantTags",
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
    recent_hours: Annotated[int, Field(ge=1, le=8784, description="The recent share counts "
                                       "the window's last hours.")] = 24


class InsightsQuery(Query):
    """The window, the take rule and the context feature of a breakdown."""

    feature: Annotated[str | None, Field(
        min_length=1, max_length=2 * ID_MAX_LENGTH + 1,
        description="Namespace.name of a context feature (Member.country); absent lists "
                    "the features only. One the title's decisions do not carry gets 400 "
                    "naming it and the available ones.")] = None
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
    label: str
    tags: VariantTags
    suggested_tags: Annotated[list[_VisualTag], Field(
        description="Visual tags the analysis suggests, pending a marketer's decision.")]
    revision: int


class TitleDetail(Title):
    variants: list[Variant]
    candidates: list[Candidate]


class VariantList(Body):
    variants: list[Variant]


_TagList = Annotated[list[text(TAG_MAX_LENGTH)], Field(max_length=TAG_MAX_PER_FIELD)]
_VisualTag = Literal[VISUAL_TAGS]  # type: ignore[valid-type]


class VariantTags(Body):
    """What a variant shows: its themes (from the catalogue's vocabulary), tone, cast
    or characters, setting and confirmed visual tags."""

    themes: list[str]
    tone: list[str]
    cast: list[str]
    setting: list[str]
    visual: list[_VisualTag]


class TagsUpdate(Body, extra="forbid"):
    """Tag fields to replace; a field left out or null is kept."""

    themes: Annotated[_TagList | None, Field(
        description="From GET /v1/catalogue/themes (case-insensitive); another is refused "
                    "with 400 naming it and the vocabulary.")] = None
    tone: _TagList | None = None
    cast: _TagList | None = None
    setting: _TagList | None = None
    visual: Annotated[list[_VisualTag], Field(max_length=len(VISUAL_TAGS))] | None = None


class VariantUpdate(Body, extra="forbid"):
    """A variant's fields to change (a new revision); null or absent leaves one as it is."""

    active: bool | None = None
    label: text(LABEL_MAX_LENGTH) | None = None
    tags: TagsUpdate | None = None
    suggested_tags: Annotated[list[_VisualTag] | None, Field(
        description="The pending suggestions to keep; leave one out to dismiss it.")] = None
    revision: Annotated[integer(1) | None, Field(
        description="The revision read; another gets 409 (changed meanwhile).")] = None


class VariantRevision(Body):
    """A variant's label, tags and active flag as one revision left them."""

    revision: int
    label: str
    tags: VariantTags
    active: bool
    changed_at: _Timestamp


class VariantRevisionList(Body):
    revisions: list[VariantRevision]


class ThemeList(Body):
    """The theme vocabulary of the catalogue."""

    themes: list[str]


class ThemesAdd(Body, extra="forbid"):
    """Themes to add to the vocabulary (those already in it are kept once)."""

    themes: Annotated[list[Annotated[str, Field(pattern=THEME_PATTERN)]],
                      Field(min_length=1, max_length=256)]


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
    recent_impressions: int
    recent_share: Annotated[float | None, Field(
        description="Share of the title's impressions since recentSince.")]


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
    recent_since: _Timestamp
    recent_impressions: int
    variants: list[VariantPerformance]


class VariantInsight(Body):
    """One variant within one segment."""

    variant_id: str
    impressions: Annotated[int, Field(description="Joined decisions of the segment that "
                                      "showed the variant.")]
    takes: int
    raw_take_rate: Annotated[float | None, Field(
        description="Takes / impressions: members' preference mixed with the policy's "
                    "choices.")]
    take_rate: Annotated[float | None, Field(
        description="Self-normalised inverse-propensity estimate of the take rate were "
                    "the variant always shown to the segment.")]
    take_rate_low: float
    take_rate_high: float
    effective_size: Annotated[float, Field(
        description="(sum of weights)^2 / sum of squared weights; the interval's n.")]


class SegmentInsight(Body):
    """The members with one value of the feature (a numeric one is split at its median)."""

    segment: str
    decisions: int
    variants: list[VariantInsight]


class Insights(Body):
    """Who likes which variant: propensity-weighted take rates per segment of a feature."""

    title_id: str
    feature: str | None
    features: Annotated[list[str], Field(
        description="The context features the title's joined decisions carry.")]
    since: _Timestamp
    confidence: float
    decisions: int
    segments: list[SegmentInsight]


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
    "update_variant": Operation("Change a variant's label, tags or active flag.",
                                {200: Answer("The variant.", Variant)},
                                errors=(400, 404, 409, 413, 415), request=VariantUpdate,
                                path=VariantPath),
    "variant_revisions": Operation("A variant's label, tags and active flag per revision.",
                                   {200: Answer("Revisions, oldest first.",
                                                VariantRevisionList)},
                                   errors=(400, 404), path=VariantPath),
    "list_themes": Operation("The theme vocabulary.", {200: Answer("Themes.", ThemeList)},
                             errors=(400,)),
    "add_themes": Operation("Add themes to the vocabulary (admin).",
                            {200: Answer("The vocabulary.", ThemeList)},
                            errors=(400, 413, 415), request=ThemesAdd),
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
    "insights": Operation("Each variant's propensity-weighted take rate per segment of a "
                          "context feature.",
                          {200: Answer("The breakdown.", Insights)}, errors=(400, 404),
                          path=TitlePath, query=InsightsQuery),
    "image": Operation("An image by content hash (public).", {
        200: Answer("The image bytes.", bytes, tuple(sorted(set(MEDIA_TYPES.values())))),
        304: Answer("Not modified."),
        404: Answer("No such image.", Error)}, path=ImagePath),
}
