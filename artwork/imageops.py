"""Image operations the detectors, features, fingerprints and analysis share.

They take arrays already checked by :func:`artwork.io.check_image` (or
greyscale copies of them) and do not check again, so a pipeline that resizes
and converts once can hand its working copies to every stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["Box", "fit", "fit_each", "saliency", "scale_box", "single_thread", "to_gray"]

#: ``(x, y, width, height)`` in pixels.
Box = tuple[int, int, int, int]


def single_thread() -> None:
    """Make OpenCV use one thread in this process (for process pools)."""
    cv2.setNumThreads(1)


def fit(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side``; return the scale.

    Large reductions first halve by exact 2 x 2 block averages (OpenCV's
    vectorised ``INTER_AREA`` path, after trimming an odd edge pixel) while the
    image is at least twice the target, then finish with ``INTER_AREA`` on
    the small copy: the same result as one area resize to within rounding, at
    a fraction of the cost.

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, 3), dtype uint8
    max_side : int

    Returns
    -------
    image : ndarray
        ``image`` itself when it is small enough, else the reduced copy.
    scale : float
        Copy pixels per original pixel, at most 1.
    """
    return fit_each(image, (max_side,))[0]


def fit_each(image: np.ndarray, max_sides: Sequence[int]) -> list[tuple[np.ndarray, float]]:
    """:func:`fit` of ``image`` to each of ``max_sides``, in their order, the copies
    sharing the halvings they have in common (the same arrays as separate calls).

    Parameters
    ----------
    image : ndarray of shape (height, width) or (height, width, 3), dtype uint8
    max_sides : sequence of int

    Returns
    -------
    list of (ndarray, float)
        One ``(copy, scale)`` per side, as :func:`fit` returns.
    """
    height, width = image.shape[:2]
    out: dict[int, tuple[np.ndarray, float]] = {}
    halved = image
    for max_side in sorted(set(max_sides), reverse=True):
        scale = min(1.0, max_side / max(height, width))
        if scale >= 1.0:
            out[max_side] = (image, 1.0)
            continue
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        while halved.shape[0] >= 2 * size[1] and halved.shape[1] >= 2 * size[0]:
            h, w = halved.shape[:2]
            halved = cv2.resize(halved[: h - h % 2, : w - w % 2], (w // 2, h // 2),
                                interpolation=cv2.INTER_AREA)
        copy = halved
        if (copy.shape[1], copy.shape[0]) != size:
            copy = cv2.resize(copy, size, interpolation=cv2.INTER_AREA)
        out[max_side] = (copy, scale)
    return [out[max_side] for max_side in max_sides]


def to_gray(image: np.ndarray) -> np.ndarray:
    """The greyscale of an RGB image, shape (height, width), dtype uint8."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def scale_box(box: Sequence[float] | np.ndarray, scale: float, shape: tuple[int, ...]) -> Box:
    """A box found on a copy at ``scale``, in the pixels of the image of ``shape``,
    clipped to it."""
    x, y, w, h = (float(v) / scale for v in box)
    height, width = shape[:2]
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def saliency(image: np.ndarray, model: object, *, size: int = 128) -> np.ndarray:
    """:func:`artwork.detectors.saliency_map` of an image already checked, given the
    saliency model itself (``Detectors.saliency``), so that this module knows no detectors.
    """
    work, _ = fit(image, size)
    # the model's own greyscale of a BGR copy is this greyscale of the RGB copy
    ok, sal = model.computeSaliency(to_gray(work))
    sal = np.asarray(sal, dtype=np.float64) if ok else np.zeros(work.shape[:2])
    sal = np.nan_to_num(sal, nan=0.0, posinf=0.0, neginf=0.0)
    sal = np.clip(sal, 0.0, None)
    total = sal.sum()
    if total <= 1e-12:
        return np.full(work.shape[:2], 1.0 / (work.shape[0] * work.shape[1]))
    return sal / total
