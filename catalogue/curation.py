"""Curation: the steps that turn a poster or a trailer into catalogue entries.

A poster upload is loaded and decoded (:func:`artwork.load_image`), analysed
against the title's other variants (:func:`artwork.analyze_image`), its
features rounded, its near-duplicates found by fingerprint, and stored as an
active variant. A trailer is mined for its best frames
(:func:`artwork.mine_frames`), each stored as a candidate; approving a
candidate checks it against the title's variants again and makes it a variant.

:class:`Curator` runs these steps over one :class:`~catalogue.store.Catalogue`
for any caller (the HTTP API, a batch importer). Bad files raise
:class:`artwork.ArtworkInputError`; a title at its variant limit raises
:class:`VariantLimitError`; the store raises its own errors.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import artwork
from artwork.frames import DEFAULT_MAX_VIDEO_PIXELS
from artwork.io import DEFAULT_MAX_PIXELS
from catalogue.records import Candidate, CatalogueConflictError, Title, Variant
from catalogue.store import Catalogue
from catalogue.tags import VISUAL_TAGS

__all__ = [
    "MEDIA_TYPES",
    "Curator",
    "TrailerResult",
    "VariantLimitError",
    "suggest_visual_tags",
]

#: Media type of each image format :func:`artwork.load_image` decodes.
MEDIA_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png",
               "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp",
               "TIFF": "image/tiff"}


class VariantLimitError(CatalogueConflictError):
    """A title that already holds its most variants (``max_variants``).

    Attributes
    ----------
    title_id : str
    limit : int
    """

    def __init__(self, title_id: str, limit: int) -> None:
        super().__init__(f"title {title_id!r} already has {limit} variants (max_variants); "
                         "delete one first")
        self.title_id = title_id
        self.limit = limit


@dataclass(frozen=True)
class TrailerResult:
    """What mining a trailer added to the catalogue.

    Attributes
    ----------
    candidates : list of Candidate
        The stored frame candidates, best first.
    frames : int
        Frames decoded.
    shots : int
        Shots detected.
    fps : float
        The video's frame rate.
    """

    candidates: list[Candidate]
    frames: int
    shots: int
    fps: float


class Curator:
    """Runs the poster upload, trailer and approval steps against one catalogue.

    Parameters
    ----------
    catalogue : Catalogue
    detectors : artwork.Detectors or callable returning them
        A callable is called only when an analysis needs the detectors, so a
        caller can build them on first use.
    max_pixels : int, default=artwork.io.DEFAULT_MAX_PIXELS
        Largest image (width x height), checked before decoding.
    max_variants : int, default=50
        Most variants per title.
    expected_aspect : float or None, default=2/3
        Width / height of the artwork slot; a title's ``metadata.expectedAspect``
        overrides it. None checks no aspect.
    trailer_frames : int, default=8
        Candidate frames mined per trailer.
    trailer_max_frames : int, default=18000
        Frames decoded at most per trailer.
    trailer_max_pixels : int, default=artwork.frames.DEFAULT_MAX_VIDEO_PIXELS
        Largest trailer frame (width x height), checked before decoding.
    scratch_dir : Path, default=None
        Where a trailer is written while it is decoded; None is ``tmp/`` next
        to the catalogue's database.
    """

    def __init__(self, *, catalogue: Catalogue,
                 detectors: artwork.Detectors | Callable[[], artwork.Detectors],
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_variants: int = 50,
                 expected_aspect: float | None = 2 / 3, trailer_frames: int = 8,
                 trailer_max_frames: int = 18000,
                 trailer_max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
                 scratch_dir: Path | None = None) -> None:
        self.catalogue = catalogue
        self.detectors = detectors
        self.max_pixels = max_pixels
        self.max_variants = max_variants
        self.expected_aspect = expected_aspect
        self.trailer_frames = trailer_frames
        self.trailer_max_frames = trailer_max_frames
        self.trailer_max_pixels = trailer_max_pixels
        self.scratch_dir = scratch_dir

    def _detectors(self) -> artwork.Detectors:
        if isinstance(self.detectors, artwork.Detectors):
            return self.detectors
        return self.detectors()

    # -- posters ---------------------------------------------------------------

    def check_room(self, title_id: str) -> Title:
        """The title, when it may take one more variant.

        Raises
        ------
        UnknownItemError
            When the title does not exist.
        VariantLimitError
            When it already has ``max_variants`` variants.
        """
        title = self.catalogue.title(title_id)
        self._check_room(title.id)
        return title

    def _check_room(self, title_id: str) -> None:
        limit = int(self.max_variants)
        if self.catalogue.variant_counts().get(title_id, (0, 0))[0] >= limit:
            raise VariantLimitError(title_id, limit)

    def add_poster(self, title_id: str, *, data: bytes, filename: str = "") -> Variant:
        """Analyse a poster and add it to the title as an active variant.

        Parameters
        ----------
        title_id : str
        data : bytes
            The image file.
        filename : str, default=""
            Its name, for display.

        Returns
        -------
        Variant
            With the rounded features, the analysis's warnings and details, and
            links to the title's variants it looks like.

        Raises
        ------
        artwork.ArtworkInputError
            When the file is not an image artwork can analyse.
        UnknownItemError, VariantLimitError, CatalogueConflictError, InvalidInputError
        """
        title = self.check_room(title_id)
        loaded = artwork.load_image(data, max_pixels=int(self.max_pixels))
        others = {vid: _decode_fingerprint(fp)
                  for vid, fp in self.catalogue.fingerprints(title.id).items()}
        analysis = artwork.analyze_image(
            loaded, detectors=self._detectors(), expected_aspect=self._expected_aspect(title),
            variants=others, expect_face=bool(title.metadata.get("expectFace", True)))
        features = _features(analysis)
        return self.catalogue.add_variant(
            title.id, data=data, media_type=MEDIA_TYPES.get(loaded.format, "image/jpeg"),
            features=features, warnings=_warnings(analysis),
            suggested_tags=suggest_visual_tags(features),
            details=_details(analysis, format=loaded.format, sourceMode=loaded.source_mode),
            fingerprint=_encode_fingerprint(analysis.fingerprint),
            near_duplicates=_near_duplicates(analysis.fingerprint, others),
            filename=filename, source="upload")

    def _expected_aspect(self, title: Title) -> float | None:
        value = title.metadata.get("expectedAspect", self.expected_aspect)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and value > 0):
            return float(self.expected_aspect)  # type: ignore[arg-type]
        return float(value)

    # -- trailers --------------------------------------------------------------

    def mine_trailer(self, title_id: str, *, data: bytes, filename: str = "") -> TrailerResult:
        """Mine a trailer's best frames and add each as a candidate of the title.

        Parameters
        ----------
        title_id : str
        data : bytes
            The video file.
        filename : str, default=""
            Its name; candidates are named ``<stem>-<seconds>s.jpg``.

        Raises
        ------
        artwork.ArtworkInputError
            When the file is not a video artwork can decode (code
            ``"not_a_video"`` for a still image).
        UnknownItemError
        """
        title = self.catalogue.title(title_id)
        stem = Path(filename).stem or "trailer"
        scratch = self.scratch_dir if self.scratch_dir is not None else (
            self.catalogue.images.folder.parent / "tmp")
        scratch.mkdir(parents=True, exist_ok=True)
        # the suffix helps FFmpeg tell raw streams apart; the name is never a path
        suffix = Path(filename).suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
            suffix = ".video"
        handle, path = tempfile.mkstemp(dir=scratch, suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            mining = artwork.mine_frames(path, detectors=self._detectors(),
                                         top_k=int(self.trailer_frames),
                                         max_frames=int(self.trailer_max_frames),
                                         max_pixels=int(self.trailer_max_pixels),
                                         name=filename or "the upload")
        finally:
            os.unlink(path)
        if mining.n_frames < 2:  # FFmpeg opens a still image as a one-frame "video"
            raise artwork.ArtworkInputError(
                "not_a_video",
                f"{filename or 'the file'} decodes to {mining.n_frames} frame; a trailer "
                "is a video (upload a still image as a poster variant instead).")
        created = []
        for rank, frame in enumerate(mining.candidates, start=1):
            analysis = frame.analysis
            created.append(self.catalogue.add_candidate(
                title.id, data=_jpeg_bytes(frame.image), media_type="image/jpeg",
                features=_features(analysis), warnings=_warnings(analysis),
                details=_details(analysis, trailer=filename,
                                 timestamp=round(frame.timestamp, 3),
                                 frameIndex=frame.frame_index, shotIndex=frame.shot_index,
                                 score=round(frame.score, 4), rank=rank),
                fingerprint=_encode_fingerprint(analysis.fingerprint),
                filename=f"{stem}-{frame.timestamp:.2f}s.jpg"[:255]))
        return TrailerResult(candidates=created, frames=mining.n_frames,
                             shots=len(mining.shots), fps=mining.fps)

    def approve_candidate(self, title_id: str, candidate_id: str) -> Variant:
        """Make a candidate an active variant, linked to the variants it looks like.

        Its ``near_duplicate`` warnings are recomputed against the title's
        variants of now.

        Raises
        ------
        UnknownItemError, VariantLimitError, CatalogueConflictError
        """
        candidate = self.catalogue.candidate(title_id, candidate_id)
        fingerprints = self.catalogue.fingerprints(title_id)
        self._check_room(title_id)
        duplicates: list[str] = []
        if candidate.fingerprint is not None:
            fp = _decode_fingerprint(candidate.fingerprint)
            duplicates = _near_duplicates(fp, {vid: _decode_fingerprint(blob)
                                               for vid, blob in fingerprints.items()})
        warnings = [w for w in candidate.warnings if w.get("code") != "near_duplicate"]
        warnings += [{"code": "near_duplicate", "message": f"Near-duplicate of variant {vid}."}
                     for vid in duplicates]
        return self.catalogue.approve_candidate(
            title_id, candidate.id, near_duplicates=duplicates, warnings=warnings,
            suggested_tags=suggest_visual_tags(candidate.features))


def suggest_visual_tags(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The visual tags (:data:`catalogue.tags.VISUAL_TAGS`) an analysis suggests.

    Read from artwork's namespaces, so that a marketer confirms a tag instead
    of typing it: ``closeup`` (artwork's ``Face.closeup``), ``group`` (three
    people or faces or more), ``no-people`` (neither), ``dark`` / ``bright``
    (mean luma under 0.3 / over 0.65), ``warm`` / ``cool`` (``Color.warmth``
    over 0.55 / under 0.45, i.e. red over blue by a tenth of the range on
    average), ``text-heavy`` (text lines over 12% of the area, or 4 lines or
    more), ``minimal`` (over 60% negative space and under 4% edge pixels).
    A namespace the analysis did not give suggests nothing.

    Parameters
    ----------
    features : mapping
        Namespaced features as :meth:`artwork.Analysis.to_namespaces` gives them.

    Returns
    -------
    list of str
        In the order of ``VISUAL_TAGS``.
    """
    def value(namespace: str, name: str) -> Any:
        return features.get(namespace, {}).get(name)

    faces, people = value("Face", "count"), value("People", "count")
    brightness, warmth = value("Color", "brightness"), value("Color", "warmth")
    text_share, text_lines = value("Text", "share"), value("Text", "lines")
    space, edges = value("Layout", "negative_space"), value("Layout", "edge_density")
    rules = {
        "closeup": value("Face", "closeup") == "yes",
        "group": faces is not None and people is not None and max(faces, people) >= 3,
        "no-people": faces == 0 and people == 0,
        "dark": brightness is not None and brightness < 0.3,
        "bright": brightness is not None and brightness > 0.65,
        "warm": warmth is not None and warmth > 0.55,
        "cool": warmth is not None and warmth < 0.45,
        "text-heavy": text_share is not None and (text_share > 0.12 or text_lines >= 0.4),
        "minimal": space is not None and edges is not None and space > 0.6 and edges < 0.04,
    }
    return [tag for tag in VISUAL_TAGS if rules[tag]]


def _encode_fingerprint(fp: artwork.Fingerprint) -> bytes:
    header = json.dumps(fp.to_dict(), separators=(",", ":")).encode()
    return header + b"\n" + np.ascontiguousarray(fp.orb, dtype=np.uint8).tobytes()


def _decode_fingerprint(blob: bytes) -> artwork.Fingerprint:
    header, _, orb = bytes(blob).partition(b"\n")
    hashes = json.loads(header)
    descriptors = np.frombuffer(orb, dtype=np.uint8).reshape(-1, 32).copy()
    return artwork.Fingerprint(ahash=hashes["ahash"], dhash=hashes["dhash"],
                               phash=hashes["phash"], orb=descriptors)


def _features(analysis: artwork.Analysis) -> dict[str, dict[str, Any]]:
    """The analysis's namespaces with floats rounded to 4 decimals.

    Every rank call logs every candidate's features in the dsjson record, so
    ``0.0659`` instead of ``0.06585477941176471`` makes the log about a third
    smaller and ranking a page faster, well below any difference a learner uses.
    """
    return {namespace: {name: round(value, 4) if isinstance(value, float) else value
                        for name, value in values.items()}
            for namespace, values in analysis.to_namespaces().items()}


def _warnings(analysis: artwork.Analysis) -> list[dict[str, str]]:
    return [{"code": w.code, "message": w.message} for w in analysis.warnings]


def _details(analysis: artwork.Analysis, **extra: Any) -> dict[str, Any]:
    summary = analysis.to_dict()
    for key in ("features", "warnings", "content_hash"):
        summary.pop(key, None)
    summary["sharpness"] = round(float(analysis.sharpness), 3)
    summary["noise"] = round(float(analysis.noise), 3)
    summary["colorfulness"] = round(float(analysis.colorfulness), 3)
    summary.update(extra)
    return summary


def _near_duplicates(fp: artwork.Fingerprint, others: dict[str, artwork.Fingerprint]
                     ) -> list[str]:
    return [vid for vid, other in others.items() if artwork.is_near_duplicate(fp, other)]


def _jpeg_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=92)
    return out.getvalue()
