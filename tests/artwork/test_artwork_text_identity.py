"""Text regions on posters with rendered text; near-duplicates by hashes and keypoints."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from artwork_helpers import encode, poster
from PIL import Image, ImageDraw, ImageFont

import artwork


def ink_for(image: np.ndarray, box: tuple) -> tuple[int, int, int]:
    """White over a dark background, black over a light one, as a designer picks."""
    x, y, w, h = box
    return (10, 10, 10) if image[y : y + h, x : x + w].mean() > 128 else (255, 255, 255)


def render_title(image: np.ndarray, *, scale: float = 3.2, thickness: int = 8,
                 ink: tuple[int, int, int] | None = None) -> tuple:
    """Draw a title treatment with OpenCV near the bottom; return its bounding box."""
    text = "THE LONG NIGHT"
    font = cv2.FONT_HERSHEY_DUPLEX
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    x, y = (image.shape[1] - w) // 2, int(image.shape[0] * 0.87)
    box = (x, y - h, w, h + base)
    cv2.putText(image, text, (x, y), font, scale, ink or ink_for(image, box), thickness,
                cv2.LINE_AA)
    return box


def covered(box, regions) -> float:
    """Share of ``box`` covered by the union of region boxes."""
    x, y, w, h = box
    mask = np.zeros((y + h + 1, x + w + 1), bool)
    for rx, ry, rw, rh in (r.box for r in regions):
        mask[ry : ry + rh, rx : rx + rw] = True
    return float(mask[y : y + h, x : x + w].mean())


def render_pillow_title(image: np.ndarray, text: str = "Midnight Harbour") -> tuple:
    """Draw a title in Pillow's default font near the top; return its bounding box."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=image.shape[1] // 10)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = (image.shape[1] - (right - left)) // 2, image.shape[0] // 10
    box = (x + left, y + top, right - left, bottom - top)
    draw.text((x, y), text, fill=ink_for(image, box), font=font)
    image[:] = np.asarray(pil)
    return box


@pytest.mark.parametrize("render", [render_title, render_pillow_title], ids=["opencv", "pillow"])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "rocket", "flower", "chelsea"])
def test_rendered_title_is_found(real_images, name, render):
    plain = poster(real_images[name])
    titled = plain.copy()
    box = render(titled)
    regions = artwork.detect_text(titled)
    # the title's letters are found as lines over most of its box
    assert covered(box, regions) > 0.5
    with_text = artwork.text_features(titled)["Text"]
    without = artwork.text_features(plain)["Text"]
    assert with_text["share"] > without["share"] + 0.01
    assert with_text["present"] == "yes"


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "camera",
                                  "flower"])
def test_no_text_on_photographs_without_text(real_images, name):
    # leaves, petals and a spacesuit's patches chain into rows of letter-sized
    # blobs; none of them reads as print (china.jpg's rows of roof tiles at
    # its native size still do: docs/artwork.md)
    for image in (real_images[name], poster(real_images[name])):
        assert artwork.detect_text(image) == []
        assert artwork.text_features(image)["Text"]["present"] == "no"


def test_no_text_on_flat_or_smooth_images():
    flat = np.full((600, 400, 3), 60, np.uint8)
    ramp = np.repeat(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], 600, 0)
    for image in (flat, np.ascontiguousarray(np.repeat(ramp, 3, 2))):
        assert artwork.detect_text(image) == []
        assert artwork.text_features(image)["Text"]["present"] == "no"


def test_small_tagline_warns(detectors):
    image = np.full((1500, 1000, 3), 40, np.uint8)
    # letters 29 px tall (1.9% of the height), 10 px on the 512-pixel working copy
    cv2.putText(image, "in cinemas this winter only", (300, 1400), cv2.FONT_HERSHEY_SIMPLEX,
                1.0, (230, 230, 230), 2, cv2.LINE_AA)
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
