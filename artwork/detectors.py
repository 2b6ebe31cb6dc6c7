"""Detectors for faces, smiles, people, saliency and text regions.

The Haar cascades and the HOG people detector ship inside the
``opencv-contrib-python-headless`` wheel (``cv2.data.haarcascades``), the LBP
frontal-face cascade inside scikit-image (``skimage.data``); nothing is
downloaded. They are built once by :func:`load_detectors` and passed to every
function that needs them (STYLE.md: no globals). Faces are proposed by the
first stages of the fast LBP cascade, gated by the whole cascade and verified
by ``haarcascade_frontalface_alt2`` at a fixed face size; that combination
was chosen by measurement over single cascades and dlib's HOG detector
(docs/artwork.md, benchmarks/bench_artwork_faces.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from statistics import median  # numpy's median costs 15 us on a handful of values
from xml.etree import ElementTree

import cv2
import numpy as np
import skimage.data

from artwork._errors import ArtworkInputError
from artwork.imageops import Box, fit, saliency, scale_box, to_gray
from artwork.io import check_image

__all__ = [
    "FACE_MODELS",
    "LBP_STAGES",
    "PEOPLE_WINDOW_HEIGHT",
    "PROPOSAL_STEP",
    "PROPOSER_STAGES",
    "Detectors",
    "Face",
    "Region",
    "detect_faces",
    "detect_people",
    "detect_text",
    "faces_in",
    "lbp_face_cascade",
    "load_detectors",
    "people_in",
    "saliency_map",
    "text_in_gray",
]

#: Face cascades selectable by name; all ship in the OpenCV wheel.
FACE_MODELS = {
    "alt2": "haarcascade_frontalface_alt2.xml",
    "default": "haarcascade_frontalface_default.xml",
    "alt": "haarcascade_frontalface_alt.xml",
}

@dataclass(frozen=True, kw_only=True)
class Face:
    """One detected face.

    Attributes
    ----------
    box : tuple of 4 int
        ``(x, y, width, height)`` in the pixel coordinates of the image passed.
    confidence : float
        In (0, 1]: ``1 - exp(-n / FACE_VOTES)`` of the number ``n`` of
        verifying cascade windows merged into this box (more agreeing
        windows, surer face); at least 0.63 for a reported face.
    smile : bool or None
        Whether the smile cascade fired in the lower half of the face;
        ``None`` when the face is too small to tell (under 48 pixels wide in
        the image passed).
    """

    box: Box
    confidence: float
    smile: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Region:
    """A detected person or text region.

    Attributes
    ----------
    box : tuple of 4 int
        ``(x, y, width, height)`` in the pixel coordinates of the image passed.
    confidence : float
        Detector score mapped to [0, 1].
    """

    box: Box
    confidence: float


@dataclass(frozen=True, kw_only=True)
class Detectors:
    """The costly detectors, built once by :func:`load_detectors`.

    Attributes
    ----------
    face_proposer : cv2.CascadeClassifier
        The LBP frontal-face cascade cut to :data:`PROPOSER_STAGES` stages:
        cheap and permissive, proposes candidate faces.
    face_gate : cv2.CascadeClassifier or None
        The whole LBP cascade, searched finely around each proposal before
        the costlier verifier; None sends every proposal to the verifier.
    face : cv2.CascadeClassifier
        The Haar cascade that verifies each candidate.
    face_model : str
        Key of :data:`FACE_MODELS` used as the verifier.
    smile : cv2.CascadeClassifier or None
    people : cv2.HOGDescriptor or None
    saliency : cv2.saliency.StaticSaliencySpectralResidual
    """

    face_proposer: cv2.CascadeClassifier
    face_gate: cv2.CascadeClassifier | None
    face: cv2.CascadeClassifier
    face_model: str
    smile: cv2.CascadeClassifier | None
    people: cv2.HOGDescriptor | None
    saliency: object


def _cascade(filename: str) -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, filename)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # pragma: no cover - only with a broken OpenCV install
        raise RuntimeError(f"OpenCV could not load its bundled cascade {path!r}")
    return cascade


#: LBP stages a proposal must pass, of the cascade's 20: the last stages refuse
#: small faces (a face at 8% of a poster's height is about one window of the
#: proposal copy) that the verifier accepts; the many more windows the cut
#: cascade accepts on texture are refused by the gate (docs/artwork.md).
PROPOSER_STAGES = 15
#: Stages of the whole LBP cascade.
LBP_STAGES = 20


def lbp_face_cascade(stages: int = PROPOSER_STAGES) -> cv2.CascadeClassifier:
    """OpenCV's LBP frontal-face cascade as scikit-image ships it, cut to its first
    ``stages`` stages (of 20).

    The shipped XML spells its ``featureParams`` tag ``featuhreParams``, which
    OpenCV's loader rejects, so the text is corrected in memory and read from
    there.

    Parameters
    ----------
    stages : int, default=PROPOSER_STAGES
        How many of the cascade's :data:`LBP_STAGES` stages a window must pass.

    Returns
    -------
    cv2.CascadeClassifier
    """
    path = skimage.data.lbp_frontal_face_cascade_filename()
    with open(path, encoding="utf-8") as handle:
        root = ElementTree.fromstring(handle.read().replace("featuhreParams", "featureParams"))
    cascade_node = root.find("cascade")
    stage_list = cascade_node.find("stages")
    for stage in list(stage_list)[stages:]:
        stage_list.remove(stage)
    cascade_node.find("stageNum").text = str(len(stage_list))
    text = '<?xml version="1.0"?>\n' + ElementTree.tostring(root, encoding="unicode")
    storage = cv2.FileStorage(text, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY)
    cascade = cv2.CascadeClassifier()
    if not cascade.read(storage.getFirstTopLevelNode()):  # pragma: no cover - broken install
        raise RuntimeError(f"OpenCV could not read the LBP face cascade {path!r}")
    return cascade


def load_detectors(
    *, face_model: str = "alt2", smile: bool = True, people: bool = True
) -> Detectors:
    """Build the detectors once; pass the result to :func:`artwork.analyze`.

    Parameters
    ----------
    face_model : {"alt2", "default", "alt"}, default="alt2"
        Which bundled Haar frontal-face cascade verifies the LBP proposals.
    smile : bool, default=True
        Load the smile cascade.
    people : bool, default=True
        Load the HOG people (pedestrian) detector.

    Returns
    -------
    Detectors
    """
    if face_model not in FACE_MODELS:
        raise ArtworkInputError(
            "bad_argument",
            f"face_model must be one of {sorted(FACE_MODELS)}, got {face_model!r}",
        )
    hog = None
    if people:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return Detectors(
        face_proposer=lbp_face_cascade(PROPOSER_STAGES),
        face_gate=lbp_face_cascade(LBP_STAGES),
        face=_cascade(FACE_MODELS[face_model]),
        face_model=face_model,
        smile=_cascade("haarcascade_smile.xml") if smile else None,
        people=hog,
        saliency=cv2.saliency.StaticSaliencySpectralResidual_create(),
    )


def _smiles(gray: np.ndarray, box: Box, cascade: cv2.CascadeClassifier) -> bool | None:
    """Whether the smile cascade fires in the lower half of the face ``box`` of the
    greyscale ``gray``; None when the face is under 48 pixels wide."""
    x, y, w, h = box
    if w < 48:
        return None
    mouth = gray[y + h // 2 : y + h, x : x + w]
    mouth = cv2.resize(mouth, (96, max(1, round(96 * mouth.shape[0] / max(1, mouth.shape[1])))))
    mouth = cv2.equalizeHist(mouth)
    found = cascade.detectMultiScale(mouth, scaleFactor=1.1, minNeighbors=18, minSize=(24, 12))
    return len(found) > 0


#: Longer side of the copy the LBP cascade searches for face proposals.
FACE_SEARCH_SIDE = 384
#: Proposal pyramid step: coarse, since verification searches again finely.
PROPOSAL_STEP = 1.3
#: A proposal is cut out with this margin (share of its side) on each side and
#: scaled so that its face is ``_VERIFY_SIDE`` pixels, where the verifier runs
#: over faces ``_VERIFY_RANGE`` times that size.
_VERIFY_MARGIN = 0.5
_VERIFY_SIDE = 48
_VERIFY_RANGE = (0.7, 1.5)
#: Verifying windows (pyramid step 1.1) a face needs: a false face where a pasted
#: photograph's edge meets a flag got 10 (docs/artwork.md).
FACE_VOTES = 11
#: A verification with at most this many windows saw no face-like region: the
#: proposals its search covered are not verified again (skipping those of any
#: refused verification loses faces another crop would have found).
_EMPTY_VOTES = 2


def detect_faces(
    image: np.ndarray, *, detectors: Detectors, max_side: int = FACE_SEARCH_SIDE,
    min_size: int = 24, step: float = PROPOSAL_STEP,
) -> list[Face]:
    """Frontal faces, largest first, in the pixel coordinates of ``image``.

    The LBP cascade's first :data:`PROPOSER_STAGES` stages propose every
    window they accept (no grouping) on a reduced copy; the whole LBP cascade
    must accept a window on a proposal when it searches around it on a fine
    grid (the gate); each proposal that passes is cut out of the greyscale
    with context, scaled so the face is 48 pixels, and kept when the Haar
    cascade accepts at least :data:`FACE_VOTES` windows there. A cheap,
    permissive proposer keeps the recall of small faces; the gate and the
    verifier at a fixed scale remove its false alarms (docs/artwork.md).

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    detectors : Detectors
        From :func:`load_detectors`.
    max_side : int, default=FACE_SEARCH_SIDE
        The proposals are searched on a copy whose longer side is at most
        this, so cost does not grow with resolution.
    min_size : int, default=24
        Smallest face side searched, in pixels of that copy (24 is the LBP
        cascade's window): 6.25% of the longer side at 384.
    step : float, default=PROPOSAL_STEP
        The proposals' pyramid step.

    Returns
    -------
    list of Face
    """
    check_image(image)
    gray = to_gray(image)
    work, scale = fit(gray, max_side)
    return faces_in(gray, work, scale, detectors=detectors, min_size=min_size, step=step)


def faces_in(
    gray: np.ndarray,
    work: np.ndarray,
    scale: float,
    *,
    detectors: Detectors,
    min_size: int = 24,
    step: float = PROPOSAL_STEP,
) -> list[Face]:
    """Faces of the greyscale image ``gray`` proposed on ``work`` (its copy at
    ``scale``) and verified on ``gray`` itself, largest first, boxes in ``gray``'s
    pixels."""
    raw = detectors.face_proposer.detectMultiScale(
        work, scaleFactor=step, minNeighbors=0, minSize=(min_size, min_size))
    levels = [(gray, 1.0), (work, scale)]
    boxes = [scale_box(rect, scale, gray.shape) for rect in raw]
    # every window is a proposal (merging them averages a small face's lone
    # window away), the best supported first, so that a face is verified
    # once and the windows on it are skipped; the gate must accept a window
    # on the proposal (IoU over 0.5)
    support = (_iou_matrix(np.asarray(boxes, np.float64).reshape(-1, 4)) > 0.3).sum(axis=1)
    faces: list[Face] = []
    gated: list[tuple[Box, list]] = []  # proposals gated and the windows found there
    empty: list[Box] = []  # proposals whose verification found no face-like region
    for index in np.argsort(-support, kind="stable").tolist():
        box = boxes[index]
        if any(_iou(box, face.box) > 0.3 or _centre_inside(box, face.box) for face in faces):
            continue
        if detectors.face_gate is not None:
            # a proposal within a search already made reads its windows
            windows = next((found for other, found in gated
                            if _searched(box, other, _GATE_RANGE)), None)
            if windows is None:
                windows = _gate_windows(levels, box, detectors.face_gate)
                gated.append((box, windows))
            if not any(_iou(box, window) > 0.5 for window in windows):
                continue
        # a proposal within a verification that found (almost) no face window
        # was searched there already; one near a refused face-like region is
        # verified again, since another crop may cut the face better
        if any(_searched(box, other, _VERIFY_RANGE) for other in empty):
            continue
        found, votes = _verify(levels, box, detectors.face)
        if found is None:
            if votes <= _EMPTY_VOTES:
                empty.append(box)
            continue
        if any(_iou(found, face.box) > 0.3 for face in faces):
            continue
        smile = None if detectors.smile is None else _smiles(gray, found, detectors.smile)
        faces.append(Face(box=found, confidence=float(1.0 - np.exp(-votes / FACE_VOTES)),
                          smile=smile))
    faces.sort(key=lambda face: face.box[2] * face.box[3], reverse=True)
    return faces


def _iou(a: Box, b: Box) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """IoU of every pair of ``boxes`` (shape (n, 4), ``x, y, w, h``), shape (n, n)."""
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    width = np.clip(np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0), 0, None)
    height = np.clip(np.minimum(y1[:, None], y1) - np.maximum(y0[:, None], y0), 0, None)
    inter = width * height
    area = boxes[:, 2] * boxes[:, 3]
    return inter / (area[:, None] + area - inter)


def _centre_inside(box: Box, face: Box) -> bool:
    """Whether the centre of ``box`` lies in ``face`` (no face inside a face)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return face[0] <= cx <= face[0] + face[2] and face[1] <= cy <= face[1] + face[3]


def _searched(box: Box, refused: Box, size_range: tuple[float, float]) -> bool:
    """Whether a search around the proposal ``refused`` (its ``_VERIFY_MARGIN`` of
    context, faces ``size_range`` times its side) covered ``box``: it lies in that
    region and its side, give or take 10%, in that range."""
    x, y, w, h = box
    rx, ry, rw, rh = refused
    margin = _VERIFY_MARGIN * rw
    low, high = size_range
    return (low / 0.9 <= w / rw <= high / 1.1
            and x >= rx - margin and y >= ry - margin
            and x + w <= rx + rw + margin and y + h <= ry + rh + margin)


#: A greyscale image and the scale of its pixels to the full image's.
_Level = tuple[np.ndarray, float]


def _around(levels: list[_Level], box: Box, face_side: int
            ) -> tuple[np.ndarray, float, float, float]:
    """``box`` (full-image pixels) with ``_VERIFY_MARGIN`` of context, scaled so the
    box is ``face_side`` pixels, cut from the smallest of ``levels`` (finest first)
    that holds it at that size or more; returns the crop, its pixels per full-image
    pixel and its origin in full-image pixels."""
    image, scale = levels[0]
    for level in levels[1:]:
        if box[2] * level[1] >= face_side:
            image, scale = level
    height, width = image.shape[:2]
    x, y, w, h = (v * scale for v in box)
    margin = _VERIFY_MARGIN * w
    x0, y0 = max(0, round(x - margin)), max(0, round(y - margin))
    x1, y1 = min(width, round(x + w + margin)), min(height, round(y + h + margin))
    k = face_side / w
    size = (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k)))
    crop = cv2.resize(image[y0:y1, x0:x1], size,
                      interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    return crop, k * scale, x0 / scale, y0 / scale


#: The gate searches the proposal scaled to ``_GATE_SIDE`` pixels (the LBP window
#: is 24) at pyramid step ``_GATE_STEP`` over faces ``_GATE_RANGE`` times that size.
_GATE_SIDE = 28
_GATE_RANGE = (0.8, 1.3)
_GATE_STEP = 1.1


def _gate_windows(levels: list[_Level], box: Box, cascade: cv2.CascadeClassifier
                  ) -> list[tuple[float, float, float, float]]:
    """The windows the whole LBP cascade accepts around the proposal ``box`` on a fine
    grid (pyramid step ``_GATE_STEP``, faces ``_GATE_RANGE`` times its side), in full-image
    pixels. The coarse proposal grid misses small faces that the whole cascade
    accepts a few pixels or a few percent of scale away, while most windows the
    cut cascade accepts on texture get none on them (docs/artwork.md)."""
    crop, k, x0, y0 = _around(levels, box, _GATE_SIDE)
    low, high = (round(r * _GATE_SIDE) for r in _GATE_RANGE)
    found = cascade.detectMultiScale(crop, scaleFactor=_GATE_STEP, minNeighbors=0,
                                     minSize=(low, low), maxSize=(high, high))
    return [(x0 + fx / k, y0 + fy / k, fw / k, fh / k) for fx, fy, fw, fh in found]


def _verify(levels: list[_Level], box: Box, cascade: cv2.CascadeClassifier
            ) -> tuple[Box | None, int]:
    """The verifier's face box near a proposal, in full-image pixels, and its votes;
    no box when it finds fewer than :data:`FACE_VOTES` windows."""
    crop, k, x0, y0 = _around(levels, box, _VERIFY_SIDE)
    low, high = (round(r * _VERIFY_SIDE) for r in _VERIFY_RANGE)
    found, votes = cascade.detectMultiScale2(
        cv2.equalizeHist(crop), scaleFactor=1.1, minNeighbors=1,
        minSize=(low, low), maxSize=(high, high))
    if len(found) == 0:
        return None, 0
    best = int(np.argmax(votes))
    if votes[best] < FACE_VOTES:
        return None, int(votes[best])
    fx, fy, fw, fh = found[best]
    found_box = (x0 + fx / k, y0 + fy / k, fw / k, fh / k)
    return scale_box(found_box, 1.0, levels[0][0].shape), int(votes[best])


#: Height of the HOG people window: a person shorter than this in the searched copy
#: is not found.
PEOPLE_WINDOW_HEIGHT = 128
#: HOG pyramid step.
_PEOPLE_STEP = 1.2


def detect_people(
    image: np.ndarray, *, detectors: Detectors, max_side: int = 256
) -> list[Region]:
    """Standing people (HOG + linear SVM, Dalal & Triggs 2005), largest first.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    detectors : Detectors
        With ``people`` loaded; otherwise the result is empty.
    max_side : int, default=256
        Search copy's longer side; a person must be at least 128 px tall in it,
        so half the longer side (posters show people large).

    Returns
    -------
    list of Region
        Boxes in the pixel coordinates of ``image``.
    """
    check_image(image)
    work, scale = fit(image, max_side)
    if min(work.shape[:2]) < PEOPLE_WINDOW_HEIGHT:
        work, scale = fit(image, max_side * 2)
    return people_in(work, scale, image.shape, detectors=detectors)


def people_in(
    work: np.ndarray, scale: float, shape: tuple[int, ...], *, detectors: Detectors
) -> list[Region]:
    """People found in ``work`` (an RGB copy at ``scale`` of an image of ``shape``),
    largest first, boxes in that image's pixels."""
    if detectors.people is None or min(work.shape[:2]) < PEOPLE_WINDOW_HEIGHT:
        return []
    boxes, weights = detectors.people.detectMultiScale(
        work, winStride=(8, 8), padding=(8, 8), scale=_PEOPLE_STEP
    )
    if len(boxes) == 0:
        return []
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    keep = cv2.dnn.NMSBoxes([list(map(int, b)) for b in boxes], weights.tolist(), 0.5, 0.4)
    regions = [
        Region(
            box=scale_box(boxes[i], scale, shape),
            confidence=float(1.0 / (1.0 + np.exp(-weights[i]))),
        )
        for i in np.asarray(keep).reshape(-1)
    ]
    regions.sort(key=lambda r: r.box[2] * r.box[3], reverse=True)
    return regions


def saliency_map(image: np.ndarray, *, detectors: Detectors, size: int = 128) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang 2007), summing to 1.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    detectors : Detectors
    size : int, default=128
        Longer side of the map.

    Returns
    -------
    ndarray of shape (map_height, map_width), dtype float64
        Non-negative, sums to 1 (uniform when the image is flat).
    """
    check_image(image)
    return saliency(image, detectors.saliency, size=size)


def _glyph_boxes(gray: np.ndarray) -> np.ndarray:
    """Letter-shaped MSER boxes ``(x, y, w, h)``, duplicates and nested ones removed."""
    height = gray.shape[0]
    mser = cv2.MSER_create(delta=5, min_area=20, max_area=max(400, int(0.02 * gray.size)))
    _, found = mser.detectRegions(gray)
    if len(found) == 0:
        return np.zeros((0, 4), np.int64)
    # distinct boxes in (x, y, w, h) order (np.unique's, without its row views)
    boxes = np.asarray(found, np.int64).reshape(-1, 4)
    boxes = boxes[np.lexsort(boxes.T[::-1])]
    boxes = boxes[np.r_[True, (np.diff(boxes, axis=0) != 0).any(axis=1)]]
    x, y, w, h = boxes.T
    keep = (h >= 6) & (h <= 0.3 * height) & (w >= 0.1 * h) & (w <= 1.6 * h)
    boxes = boxes[keep]
    if len(boxes) == 0:
        return boxes
    # MSER nests regions: a letter's counter or the same letter at several
    # thresholds inside it (keep the outer box), and letters inside a blob
    # that merged them with the background (keep the letters, drop the blob)
    # int16 (when it holds the coordinates) halves the (n, n) work of int32
    dtype = np.int16 if max(gray.shape) < np.iinfo(np.int16).max - 1 else np.int32
    x, y, w, h = boxes.astype(dtype).T
    x1, y1, area = x + w, y + h, w.astype(np.int32) * h
    inside = x[:, None] >= x - 1  # [i, j]: box i lies inside box j
    inside &= y[:, None] >= y - 1
    inside &= x1[:, None] <= x1 + 1
    inside &= y1[:, None] <= y1 + 1
    inside &= area[:, None] < area
    inner, outer = np.divmod(np.flatnonzero(inside), len(boxes))  # the few nested pairs
    # two inner boxes side by side (one ends before the other starts): letters
    # in a blob; per box j, its inner boxes' first right edge and last left edge
    first_end = np.full(len(boxes), np.iinfo(dtype).max, dtype)
    np.minimum.at(first_end, outer, x1[inner])
    last_start = np.full(len(boxes), np.iinfo(dtype).min, dtype)
    np.maximum.at(last_start, outer, x[inner])
    kept = first_end > last_start
    # of the kept boxes, those inside no other kept box
    contained = np.zeros(len(boxes), bool)
    contained[inner[kept[outer]]] = True
    return boxes[kept & ~contained]


def detect_text(image: np.ndarray, *, max_side: int = 512) -> list[Region]:
    """Text lines (title treatments, taglines, credits) found as rows of letters.

    Letters are maximally stable extremal regions (MSER, Matas et al. 2002:
    text is drawn in a flat colour against its surround) whose box fits a
    glyph. Neighbours of similar height (within a factor 0.7) whose centres
    are level (within a quarter of the height) and whose gap is under 1.5
    letter heights are chained; each chain keeps the letters level with its
    median line and is cut at gaps over a word space. A line needs at least
    three letters and must be wider than tall. No model is
    needed, so nothing is downloaded.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    max_side : int, default=512
        The search runs on a copy whose longer side is at most this; letters
        under 6 px there (1.2% of the longer side) are not found (384 would
        be 40% cheaper but misses taglines at 2% of the height).

    Returns
    -------
    list of Region
        Line boxes in the pixel coordinates of ``image``, largest first;
        ``confidence`` grows with the number of letters (3 -> 0.375, 8+ -> 1).
    """
    check_image(image)
    work, scale = fit(image, max_side)
    return text_in_gray(to_gray(work), scale, image.shape)


#: Letters a text line needs.
_MIN_LETTERS = 5
_TONE_SPLIT = 0.75
_TONE_GAP = 70


def _two_tones(patch: np.ndarray) -> tuple[float, float]:
    """Otsu's split of a patch: the share of its variance between the two tones, and
    the grey levels between their means."""
    _, binary = cv2.threshold(patch, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n_ink = cv2.countNonZero(binary)
    if n_ink in (0, patch.size):
        return 0.0, 0.0
    share = n_ink / patch.size
    # the tones' means from exact integer sums (no boolean-indexed copies)
    total, ink = int(patch.sum()), int(cv2.sumElems(cv2.bitwise_and(patch, binary))[0])
    gap = ink / n_ink - (total - ink) / (patch.size - n_ink)
    variance = float(patch.astype(np.float64).var())
    return share * (1.0 - share) * gap * gap / max(variance, 1e-9), abs(gap)


def _reads_as_print(gray: np.ndarray, letters: np.ndarray) -> bool:
    """Whether the letter boxes ``(x, y, w, h)`` of a candidate line look printed.

    Each letter box is split into two tones by Otsu's threshold: printed
    letters put most of their box's variance between ink and ground
    (``_TONE_SPLIT``) and lie ``_TONE_GAP`` grey levels or more from it; the
    letter-sized blobs that leaves, petals or windows chain into a "line"
    have graded tones. The median letter decides. Thresholds measured on
    titles rendered over photographs against lines found on photographs
    without text (docs/artwork.md).
    """
    splits, gaps = zip(*(_two_tones(gray[y : y + h, x : x + w]) for x, y, w, h in letters),
                       strict=True)
    return median(splits) >= _TONE_SPLIT and median(gaps) >= _TONE_GAP


def _letter_runs(boxes: np.ndarray, min_letters: int) -> list[np.ndarray]:
    """Rows of letters among the glyph boxes ``(x, y, w, h)``: each of at least
    ``min_letters`` boxes and wider than tall by 1.5 (the rows' boxes, one array
    each)."""
    if len(boxes) < 3:
        return []
    boxes = boxes[np.argsort(boxes[:, 0], kind="stable")]
    x, y, w, h = (boxes[:, i] for i in range(4))
    n = len(boxes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    centre = y + h / 2.0
    # every pair (i, j > i) with j starting within a word space (1.5 letter
    # heights) of i's right edge, then the pairs that chain: similar height,
    # j to the right, centres level
    reach = np.searchsorted(x, x + w + 1.5 * h, side="right")
    count = np.maximum(reach - np.arange(n) - 1, 0)
    i = np.repeat(np.arange(n), count)
    j = i + 1 + np.arange(len(i)) - np.repeat(np.cumsum(count) - count, count)
    ratio = h[j] / h[i]
    chained = ((ratio >= 0.7) & (ratio <= 1 / 0.7) & (x[j] >= x[i] + 0.3 * w[i])
               & (np.abs(centre[j] - centre[i]) <= 0.25 * np.maximum(h[i], h[j])))
    for a, b in zip(i[chained].tolist(), j[chained].tolist(), strict=True):
        parent[find(b)] = find(a)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    rows = []
    for members in groups.values():
        if len(members) < 3:
            continue
        m = np.asarray(members)
        # chains can wander through texture: keep the members level with the
        # group's median line, then cut where the gap exceeds a word space
        typical, level = (float(median(v[m].tolist())) for v in (h, centre))
        m = m[(np.abs(centre[m] - level) <= 0.3 * typical)
              & (h[m] >= 0.7 * typical) & (h[m] <= typical / 0.7)]
        runs, run, right = [], [], 0  # right: the run's rightmost edge
        for i in m[np.argsort(x[m], kind="stable")].tolist():
            left, end = int(x[i]), int(x[i] + w[i])
            if run and left - right > 1.5 * typical:
                runs.append(run)
                run = []
            right = max(right, end) if run else end
            run.append(i)
        runs.append(run)
        for run in runs:
            r = np.asarray(run)
            if (len(run) >= min_letters
                    and (x[r] + w[r]).max() - x[r].min()
                    >= 1.5 * ((y[r] + h[r]).max() - y[r].min())):
                rows.append(boxes[r])
    return rows


def text_in_gray(gray: np.ndarray, scale: float, shape: tuple[int, ...]) -> list[Region]:
    """Text lines found in ``gray`` (a copy at ``scale``), boxes in ``shape``'s pixels."""
    regions = []
    for row in _letter_runs(_glyph_boxes(gray), _MIN_LETTERS):
        if not _reads_as_print(gray, row):
            continue
        x0, y0 = row[:, 0].min(), row[:, 1].min()
        x1, y1 = (row[:, 0] + row[:, 2]).max(), (row[:, 1] + row[:, 3]).max()
        regions.append(Region(
            box=scale_box((x0, y0, x1 - x0, y1 - y0), scale, shape),
            confidence=float(min(1.0, len(row) / 8.0)),
        ))
    regions.sort(key=lambda r: r.box[2] * r.box[3], reverse=True)
    return regions
