"""The artwork catalogue API: titles, poster variants, trailer frames, images, performance
and who likes which variant.

Marketers (role ``marketer``) create titles, upload poster variants as
``multipart/form-data``, mine candidate frames from a trailer and approve them,
turn variants on and off, and read each variant's performance and which
audience prefers it. Uploads are analysed by :mod:`artwork` (features, warnings,
near-duplicates) through :class:`catalogue.Curator`; the
:class:`catalogue.Catalogue` stores the results and the image bytes by content
hash, served back at
``/v1/artwork/images/<sha256>.<ext>``. The handlers only parse, call the
catalogue and serialise.

Image URLs are public (no key): ``<img>`` tags cannot send headers, and a
SHA-256 in the URL is not guessable. Everything else needs a key.

Config keys (``CATALOGUE_`` namespace)
--------------------------------------
CATALOGUE_MAX_UPLOAD_BYTES : int, default=20971520
    Largest poster upload (20 MiB); larger gets 413.
CATALOGUE_MAX_TRAILER_BYTES : int, default=209715200
    Largest trailer upload (200 MiB); larger gets 413.
CATALOGUE_MAX_PIXELS : int, default=artwork's DEFAULT_MAX_PIXELS
    Largest image (width x height), checked before decoding.
CATALOGUE_MAX_VARIANTS : int, default=50
    Most variants per title.
CATALOGUE_EXPECTED_ASPECT : float, default=0.6667
    Width / height of the artwork slot (2:3 poster); a title's
    ``metadata.expectedAspect`` overrides it. Mismatches are warned about.
CATALOGUE_TRAILER_FRAMES : int, default=8
    Candidate frames mined per trailer.
CATALOGUE_TRAILER_MAX_FRAMES : int, default=18000
    Frames decoded at most per trailer (12 minutes at 25 fps).
CATALOGUE_TRAILER_MAX_PIXELS : int, default=artwork's DEFAULT_MAX_VIDEO_PIXELS
    Largest trailer frame (width x height, 4096 x 2160), checked before decoding.
CATALOGUE_IMAGE_BASE_URL : str, default=""
    Prefix of image URLs (a CDN in front of the image route); empty gives
    root-relative URLs.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from flask import Blueprint, Flask, current_app, request, send_file
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

import artwork
from artwork.frames import DEFAULT_MAX_VIDEO_PIXELS
from artwork.io import DEFAULT_MAX_PIXELS
from banditkit.errors import InvalidInputError
from banditkit.eventlog import iso_timestamp
from catalogue import (
    Candidate,
    Catalogue,
    CatalogueConflictError,
    Curator,
    Title,
    TitleInsights,
    TitlePerformance,
    UnknownFeatureError,
    UnknownItemError,
    UnknownThemeError,
    Variant,
    VariantLimitError,
    VariantRevision,
    check_id,
    title_insights,
    title_performance,
)
from serving import openapi
from serving._parsing import json_body
from serving.auth import require_roles
from serving.config import get_config
from serving.contract.catalogue import (
    CANDIDATE_ID_PATTERN,
    IMAGE_NAME_PATTERN,
    OPERATIONS,
    VARIANT_ID_PATTERN,
    InsightsQuery,
    PerformanceQuery,
    ThemesAdd,
    TitleCreate,
    TitleUpdate,
    VariantUpdate,
)
from serving.contract.validation import validate
from serving.errors import ApiError, error_response
from serving.runtime import get_engine

__all__ = [
    "CATALOGUE_EXTENSION",
    "bp",
    "close",
    "get_catalogue",
    "get_detectors",
    "image_url",
    "init_app",
]

CATALOGUE_EXTENSION = "banditkit.catalogue"
_DETECTORS_EXTENSION = "banditkit.artwork_detectors"
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif",
               "image/webp": "webp", "image/bmp": "bmp", "image/tiff": "tiff"}
_IMAGE_NAME = re.compile(IMAGE_NAME_PATTERN)
_TOO_LARGE_CODES = {"too_large"}

bp = Blueprint("catalogue", __name__, url_prefix="/v1")


# --------------------------------------------------------------------------- plumbing


def get_catalogue(app: Flask | None = None) -> Catalogue:
    """The app's :class:`~catalogue.store.Catalogue`."""
    return (app or current_app).extensions[CATALOGUE_EXTENSION]


def get_detectors(app: Flask | None = None) -> artwork.Detectors:
    """The app's artwork detectors, built once on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    holder = app.extensions[_DETECTORS_EXTENSION]
    with holder["lock"]:
        if holder["detectors"] is None:
            holder["detectors"] = artwork.load_detectors()
        return holder["detectors"]


def _config(name: str) -> Any:
    return getattr(get_config(), f"catalogue_{name.lower()}")


def image_url(content_hash: str, media_type: str) -> str:
    """The URL an image is served at (``CATALOGUE_IMAGE_BASE_URL`` + the image route)."""
    base = str(_config("IMAGE_BASE_URL") or "").rstrip("/")
    return f"{base}/v1/artwork/images/{content_hash}.{_EXTENSIONS.get(media_type, 'bin')}"


def _title_id(value: str) -> str:
    try:
        return check_id(value, name="titleId")
    except InvalidInputError as exc:
        raise ApiError(str(exc), target="titleId") from None


_ITEM_PATTERNS = {"v": re.compile(VARIANT_ID_PATTERN), "c": re.compile(CANDIDATE_ID_PATTERN)}


def _item_id(value: str, *, prefix: str, name: str) -> str:
    if not _ITEM_PATTERNS[prefix].match(value):
        raise ApiError(f"{name} must look like {prefix}0123456789ab, got {value!r}.",
                       status=404, target=name)
    return value


def _curator() -> Curator:
    """A :class:`~catalogue.Curator` over the app's catalogue with this request's config."""
    return Curator(
        catalogue=get_catalogue(), detectors=get_detectors,
        max_pixels=_config("MAX_PIXELS") or DEFAULT_MAX_PIXELS,
        max_variants=_config("MAX_VARIANTS"),
        expected_aspect=_config("EXPECTED_ASPECT"),
        trailer_frames=_config("TRAILER_FRAMES"),
        trailer_max_frames=_config("TRAILER_MAX_FRAMES"),
        trailer_max_pixels=_config("TRAILER_MAX_PIXELS") or DEFAULT_MAX_VIDEO_PIXELS,
        scratch_dir=get_config().engine_data_dir / "tmp")


# --------------------------------------------------------------------------- uploads


def _read_upload(*, limit_key: str) -> tuple[bytes, str]:
    """The ``file`` part of a multipart upload, within ``CATALOGUE_<limit_key>`` bytes."""
    limit = _config(limit_key)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            f"The upload is {request.content_length:,} bytes, over the limit of {limit:,} "
            f"(CATALOGUE_{limit_key}).", status=413, target="file")
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            f"Content-Type must be multipart/form-data with a 'file' part, got "
            f"{request.content_type!r}.", status=415)
    request.max_content_length = limit  # also bounds chunked bodies
    try:
        upload = _file_part()
    except RequestEntityTooLarge:
        if request.content_length is not None:  # within the limit, checked above
            raise ApiError(
                f"The multipart body has a text field over {request.max_form_memory_size:,} "
                f"bytes or over {request.max_form_parts:,} parts; an upload holds only the "
                "'file' part.", status=413, target="file") from None
        raise ApiError(f"The upload is over the limit of {limit:,} bytes "
                       f"(CATALOGUE_{limit_key}).", status=413, target="file") from None
    filename = upload.filename or ""
    if ("/" in filename or "\\" in filename or "\x00" in filename
            or filename in (".", "..") or len(filename) > 255):
        raise ApiError(f"The file name must be a plain name without path separators "
                       f"(at most 255 characters), got {filename[:300]!r}.",
                       target="file.filename")
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(f"The file is over the limit of {limit:,} bytes "
                       f"(CATALOGUE_{limit_key}).", status=413, target="file")
    return data, filename


def _file_part() -> FileStorage:
    """The one file of a multipart body, in a part named ``file``; anything else is refused."""
    files = [name for name in request.files if name != "file"]
    fields = list(request.form)
    if "file" not in request.files:
        if "file" in request.form:
            raise ApiError("The 'file' part is a text field, not a file: its "
                           "Content-Disposition needs a filename (curl -F 'file=@poster.jpg').",
                           target="file")
        sent = f"; got parts {sorted({*files, *fields})}" if files or fields else (
            "; got no parts (is the multipart boundary right?)")
        raise ApiError(f"The multipart body needs a 'file' part holding the file{sent}.",
                       target="file")
    count = len(request.files.getlist("file"))
    if count > 1:
        raise ApiError(f"Send one file per upload; the body has {count} 'file' parts.",
                       target="file")
    if files or fields:
        raise ApiError(f"Unexpected multipart parts {sorted({*files, *fields})}: an upload "
                       "holds only the 'file' part.", target=sorted({*files, *fields})[0])
    return request.files["file"]


# --------------------------------------------------------------------------- JSON


def _iso(seconds: float) -> str:
    return iso_timestamp(seconds)


def title_json(title: Title, counts: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """A title as the API returns it."""
    return {"id": title.id, "name": title.name, "genres": list(title.genres),
            "metadata": title.metadata, "createdAt": _iso(title.created_at),
            "variantCount": int(counts[0]), "activeVariantCount": int(counts[1] or 0)}


def variant_json(variant: Variant) -> dict[str, Any]:
    """A variant as the API returns it."""
    return {"id": variant.id, "titleId": variant.title_id, "active": variant.active,
            "imageUrl": image_url(variant.content_hash, variant.media_type),
            "contentHash": variant.content_hash, "mediaType": variant.media_type,
            "filename": variant.filename, "source": variant.source,
            "createdAt": _iso(variant.created_at), "features": variant.features,
            "warnings": variant.warnings, "nearDuplicates": list(variant.near_duplicates),
            "details": variant.details, "label": variant.label, "tags": variant.tags.to_dict(),
            "suggestedTags": list(variant.suggested_tags), "revision": variant.revision}


def revision_json(revision: VariantRevision) -> dict[str, Any]:
    """One revision of a variant as the API returns it."""
    return {"revision": revision.revision, "label": revision.label,
            "tags": revision.tags.to_dict(), "active": revision.active,
            "changedAt": _iso(revision.changed_at)}


def candidate_json(candidate: Candidate) -> dict[str, Any]:
    """A trailer frame candidate as the API returns it."""
    return {"id": candidate.id, "titleId": candidate.title_id,
            "imageUrl": image_url(candidate.content_hash, candidate.media_type),
            "contentHash": candidate.content_hash, "mediaType": candidate.media_type,
            "filename": candidate.filename, "createdAt": _iso(candidate.created_at),
            "features": candidate.features, "warnings": candidate.warnings,
            "details": candidate.details}


def performance_json(report: TitlePerformance) -> dict[str, Any]:
    """A :class:`~catalogue.performance.TitlePerformance` as the API returns it."""
    return {
        "titleId": report.title_id, "since": _iso(report.since), "until": _iso(report.until),
        "confidence": report.confidence, "days": report.days,
        "impressions": report.impressions, "joined": report.joined, "takes": report.takes,
        "recentSince": _iso(report.recent_since), "recentImpressions": report.recent_impressions,
        "variants": [{
            "variantId": v.variant_id, "impressions": v.impressions, "joined": v.joined,
            "takes": v.takes, "share": v.share, "takeRate": v.take_rate,
            "takeRateLow": v.take_rate_low, "takeRateHigh": v.take_rate_high,
            "meanReward": v.mean_reward, "recentImpressions": v.recent_impressions,
            "recentShare": v.recent_share,
            "daily": [{"day": d.day, "impressions": d.impressions, "joined": d.joined,
                       "takes": d.takes, "share": d.share, "takeRate": d.take_rate,
                       "takeRateLow": d.take_rate_low, "takeRateHigh": d.take_rate_high}
                      for d in v.daily],
        } for v in report.variants],
    }


def insights_json(report: TitleInsights) -> dict[str, Any]:
    """A :class:`~catalogue.insights.TitleInsights` as the API returns it."""
    return {
        "titleId": report.title_id, "feature": report.feature, "features": report.features,
        "since": _iso(report.since), "confidence": report.confidence, "decisions": report.decisions,
        "segments": [{
            "segment": s.segment, "decisions": s.decisions,
            "variants": [{
                "variantId": v.variant_id, "impressions": v.impressions, "takes": v.takes,
                "rawTakeRate": v.raw_take_rate, "takeRate": v.take_rate,
                "takeRateLow": v.take_rate_low, "takeRateHigh": v.take_rate_high,
                "effectiveSize": v.effective_size,
            } for v in s.variants],
        } for s in report.segments],
    }


# --------------------------------------------------------------------------- titles


@bp.get("/catalogue/titles")
@require_roles("marketer")
def list_titles() -> dict[str, Any]:
    """Every title with its variant counts."""
    catalogue = get_catalogue()
    counts = catalogue.variant_counts()
    return {"titles": [title_json(t, counts.get(t.id, (0, 0))) for t in catalogue.titles()]}


@bp.post("/catalogue/titles")
@require_roles("marketer")
def create_title() -> tuple[dict[str, Any], int]:
    """Create a title: ``{"id", "name"?, "genres"?, "metadata"?}`` -> 201."""
    body = validate(TitleCreate, json_body())
    title = get_catalogue().create_title(body.id, **body.model_dump(exclude={"id"},
                                                                    exclude_none=True))
    return title_json(title), 201


@bp.get("/catalogue/titles/<titleId>")
@require_roles("marketer")
def get_title(titleId: str) -> dict[str, Any]:  # noqa: N803 - the URL's own spelling
    """One title with its variants and pending candidates."""
    catalogue = get_catalogue()
    title = catalogue.title(_title_id(titleId))
    variants = catalogue.variants(title.id)
    body = title_json(title, (len(variants), sum(v.active for v in variants)))
    body["variants"] = [variant_json(v) for v in variants]
    body["candidates"] = [candidate_json(c) for c in catalogue.candidates(title.id)]
    return body


@bp.patch("/catalogue/titles/<titleId>")
@require_roles("marketer")
def update_title(titleId: str) -> dict[str, Any]:  # noqa: N803
    """Change a title's name, genres or metadata."""
    title_id = _title_id(titleId)
    changes = validate(TitleUpdate, json_body()).model_dump(exclude_none=True)
    catalogue = get_catalogue()
    title = catalogue.update_title(title_id, **changes)
    return title_json(title, catalogue.variant_counts().get(title.id, (0, 0)))


@bp.delete("/catalogue/titles/<titleId>")
@require_roles("marketer")
def delete_title(titleId: str) -> tuple[str, int]:  # noqa: N803
    """Delete a title with its variants and candidates: 204."""
    get_catalogue().delete_title(_title_id(titleId))
    return "", 204


# --------------------------------------------------------------------------- variants


@bp.get("/catalogue/titles/<titleId>/variants")
@require_roles("marketer")
def list_variants(titleId: str) -> dict[str, Any]:  # noqa: N803
    """A title's variants, oldest first."""
    variants = get_catalogue().variants(_title_id(titleId))
    return {"variants": [variant_json(v) for v in variants]}


@bp.post("/catalogue/titles/<titleId>/variants")
@require_roles("marketer")
def upload_variant(titleId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """Upload a poster (multipart ``file``): analysed, stored, active; 201."""
    curator = _curator()
    title = curator.check_room(_title_id(titleId))
    data, filename = _read_upload(limit_key="MAX_UPLOAD_BYTES")
    return variant_json(curator.add_poster(title.id, data=data, filename=filename)), 201


@bp.get("/catalogue/titles/<titleId>/variants/<variantId>")
@require_roles("marketer")
def get_variant(titleId: str, variantId: str) -> dict[str, Any]:  # noqa: N803
    """One variant."""
    variant_id = _item_id(variantId, prefix="v", name="variantId")
    return variant_json(get_catalogue().variant(_title_id(titleId), variant_id))


@bp.patch("/catalogue/titles/<titleId>/variants/<variantId>")
@require_roles("marketer")
def update_variant(titleId: str, variantId: str) -> dict[str, Any]:  # noqa: N803
    """Change a variant's ``active`` flag, ``label``, ``tags`` or pending ``suggestedTags``."""
    title_id = _title_id(titleId)
    variant_id = _item_id(variantId, prefix="v", name="variantId")
    catalogue = get_catalogue()
    change = validate(VariantUpdate, json_body())
    tags = None if change.tags is None else change.tags.model_dump(exclude_none=True)
    return variant_json(catalogue.update_variant(
        title_id, variant_id, active=change.active, label=change.label, tags=tags,
        suggested_tags=change.suggested_tags, revision=change.revision))


@bp.get("/catalogue/titles/<titleId>/variants/<variantId>/revisions")
@require_roles("marketer", "analyst")
def variant_revisions(titleId: str, variantId: str) -> dict[str, Any]:  # noqa: N803
    """A variant's label, tags and active flag at each revision, oldest first."""
    variant_id = _item_id(variantId, prefix="v", name="variantId")
    revisions = get_catalogue().variant_revisions(_title_id(titleId), variant_id)
    return {"revisions": [revision_json(r) for r in revisions]}


@bp.delete("/catalogue/titles/<titleId>/variants/<variantId>")
@require_roles("marketer")
def delete_variant(titleId: str, variantId: str) -> tuple[str, int]:  # noqa: N803
    """Delete a variant: 204."""
    variant_id = _item_id(variantId, prefix="v", name="variantId")
    get_catalogue().delete_variant(_title_id(titleId), variant_id)
    return "", 204


# --------------------------------------------------------------------------- themes


@bp.get("/catalogue/themes")
@require_roles("marketer", "analyst")
def list_themes() -> dict[str, Any]:
    """The theme vocabulary that variants' ``tags.themes`` come from."""
    return {"themes": list(get_catalogue().themes())}


@bp.post("/catalogue/themes")
@require_roles("admin")
def add_themes() -> dict[str, Any]:
    """Extend the theme vocabulary (the catalogue owner's, so admin only)."""
    body = validate(ThemesAdd, json_body())
    return {"themes": list(get_catalogue().add_themes(body.themes))}


# --------------------------------------------------------------------------- trailers


@bp.post("/catalogue/titles/<titleId>/trailers")
@require_roles("marketer")
def upload_trailer(titleId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """Upload a trailer (multipart ``file``): its best frames become candidates; 201."""
    title = get_catalogue().title(_title_id(titleId))
    data, filename = _read_upload(limit_key="MAX_TRAILER_BYTES")
    result = _curator().mine_trailer(title.id, data=data, filename=filename)
    return {"candidates": [candidate_json(c) for c in result.candidates],
            "frames": result.frames, "shots": result.shots, "fps": result.fps}, 201


@bp.get("/catalogue/titles/<titleId>/candidates")
@require_roles("marketer")
def list_candidates(titleId: str) -> dict[str, Any]:  # noqa: N803
    """A title's frame candidates waiting for approval."""
    candidates = get_catalogue().candidates(_title_id(titleId))
    return {"candidates": [candidate_json(c) for c in candidates]}


@bp.post("/catalogue/titles/<titleId>/candidates/<candidateId>/approve")
@require_roles("marketer")
def approve_candidate(titleId: str, candidateId: str) -> tuple[dict[str, Any], int]:  # noqa: N803
    """Approve a frame candidate: it becomes an active variant; 201."""
    title_id = _title_id(titleId)
    candidate_id = _item_id(candidateId, prefix="c", name="candidateId")
    return variant_json(_curator().approve_candidate(title_id, candidate_id)), 201


@bp.delete("/catalogue/titles/<titleId>/candidates/<candidateId>")
@require_roles("marketer")
def delete_candidate(titleId: str, candidateId: str) -> tuple[str, int]:  # noqa: N803
    """Discard a frame candidate: 204."""
    candidate_id = _item_id(candidateId, prefix="c", name="candidateId")
    get_catalogue().delete_candidate(_title_id(titleId), candidate_id)
    return "", 204


# --------------------------------------------------------------------------- performance


@bp.get("/catalogue/titles/<titleId>/performance")
@require_roles("marketer", "analyst")
def performance(titleId: str) -> dict[str, Any]:  # noqa: N803
    """Impressions, takes, take rate (Wilson interval) and share per variant and day, and
    each variant's share of the last ``recentHours``."""
    catalogue = get_catalogue()
    title = catalogue.title(_title_id(titleId))
    query = validate(PerformanceQuery, request.args.to_dict())
    engine = get_engine()
    until = float(engine.clock())
    since = until - query.days * 86400.0
    report = title_performance(
        engine.store.events_since(since, tag=title.id), title_id=title.id, since=since,
        until=until, variant_ids=[v.id for v in catalogue.variants(title.id)],
        confidence=query.confidence, take_threshold=query.take_threshold,
        recent_since=until - query.recent_hours * 3600.0)
    return performance_json(report)


@bp.get("/catalogue/titles/<titleId>/insights")
@require_roles("marketer", "analyst")
def insights(titleId: str) -> dict[str, Any]:  # noqa: N803
    """Who likes which variant: each variant's propensity-weighted take rate per segment
    of a context feature, from the joined decisions of the last ``days``."""
    catalogue = get_catalogue()
    title = catalogue.title(_title_id(titleId))
    query = validate(InsightsQuery, request.args.to_dict())
    engine = get_engine()
    since = float(engine.clock()) - query.days * 86400.0
    try:
        report = title_insights(
            (joined for *_, joined in engine.store.events_since(
                since, tag=title.id, with_features=True) if joined is not None),
            title_id=title.id,
            feature=query.feature, since=since,
            variant_ids=[v.id for v in catalogue.variants(title.id)],
            confidence=query.confidence, take_threshold=query.take_threshold)
    except UnknownFeatureError as exc:
        raise ApiError(str(exc), target="feature") from None
    return insights_json(report)


# --------------------------------------------------------------------------- images


@bp.get("/artwork/images/<name>")
def image(name: str) -> Response:
    """An image by content hash (public, immutable)."""
    match = _IMAGE_NAME.match(name)
    if match is None:
        raise ApiError(f"Image names look like <sha256>.jpg, got {name[:100]!r}.", status=404,
                       target="name")
    try:
        path, media_type = get_catalogue().image(match.group(1))
    except UnknownItemError:
        raise ApiError(f"No image {name!r}.", status=404, target="name") from None
    if _EXTENSIONS.get(media_type) != match.group(2):
        raise ApiError(f"No image {name!r}; it is stored as {media_type}.", status=404,
                       target="name")
    response = send_file(path, mimetype=media_type, max_age=31536000, conditional=True,
                         etag=match.group(1))
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --------------------------------------------------------------------------- init


def _unknown_item(exc: UnknownItemError) -> Response:
    return error_response(404, str(exc))


def _unknown_theme(exc: UnknownThemeError) -> Response:
    return error_response(400, str(exc), target=exc.field)


def _conflict(exc: CatalogueConflictError) -> Response:
    return error_response(409, str(exc))


def _full_title(exc: VariantLimitError) -> Response:
    return error_response(409, f"Title {exc.title_id!r} already has {exc.limit} variants "
                               "(CATALOGUE_MAX_VARIANTS); delete one first.")


def _bad_artwork(exc: artwork.ArtworkInputError) -> Response:
    status = 413 if exc.code in _TOO_LARGE_CODES else 400
    return error_response(status, exc.message, target="file", code=exc.code)


def init_app(app: Flask) -> None:
    """Open the catalogue, register the routes and document them.

    Parameters
    ----------
    app : Flask
        The application; ``ENGINE_DATA_DIR`` names the data directory, and
        ``DATABASE_URL`` (when set) the PostgreSQL database every host shares.
    """
    config = get_config(app)
    catalogue = Catalogue.open(config.engine_data_dir, database_url=config.database_url,
                               clock=get_engine(app).clock)
    app.extensions[CATALOGUE_EXTENSION] = catalogue
    app.extensions[_DETECTORS_EXTENSION] = {"lock": threading.Lock(), "detectors": None}
    app.register_error_handler(UnknownItemError, _unknown_item)
    app.register_error_handler(CatalogueConflictError, _conflict)
    app.register_error_handler(UnknownThemeError, _unknown_theme)
    app.register_error_handler(VariantLimitError, _full_title)
    app.register_error_handler(artwork.ArtworkInputError, _bad_artwork)
    app.register_blueprint(bp)
    openapi.add_operations(app, bp, OPERATIONS, tag="catalogue")


def close(app: Flask) -> None:
    """Close the app's catalogue (idempotent)."""
    catalogue = app.extensions.pop(CATALOGUE_EXTENSION, None)
    if catalogue is not None:
        catalogue.close()
