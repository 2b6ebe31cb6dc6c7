"""``banditkit artwork analyze|frames`` through click's runner, on real files."""

from __future__ import annotations

import json
import zlib

import cv2
import numpy as np
import pytest
from artwork_helpers import ASTRONAUT_FACE, encode, iou
from click.testing import CliRunner
from PIL import Image

from cli.artwork import artwork as artwork_group


@pytest.fixture
def folder(tmp_path, real_images):
    (tmp_path / "astronaut.jpg").write_bytes(encode(real_images["astronaut"], quality=92))
    (tmp_path / "coffee.png").write_bytes(encode(real_images["coffee"], "PNG"))
    (tmp_path / "broken.jpg").write_bytes(b"<html>gone</html>")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def run(args):
    return CliRunner().invoke(artwork_group, args, catch_exceptions=False)


def _records(output: str) -> dict[str, dict]:
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {rec["path"].rsplit("/", 1)[-1]: rec for rec in records}


@pytest.mark.slow  # the command in subprocesses
@pytest.mark.parametrize("workers", ["1", "2"])
def test_analyze_json_lines_with_errors_per_file(folder, workers):
    result = run(["analyze", str(folder), "--json", "--workers", workers, "--aspect", "1:1"])
    assert result.exit_code == 1  # one file failed, the others were analysed
    records = _records(result.stdout)
    assert set(records) == {"astronaut.jpg", "coffee.png", "broken.jpg"}
    astronaut = records["astronaut.jpg"]
    assert (astronaut["width"], astronaut["height"]) == (512, 512)
    assert len(astronaut["faces"]) == 1 and iou(astronaut["faces"][0], ASTRONAUT_FACE) >= 0.5
    assert astronaut["features"]["Face"]["count_bucket"] == "1"
    assert "warnings" in astronaut and "error" not in astronaut
    coffee = records["coffee.png"]
    assert coffee["faces"] == [] and "wrong_aspect" in [w["code"] for w in coffee["warnings"]]
    assert records["broken.jpg"]["error"]["code"] == "html"
    assert "broken.jpg" in result.stderr and "1 of 3 file(s) failed" in result.stderr
    assert "skipped 1 file" in result.stderr


def test_analyze_human_output_and_success_exit(folder):
    result = run(["analyze", str(folder / "astronaut.jpg"), str(folder / "coffee.png")])
    assert result.exit_code == 0
    assert "astronaut.jpg: 512x512, 1 face(s)" in result.output
    assert "coffee.png: 600x400, 0 face(s), warnings: no_face" in result.output


def test_analyze_refuses_bad_options(folder):
    result = CliRunner().invoke(artwork_group, ["analyze", str(folder), "--aspect", "wide"])
    assert result.exit_code == 2 and "expected W:H" in result.output
    empty = folder / "empty_dir"
    empty.mkdir()
    result = CliRunner().invoke(artwork_group, ["analyze", str(empty)])
    assert result.exit_code == 2 and "no image files" in result.output


def test_analyze_decompression_bomb_is_a_per_file_error(tmp_path):
    from test_artwork_io import bomb_png

    (tmp_path / "bomb.png").write_bytes(bomb_png())
    result = run(["analyze", str(tmp_path / "bomb.png"), "--json"])
    assert result.exit_code == 1
    assert _records(result.stdout)["bomb.png"]["error"]["code"] == "too_large"


def test_frames_writes_jpegs_manifest_and_contact_sheet(tmp_path, real_images):
    video = tmp_path / "trailer.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for name in ("astronaut", "coffee", "rocket"):
        frame = cv2.resize(real_images[name], (320, 240), interpolation=cv2.INTER_AREA)
        for i in range(15):
            shifted = np.roll(frame, i, axis=1)
            writer.write(cv2.cvtColor(shifted, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "picks"
    result = run(["frames", str(video), "--top", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_frames"] == 45 and len(manifest["shots"]) == 3
    assert len(manifest["candidates"]) == 2
    for entry in manifest["candidates"]:
        with Image.open(out / entry["file"]) as image:
            assert image.format == "JPEG" and image.size == (320, 240)
        assert entry["timestamp"] == pytest.approx(entry["frame_index"] / 10, abs=1e-3)
    with Image.open(out / manifest["contact_sheet"]) as sheet:
        assert sheet.format == "PNG" and sheet.size[0] > 320


def test_frames_on_a_non_video_is_a_clear_error(tmp_path):
    fake = tmp_path / "trailer.mp4"
    fake.write_bytes(np.random.default_rng(0).bytes(5000))
    result = CliRunner().invoke(artwork_group, ["frames", str(fake), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "cannot open it as a video" in result.output


def _png_with_ztxt(inflated_bytes: int) -> bytes:
    from test_artwork_io import _png_chunk

    plain = encode(np.full((48, 48, 3), 90, np.uint8), "PNG")
    payload = zlib.compress(b"\x00" * inflated_bytes, 9)
    return plain[:33] + _png_chunk(b"zTXt", b"k\x00\x00" + payload) + plain[33:]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_analyze_a_folder_of_bad_files_names_each_problem(tmp_path, real_images, workers):
    good = encode(real_images["coffee"], quality=90)
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "cut.jpg").write_bytes(good[:200])
    (tmp_path / "thin.png").write_bytes(encode(np.full((6000, 32, 3), 128, np.uint8), "PNG"))
    (tmp_path / "bomb.png").write_bytes(_png_with_ztxt(2 << 20))  # 2 MB of text in one chunk
    (tmp_path / "report.jpg").write_bytes(b"%PDF-1.4\n" + bytes(100))
    result = CliRunner().invoke(artwork_group, ["analyze", str(tmp_path), "--json",
                                                "--workers", workers])
    assert result.exit_code == 1
    records = _records(result.stdout)
    assert "error" not in records["good.jpg"]
    expected = {"cut.jpg": ("truncated", "truncated or corrupt"),
                "thin.png": ("bad_aspect", "aspect ratio of 187.5:1"),
                "bomb.png": ("too_large", "metadata is too large"),
                "report.jpg": ("not_an_image", "PDF document")}
    for name, (code, phrase) in expected.items():
        assert records[name]["error"]["code"] == code, records[name]
        assert phrase in records[name]["error"]["message"]
        assert f"error: {tmp_path / name}: " in result.stderr
    assert "Traceback" not in result.output
    assert "4 of 5 file(s) failed" in result.stderr


def test_frames_on_a_truncated_video_or_a_still_image_is_a_clear_error(tmp_path, real_images):
    video = tmp_path / "trailer.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(40):
        frame = np.roll(cv2.resize(real_images["coffee"], (320, 240)), 4 * i, axis=1)
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    still = tmp_path / "still.mp4"
    still.write_bytes(encode(real_images["coffee"], "PNG"))
    for path, phrase in ((cut, "cut.avi: the video is truncated"),
                         (still, "still.mp4: the file is a PNG image, not a video")):
        result = CliRunner().invoke(artwork_group, ["frames", str(path), "--out",
                                                    str(tmp_path / "out")])
        assert result.exit_code == 1
        assert phrase in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_analyze_warns_like_the_marketer_page(tmp_path, real_images):
    # the page's checks on an upload: near-duplicates of the variants before
    # it, the slot's aspect ratio, and a face expected unless told otherwise
    astronaut = real_images["astronaut"]
    (tmp_path / "a_astronaut.jpg").write_bytes(encode(astronaut, quality=92))
    recut = cv2.resize(astronaut[30:-30, 40:], (300, 280), interpolation=cv2.INTER_AREA)
    (tmp_path / "b_astronaut_recut.png").write_bytes(encode(recut, "PNG"))
    (tmp_path / "c_coffee_poster.jpg").write_bytes(
        encode(cv2.resize(real_images["coffee"], (1000, 1500)), quality=90))
    result = run(["analyze", str(tmp_path), "--json", "--workers", "1", "--aspect", "2:3"])
    assert result.exit_code == 0
    records = _records(result.stdout)
    warnings = {name: {w["code"]: w["message"] for w in rec["warnings"]}
                for name, rec in records.items()}
    assert "near_duplicate" not in warnings["a_astronaut.jpg"]
    assert warnings["b_astronaut_recut.png"]["near_duplicate"] == (
        f"Near-duplicate of variant {tmp_path / 'a_astronaut.jpg'}.")
    assert "near_duplicate" not in warnings["c_coffee_poster.jpg"]
    assert "wrong_aspect" in warnings["a_astronaut.jpg"]  # 512 x 512 for a 2:3 slot
    assert "wrong_aspect" not in warnings["c_coffee_poster.jpg"]  # 1000 x 1500
    assert "no_face" in warnings["c_coffee_poster.jpg"]
    human = run(["analyze", str(tmp_path / "c_coffee_poster.jpg"), "--no-expect-face"])
    assert human.exit_code == 0 and "warnings: -" in human.output
