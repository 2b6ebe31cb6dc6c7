"""Helpers shared by the artwork tests (test images are built in code)."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

# Ground-truth face box (x, y, w, h) of scikit-image's astronaut, read off the
# 512 x 512 image by eye (forehead to chin, ear to ear).
ASTRONAUT_FACE = (175, 60, 95, 105)


def rgb(image: np.ndarray) -> np.ndarray:
    """Grey or RGBA scikit-image arrays to contiguous RGB uint8."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[..., :3])


def encode(image: np.ndarray, fmt: str = "JPEG", **params) -> bytes:
    """Encode an RGB array with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def poster(base: np.ndarray, size=(1000, 1500)) -> np.ndarray:
    """A real image stretched to a portrait poster size."""
    return cv2.resize(base, size, interpolation=cv2.INTER_CUBIC)
