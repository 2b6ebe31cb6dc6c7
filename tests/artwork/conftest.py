"""Fixtures for artwork tests: real bundled images and the detectors, built once."""

from __future__ import annotations

import numpy as np
import pytest
from artwork_helpers import rgb

import artwork

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="session")
def detectors() -> artwork.Detectors:
    return artwork.load_detectors()


@pytest.fixture(scope="session")
def real_images() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_image

    return {
        "astronaut": rgb(skimage_data.astronaut()),
        "camera": rgb(skimage_data.camera()),
        "coffee": rgb(skimage_data.coffee()),
        "rocket": rgb(skimage_data.rocket()),
        "chelsea": rgb(skimage_data.chelsea()),
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
    }


@pytest.fixture(scope="session")
def faceless(real_images) -> dict[str, np.ndarray]:
    return {k: v for k, v in real_images.items() if k in
            ("coffee", "rocket", "chelsea", "china", "flower")}
