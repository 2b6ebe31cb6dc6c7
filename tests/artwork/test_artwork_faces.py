"""Faces and people on real images with known faces, and none on faceless ones."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import skimage.data as skimage_data
from artwork_helpers import ASTRONAUT_FACE, iou, rgb

import artwork


def test_astronaut_face_box_in_original_coordinates(real_images, detectors):
    image = real_images["astronaut"]
    for scale in (1.0, 2.5):
        big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = artwork.detect_faces(big, detectors=detectors)
        assert len(faces) == 1
        truth = tuple(round(v * scale) for v in ASTRONAUT_FACE)
        # a cascade box is a square around eyes-to-mouth; the hand-drawn truth is taller
        assert iou(faces[0].box, truth) >= 0.6
        assert 0.5 < faces[0].confidence <= 1.0


def test_poster_analysis_reports_face_in_original_pixels(real_images, detectors):
    poster = cv2.resize(real_images["astronaut"], (1000, 1500), interpolation=cv2.INTER_CUBIC)
    result = artwork.analyze(poster, detectors=detectors)
    sx, sy = 1000 / 512, 1500 / 512
    x, y, w, h = ASTRONAUT_FACE
    truth = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
    assert len(result.faces) == 1
    assert iou(result.faces[0].box, truth) >= 0.5
    face = result.to_namespaces()["Face"]
    assert face["count_bucket"] == "1"
    assert face["largest_share"] == pytest.approx(
        result.faces[0].box[2] * result.faces[0].box[3] / 1.5e6)
    assert face["largest_x"] == pytest.approx((x + w / 2) / 512, abs=0.03)


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "china", "flower"])
def test_no_faces_on_faceless_images(faceless, detectors, name):
    image = faceless[name]
    assert artwork.detect_faces(image, detectors=detectors) == []
    poster = cv2.resize(image, (1000, 1500), interpolation=cv2.INTER_CUBIC)
    result = artwork.analyze(poster, detectors=detectors)
    assert result.faces == [] and result.features["Face"]["count_bucket"] == "0"
    assert "no_face" in [w.code for w in result.warnings]


@pytest.fixture(scope="module")
def lfw_faces() -> np.ndarray:
    """scikit-image's 100 LFW face crops then 100 non-face crops, 25 x 25, uint8."""
    import skimage.data

    crops = np.load(os.path.join(os.path.dirname(skimage.data.__file__), "lfw_subset.npy"))
    return np.clip(np.rint(crops * 255), 0, 255).astype(np.uint8)


@pytest.mark.slow  # a labelled face set
def test_recall_on_labeled_faces_in_the_wild(detectors, lfw_faces):
    hits = false_alarms = 0
    for i, grey in enumerate(lfw_faces):
        grey = cv2.resize(grey, (100, 100), interpolation=cv2.INTER_CUBIC)
        grey = cv2.copyMakeBorder(grey, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        found = bool(artwork.detect_faces(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB),
                                          detectors=detectors))
        if i < 100:
            hits += found
        else:
            false_alarms += found
    # measured 97/100 and 0/100 (docs/artwork.md)
    assert hits >= 95
    assert false_alarms == 0


@pytest.mark.slow  # 300 posters
@pytest.mark.parametrize(("share", "at_least"), [(0.08, 95), (0.15, 95), (0.3, 95)])
def test_recall_on_faces_at_poster_size(detectors, lfw_faces, real_images, share, at_least):
    # each LFW face at a share of a 1000 x 1500 poster's height, with context
    # (its edge repeated), over china.jpg; measured 97, 96 and 98 (docs/artwork.md)
    background = cv2.resize(real_images["china"], (1000, 1500), interpolation=cv2.INTER_CUBIC)
    side = round(share * 1500)
    pad = side * 2 // 5
    hits = 0
    for grey in lfw_faces[:100]:
        face = cv2.resize(grey, (side, side), interpolation=cv2.INTER_CUBIC)
        face = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        poster = background.copy()
        x0, y0 = (1000 - face.shape[1]) // 2, 300
        poster[y0 : y0 + face.shape[0], x0 : x0 + face.shape[1]] = face[..., None]
        truth = (x0 + pad, y0 + pad, side, side)
        hits += any(iou(f.box, truth) >= 0.3
                    for f in artwork.analyze(poster, detectors=detectors).faces)
    assert hits >= at_least


@pytest.mark.parametrize("name", ["coins", "moon", "clock", "brick", "grass", "gravel", "page",
                                  "text", "hubble_deep_field", "immunohistochemistry"])
def test_no_faces_on_textures_and_objects(detectors, name):
    # the single Haar cascade fired on the coins and the clock stretched to a poster
    image = rgb(getattr(skimage_data, name)())
    assert artwork.detect_faces(image, detectors=detectors) == []
    stretched = cv2.resize(image, (1000, 1500), interpolation=cv2.INTER_CUBIC)
    assert artwork.detect_faces(stretched, detectors=detectors) == []


def test_face_count_buckets_and_closeup(real_images, detectors):
    face = real_images["astronaut"][40:200, 150:300]  # a tight crop: a close-up
    single = artwork.face_features(np.ascontiguousarray(face), detectors=detectors)["Face"]
    assert single["count_bucket"] == "1" and single["closeup"] == "yes"
    pair = np.hstack([real_images["astronaut"]] * 2)
    grid = np.ascontiguousarray(np.vstack([pair, pair]))  # four faces of 44 px at 480
    four = artwork.face_features(grid, detectors=detectors)["Face"]
    assert four["count"] == 4.0 and four["count_bucket"] == "3+"
    assert four["closeup"] == "no"


def test_smile_only_judged_on_large_faces(real_images, detectors):
    faces = artwork.detect_faces(real_images["astronaut"], detectors=detectors)
    assert faces[0].smile is not None  # 90+ px face: big enough to judge
    small = cv2.resize(real_images["astronaut"], (160, 160), interpolation=cv2.INTER_AREA)
    small_faces = artwork.detect_faces(small, detectors=detectors)
    assert all(face.smile is None for face in small_faces)


def test_no_people_on_empty_scenes(faceless, detectors):
    for name in ("coffee", "flower"):
        assert artwork.detect_people(faceless[name], detectors=detectors) == []
    flat = np.full((400, 300, 3), 128, np.uint8)
    people = artwork.people_features(flat, detectors=detectors)["People"]
    assert people == {"count": 0.0, "count_bucket": "0", "largest_share": 0.0}


def test_unknown_face_model_is_refused():
    with pytest.raises(artwork.ArtworkInputError, match="face_model must be one of"):
        artwork.load_detectors(face_model="yunet")


def test_cut_proposer_accepts_what_the_whole_cascade_accepts_and_more():
    # a window passing all 20 LBP stages passes the first 15; the cut cascade
    # proposes the small faces the whole one misses (docs/artwork.md)
    gray = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)
    whole = artwork.detectors.lbp_face_cascade(artwork.detectors.LBP_STAGES)
    cut = artwork.detectors.lbp_face_cascade()
    options = {"scaleFactor": 1.2, "minNeighbors": 0, "minSize": (24, 24)}
    whole_windows = {tuple(w) for w in whole.detectMultiScale(gray, **options)}
    cut_windows = {tuple(w) for w in cut.detectMultiScale(gray, **options)}
    assert whole_windows
    assert whole_windows < cut_windows


def test_face_found_without_the_gate(real_images, detectors):
    import dataclasses

    gateless = dataclasses.replace(detectors, face_gate=None)
    faces = artwork.detect_faces(real_images["astronaut"], detectors=gateless)
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_FACE) > 0.5
