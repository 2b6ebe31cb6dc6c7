"""One call per image: every feature, the boxes, the hashes and the warnings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artwork._errors import ArtworkInputError
from artwork.detectors import (
    FACE_SEARCH_SIDE,
    PEOPLE_WINDOW_HEIGHT,
    Detectors,
    Face,
    Region,
    detect_people,
    faces_in,
    people_in,
    text_in_gray,
)
from artwork.features import (
    BLUR_THRESHOLD,
    Features,
    color_analysis,
    face_namespace,
    geometry_features,
    laplacian_variance,
    largest_face_centre,
    layout_namespace,
    noise_sigma,
    people_features,
    quality_namespace,
    text_features,
)
from artwork.identity import (
    FINGERPRINT_SIDE,
    Fingerprint,
    fingerprint_gray,
    is_near_duplicate,
)
from artwork.imageops import fit, fit_each, to_gray
from artwork.io import DEFAULT_MAX_PIXELS, LoadedImage, load_image

__all__ = ["WORK_SIDE", "Analysis", "ArtworkWarning", "analyze", "analyze_image",
           "near_duplicate_warnings"]

#: Longer side of the working copy that colour, composition and detectors see.
WORK_SIDE = 512


@dataclass(frozen=True, kw_only=True)
class ArtworkWarning:
    """A problem a marketer can act on.

    Attributes
    ----------
    code : str
        Stable identifier: ``too_dark``, ``too_bright``, ``low_contrast``,
        ``blurry``, ``no_face``, ``tiny_face``, ``text_too_small``,
        ``text_over_subject``, ``near_duplicate``, ``wrong_aspect``.
    message : str
        One sentence for a person.
    """

    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """Everything measured on one image.

    Attributes
    ----------
    width, height : int
        Pixels as displayed (after EXIF rotation).
    features : dict
        Namespaced features (see :meth:`to_namespaces`).
    faces : list of Face
        Largest first, boxes in original pixel coordinates.
    people, text : list of Region
        Boxes in original pixel coordinates.
    palette : list of ((r, g, b), share)
        Dominant colours, largest first.
    sharpness, noise, colorfulness : float
        The raw measures behind the scaled features (Laplacian variance,
        Immerkær sigma, Hasler-Süsstrunk M).
    fingerprint : Fingerprint
    content_hash : str
        SHA-256 of the bytes (or array) analysed: the storage key.
    warnings : list of ArtworkWarning
    notes : list of str
        What loading did (EXIF rotation, first GIF frame, CMYK...).
    """

    width: int
    height: int
    features: Features
    faces: list[Face]
    people: list[Region]
    text: list[Region]
    palette: list[tuple[tuple[int, int, int], float]]
    sharpness: float
    noise: float
    colorfulness: float
    fingerprint: Fingerprint
    content_hash: str
    warnings: list[ArtworkWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_namespaces(self) -> Features:
        """The action features of this artwork variant, namespaced for the learner.

        Returns
        -------
        dict
            ``{"Img": ..., "Color": ..., "Quality": ..., "Layout": ...,
            "Face": ..., "People": ..., "Text": ...}``; a fresh copy.
        """
        return {ns: dict(values) for ns, values in self.features.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (boxes as ``[x, y, w, h]``, hashes as hex)."""
        return {
            "width": self.width,
            "height": self.height,
            "faces": [list(face.box) for face in self.faces],
            "face_confidence": [round(face.confidence, 4) for face in self.faces],
            "people": [list(r.box) for r in self.people],
            "text": [list(r.box) for r in self.text],
            "palette": [{"rgb": list(rgb), "share": round(share, 4)}
                        for rgb, share in self.palette],
            "features": self.to_namespaces(),
            "hashes": self.fingerprint.to_dict(),
            "content_hash": self.content_hash,
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
            "notes": list(self.notes),
        }


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection area over the area of ``b``."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / max(1, b[2] * b[3])


def near_duplicate_warnings(
    fingerprint: Fingerprint, others: Mapping[str, Fingerprint]
) -> list[ArtworkWarning]:
    """One ``near_duplicate`` warning per artwork in ``others`` that ``fingerprint``
    nearly duplicates (:func:`artwork.is_near_duplicate`), named by its key.

    The check :func:`analyze_image` runs against ``variants``, for callers that
    compare artworks analysed apart (a batch of files, stored variants).

    Parameters
    ----------
    fingerprint : Fingerprint
    others : mapping of str to Fingerprint

    Returns
    -------
    list of ArtworkWarning
    """
    return [ArtworkWarning(code="near_duplicate", message=f"Near-duplicate of variant {name}.")
            for name, other in others.items() if is_near_duplicate(fingerprint, other)]


def _warnings(
    *,
    features: Features,
    faces: list[Face],
    text: list[Region],
    sharp: float,
    width: int,
    height: int,
    expected_aspect: float | None,
    expect_face: bool,
) -> list[ArtworkWarning]:
    color = features["Color"]
    out: list[ArtworkWarning] = []

    def add(code: str, message: str) -> None:
        out.append(ArtworkWarning(code=code, message=message))

    brightness, contrast = color["brightness"], color["contrast"]
    if brightness < 0.18:
        add("too_dark", f"The artwork is very dark (mean brightness {brightness:.0%}); "
            "it will vanish on a dark page.")
    elif brightness > 0.85:
        add("too_bright", f"The artwork is very bright (mean brightness {brightness:.0%}); "
            "details are washed out.")
    if contrast < 0.1:
        add("low_contrast", f"Low contrast (RMS {contrast:.2f}); the subject does not stand "
            "out at thumbnail size.")
    if sharp < BLUR_THRESHOLD:
        add("blurry", f"The image looks blurry (sharpness {sharp:.0f}, under "
            f"{BLUR_THRESHOLD:.0f}).")
    if expect_face and not faces:
        add("no_face", "No face found; artwork with a visible face usually draws more "
            "attention.")
    if faces and faces[0].box[3] / height < 0.08:
        add("tiny_face", f"The largest face is only {faces[0].box[3] / height:.0%} of the "
            "height; it will be a few pixels on a phone.")
    if text and min(r.box[3] for r in text) / height < 0.02:
        add("text_too_small", "Some text is under 2% of the height; it will be unreadable at "
            "thumbnail size.")
    if any(_overlap(r.box, face.box) > 0.1 for r in text for face in faces):
        add("text_over_subject", "Text covers a face.")
    if expected_aspect is not None:
        aspect = width / height
        if abs(np.log(aspect / expected_aspect)) > 0.03:
            add("wrong_aspect", f"Aspect ratio {aspect:.3f} ({width}x{height}) does not fit "
                f"the slot's {expected_aspect:.3f}; it will be cropped or padded.")
    return out


def analyze_image(
    loaded: LoadedImage,
    *,
    detectors: Detectors,
    expected_aspect: float | None = None,
    variants: Mapping[str, Fingerprint] | None = None,
    expect_face: bool = True,
    seed: int = 0,
) -> Analysis:
    """Analyse an image already loaded by :func:`artwork.load_image`.

    Parameters
    ----------
    loaded : LoadedImage
    detectors : Detectors
        From :func:`artwork.load_detectors`, built once per process.
    expected_aspect : float, optional
        Width / height of the slot the artwork is for (2/3 for a portrait
        poster, 16/9 for a billboard); a mismatch over 3% is warned about.
    variants : mapping of str to Fingerprint, optional
        Fingerprints of the title's other variants by id; near-duplicates
        are warned about.
    expect_face : bool, default=True
        Warn when no face is found.
    seed : int, default=0
        Seeds the palette's k-means.

    Returns
    -------
    Analysis
    """
    if not isinstance(detectors, Detectors):
        raise ArtworkInputError(
            "bad_argument",
            f"detectors must come from artwork.load_detectors(), got {type(detectors).__name__}",
        )
    if not isinstance(loaded, LoadedImage):
        raise ArtworkInputError(
            "bad_argument",
            f"loaded must be a LoadedImage from artwork.load_image, got {type(loaded).__name__}",
        )
    if expected_aspect is not None and (
        isinstance(expected_aspect, bool)
        or not isinstance(expected_aspect, int | float)
        or not 0 < expected_aspect < 100
    ):
        raise ArtworkInputError(
            "bad_argument",
            f"expected_aspect must be a width/height ratio > 0, got {expected_aspect!r}",
        )
    for name, other in (variants or {}).items():
        if not isinstance(other, Fingerprint):
            raise ArtworkInputError(
                "bad_argument",
                f"variants must map ids to Fingerprint, got {type(other).__name__} for {name!r}",
            )
    image = loaded.image
    height, width = image.shape[:2]
    # one greyscale conversion and three reduced copies feed every stage
    # (STYLE.md: no stage converts again): the full grey for verifying faces,
    # its 512-px copy for text and sharpness, its FACE_SEARCH_SIDE copy for
    # the face proposals and the fingerprint (reduced from the full grey, as
    # detect_faces does: small faces' recall moves with the resampling), a
    # 256-px colour copy for colour, layout and people
    gray_full = to_gray(image)
    (gray, scale), (face_gray, face_scale) = fit_each(gray_full, (WORK_SIDE, FACE_SEARCH_SIDE))
    small, small_scale = fit(image, 256)
    faces = faces_in(gray_full, face_gray, face_scale, detectors=detectors)
    people = (people_in(small, small_scale, image.shape, detectors=detectors)
              if min(small.shape[:2]) >= PEOPLE_WINDOW_HEIGHT
              else detect_people(image, detectors=detectors))
    text = text_in_gray(gray, scale, image.shape)

    features: Features = {}
    features.update(geometry_features(image))
    # the 256-px colour copy's greyscale and 128-px copy serve colour and layout
    small_gray, small_reduced = to_gray(small), fit(small, 128)[0]
    color, colorfulness_m, palette = color_analysis(small, n_colors=5, seed=seed,
                                                    gray=small_gray, reduced=small_reduced)
    features.update(color)
    sharp = laplacian_variance(gray)
    noise = noise_sigma(image, gray=gray_full)
    features.update(quality_namespace(sharp, noise))
    features.update(layout_namespace(small, detectors=detectors,
                                     subject=largest_face_centre(faces, image.shape),
                                     gray=small_gray, reduced=small_reduced))
    features.update(face_namespace(faces, image.shape))
    features.update(people_features(image, detectors=detectors, people=people))
    features.update(text_features(image, regions=text))

    # the face copy is the fingerprint's copy when their sides agree
    fp = fingerprint_gray(face_gray if FACE_SEARCH_SIDE == FINGERPRINT_SIDE else gray)
    return Analysis(
        width=width,
        height=height,
        features=features,
        faces=faces,
        people=people,
        text=text,
        palette=palette,
        sharpness=sharp,
        noise=noise,
        colorfulness=colorfulness_m,
        fingerprint=fp,
        content_hash=loaded.content_hash,
        warnings=_warnings(
            features=features, faces=faces, text=text, sharp=sharp, width=width,
            height=height, expected_aspect=expected_aspect, expect_face=expect_face,
        ) + near_duplicate_warnings(fp, variants or {}),
        notes=list(loaded.notes),
    )


def analyze(
    source: str | os.PathLike | bytes | np.ndarray,
    *,
    detectors: Detectors,
    expected_aspect: float | None = None,
    variants: Mapping[str, Fingerprint] | None = None,
    expect_face: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    seed: int = 0,
) -> Analysis:
    """Load and analyse one poster or frame: the call for files, uploads and arrays.

    Parameters
    ----------
    source : path, bytes or ndarray of shape (height, width, 3), dtype uint8
        A file, an upload's bytes, or an RGB array.
    detectors : Detectors
        From :func:`artwork.load_detectors`, built once per process.
    expected_aspect : float, optional
        Width / height of the slot (see :func:`analyze_image`).
    variants : mapping of str to Fingerprint, optional
        The title's other variants, for near-duplicate warnings.
    expect_face : bool, default=True
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Decompression-bomb guard, checked on the header before decoding.
    seed : int, default=0

    Returns
    -------
    Analysis

    Raises
    ------
    ArtworkInputError
        For any input that is not a decodable image within limits.

    Examples
    --------
    >>> detectors = load_detectors()                      # doctest: +SKIP
    >>> result = analyze(upload_bytes, detectors=detectors)  # doctest: +SKIP
    >>> result.to_namespaces()["Face"]["count_bucket"]      # doctest: +SKIP
    '1'
    """
    loaded = load_image(source, max_pixels=max_pixels)
    return analyze_image(
        loaded, detectors=detectors, expected_aspect=expected_aspect, variants=variants,
        expect_face=expect_face, seed=seed,
    )

