"""Candidate artwork frames mined from a trailer.

One decoding pass over the video does everything cheap per frame: a shot
cut is declared where the mean absolute HSV difference between consecutive
thumbnails (every k-th pixel, about 160 x 90) exceeds ``threshold`` (the measure of PySceneDetect's
``ContentDetector``, default 27), and each frame gets a cheap pre-score
(native-resolution sharpness of the centre, stillness, exposure). Dark, flat,
blurry and transition frames (the first and last frames of a shot, where
fades and dissolves live) are dropped. Each shot keeps its best few frames at
full resolution. The best frames of the most promising shots (by pre-score)
are fingerprinted, shots that repeat an earlier-kept look are skipped, and
only ``top_k + 2`` distinct ones are fully analysed (faces, composition) and
scored; the top ``top_k`` are then chosen greedily while skipping
near-duplicates, so the picks come from different shots and look different.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from artwork._errors import ArtworkInputError
from artwork.analysis import Analysis, analyze_image
from artwork.detectors import Detectors
from artwork.identity import fingerprint, is_near_duplicate
from artwork.io import (
    LoadedImage,
    check_image,
    check_size,
    claimed_format,
    document_kind,
)

__all__ = [
    "DEFAULT_MAX_VIDEO_PIXELS",
    "FrameCandidate",
    "FrameMining",
    "Shot",
    "contact_sheet",
    "mine_frames",
    "probe_video",
]


#: Largest accepted video frame (width x height): DCI 4K. Each shot keeps a
#: few full-resolution frames while decoding, so this bounds the memory used.
DEFAULT_MAX_VIDEO_PIXELS = 4096 * 2160


@dataclass(frozen=True, kw_only=True)
class Shot:
    """A run of frames between two cuts.

    Attributes
    ----------
    start, end : int
        First frame index and one past the last.
    start_time, end_time : float
        The same in seconds.
    """

    start: int
    end: int
    start_time: float
    end_time: float


@dataclass(frozen=True, kw_only=True)
class FrameCandidate:
    """A frame proposed as artwork.

    Attributes
    ----------
    frame_index : int
    timestamp : float
        Seconds from the start.
    shot_index : int
        Index into ``FrameMining.shots``.
    score : float
        In [0, 1]; see :func:`mine_frames` for the formula.
    image : ndarray of shape (height, width, 3), dtype uint8
        The frame, RGB, full resolution.
    analysis : Analysis
        Its full artwork analysis (features, faces, warnings).
    """

    frame_index: int
    timestamp: float
    shot_index: int
    score: float
    image: np.ndarray = field(repr=False)
    analysis: Analysis = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class FrameMining:
    """The outcome of :func:`mine_frames`.

    Attributes
    ----------
    candidates : list of FrameCandidate
        Best first, at most ``top_k``.
    shots : list of Shot
    n_frames : int
        Frames decoded.
    fps : float
        Frame rate the container declares (25 when it declares none).
    width, height : int
    """

    candidates: list[FrameCandidate]
    shots: list[Shot]
    n_frames: int
    fps: float
    width: int
    height: int


def _open(path: str | os.PathLike, name: str | None = None) -> cv2.VideoCapture:
    p = Path(path)
    if not p.is_file():
        raise ArtworkInputError("not_found", f"no such video file: {str(p)!r}")
    name = name or p.name
    if p.stat().st_size == 0:
        raise ArtworkInputError("empty", f"{name}: the file is empty (0 bytes), expected a video")
    with open(p, "rb") as handle:
        head = handle.read(64)
    kind = document_kind(head)
    if kind is not None:
        raise ArtworkInputError("not_a_video", f"{name}: the file is {kind}, not a video")
    if _is_text(head):
        raise ArtworkInputError("not_a_video", f"{name}: the file is text, not a video")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        _refuse_image(name, head)
        raise ArtworkInputError(
            "not_a_video", f"{name}: OpenCV (FFmpeg) cannot open it as a video"
        )
    return cap


def _is_text(head: bytes) -> bool:
    """Whether the first bytes are text: every video container starts with control bytes."""
    return all((b >= 0x20 and b != 0x7F) or b in b"\t\n\r" for b in head)


def _refuse_image(name: str, head: bytes) -> None:
    """Refuse a file that starts like a still image (FFmpeg reads one as one frame)."""
    image_format = claimed_format(head)
    if image_format is not None:
        raise ArtworkInputError(
            "not_a_video",
            f"{name}: the file is a {image_format} image, not a video; upload a still "
            "as a poster variant, and a trailer as a video file (MP4, MOV, MKV, WebM, AVI)",
        )


def _check_frame_size(width: int, height: int, *, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise ArtworkInputError(
            "too_large",
            f"{name}: the video's frames are too large: {width}x{height} = "
            f"{width * height:,} pixels, over the limit of {max_pixels:,}",
        )
    try:
        check_size(width, height, subject="each video frame")
    except ArtworkInputError as exc:
        raise ArtworkInputError(exc.code, f"{name}: {exc.message}") from None


def _check_complete(cap: cv2.VideoCapture, *, n_decoded: int, last_ms: float, fps: float,
                    name: str) -> None:
    """Refuse a video whose frames stop well before the duration its container declares.

    The declared duration may include an audio tail, so up to a tenth of it
    (at least half a second) may be missing.
    """
    declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    if not (np.isfinite(declared) and declared >= 2):
        return
    duration = declared / fps
    # a stream without timestamps reports 0 ms: count frames instead
    reached = max(last_ms / 1000.0 + 1.0 / fps, n_decoded / fps)
    if duration - reached > max(0.1 * duration, 0.5):
        raise ArtworkInputError(
            "truncated",
            f"{name}: the video is truncated or corrupt: its container declares "
            f"{duration:.1f} s ({int(declared)} frames) but frames decode only up to "
            f"{reached:.1f} s ({n_decoded} frames); upload the whole file",
        )


def probe_video(path: str | os.PathLike) -> dict[str, float | int]:
    """What the container declares, without decoding: frame count, fps, size.

    Returns
    -------
    dict
        ``{"n_frames": int, "fps": float, "width": int, "height": int}``;
        ``n_frames`` is the container's estimate (0 when unknown).

    Raises
    ------
    ArtworkInputError
        ``not_found``, ``empty`` or ``not_a_video``.
    """
    cap = _open(path)
    try:
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return {
            "n_frames": int(count) if np.isfinite(count) and count > 0 else 0,
            "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        cap.release()


def _cheap_frame(frame_bgr: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """HSV thumbnail (about 160 x 90), brightness, contrast and centre sharpness."""
    # strided sampling (as PySceneDetect does) costs nothing; a resize costs a
    # tenth of a decode
    step = max(1, min(frame_bgr.shape[0] // 90, frame_bgr.shape[1] // 160))
    thumb = np.ascontiguousarray(frame_bgr[::step, ::step])
    hsv = cv2.cvtColor(thumb, cv2.COLOR_BGR2HSV)
    mean, std = cv2.meanStdDev(hsv[..., 2])
    height, width = frame_bgr.shape[:2]
    side = min(256, height, width)
    top, left = (height - side) // 2, (width - side) // 2
    centre = cv2.cvtColor(frame_bgr[top : top + side, left : left + side], cv2.COLOR_BGR2GRAY)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(centre, cv2.CV_16S, ksize=1))
    return hsv, float(mean[0, 0] / 255.0), float(std[0, 0] / 255.0), float(lap_std[0, 0] ** 2)


def mine_frames(
    path: str | os.PathLike,
    *,
    detectors: Detectors,
    top_k: int = 8,
    threshold: float = 27.0,
    min_shot_frames: int = 10,
    keep_per_shot: int = 3,
    max_frames: int | None = None,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
    progress: Callable[[int], None] | None = None,
    name: str | None = None,
) -> FrameMining:
    """Find the ``top_k`` best, mutually different frames of a video.

    The final score of a candidate, in [0, 1], is
    ``0.30 sharpness + 0.20 stillness + 0.15 contrast + 0.10 thirds + 0.25 face``
    with ``sharpness`` the ``Quality`` feature, ``stillness = 1 - min(1,
    motion / threshold)`` (motion is the HSV difference to the previous
    frame), ``contrast = min(1, RMS contrast / 0.25)``, ``thirds`` the
    ``Layout`` feature and ``face`` 1 for a face at least 10% of the height,
    0.5 for a smaller one, 0 for none.

    Parameters
    ----------
    path : str or PathLike
        A video file OpenCV can read (FFmpeg backend).
    detectors : Detectors
        From :func:`artwork.load_detectors`.
    top_k : int, default=8
        How many candidates to return at most.
    threshold : float, default=27.0
        Cut threshold on the mean absolute HSV difference (0-255 scale).
    min_shot_frames : int, default=10
        A cut closer than this to the previous one is ignored (flashes).
    keep_per_shot : int, default=3
        Full-resolution frames kept per shot while decoding.
    max_frames : int, optional
        Stop after this many frames.
    max_pixels : int, default=DEFAULT_MAX_VIDEO_PIXELS
        Largest accepted frame (width x height), checked on the container's
        declaration before decoding and on the first frame.
    progress : callable, optional
        Called with the number of frames decoded since the last call.
    name : str, optional
        What error messages call the file (an upload's own name when ``path``
        is a scratch copy); default: the file's name.

    Returns
    -------
    FrameMining

    Raises
    ------
    ArtworkInputError
        ``not_found``, ``empty``, ``not_a_video`` (including a still image),
        ``no_frames``, ``truncated`` (frames stop well before the declared
        duration), ``too_large``, ``too_small`` or ``bad_aspect`` (frame size).
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ArtworkInputError(
            "bad_argument", f"max_pixels must be a positive int, got {max_pixels!r}"
        )
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ArtworkInputError("bad_argument", f"top_k must be a positive int, got {top_k!r}")
    if not isinstance(threshold, int | float) or not threshold > 0:
        raise ArtworkInputError("bad_argument", f"threshold must be > 0, got {threshold!r}")
    if not isinstance(detectors, Detectors):
        raise ArtworkInputError(
            "bad_argument",
            f"detectors must come from artwork.load_detectors(), got {type(detectors).__name__}",
        )
    name = name or Path(path).name
    cap = _open(path, name)
    try:
        declared_width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        declared_height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if declared_width > 0 and declared_height > 0:
            _check_frame_size(declared_width, declared_height, max_pixels=max_pixels, name=name)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        declares_fps = bool(np.isfinite(fps) and 0 < fps <= 1000)
        if not declares_fps:
            fps = 25.0
        shots_bounds: list[tuple[int, int]] = []
        kept: list[list[tuple[float, int, float, np.ndarray]]] = []  # per shot
        current: list[tuple[float, int, float, np.ndarray]] = []
        shot_start = 0
        prev_hsv = None
        index = 0
        pending = 0
        width = height = 0

        def close_shot(end: int) -> None:
            length = end - shot_start
            edge = max(2, length // 10)
            good = [c for c in current if shot_start + edge <= c[1] < end - edge]
            if not good and length < 2 * edge + 1:
                good = list(current)
            shots_bounds.append((shot_start, end))
            kept.append(sorted(good, key=lambda c: -c[0]))

        frame = None
        last_ms = 0.0
        while max_frames is None or index < max_frames:
            # decode into the same buffer: no 2.7 MB allocation per 720p frame
            ok, frame = cap.read(frame)
            if not ok or frame is None:
                break
            last_ms = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            if index == 0:
                height, width = frame.shape[:2]
                _check_frame_size(width, height, max_pixels=max_pixels, name=name)
            hsv, brightness, contrast, sharp = _cheap_frame(frame)
            motion = 0.0
            if prev_hsv is not None:
                motion = sum(cv2.mean(cv2.absdiff(hsv, prev_hsv))[:3]) / 3.0
                if motion > threshold and index - shot_start >= min_shot_frames:
                    close_shot(index)
                    current = []
                    shot_start = index
                    motion = 0.0
            prev_hsv = hsv
            if brightness >= 0.1 and contrast >= 0.04 and sharp >= 20.0:
                stillness = 1.0 - min(1.0, motion / threshold)
                cheap = float(np.log1p(sharp) / np.log1p(2000.0)) * (0.5 + 0.5 * stillness)
                if len(current) < keep_per_shot or cheap > current[-1][0]:
                    current.append((cheap, index, stillness, frame.copy()))
                    current.sort(key=lambda c: -c[0])
                    del current[keep_per_shot:]
            index += 1
            pending += 1
            if progress is not None and pending >= 50:
                progress(pending)
                pending = 0
        if progress is not None and pending:
            progress(pending)
        if index <= 1:
            with open(path, "rb") as handle:
                _refuse_image(name, handle.read(64))
        if index == 0:
            raise ArtworkInputError(
                "no_frames", f"{name}: the video has no decodable frames"
            )
        if declares_fps and (max_frames is None or index < max_frames):
            _check_complete(cap, n_decoded=index, last_ms=last_ms, fps=fps, name=name)
        close_shot(index)
    finally:
        cap.release()

    shots = [Shot(start=s, end=e, start_time=s / fps, end_time=e / fps)
             for s, e in shots_bounds]
    best = [(frames[0], i) for i, frames in enumerate(kept) if frames]
    best.sort(key=lambda item: -item[0][0])
    scored: list[FrameCandidate] = []
    prints = []
    # spend the full analyses on different-looking shots: a shot that repeats
    # an earlier one (the same set-up cut back to) is skipped before analysis
    for (_, frame_index, stillness, frame), shot_index in best[: 6 * top_k + 10]:
        rgb = check_image(np.ascontiguousarray(frame[..., ::-1]))
        fp = fingerprint(rgb)
        if any(is_near_duplicate(fp, other) for other in prints):
            continue
        prints.append(fp)
        loaded = LoadedImage(image=rgb, format="video", source_mode="BGR",
                             content_hash=f"{Path(path).name}#{frame_index}")
        analysis = analyze_image(loaded, detectors=detectors, expect_face=False)
        scored.append(FrameCandidate(
            frame_index=frame_index,
            timestamp=frame_index / fps,
            shot_index=shot_index,
            score=_score(analysis, stillness),
            image=rgb,
            analysis=analysis,
        ))
        if len(scored) == top_k + 2:
            break
    scored.sort(key=lambda c: -c.score)
    chosen: list[FrameCandidate] = []
    for candidate in scored:
        fp = candidate.analysis.fingerprint
        if any(is_near_duplicate(fp, c.analysis.fingerprint) for c in chosen):
            continue
        chosen.append(candidate)
        if len(chosen) == top_k:
            break
    return FrameMining(candidates=chosen, shots=shots, n_frames=index, fps=fps,
                       width=width, height=height)


def _score(analysis: Analysis, stillness: float) -> float:
    features = analysis.features
    faces = analysis.faces
    face = 0.0
    if faces:
        face = 1.0 if faces[0].box[3] / analysis.height >= 0.1 else 0.5
    contrast = min(1.0, float(features["Color"]["contrast"]) / 0.25)
    score = (0.30 * float(features["Quality"]["sharpness"]) + 0.20 * stillness
             + 0.15 * contrast + 0.10 * float(features["Layout"]["thirds"]) + 0.25 * face)
    return float(score)


def contact_sheet(
    candidates: list[FrameCandidate], *, columns: int = 4, thumb_width: int = 320
) -> np.ndarray:
    """One picture of the picks, each labelled with rank, time and score.

    Parameters
    ----------
    candidates : list of FrameCandidate
    columns : int, default=4
    thumb_width : int, default=320

    Returns
    -------
    ndarray of shape (height, width, 3), dtype uint8
        RGB; save it with Pillow or ``cv2.imwrite`` after RGB->BGR.
    """
    if not candidates:
        raise ArtworkInputError("bad_argument", "no candidates to put on a contact sheet")
    thumbs = []
    for rank, cand in enumerate(candidates, start=1):
        h, w = cand.image.shape[:2]
        th = max(1, round(h * thumb_width / w))
        thumb = cv2.resize(cand.image, (thumb_width, th), interpolation=cv2.INTER_AREA)
        label = np.zeros((28, thumb_width, 3), dtype=np.uint8)
        minutes, seconds = divmod(cand.timestamp, 60)
        text = f"#{rank} {int(minutes)}:{seconds:05.2f} score {cand.score:.2f}"
        cv2.putText(label, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        thumbs.append(np.vstack([thumb, label]))
    cell_h = max(t.shape[0] for t in thumbs)
    columns = max(1, min(columns, len(thumbs)))
    rows = -(-len(thumbs) // columns)
    sheet = np.full((rows * (cell_h + 8) + 8, columns * (thumb_width + 8) + 8, 3), 24,
                    dtype=np.uint8)
    for i, thumb in enumerate(thumbs):
        r, c = divmod(i, columns)
        y, x = 8 + r * (cell_h + 8), 8 + c * (thumb_width + 8)
        sheet[y : y + thumb.shape[0], x : x + thumb_width] = thumb
    return sheet
