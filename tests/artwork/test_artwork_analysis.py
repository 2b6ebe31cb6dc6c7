"""The one-call analysis: the namespace contract, JSON output and warnings."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from artwork_helpers import encode, poster

import artwork

NAMESPACES = {
    "Img": {"width", "height", "aspect", "orientation", "aspect_class"},
    "Color": {"brightness", "contrast", "colorfulness", "saturation", "warmth", "black_clip",
              "white_clip", "dominant_hue", "dominant_share"},
    "Quality": {"sharpness", "noise", "blurry"},
    "Layout": {"center_x", "center_y", "spread", "thirds", "symmetry_lr", "symmetry_tb",
               "edge_density", "negative_space"},
    "Face": {"count", "count_bucket", "largest_share", "largest_height", "largest_x",
             "largest_y", "closeup", "smile"},
    "People": {"count", "count_bucket", "largest_share"},
    "Text": {"share", "lines", "present", "position", "smallest_height"},
}


def codes(result) -> list[str]:
    return [w.code for w in result.warnings]


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "flower"])
def test_namespace_contract(real_images, detectors, name):
    result = artwork.analyze(real_images[name], detectors=detectors)
    spaces = result.to_namespaces()
    assert {ns: set(values) for ns, values in spaces.items()} == NAMESPACES
    # VW -q names namespaces by their first letter: they must differ
    assert len({ns[0] for ns in spaces}) == len(spaces)
    for values in spaces.values():
        for key, value in values.items():
            assert isinstance(value, str | float), (key, value)
            if isinstance(value, float):
                assert math.isfinite(value)
                if key not in ("width", "height", "aspect", "count"):
                    assert 0.0 <= value <= 1.0, (key, value)
    spaces["Color"]["brightness"] = -1  # a copy: the result itself is unchanged
    assert result.features["Color"]["brightness"] >= 0


def test_path_bytes_and_array_give_the_same_features(tmp_path, real_images, detectors):
    data = encode(real_images["coffee"], "PNG")
    path = tmp_path / "coffee.png"
    path.write_bytes(data)
    results = [artwork.analyze(source, detectors=detectors)
               for source in (path, data, real_images["coffee"])]
    assert results[0].to_namespaces() == results[1].to_namespaces() == results[2].to_namespaces()
    assert results[0].content_hash == results[1].content_hash


def test_to_dict_is_json(real_images, detectors):
    result = artwork.analyze(poster(real_images["astronaut"]), detectors=detectors)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["width"] == 1000 and payload["height"] == 1500
    assert payload["faces"] == [list(face.box) for face in result.faces]
    assert len(payload["hashes"]["phash"]) == 16
    assert sum(c["share"] for c in payload["palette"]) == pytest.approx(1.0, abs=1e-3)


def test_dark_image_warns(real_images, detectors):
    dark = (real_images["coffee"] * 0.12).astype(np.uint8)
    result = artwork.analyze(dark, detectors=detectors)
    assert "too_dark" in codes(result)
    assert "too_dark" not in codes(artwork.analyze(real_images["coffee"], detectors=detectors))


def test_low_contrast_and_blur_warn(real_images, detectors):
    image = real_images["chelsea"]
    flat = (0.25 * image + 0.75 * 128).astype(np.uint8)
    assert "low_contrast" in codes(artwork.analyze(flat, detectors=detectors))
    blurred = cv2.GaussianBlur(image, (0, 0), 4.0)
    result = artwork.analyze(blurred, detectors=detectors)
    assert "blurry" in codes(result) and result.features["Quality"]["blurry"] == "yes"
    assert "blurry" not in codes(artwork.analyze(image, detectors=detectors))


def test_face_warnings(real_images, detectors):
    faceless = artwork.analyze(real_images["rocket"], detectors=detectors)
    assert "no_face" in codes(faceless)
    quiet = artwork.analyze(real_images["rocket"], detectors=detectors, expect_face=False)
    assert "no_face" not in codes(quiet)
    # the astronaut small in a big poster: a face under 8% of the height
    canvas = cv2.resize(real_images["rocket"], (1000, 1500), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(real_images["astronaut"], (550, 550), interpolation=cv2.INTER_CUBIC)
    canvas[500:1050, 0:550] = small
    result = artwork.analyze(canvas, detectors=detectors)
    assert result.faces and result.faces[0].box[3] / 1500 < 0.08
    assert "tiny_face" in codes(result)


def test_text_over_face_warns(real_images, detectors):
    image = poster(real_images["astronaut"])
    face = artwork.analyze(image, detectors=detectors).faces[0].box
    assert "text_over_subject" not in codes(artwork.analyze(image, detectors=detectors))
    x, y, w, h = face
    cv2.rectangle(image, (x - 40, y + h // 3), (x + w + 40, y + h // 3 + 90), (10, 10, 10), -1)
    cv2.putText(image, "TAGLINE HERE", (x - 30, y + h // 3 + 70), cv2.FONT_HERSHEY_DUPLEX, 1.6,
                (255, 255, 255), 4, cv2.LINE_AA)
    covered = artwork.analyze(image, detectors=detectors)
    if covered.faces:  # the face may no longer be found once its eyes are covered
        assert "text_over_subject" in codes(covered)
    else:
        assert covered.text and "no_face" in codes(covered)


def test_wrong_aspect_for_slot(real_images, detectors):
    image = poster(real_images["coffee"])  # 1000 x 1500 = 2:3
    assert "wrong_aspect" not in codes(artwork.analyze(image, detectors=detectors,
                                                       expected_aspect=2 / 3))
    result = artwork.analyze(image, detectors=detectors, expected_aspect=16 / 9)
    assert "wrong_aspect" in codes(result)
    message = next(w.message for w in result.warnings if w.code == "wrong_aspect")
    assert "1000x1500" in message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expected_aspect": 0}, "expected_aspect must be a width/height ratio"),
        ({"expected_aspect": "2:3"}, "expected_aspect must be a width/height ratio"),
        ({"variants": {"v1": "c2924c5532bddfc8"}}, "variants must map ids to Fingerprint"),
        ({"detectors": None}, "detectors must come from artwork.load_detectors"),
    ],
)
def test_bad_arguments_are_named(real_images, detectors, kwargs, match):
    kwargs = {"detectors": detectors, **kwargs}
    with pytest.raises(artwork.ArtworkInputError, match=match) as info:
        artwork.analyze(real_images["coffee"], **kwargs)
    assert info.value.code == "bad_argument"
