"""Loading at the edge: bad and unusual inputs, built in code."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from artwork_helpers import encode
from PIL import Image

import artwork
from artwork import ArtworkInputError, load_image


@pytest.fixture(scope="module")
def astronaut(real_images):
    return real_images["astronaut"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG header declaring width x height, with one compressed row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * (3 * 100))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def test_rgb_jpeg_round_trip(astronaut):
    loaded = load_image(encode(astronaut, quality=95))
    assert loaded.image.shape == astronaut.shape and loaded.image.dtype == np.uint8
    assert loaded.format == "JPEG" and loaded.notes == []
    # JPEG at quality 95 changes pixels by a few levels on average
    assert np.abs(loaded.image.astype(int) - astronaut).mean() < 3


def test_path_bytes_and_array_agree(tmp_path, astronaut):
    data = encode(astronaut, "PNG")
    path = tmp_path / "a.png"
    path.write_bytes(data)
    from_path, from_bytes = load_image(path), load_image(data)
    assert np.array_equal(from_path.image, astronaut)
    assert np.array_equal(from_bytes.image, astronaut)
    assert from_path.content_hash == from_bytes.content_hash
    assert np.array_equal(load_image(astronaut).image, astronaut)


@pytest.mark.parametrize("data", [b"", bytearray()])
def test_zero_bytes(data):
    with pytest.raises(ArtworkInputError, match="empty") as info:
        load_image(data)
    assert info.value.code == "empty"


def test_zero_byte_file_names_the_file(tmp_path):
    path = tmp_path / "poster.jpg"
    path.write_bytes(b"")
    with pytest.raises(ArtworkInputError, match="poster.jpg.*empty"):
        load_image(path)


def test_truncated_jpeg(astronaut):
    data = encode(astronaut, quality=90)
    with pytest.raises(ArtworkInputError, match="truncated") as info:
        load_image(data[: len(data) // 2])
    assert info.value.code == "truncated"


@pytest.mark.parametrize("keep", [2, 200, 600])
def test_jpeg_cut_inside_its_header(astronaut, keep):
    data = encode(astronaut, quality=90)[:keep]
    with pytest.raises(ArtworkInputError, match="JPEG.*truncated or corrupt") as info:
        load_image(data)
    assert info.value.code == "truncated"


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
def test_png_metadata_bomb_refused(kind):
    packer = zlib.compressobj(9)
    inflated = b"".join(packer.compress(b"\x00" * (1 << 20)) for _ in range(64)) + packer.flush()
    chunk = _png_chunk(kind, b"bomb\x00\x00" + inflated)  # 64 MB once inflated
    plain = encode(np.full((48, 48, 3), 90, np.uint8), "PNG")
    with pytest.raises(ArtworkInputError, match="metadata is too large") as info:
        load_image(plain[:33] + chunk + plain[33:])  # right after IHDR
    assert info.value.code == "too_large"


def test_png_using_colours_its_palette_lacks():
    ihdr = struct.pack(">IIBBBBB", 40, 40, 8, 3, 0, 0, 0)
    rows = (b"\x00" + bytes(range(40))) * 40
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"PLTE", b"\xff" * 6)
            + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))
    with pytest.raises(ArtworkInputError, match="palette has 2 colour.*index 39") as info:
        load_image(data)
    assert info.value.code == "truncated"


@pytest.mark.parametrize(("data", "kind"), [
    (b"%PDF-1.7\n%\xe2\xe3\n1 0 obj", "PDF document"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "ZIP archive"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC/HEIF image"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "MP4/MOV video"),
])
def test_other_files_are_named(data, kind):
    with pytest.raises(ArtworkInputError, match=kind) as info:
        load_image(data + b"\x00" * 64)
    assert info.value.code == "not_an_image"


@pytest.mark.parametrize("size", [(32, 60_000), (60_000, 32), (40, 330)])
def test_extreme_aspect_ratio_refused_from_the_header(size):
    width, height = size
    with pytest.raises(ArtworkInputError, match="aspect ratio.*at most 8 times") as info:
        load_image(encode(np.full((height, width, 3), 128, np.uint8), "PNG"))
    assert info.value.code == "bad_aspect"


def test_extreme_aspect_array_refused_by_every_entry_point(detectors):
    thin = np.full((60_000, 32, 3), 128, np.uint8)
    for call in (lambda: artwork.analyze(thin, detectors=detectors),
                 lambda: artwork.color_features(thin),
                 lambda: artwork.detect_faces(thin, detectors=detectors)):
        with pytest.raises(ArtworkInputError, match="aspect ratio") as info:
            call()
        assert info.value.code == "bad_aspect"


@pytest.mark.parametrize("shape", [(256, 32), (32, 256), (4000, 500), (500, 4000),
                                   (4001, 501), (2047, 257)])
def test_aspect_ratio_up_to_the_limit_is_analysed(detectors, shape):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    result = artwork.analyze(image, detectors=detectors)
    assert (result.height, result.width) == shape
    assert 0.0 <= result.features["Color"]["brightness"] <= 1.0


def test_invalid_exif_orientation_is_ignored_and_said_so():
    image = Image.fromarray(np.zeros((40, 60, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 99
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    loaded = load_image(buffer.getvalue())
    assert loaded.image.shape == (40, 60, 3)  # not rotated
    assert any("orientation 99 is not a valid value" in note for note in loaded.notes)


def test_random_bytes_with_image_extension(tmp_path):
    path = tmp_path / "poster.jpg"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArtworkInputError, match="poster.jpg.*not a recognised image") as info:
        load_image(path)
    assert info.value.code == "not_an_image"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "html"),
        (b"  <html><head></head></html>", "html"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "svg"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "svg"),
        (b"<note>xml but no image</note>", "not_an_image"),
    ],
)
def test_markup_disguised_as_image(tmp_path, data, code):
    path = tmp_path / "poster.png"
    path.write_bytes(data)
    with pytest.raises(ArtworkInputError) as info:
        load_image(path)
    assert info.value.code == code


def test_decompression_bomb_refused_from_header():
    data = bomb_png()
    assert struct.unpack(">II", data[16:24]) == (50_000, 50_000)  # what the header declares
    with pytest.raises(ArtworkInputError, match="pixels") as info:
        load_image(data)
    assert info.value.code == "too_large"


def test_bomb_under_pillows_limit_but_over_ours():
    # 12,000 x 12,000 = 144 MP: Pillow only warns, our 100 MP limit refuses
    with pytest.raises(ArtworkInputError, match="144,000,000") as info:
        load_image(bomb_png(12_000, 12_000))
    assert info.value.code == "too_large"


def test_cmyk_converted(astronaut):
    cmyk = Image.fromarray(astronaut).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG", quality=95)
    loaded = load_image(buffer.getvalue())
    assert loaded.source_mode == "CMYK"
    assert any("CMYK" in note for note in loaded.notes)
    # naive CMYK round trip plus JPEG: close to the original on average
    assert np.abs(loaded.image.astype(int) - astronaut).mean() < 6


def test_16_bit_greyscale_scaled():
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    loaded = load_image(encode(values, "PNG"))
    assert loaded.source_mode.startswith("I;16")
    expected = np.rint(values / 257.0)
    assert np.abs(loaded.image[..., 0].astype(int) - expected).max() <= 1
    assert np.array_equal(loaded.image[..., 0], loaded.image[..., 2])


def test_16_bit_rgb_png():
    bgr16 = np.zeros((40, 60, 3), np.uint16) + np.array([1000, 30000, 65535], np.uint16)
    ok, buf = cv2.imencode(".png", bgr16)
    assert ok
    loaded = load_image(buf.tobytes())
    expected = np.array([65535, 30000, 1000]) / 257.0
    assert np.abs(loaded.image[0, 0].astype(float) - expected).max() <= 1.0


def test_greyscale_expanded(real_images):
    grey = real_images["camera"][..., 0]
    loaded = load_image(encode(grey, "PNG"))
    assert loaded.image.shape == grey.shape + (3,)
    assert np.array_equal(loaded.image[..., 1], grey)
    assert any("greyscale" in note for note in loaded.notes)


def test_alpha_flattened_onto_background():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :20, 3] = 255  # left half opaque red, right half fully transparent
    loaded = load_image(encode(rgba, "PNG"))
    assert tuple(loaded.image[10, 5]) == (200, 0, 0)
    assert tuple(loaded.image[10, 35]) == (0, 0, 0)
    white = load_image(encode(rgba, "PNG"), background=(255, 255, 255))
    assert tuple(white.image[10, 35]) == (255, 255, 255)
    assert any("transparency" in note for note in loaded.notes)


def test_palette_image(astronaut):
    pal = Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    buffer = io.BytesIO()
    pal.save(buffer, format="PNG")
    loaded = load_image(buffer.getvalue())
    assert loaded.source_mode == "P"
    # 64 colours approximate the photo within a few levels on average
    assert np.abs(loaded.image.astype(int) - astronaut).mean() < 12


def test_animated_gif_first_frame_said_so():
    frames = [Image.new("RGB", (40, 40), colour) for colour in
              ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(buffer.getvalue())
    red = loaded.image[20, 20].astype(int)
    assert red[0] > 200 and red[1] < 50 and red[2] < 50
    assert any("first of 3 frames" in note for note in loaded.notes)


def test_exif_rotation_applied():
    stored = np.zeros((40, 60, 3), np.uint8)  # 60 wide, 40 high as stored
    stored[:10, :10] = (255, 0, 0)  # red marker top-left as stored
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    loaded = load_image(buffer.getvalue())
    assert loaded.image.shape == (60, 40, 3)  # portrait once rotated
    assert loaded.image[5, 34, 0] > 200 and loaded.image[5, 5, 0] < 50  # marker now top-right
    assert any("EXIF orientation 6" in note for note in loaded.notes)
    geometry = artwork.geometry_features(loaded.image)["Img"]
    assert geometry["orientation"] == "portrait"


def test_tiny_image_refused():
    with pytest.raises(ArtworkInputError, match="16x16") as info:
        load_image(encode(np.zeros((16, 16, 3), np.uint8), "PNG"))
    assert info.value.code == "too_small"


def test_huge_image_loads_and_limit_applies(detectors):
    big = np.zeros((4000, 6000, 3), np.uint8)
    big[1000:3000, 2000:4000] = (200, 120, 40)
    data = encode(big, quality=80)
    result = artwork.analyze(data, detectors=detectors)
    assert (result.width, result.height) == (6000, 4000)
    with pytest.raises(ArtworkInputError, match="over the limit") as info:
        load_image(data, max_pixels=10_000_000)
    assert info.value.code == "too_large"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros((40, 40, 3), np.float32), "dtype uint8"),
        (np.zeros((40, 40), np.uint8), r"shape \(height, width, 3\)"),
        (np.zeros((40, 40, 4), np.uint8), r"shape \(height, width, 3\)"),
        ([[0, 0, 0]], "got list"),
    ],
)
def test_bad_arrays(value, match, detectors):
    with pytest.raises(ArtworkInputError, match=match):
        artwork.analyze(value, detectors=detectors)
    if isinstance(value, np.ndarray):
        with pytest.raises(ArtworkInputError, match=match):
            artwork.color_features(value)


def test_missing_file(tmp_path):
    with pytest.raises(ArtworkInputError, match="no such image file") as info:
        load_image(tmp_path / "nope.jpg")
    assert info.value.code == "not_found"


def test_bad_max_pixels():
    with pytest.raises(ArtworkInputError, match="max_pixels must be a positive int"):
        load_image(b"x", max_pixels=0)


def test_mutated_files_raise_only_artwork_input_error(detectors):
    # seeded byte edits, mostly in the headers, of one poster in every format:
    # each file either analyses or is refused with a code, never another exception
    rng = np.random.default_rng(0)
    base = cv2.resize(np.random.default_rng(1).integers(0, 256, (6, 4, 3), np.uint8),
                      (96, 144), interpolation=cv2.INTER_CUBIC)
    seeds = [encode(base, fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")]
    outcomes = set()
    for i in range(600):
        data = bytearray(seeds[i % len(seeds)])
        for _ in range(int(rng.integers(1, 8))):
            pos = int(rng.integers(0, min(len(data), 200 if rng.random() < 0.6 else len(data))))
            edit = rng.integers(0, 3)
            if edit == 0:
                data[pos] = int(rng.integers(0, 256))
            elif edit == 1:
                del data[pos : pos + int(rng.integers(1, 16))]
            else:
                data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 16)), np.uint8).tobytes()
        try:
            artwork.analyze(bytes(data), detectors=detectors, max_pixels=4_000_000)
            outcomes.add("analysed")
        except ArtworkInputError as exc:
            outcomes.add(exc.code)
    assert {"analysed", "truncated", "not_an_image"} <= outcomes
