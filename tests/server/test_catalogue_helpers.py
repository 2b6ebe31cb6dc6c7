"""Test images and videos for the catalogue, artwork-rank and marketer tests, built in code.

Each poster seed gives a visibly different picture (a smooth random colour
field with random discs and frames), so distinct seeds are not near-duplicates
while a resized copy of one is.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def poster_array(seed: int, size: tuple[int, int] = (400, 600)) -> np.ndarray:
    """An RGB poster of ``size`` (width, height), different for every seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    field = rng.random((9, 6, 3)).astype(np.float32)
    image = np.clip(cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC) * 255,
                    0, 255).astype(np.uint8)
    for _ in range(12):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(image, centre, int(rng.integers(10, 80)), colour, -1)
    for _ in range(6):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        corners = rng.integers(0, [width, height], size=(2, 2))
        cv2.rectangle(image, tuple(map(int, corners[0])), tuple(map(int, corners[1])), colour, 3)
    return image


def encode(image: np.ndarray, fmt: str = "JPEG", **params: object) -> bytes:
    """Encode an RGB array with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def poster(seed: int, fmt: str = "JPEG", size: tuple[int, int] = (400, 600)) -> bytes:
    """Encoded poster bytes."""
    return encode(poster_array(seed, size), fmt)


def resized_copy(seed: int) -> bytes:
    """The same artwork as ``poster(seed)`` at another size: a near-duplicate."""
    return encode(cv2.resize(poster_array(seed), (300, 450), interpolation=cv2.INTER_AREA),
                  "PNG")


def trailer(path: Path, *, seeds: tuple[int, ...] = (11, 12, 13), fps: int = 25,
            seconds_per_shot: float = 1.6) -> Path:
    """A short MJPG trailer with one shot per seed (a slow pan over a poster)."""
    size = (320, 180)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    n = int(fps * seconds_per_shot)
    for seed in seeds:
        base = poster_array(seed, size=(400, 240))
        for i in range(n):
            x, y = i * (400 - size[0]) // n, i * (240 - size[1]) // n
            frame = base[y:y + size[1], x:x + size[0]]
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path
