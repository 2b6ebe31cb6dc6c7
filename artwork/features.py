"""Extractors: pure functions from an RGB ``uint8`` image to one namespace.

Each returns ``{"Namespace": {feature: value}}`` (docs/architecture.md §3): numbers are
numeric features scaled to about [0, 1], strings are categorical. Namespace
and feature names are the contract with the learner; renaming one is a
breaking change. Namespaces start with distinct letters (``I``, ``C``, ``Q``,
``L``, ``F``, ``P``, ``T``) because Vowpal Wabbit's ``-q`` interactions name
namespaces by their first character.
"""

from __future__ import annotations

import cv2
import numpy as np

from artwork._errors import ArtworkInputError
from artwork.detectors import Detectors, Face, Region
from artwork.imageops import fit, saliency, to_gray
from artwork.io import check_image

__all__ = [
    "BLUR_THRESHOLD",
    "CLOSEUP_HEIGHT",
    "COLOUR_NAMES",
    "NEUTRAL_WEIGHT",
    "Features",
    "color_features",
    "color_analysis",
    "colorfulness",
    "colour_names",
    "composition_features",
    "dominant_colour",
    "dominant_colors",
    "face_features",
    "face_namespace",
    "geometry_features",
    "laplacian_variance",
    "largest_face_centre",
    "layout_namespace",
    "noise_sigma",
    "people_features",
    "quality_features",
    "quality_namespace",
    "sharpness",
    "text_features",
]

Features = dict[str, dict[str, float | str]]

_THIRDS = np.array([(a, b) for a in (1 / 3, 2 / 3) for b in (1 / 3, 2 / 3)])
_THIRDS_MAX = float(np.hypot(1 / 3, 1 / 3))  # farthest any point is from its nearest third


def _count_bucket(n: int) -> str:
    return "3+" if n >= 3 else str(n)


def geometry_features(image: np.ndarray) -> Features:
    """Size and shape of the image as displayed (after EXIF rotation).

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8

    Returns
    -------
    dict
        ``{"Img": {"width", "height", "aspect", "orientation", "aspect_class"}}``:
        ``width``/``height`` in thousands of pixels, ``aspect`` = width /
        height, ``orientation`` in {portrait, landscape, square},
        ``aspect_class`` the nearest slot shape in {2:3, 3:4, 1:1, 4:3, 16:9,
        2:1, other}.
    """
    height, width = check_image(image).shape[:2]
    aspect = width / height
    if abs(aspect - 1.0) < 0.02:
        orientation = "square"
    else:
        orientation = "portrait" if aspect < 1 else "landscape"
    shapes = {"2:3": 2 / 3, "3:4": 3 / 4, "1:1": 1.0, "4:3": 4 / 3, "16:9": 16 / 9, "2:1": 2.0}
    name, ratio = min(shapes.items(), key=lambda kv: abs(np.log(aspect / kv[1])))
    aspect_class = name if abs(np.log(aspect / ratio)) < 0.05 else "other"
    return {
        "Img": {
            "width": width / 1000.0,
            "height": height / 1000.0,
            "aspect": float(aspect),
            "orientation": orientation,
            "aspect_class": aspect_class,
        }
    }


#: Colour names, neutral ones first; ``dominant_hue`` is one of these.
COLOUR_NAMES = ("black", "white", "grey", "red", "orange", "yellow", "green", "cyan", "blue",
                "purple", "pink")
# upper hue bound (degrees) of each chromatic name; hues from 340 wrap to red
_HUE_BOUNDS = np.array([15, 40, 70, 160, 200, 255, 290, 340])
_HUE_INDEX = np.array([3, 4, 5, 6, 7, 8, 9, 10, 3])
#: How much a neutral (black, white, grey) pixel counts towards the dominant colour,
#: relative to a fully saturated one: saturated colour draws the eye, so a red
#: costume on a grey set is what a person names.
NEUTRAL_WEIGHT = 1 / 3
# the rule of colour_names as lookup tables over OpenCV's HSV bytes, applied by
# cv2.LUT (numpy's fancy indexing costs several times more per pixel)
_UNIT = np.arange(256) / 255.0
_UNDER_FIFTH = (_UNIT < 0.2).astype(np.uint8)  # black under 20% value; neutral under 20% sat.
_HUE_NAME = np.zeros(256, np.uint8)  # OpenCV's hue stops at 179
_HUE_NAME[:180] = _HUE_INDEX[np.searchsorted(_HUE_BOUNDS, np.arange(180) * 2, side="right")]
_VALUE_NAME = np.where(_UNDER_FIFTH, 0, np.where(_UNIT > 0.8, 1, 2)).astype(np.uint8)
_SATURATION_VOTE = np.where(_UNDER_FIFTH, NEUTRAL_WEIGHT, _UNIT)


def _names_and_votes(hsv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`colour_names` as bytes, and each pixel's vote (:func:`dominant_colour`)."""
    hue, sat, val = cv2.split(np.ascontiguousarray(hsv.reshape(-1, 1, 3)))
    black = cv2.LUT(val, _UNDER_FIFTH)
    names = cv2.LUT(hue, _HUE_NAME)
    np.copyto(names, cv2.LUT(val, _VALUE_NAME),
              where=(cv2.LUT(sat, _UNDER_FIFTH) | black).view(bool))
    votes = cv2.LUT(sat, _SATURATION_VOTE)
    np.copyto(votes, NEUTRAL_WEIGHT, where=black.view(bool))
    return names.reshape(-1), votes.reshape(-1)


def colour_names(hsv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Name every pixel: neutral ones by lightness, the rest by hue sector.

    Parameters
    ----------
    hsv : ndarray of shape (..., 3), dtype uint8
        OpenCV HSV (hue 0-179, saturation and value 0-255).

    Returns
    -------
    names : ndarray of shape (n_pixels,)
        Indices into :data:`COLOUR_NAMES`: black under 20% value, white or
        grey under 20% saturation (white above 80% value), else the hue sector.
    saturation : ndarray of shape (n_pixels,)
        In [0, 1].
    """
    names, _ = _names_and_votes(hsv)
    return names.astype(np.int64), _UNIT[hsv.reshape(-1, 3)[:, 1]]


def dominant_colour(hsv: np.ndarray) -> tuple[str, float]:
    """The colour a person would name, and the share of pixels that have it.

    Each pixel votes for its name (:func:`colour_names`) with its saturation,
    a neutral pixel with :data:`NEUTRAL_WEIGHT`; the name with the most votes
    wins. A solid colour names itself; the astronaut's orange suit wins over
    the larger grey background.

    Parameters
    ----------
    hsv : ndarray of shape (..., 3), dtype uint8

    Returns
    -------
    name : str
        One of :data:`COLOUR_NAMES`.
    share : float
        Share of the pixels with that name, in [0, 1].
    """
    names, votes = _names_and_votes(hsv)
    votes = np.bincount(names, weights=votes, minlength=len(COLOUR_NAMES))
    best = int(np.argmax(votes))
    return COLOUR_NAMES[best], float(np.count_nonzero(names == best) / names.size)


def _kmeans(
    points: np.ndarray, k: int, rng: np.random.Generator, n_iter: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007).

    A few dozen lines of numpy: on 1,024 points scikit-learn's ``KMeans``
    spends ten times longer in validation and thread-pool set-up than in
    clustering.

    Parameters
    ----------
    points : ndarray of shape (n_points, n_dims)
    k : int
        At most the number of distinct points.
    rng : numpy.random.Generator

    Returns
    -------
    centers : ndarray of shape (k, n_dims)
    labels : ndarray of shape (n_points,)
    """
    n = len(points)
    columns = np.ascontiguousarray(points.T)

    def sq_dist(point: np.ndarray) -> np.ndarray:
        # |p - point|^2 column by column, summed in the order .sum(axis=1) uses
        out = (columns[0] - point[0]) ** 2
        for column, value in zip(columns[1:], point[1:], strict=True):
            out += (column - value) ** 2
        return out

    first = rng.integers(n)
    centers = [points[first]]
    dist = sq_dist(points[first])
    for _ in range(1, k):
        total = dist.sum()
        index = rng.choice(n, p=dist / total) if total > 0 else rng.integers(n)
        centers.append(points[index])
        np.minimum(dist, sq_dist(points[index]), out=dist)
    centers = np.array(centers)
    # |p|^2 repeated per centre: a broadcast (n, 1) operand costs more than the matmul
    sq = np.repeat(sq_dist(np.zeros(points.shape[1]))[:, None], k, axis=1)
    doubled = 2.0 * points
    labels = np.zeros(n, dtype=np.int64)
    d2 = np.empty((n, k))
    sums = np.empty_like(centers)
    for iteration in range(n_iter):
        # |p - c|^2 without the (n_points, k, n_dims) temporary; the |p|^2 term
        # does not change the argmin but keeps the distances non-negative
        np.subtract(sq, doubled @ centers.T, out=d2)
        d2 += (centers**2).sum(axis=1)
        new_labels = d2.argmin(axis=1)
        if iteration and (new_labels == labels).all():
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        for dim, column in enumerate(columns):
            sums[:, dim] = np.bincount(labels, weights=column, minlength=k)
        if counts.all():
            centers = sums / counts[:, None]
        else:
            filled = counts > 0
            centers[filled] = sums[filled] / counts[filled, None]
    return centers, labels


def dominant_colors(
    image: np.ndarray, *, n_colors: int = 5, seed: int = 0
) -> list[tuple[tuple[int, int, int], float]]:
    """A small palette by k-means in CIELAB on a 32 x 32 thumbnail.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    n_colors : int, default=5
        Number of clusters (fewer when the image has fewer distinct colours).
    seed : int, default=0
        Seeds the k-means++ initialisation.

    Returns
    -------
    list of ((r, g, b), share)
        Colours with their pixel shares, largest share first; shares sum to 1.
    """
    check_image(image)
    return _palette(fit(image, 128)[0], n_colors=n_colors, seed=seed)


def _palette(reduced: np.ndarray, *, n_colors: int, seed: int
             ) -> list[tuple[tuple[int, int, int], float]]:
    """:func:`dominant_colors` of an image already checked and reduced to at most 128
    pixels on its longer side."""
    if not isinstance(n_colors, int) or isinstance(n_colors, bool) or n_colors < 1:
        raise ArtworkInputError(
            "bad_argument", f"n_colors must be a positive int, got {n_colors!r}"
        )
    thumb = cv2.resize(reduced, (32, 32), interpolation=cv2.INTER_AREA)
    lab8 = cv2.cvtColor(thumb, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    packed = (lab8[:, 0].astype(np.int32) << 16) | (lab8[:, 1].astype(np.int32) << 8) | lab8[:, 2]
    k = min(n_colors, int(np.count_nonzero(np.diff(np.sort(packed)))) + 1)  # distinct colours
    centers, labels = _kmeans(lab8.astype(np.float64), k, np.random.default_rng(seed))
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    centers = np.clip(np.rint(centers), 0, 255).astype(np.uint8).reshape(1, -1, 3)
    rgb = cv2.cvtColor(centers, cv2.COLOR_LAB2RGB).reshape(-1, 3)
    order = np.argsort(-counts)
    total = counts.sum()
    return [(tuple(int(v) for v in rgb[i]), float(counts[i] / total)) for i in order]


def colorfulness(image: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness ``M`` on the 0-255 scale.

    .. math:: M = \\sqrt{\\sigma_{rg}^2 + \\sigma_{yb}^2}
              + 0.3 \\sqrt{\\mu_{rg}^2 + \\mu_{yb}^2},\\quad
              rg = R - G,\\ yb = (R + G) / 2 - B

    0 for greyscale; their scale calls 33 "moderately" and 82 "highly" colourful.

    References
    ----------
    D. Hasler and S. Süsstrunk. "Measuring colourfulness in natural images."
    Proc. SPIE 5007, Human Vision and Electronic Imaging VIII, 2003.
    """
    rgb = check_image(image).astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def color_features(image: np.ndarray, *, n_colors: int = 5, seed: int = 0) -> Features:
    """Colour and light of an artwork.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    n_colors : int, default=5
        Palette size (:func:`dominant_colors`), kept by :func:`artwork.analyze`.
    seed : int, default=0

    Returns
    -------
    dict
        ``{"Color": {...}}`` with ``brightness`` (mean Rec.601 luma),
        ``contrast`` (RMS contrast, the luma standard deviation),
        ``colorfulness`` (Hasler-Süsstrunk M / 150, clipped to 1),
        ``saturation`` (mean HSV saturation), ``warmth`` (0.5 + mean(R - B) / 2),
        ``black_clip`` / ``white_clip`` (shares of luma <= 5 and >= 250), all
        in [0, 1], plus categorical ``dominant_hue``, the colour a person
        would name (:func:`dominant_colour`), and numeric ``dominant_share``,
        the share of pixels of that colour.
    """
    namespace, _, _ = color_analysis(image, n_colors=n_colors, seed=seed)
    return namespace


def color_analysis(image: np.ndarray, *, n_colors: int, seed: int,
                   gray: np.ndarray | None = None, reduced: np.ndarray | None = None
                   ) -> tuple[Features, float, list[tuple[tuple[int, int, int], float]]]:
    """Colour namespace, raw colourfulness M and palette in one pass, so an analysis
    that reports all three reduces the image once.

    ``gray`` is the greyscale of ``image`` and ``reduced`` its copy at most 128
    pixels on its longer side (``fit(image, 128)``), when the caller has them;
    ``image`` is at most 256 pixels on its longer side when they are given.

    Returns
    -------
    namespace : dict
        As :func:`color_features`.
    colorfulness : float
        As :func:`colorfulness`.
    palette : list of (rgb, share)
        As :func:`dominant_colors`.
    """
    check_image(image)
    work, _ = fit(image, 256)
    luma = to_gray(work) if gray is None else gray
    mean_luma, std_luma = (float(v[0, 0]) for v in cv2.meanStdDev(luma))
    # cv2.meanStdDev's means are cv2.mean's, at a fraction of its cost on three channels
    red, _, blue = cv2.meanStdDev(work)[0].ravel()
    hsv = cv2.cvtColor(work, cv2.COLOR_RGB2HSV)
    palette = _palette(fit(work, 128)[0] if reduced is None else reduced, n_colors=n_colors,
                       seed=seed)
    hue, share = dominant_colour(hsv)
    m = colorfulness(work)
    levels = np.bincount(luma.reshape(-1), minlength=256) / luma.size
    namespace = {
        "Color": {
            "brightness": mean_luma / 255.0,
            "contrast": std_luma / 255.0,
            "colorfulness": float(min(1.0, m / 150.0)),
            "saturation": float(cv2.meanStdDev(hsv)[0][1, 0] / 255.0),
            "warmth": float(0.5 + (red - blue) / 255.0 / 2.0),
            "black_clip": float(levels[:6].sum()),
            "white_clip": float(levels[250:].sum()),
            "dominant_hue": hue,
            "dominant_share": share,
        }
    }
    return namespace, m, palette


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian on a copy whose longer side is 512 pixels.

    The rescale makes the value independent of resolution: the same poster
    at 600 or 3000 pixels wide scores about the same. Smaller images are
    measured as they are (not upscaled).

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8

    Returns
    -------
    float
        Non-negative; about 100 separates blurry from sharp (Pech-Pacheco
        et al. 2000).
    """
    work, _ = fit(check_image(image), 512)
    return laplacian_variance(to_gray(work))


def laplacian_variance(gray: np.ndarray) -> float:
    """:func:`sharpness` of a greyscale copy the caller already reduced."""
    # the Laplacian of bytes is a small integer: int16 holds it exactly in a quarter
    # of the memory, and numpy's variance widens it to float64 as it reads
    return float(cv2.Laplacian(gray, cv2.CV_16S, ksize=1).var())


_IMMERKAER_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def noise_sigma(image: np.ndarray, *, gray: np.ndarray | None = None) -> float:
    """Immerkær's (1996) fast noise estimate, sigma on the 0-255 scale.

    Measured on a native-resolution centre crop of at most 320 x 320 pixels
    (downscaling would average the noise away). ``gray`` is the greyscale of
    ``image`` when the caller has it.

    References
    ----------
    J. Immerkær. "Fast Noise Variance Estimation." Computer Vision and Image
    Understanding 64(2), 1996.
    """
    height, width = check_image(image).shape[:2]
    top, left = max(0, (height - 320) // 2), max(0, (width - 320) // 2)
    if gray is None:
        gray = to_gray(np.ascontiguousarray(image[top : top + 320, left : left + 320]))
    else:
        gray = gray[top : top + 320, left : left + 320]
    # the response of bytes is a small integer, exact in int16, and so is its L1 norm
    response = cv2.filter2D(gray, cv2.CV_16S, _IMMERKAER_KERNEL)[1:-1, 1:-1]
    h, w = gray.shape
    return float(np.sqrt(np.pi / 2.0) * cv2.norm(response, cv2.NORM_L1)
                 / (6.0 * (w - 2) * (h - 2)))


#: Variance of the Laplacian under which an image is flagged blurry.
BLUR_THRESHOLD = 100.0


def quality_features(image: np.ndarray) -> Features:
    """Sharpness, noise and a blur flag.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8

    Returns
    -------
    dict
        ``{"Quality": {"sharpness", "noise", "blurry"}}``: ``sharpness`` is
        ``log10(1 + var Laplacian) / 4`` clipped to [0, 1], ``noise`` is the
        Immerkær sigma / 25 clipped to [0, 1], ``blurry`` is "yes" or "no"
        (variance under ``BLUR_THRESHOLD``).
    """
    return quality_namespace(sharpness(image), noise_sigma(image))


def quality_namespace(sharp: float, noise: float) -> Features:
    """:func:`quality_features` from a measured Laplacian variance and noise sigma."""
    return {
        "Quality": {
            "sharpness": float(min(1.0, np.log10(1.0 + sharp) / 4.0)),
            "noise": float(min(1.0, noise / 25.0)),
            "blurry": "yes" if sharp < BLUR_THRESHOLD else "no",
        }
    }


def composition_features(
    image: np.ndarray, *, detectors: Detectors, faces: list[Face] | None = None
) -> Features:
    """Where the eye goes: saliency, thirds, symmetry, clutter, empty space.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    detectors : Detectors
        For the saliency model.
    faces : list of Face, optional
        Faces in ``image`` coordinates; the largest one is the subject for the
        rule-of-thirds score (else the saliency centre of mass).

    Returns
    -------
    dict
        ``{"Layout": {...}}`` all in [0, 1]: ``center_x``/``center_y`` (the
        saliency centre of mass), ``spread`` (its RMS distance / diagonal x 2),
        ``thirds`` (1 at a thirds point, 0 at a corner), ``symmetry_lr`` and
        ``symmetry_tb`` (1 - mean abs difference with the mirror image),
        ``edge_density`` (share of Canny edge pixels: clutter),
        ``negative_space`` (share of the frame far from any edge).
    """
    check_image(image)
    small, _ = fit(image, 256)
    return layout_namespace(small, detectors=detectors,
                            subject=largest_face_centre(faces, image.shape))


def largest_face_centre(faces: list[Face] | None,
                        shape: tuple[int, ...]) -> tuple[float, float] | None:
    """The centre of ``faces[0]`` (the largest) as fractions of the width and height of
    the image of ``shape``; None without faces."""
    if not faces:
        return None
    height, width = shape[:2]
    x, y, w, h = faces[0].box
    return ((x + w / 2) / width, (y + h / 2) / height)


def layout_namespace(
    small: np.ndarray, *, detectors: Detectors, subject: tuple[float, float] | None,
    gray: np.ndarray | None = None, reduced: np.ndarray | None = None,
) -> Features:
    """Layout namespace of a copy at most 256 pixels on its longer side.

    ``subject`` is the largest face's centre as fractions of the width and
    height (``None``: the saliency centre); ``gray`` is ``small``'s greyscale
    and ``reduced`` its copy at most 128 pixels on its longer side
    (``fit(small, 128)``), when the caller has them.
    """
    sal = saliency(small if reduced is None else reduced, detectors.saliency)
    mh, mw = sal.shape
    ys, xs = (np.arange(mh) + 0.5) / mh, (np.arange(mw) + 0.5) / mw
    cy, cx = float(sal.sum(axis=1) @ ys), float(sal.sum(axis=0) @ xs)
    dy2 = (ys - cy)[:, None] ** 2
    dx2 = (xs - cx)[None, :] ** 2
    spread = float(np.sqrt((sal * (dx2 + dy2)).sum()) / np.sqrt(2.0) * 2.0)
    point = np.array(subject if subject is not None else (cx, cy))
    nearest = float(np.min(np.hypot(*(_THIRDS - point).T)))
    thirds = max(0.0, 1.0 - nearest / _THIRDS_MAX)
    if gray is None:
        gray = to_gray(small)
    # mean absolute difference with each mirror image (exact integer sums)
    sym_lr, sym_tb = (1.0 - cv2.sumElems(cv2.absdiff(gray, cv2.flip(gray, axis)))[0]
                      / gray.size / 255.0 for axis in (1, 0))
    edges = cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 50, 150)
    near_edge = cv2.dilate(edges, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
    return {
        "Layout": {
            "center_x": cx,
            "center_y": cy,
            "spread": min(1.0, spread),
            "thirds": float(thirds),
            "symmetry_lr": sym_lr,
            "symmetry_tb": sym_tb,
            "edge_density": float((edges > 0).mean()),
            "negative_space": float((near_edge == 0).mean()),
        }
    }


def face_namespace(faces: list[Face], shape: tuple[int, ...]) -> Features:
    """:func:`face_features` of faces already detected in the image of ``shape``."""
    height, width = shape[:2]
    feats: dict[str, float | str] = {
        "count": float(len(faces)),
        "count_bucket": _count_bucket(len(faces)),
        "largest_share": 0.0,
        "largest_height": 0.0,
        "largest_x": 0.0,
        "largest_y": 0.0,
        "closeup": "no",
        "smile": "none",
    }
    if faces:
        x, y, w, h = faces[0].box
        feats.update(
            largest_share=w * h / (width * height),
            largest_height=h / height,
            largest_x=(x + w / 2) / width,
            largest_y=(y + h / 2) / height,
            closeup="yes" if h / height >= CLOSEUP_HEIGHT else "no",
        )
        smiles = [face.smile for face in faces if face.smile is not None]
        feats["smile"] = ("yes" if any(smiles) else "no") if smiles else "unknown"
    return {"Face": feats}


#: A face at least this share of the image height makes a close-up.
CLOSEUP_HEIGHT = 0.2


def face_features(
    image: np.ndarray, *, detectors: Detectors, faces: list[Face] | None = None
) -> Features:
    """Faces: how many, how big, where, close-up, smiling.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    detectors : Detectors
    faces : list of Face, optional
        Already detected in ``image`` (largest first); detected here otherwise.

    Returns
    -------
    dict
        ``{"Face": {...}}``: ``count``, ``count_bucket`` in {0, 1, 2, 3+},
        ``largest_share`` (box area / image area), ``largest_height`` (box
        height / image height), ``largest_x``/``largest_y`` (box centre in
        [0, 1], 0 when there is no face), ``closeup`` in {yes, no} (largest
        face at least ``CLOSEUP_HEIGHT`` of the height), ``smile`` in {yes,
        no, unknown, none}.
    """
    from artwork.detectors import detect_faces

    check_image(image)
    if faces is None:
        faces = detect_faces(image, detectors=detectors)
    return face_namespace(faces, image.shape)


def people_features(
    image: np.ndarray, *, detectors: Detectors, people: list[Region] | None = None
) -> Features:
    """Standing people found by HOG.

    Returns
    -------
    dict
        ``{"People": {"count", "count_bucket", "largest_share"}}``.
    """
    from artwork.detectors import detect_people

    check_image(image)
    if people is None:
        people = detect_people(image, detectors=detectors)
    height, width = image.shape[:2]
    largest = people[0].box[2] * people[0].box[3] / (width * height) if people else 0.0
    return {
        "People": {
            "count": float(len(people)),
            "count_bucket": _count_bucket(len(people)),
            "largest_share": float(largest),
        }
    }


def text_features(image: np.ndarray, *, regions: list[Region] | None = None) -> Features:
    """How much of the artwork is text, and where.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    regions : list of Region, optional
        Already found by :func:`artwork.detectors.detect_text`.

    Returns
    -------
    dict
        ``{"Text": {"share", "lines", "present", "position", "smallest_height"}}``:
        ``share`` is the area share of text lines (union, clipped to 1),
        ``lines`` the line count / 10 clipped to 1, ``present`` in {yes, no},
        ``position`` of the largest line in {top, middle, bottom, none},
        ``smallest_height`` the smallest line height / image height.
    """
    from artwork.detectors import detect_text

    check_image(image)
    if regions is None:
        regions = detect_text(image)
    height, width = image.shape[:2]
    mask = np.zeros((height // 4 + 1, width // 4 + 1), dtype=bool)
    for region in regions:
        x, y, w, h = region.box
        mask[y // 4 : (y + h) // 4 + 1, x // 4 : (x + w) // 4 + 1] = True
    position = "none"
    if regions:
        _, y, _, h = regions[0].box
        centre = (y + h / 2) / height
        position = "top" if centre < 1 / 3 else ("middle" if centre < 2 / 3 else "bottom")
    return {
        "Text": {
            "share": float(mask.mean()) if regions else 0.0,
            "lines": float(min(1.0, len(regions) / 10.0)),
            "present": "yes" if regions else "no",
            "position": position,
            "smallest_height": float(min(r.box[3] for r in regions) / height) if regions else 0.0,
        }
    }
