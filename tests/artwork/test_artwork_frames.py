"""Frame mining on a synthetic trailer with known cuts, written with OpenCV's VideoWriter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from artwork_helpers import encode

import artwork
from artwork import ArtworkInputError

FPS = 20
SHOT = 24  # frames per shot
SIZE = (320, 240)


def _pan(image: np.ndarray, n: int) -> list[np.ndarray]:
    """n frames panning slowly (2 px a frame) across a real image."""
    w, h = SIZE
    big = cv2.resize(image, (w + 2 * n, h + n), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(big[i // 2 : i // 2 + h, 2 * i : 2 * i + w]) for i in range(n)]


@pytest.fixture(scope="module")
def trailer(tmp_path_factory, real_images):
    """Shots: astronaut, coffee, dark, rocket, blurred chelsea, astronaut again, flower."""
    dark = (real_images["china"] * 0.05).astype(np.uint8)
    blurred = cv2.GaussianBlur(real_images["chelsea"], (0, 0), 6)
    shots = [real_images["astronaut"], real_images["coffee"], dark, real_images["rocket"],
             blurred, real_images["astronaut"], real_images["flower"]]
    path = tmp_path_factory.mktemp("video") / "trailer.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened()
    for image in shots:
        for frame in _pan(image, SHOT):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path, len(shots)


@pytest.fixture(scope="module")
def mined(trailer, detectors):
    path, _ = trailer
    return artwork.mine_frames(path, detectors=detectors, top_k=4)


def test_shot_boundaries_match_the_cuts(trailer, mined):
    _, n_shots = trailer
    assert mined.n_frames == n_shots * SHOT
    assert mined.fps == pytest.approx(FPS)
    assert (mined.width, mined.height) == SIZE
    assert [(s.start, s.end) for s in mined.shots] == [
        (i * SHOT, (i + 1) * SHOT) for i in range(n_shots)]
    assert mined.shots[1].start_time == pytest.approx(SHOT / FPS)


def test_candidates_skip_dark_blurry_and_duplicate_shots(mined):
    shots = [c.shot_index for c in mined.candidates]
    assert 1 <= len(mined.candidates) <= 4
    assert len(set(shots)) == len(shots)  # one frame per shot at most
    assert 2 not in shots  # the dark shot
    assert 4 not in shots  # the blurred shot
    assert not {0, 5} <= set(shots)  # the astronaut shot twice is a near-duplicate
    assert [c.score for c in mined.candidates] == sorted(
        (c.score for c in mined.candidates), reverse=True)


def test_candidates_avoid_shot_edges_and_carry_features(mined):
    for cand in mined.candidates:
        shot = mined.shots[cand.shot_index]
        edge = max(2, (shot.end - shot.start) // 10)
        assert shot.start + edge <= cand.frame_index < shot.end - edge
        assert cand.timestamp == pytest.approx(cand.frame_index / FPS)
        assert cand.image.shape == (SIZE[1], SIZE[0], 3)
        assert cand.analysis.width == SIZE[0]
        assert set(cand.analysis.to_namespaces()) >= {"Img", "Color", "Face"}
        assert 0.0 <= cand.score <= 1.0


def test_face_shot_ranks_high(mined):
    # the astronaut shot is the only one with a face: the face term lifts it to the top two
    top_two = {c.shot_index for c in mined.candidates[:2]}
    assert top_two & {0, 5}


def test_progress_counts_every_frame(trailer, detectors):
    path, n_shots = trailer
    seen = []
    artwork.mine_frames(path, detectors=detectors, top_k=1, progress=seen.append)
    assert sum(seen) == n_shots * SHOT


def test_max_frames_stops_early(trailer, detectors):
    path, _ = trailer
    result = artwork.mine_frames(path, detectors=detectors, top_k=2, max_frames=SHOT * 2)
    assert result.n_frames == SHOT * 2 and len(result.shots) == 2


def test_contact_sheet(mined):
    sheet = artwork.contact_sheet(mined.candidates, columns=2, thumb_width=160)
    rows = -(-len(mined.candidates) // 2)
    assert sheet.dtype == np.uint8 and sheet.shape[2] == 3
    assert sheet.shape[1] == min(2, len(mined.candidates)) * (160 + 8) + 8
    assert sheet.shape[0] == rows * (120 + 28 + 8) + 8
    with pytest.raises(ArtworkInputError, match="no candidates"):
        artwork.contact_sheet([])


def test_not_a_video(tmp_path, detectors):
    text = tmp_path / "trailer.mp4"
    text.write_text("<html>not found</html>")
    with pytest.raises(ArtworkInputError, match="trailer.mp4.*text") as info:
        artwork.mine_frames(text, detectors=detectors)
    assert info.value.code == "not_a_video"
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(ArtworkInputError, match="cannot open it as a video") as info:
        artwork.mine_frames(noise, detectors=detectors)
    assert info.value.code == "not_a_video"


def test_empty_missing_and_frameless_videos(tmp_path, detectors):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ArtworkInputError) as info:
        artwork.mine_frames(empty, detectors=detectors)
    assert info.value.code == "empty"
    with pytest.raises(ArtworkInputError) as info:
        artwork.mine_frames(tmp_path / "missing.mp4", detectors=detectors)
    assert info.value.code == "not_found"
    frameless = tmp_path / "frameless.avi"
    writer = cv2.VideoWriter(str(frameless), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    writer.release()  # a valid container with no frame in it
    assert frameless.stat().st_size > 0
    with pytest.raises(ArtworkInputError, match="no decodable frames") as info:
        artwork.mine_frames(frameless, detectors=detectors)
    assert info.value.code == "no_frames"


def test_bad_arguments(trailer, detectors):
    path, _ = trailer
    with pytest.raises(ArtworkInputError, match="top_k must be a positive int"):
        artwork.mine_frames(path, detectors=detectors, top_k=0)
    with pytest.raises(ArtworkInputError, match="threshold must be > 0"):
        artwork.mine_frames(path, detectors=detectors, threshold=0)
    with pytest.raises(ArtworkInputError, match="max_pixels must be a positive int"):
        artwork.mine_frames(path, detectors=detectors, max_pixels=0)


def test_truncated_video(tmp_path, trailer, detectors):
    path, _ = trailer
    cut = tmp_path / "cut.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtworkInputError, match="cut.avi: the video is truncated") as info:
        artwork.mine_frames(cut, detectors=detectors)
    assert info.value.code == "truncated"
    # stopping early on purpose is not truncation
    assert artwork.mine_frames(path, detectors=detectors, max_frames=30).n_frames == 30


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_still_image_is_not_a_video(tmp_path, real_images, detectors, fmt):
    path = tmp_path / "trailer.mp4"
    path.write_bytes(encode(real_images["coffee"], fmt))
    with pytest.raises(ArtworkInputError, match=f"trailer.mp4: the file is a {fmt} image") as info:
        artwork.mine_frames(path, detectors=detectors)
    assert info.value.code == "not_a_video"


def test_a_document_is_named(tmp_path, detectors):
    path = tmp_path / "trailer.mp4"
    path.write_bytes(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n" + bytes(200))
    with pytest.raises(ArtworkInputError, match="PDF document, not a video") as info:
        artwork.mine_frames(path, detectors=detectors)
    assert info.value.code == "not_a_video"


@pytest.mark.parametrize(("size", "max_pixels", "code", "match"), [
    ((320, 240), 320 * 240 - 1, "too_large", "frames are too large: 320x240"),
    ((16, 16), None, "too_small", "frame is too small: 16x16"),
    ((40, 400), None, "bad_aspect", "aspect ratio of 10:1"),
])
def test_frame_size_is_checked(tmp_path, detectors, size, max_pixels, code, match):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, size)
    for i in range(5):
        writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    writer.release()
    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    with pytest.raises(ArtworkInputError, match=match) as info:
        artwork.mine_frames(path, detectors=detectors, **limit)
    assert info.value.code == code
