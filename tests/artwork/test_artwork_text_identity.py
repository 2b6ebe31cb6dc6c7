"""Text regions on posters with rendered text; near-duplicates by hashes and keypoints."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from artwork_helpers import encode, poster

import artwork


def render_title(image: np.ndarray, *, scale: float = 3.2, thickness: int = 8) -> tuple:
    """Draw a title treatment near the bottom; return its bounding box."""
    text = "THE LONG NIGHT"
    font = cv2.FONT_HERSHEY_DUPLEX
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    x, y = (image.shape[1] - w) // 2, int(image.shape[0] * 0.87)
    cv2.putText(image, text, (x, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return (x, y - h, w, h + base)


def covered(box, regions) -> float:
    """Share of ``box`` covered by the union of region boxes."""
    x, y, w, h = box
    mask = np.zeros((y + h + 1, x + w + 1), bool)
    for rx, ry, rw, rh in (r.box for r in regions):
        mask[ry : ry + rh, rx : rx + rw] = True
    return float(mask[y : y + h, x : x + w].mean())


@pytest.mark.parametrize("name", ["coffee", "rocket", "flower", "camera"])
def test_rendered_title_is_found(real_images, name):
    plain = poster(real_images[name])
    titled = plain.copy()
    box = render_title(titled)
    regions = artwork.detect_text(titled)
    # the title's letters are found as lines over most of its box
    assert covered(box, regions) > 0.5
    with_text = artwork.text_features(titled)["Text"]
    without = artwork.text_features(plain)["Text"]
    assert with_text["share"] > without["share"] + 0.01
    assert with_text["present"] == "yes"


def test_no_text_on_flat_or_smooth_images():
    flat = np.full((600, 400, 3), 60, np.uint8)
    ramp = np.repeat(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], 600, 0)
    for image in (flat, np.ascontiguousarray(np.repeat(ramp, 3, 2))):
        assert artwork.detect_text(image) == []
        assert artwork.text_features(image)["Text"]["present"] == "no"


def test_small_tagline_warns(detectors):
    image = np.full((1500, 1000, 3), 40, np.uint8)
    cv2.putText(image, "in cinemas this winter only", (300, 1400), cv2.FONT_HERSHEY_SIMPLEX,
                0.9, (230, 230, 230), 2, cv2.LINE_AA)
    result = artwork.analyze(image, detectors=detectors, expect_face=False)
    assert result.text, "the tagline should be found"
    assert result.features["Text"]["smallest_height"] < 0.02
    assert "text_too_small" in [w.code for w in result.warnings]


# --- identity -------------------------------------------------------------

def _variants(image: np.ndarray) -> dict[str, np.ndarray]:
    h, w = image.shape[:2]
    jpeg = artwork.load_image(encode(image, quality=40)).image
    return {
        "half_size": cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "jpeg_q40": jpeg,
        "crop_10pc": np.ascontiguousarray(image[h // 10 : h - h // 10, w // 10 : w - w // 10]),
        "crop_left_25pc": np.ascontiguousarray(image[:, w // 4 :]),
        "resized_jpeg_crop": artwork.load_image(encode(cv2.resize(
            image[h // 20 :, : w - w // 20], (w * 2 // 3, h * 2 // 3)), quality=60)).image,
    }


@pytest.mark.parametrize("name", ["astronaut", "coffee", "rocket", "china", "flower"])
def test_near_duplicates_found_after_resize_jpeg_and_crop(real_images, name):
    original = artwork.fingerprint(real_images[name])
    for kind, variant in _variants(real_images[name]).items():
        fp = artwork.fingerprint(variant)
        assert artwork.is_near_duplicate(original, fp), kind
    # resizing and JPEG keep pHash itself close (a crop needs the keypoints)
    assert artwork.hamming(original.phash, artwork.fingerprint(
        _variants(real_images[name])["jpeg_q40"]).phash) <= 6


def test_different_images_are_not_near_duplicates(real_images):
    prints = {n: artwork.fingerprint(im) for n, im in real_images.items()}
    for a, b in itertools.combinations(prints, 2):
        assert not artwork.is_near_duplicate(prints[a], prints[b]), (a, b)
        assert artwork.hamming(prints[a].phash, prints[b].phash) > 10


def test_hamming_checks_lengths():
    assert artwork.hamming("ff00", "0f00") == 4
    with pytest.raises(ValueError, match="same length"):
        artwork.hamming("ff", "ff00")


def test_near_duplicate_warning_names_the_variant(real_images, detectors):
    image = real_images["coffee"]
    variants = {"v1": artwork.fingerprint(image), "v2": artwork.fingerprint(real_images["rocket"])}
    cropped = np.ascontiguousarray(image[20:-20, 30:-30])
    result = artwork.analyze(cropped, detectors=detectors, variants=variants)
    messages = [w.message for w in result.warnings if w.code == "near_duplicate"]
    assert messages == ["Near-duplicate of variant v1."]
