"""Colour, quality, composition and geometry extractors on real and built images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import artwork
from artwork.features import BLUR_THRESHOLD
from artwork.imageops import fit_each

NAMES = ("astronaut", "camera", "coffee", "rocket", "chelsea", "china", "flower")


def reference_colour(image: np.ndarray) -> dict[str, float]:
    """Independent full-resolution formulas (the extractors work on a 256 px copy)."""
    x = image.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    m = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return {"brightness": luma.mean() / 255, "contrast": luma.std() / 255, "M": m,
            "warmth": 0.5 + (r - b).mean() / 510}


@pytest.mark.parametrize("name", NAMES)
def test_colour_matches_full_resolution_reference(real_images, name):
    image = real_images[name]
    ref = reference_colour(image)
    color = artwork.color_features(image)["Color"]
    # Area downscaling keeps the mean exactly up to rounding (0.005), and lowers
    # the spread a little by averaging fine detail: 0.02 on contrast, 8% on M.
    assert color["brightness"] == pytest.approx(ref["brightness"], abs=0.005)
    assert color["warmth"] == pytest.approx(ref["warmth"], abs=0.005)
    assert color["contrast"] == pytest.approx(ref["contrast"], abs=0.02)
    assert artwork.colorfulness(image) == pytest.approx(ref["M"], rel=1e-9)
    assert min(1.0, ref["M"] / 150) == pytest.approx(color["colorfulness"], rel=0.08, abs=0.01)
    for key in ("brightness", "contrast", "colorfulness", "saturation", "warmth",
                "black_clip", "white_clip", "dominant_share"):
        assert 0.0 <= color[key] <= 1.0


def test_colourfulness_orders_grey_below_colour(real_images):
    grey = np.repeat(cv2.cvtColor(real_images["astronaut"], cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
    assert artwork.colorfulness(grey) == 0.0
    assert artwork.colorfulness(real_images["camera"]) == 0.0  # a greyscale photograph
    values = {n: artwork.colorfulness(real_images[n]) for n in NAMES}
    assert values["astronaut"] > 33 and values["flower"] > 33  # "moderately colourful" and up
    desaturated = (0.5 * real_images["flower"] + 0.5 * cv2.cvtColor(
        cv2.cvtColor(real_images["flower"], cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    ).astype(np.uint8)
    assert artwork.colorfulness(desaturated) < values["flower"]


def test_dominant_hues_of_known_pictures(real_images):
    hue = {name: artwork.color_features(real_images[name])["Color"]["dominant_hue"]
           for name in ("astronaut", "coffee", "chelsea", "rocket", "camera")}
    # what a person names: the astronaut's orange suit (its reds reach under 15
    # degrees of hue) over the larger grey and black background, an orange-brown
    # coffee cup, a ginger cat, a night-blue sky behind the rocket
    assert hue["astronaut"] in ("red", "orange")
    assert hue["coffee"] == "orange" and hue["chelsea"] == "orange"
    assert hue["rocket"] == "blue"
    assert hue["camera"] in ("grey", "white", "black")  # a greyscale photograph


@pytest.mark.parametrize(
    ("rgb", "name"),
    [((200, 20, 20), "red"), ((255, 140, 0), "orange"), ((250, 230, 30), "yellow"),
     ((20, 180, 20), "green"), ((20, 200, 200), "cyan"), ((20, 20, 200), "blue"),
     ((140, 40, 200), "purple"), ((240, 60, 180), "pink"), ((128, 128, 128), "grey"),
     ((250, 250, 250), "white"), ((5, 5, 5), "black")],
)
def test_solid_colour_names_itself(rgb, name):
    color = artwork.color_features(np.full((90, 60, 3), rgb, np.uint8))["Color"]
    assert color["dominant_hue"] == name and color["dominant_share"] == 1.0


def test_saturated_colour_outweighs_a_larger_neutral_area_but_not_a_speck():
    image = np.full((300, 200, 3), 128, np.uint8)
    image[:100] = (230, 40, 30)  # a third of the frame in saturated red
    color = artwork.color_features(image)["Color"]
    assert color["dominant_hue"] == "red"
    assert color["dominant_share"] == pytest.approx(1 / 3, abs=0.01)
    image[20:] = 128  # a red strip of 7% stays an accent on a grey picture
    assert artwork.color_features(image)["Color"]["dominant_hue"] == "grey"


def test_palette_recovers_known_blocks():
    # block edges fall on thumbnail pixel edges (320 -> 128 -> 32), so no pixel blends
    image = np.zeros((200, 320, 3), np.uint8)
    image[:, :160] = (220, 30, 30)  # 50% red
    image[:, 160:260] = (30, 30, 220)  # 31.25% blue
    image[:, 260:] = (240, 240, 240)  # 18.75% white
    palette = artwork.dominant_colors(image, n_colors=3)
    assert sum(share for _, share in palette) == pytest.approx(1.0)
    expected = [((220, 30, 30), 0.5), ((30, 30, 220), 0.3125), ((240, 240, 240), 0.1875)]
    for (colour, share), (want, want_share) in zip(palette, expected, strict=True):
        # the Lab round trip of uint8 centres moves a colour by a few levels
        assert np.abs(np.array(colour) - want).max() <= 6
        assert share == pytest.approx(want_share, abs=1e-9)


def test_palette_of_flat_image_has_one_colour():
    palette = artwork.dominant_colors(np.full((64, 64, 3), 77, np.uint8), n_colors=5)
    assert len(palette) == 1 and palette[0][1] == 1.0


def test_clipping_shares():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, 50:] = 255
    color = artwork.color_features(image)["Color"]
    assert color["black_clip"] == pytest.approx(0.5, abs=0.01)
    assert color["white_clip"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_sharpness_drops_after_blur(real_images, name):
    image = real_images[name]
    sharp = artwork.sharpness(image)
    soft = artwork.sharpness(cv2.GaussianBlur(image, (0, 0), 2.0))
    assert sharp > BLUR_THRESHOLD  # all seven are in-focus photographs
    assert soft < sharp / 3  # a sigma-2 blur removes most Laplacian energy
    blurry = artwork.quality_features(cv2.GaussianBlur(image, (0, 0), 4.0))["Quality"]
    assert blurry["blurry"] == "yes"
    assert artwork.quality_features(image)["Quality"]["blurry"] == "no"


def test_sharpness_does_not_depend_on_resolution(real_images):
    master = cv2.resize(real_images["china"], (2048, 1366), interpolation=cv2.INTER_CUBIC)
    half = cv2.resize(master, (1024, 683), interpolation=cv2.INTER_AREA)
    # both are measured on the same 512-pixel copy; resampling differences stay under 10%
    assert artwork.sharpness(half) == pytest.approx(artwork.sharpness(master), rel=0.10)


def test_noise_estimate_recovers_added_noise():
    rng = np.random.default_rng(0)
    flat = np.full((400, 400, 3), 128.0)
    for sigma in (3.0, 10.0):
        noisy = np.clip(flat + rng.normal(0, sigma, flat.shape), 0, 255).astype(np.uint8)
        # Immerkær is unbiased on flat regions; the luma of 3 independent channels
        # has sigma * sqrt(.299^2 + .587^2 + .114^2) = 0.67 sigma; 10% tolerance
        assert artwork.noise_sigma(noisy) == pytest.approx(0.67 * sigma, rel=0.1)


def test_noise_grows_when_noise_is_added(real_images):
    rng = np.random.default_rng(1)
    image = real_images["coffee"]
    noisy = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    assert artwork.noise_sigma(noisy) > artwork.noise_sigma(image) + 4


def test_saliency_follows_a_lone_subject(detectors):
    image = np.full((600, 400, 3), 20, np.uint8)
    cx, cy = 400 // 3, 600 // 3  # a thirds point
    cv2.circle(image, (cx, cy), 30, (250, 220, 40), -1)
    layout = artwork.composition_features(image, detectors=detectors)["Layout"]
    # the saliency map is 128 px and blurred: its centre lands within 5% of the blob
    assert layout["center_x"] == pytest.approx(1 / 3, abs=0.05)
    assert layout["center_y"] == pytest.approx(1 / 3, abs=0.05)
    assert layout["thirds"] > 0.85
    centred = np.full((600, 400, 3), 20, np.uint8)
    cv2.circle(centred, (200, 300), 30, (250, 220, 40), -1)
    middle = artwork.composition_features(centred, detectors=detectors)["Layout"]
    assert middle["thirds"] < layout["thirds"] - 0.3
    assert middle["symmetry_lr"] > 0.99 and middle["symmetry_tb"] > 0.99
    assert layout["symmetry_lr"] < middle["symmetry_lr"]


def test_clutter_and_negative_space(real_images, detectors):
    flat = np.full((300, 300, 3), 90, np.uint8)
    layout = artwork.composition_features(flat, detectors=detectors)["Layout"]
    assert layout["edge_density"] == 0.0 and layout["negative_space"] == 1.0
    busy = artwork.composition_features(real_images["china"], detectors=detectors)["Layout"]
    calm = artwork.composition_features(real_images["rocket"], detectors=detectors)["Layout"]
    assert busy["edge_density"] > calm["edge_density"]
    assert busy["negative_space"] < calm["negative_space"]


@pytest.mark.parametrize(
    ("size", "orientation", "aspect_class"),
    [((1000, 1500), "portrait", "2:3"), ((1920, 1080), "landscape", "16:9"),
     ((500, 500), "square", "1:1"), ((1000, 300), "landscape", "other")],
)
def test_geometry(size, orientation, aspect_class):
    width, height = size
    img = artwork.geometry_features(np.zeros((height, width, 3), np.uint8))["Img"]
    assert img["orientation"] == orientation and img["aspect_class"] == aspect_class
    assert img["aspect"] == pytest.approx(width / height)
    assert img["width"] == width / 1000 and img["height"] == height / 1000


def halve_then_area(image: np.ndarray, max_side: int) -> np.ndarray:
    """The reduction ``fit`` documents, written out: 2 x 2 block averages while the
    image is at least twice the target, then one area resize."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    while image.shape[0] >= 2 * size[1] and image.shape[1] >= 2 * size[0]:
        h, w = image.shape[:2]
        image = cv2.resize(image[: h - h % 2, : w - w % 2], (w // 2, h // 2),
                           interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


@pytest.mark.parametrize("shape", [(1500, 1000), (1501, 999, 3), (3000, 2000), (600, 401, 3)])
def test_copies_sharing_their_halvings_equal_separate_reductions(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    sides = (384, 1000, 512, 128, 4000)  # unsorted, one larger than the image
    copies = fit_each(image, sides)
    assert len(copies) == len(sides)
    for side, (copy, scale) in zip(sides, copies, strict=True):
        np.testing.assert_array_equal(copy, halve_then_area(image, side))
        assert scale == min(1.0, side / max(shape[:2]))
        assert max(copy.shape[:2]) <= side
