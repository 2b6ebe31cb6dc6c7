"""A corpus of bad poster and trailer files, every one built in code.

Each :class:`BadFile` names its kind, builds its bytes on demand (some
builders compress hundreds of megabytes of zeros, so nothing is built at
import), and states the answer the upload routes owe it: the HTTP status, the
``error.code`` and a phrase the message must contain.
"""

from __future__ import annotations

import functools
import io
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.server.test_catalogue_helpers import encode, poster_array

__all__ = [
    "BAD_POSTERS",
    "BAD_TRAILERS",
    "GOOD_ODD_POSTERS",
    "BadFile",
    "animated_gif",
    "good_trailer",
    "png_chunk",
]


@dataclass(frozen=True)
class BadFile:
    """One bad upload and the answer it must get.

    Attributes
    ----------
    kind : str
        The test id.
    build : callable returning bytes
    code : str
        The expected ``error.code``.
    needle : str
        A phrase the error message must contain (compared lower-cased).
    status : int, default=400
    filename : str, default="poster.jpg"
    """

    kind: str
    build: Callable[[], bytes]
    code: str
    needle: str
    status: int = 400
    filename: str = "poster.jpg"


# --------------------------------------------------------------------------- building blocks


@functools.cache
def _poster(fmt: str, size: tuple[int, int] = (400, 600), **params: object) -> bytes:
    return encode(poster_array(3, size), fmt, **params)


def _cut(fmt: str, keep: int | float) -> Callable[[], bytes]:
    """The first ``keep`` bytes (a fraction if a float) of a poster in ``fmt``."""

    def build() -> bytes:
        data = _poster(fmt)
        n = int(len(data) * keep) if isinstance(keep, float) else keep
        return data[:n]

    return build


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and a correct CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(width: int, height: int, *, before_idat: bytes = b"", after_idat: bytes = b"",
         rows: int | None = None, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A hand-made RGB PNG declaring ``width`` x ``height``, with ``rows`` rows of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    n_rows = height if rows is None else rows
    raw = (b"\x00" + b"\x80" * (3 * width)) * n_rows
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + before_idat
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + after_idat + png_chunk(b"IEND", b""))


def _zeros_compressed(n_bytes: int) -> bytes:
    """``n_bytes`` zero bytes through zlib, without holding them in memory."""
    packer = zlib.compressobj(9)
    block = b"\x00" * (1 << 20)
    parts = [packer.compress(block) for _ in range(n_bytes >> 20)]
    return b"".join(parts) + packer.flush()


@functools.cache
def _bomb_chunk(kind: bytes) -> bytes:
    """A zTXt or iCCP chunk whose payload inflates to 200 MB."""
    return png_chunk(kind, b"bomb\x00\x00" + _zeros_compressed(200 << 20))


def _with_chunk(kind: bytes, *, after_idat: bool = False) -> Callable[[], bytes]:
    def build() -> bytes:
        chunk = _bomb_chunk(kind)
        if after_idat:
            return _png(64, 96, after_idat=chunk)
        return _png(64, 96, before_idat=chunk)

    return build


def _many_ztxt() -> bytes:
    # each chunk is under Pillow's per-chunk limit, together they are over its total
    one = png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"\x00" * 1_000_000, 9))
    return _png(64, 96, before_idat=one * 70)


def _giant_text() -> bytes:
    return _png(64, 96, before_idat=png_chunk(b"tEXt", b"k\x00" + b"x" * (2 << 20)))


def _bad_crc(kind: bytes) -> Callable[[], bytes]:
    """A real PNG with the CRC of its first ``kind`` chunk flipped."""

    def build() -> bytes:
        data = bytearray(_poster("PNG"))
        start = data.index(kind) - 4
        length = struct.unpack(">I", data[start : start + 4])[0]
        crc = start + 8 + length
        data[crc : crc + 4] = bytes(b ^ 0xFF for b in data[crc : crc + 4])
        return bytes(data)

    return build


def _scrambled_idat() -> bytes:
    """A PNG whose IDAT holds bytes that are not a zlib stream (with a correct CRC)."""
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 96, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", bytes(range(256)) * 8) + png_chunk(b"IEND", b""))


def _no_idat() -> bytes:
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 96, 8, 2, 0, 0, 0))
            + png_chunk(b"IEND", b""))


def _bad_bit_depth() -> bytes:
    return _png(64, 96, bit_depth=7)


def _short_palette() -> bytes:
    """A palette PNG whose PLTE chunk is 4 bytes, not a whole number of colours."""
    ihdr = struct.pack(">IIBBBBB", 64, 96, 8, 3, 0, 0, 0)
    raw = (b"\x00" + bytes(range(64))) * 96
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"PLTE", b"\x00" * 4)
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def _image(fmt: str, size: tuple[int, int]) -> Callable[[], bytes]:
    """A flat grey image of ``size`` (width, height), encoded in ``fmt``."""

    def build() -> bytes:
        width, height = size
        return encode(np.full((height, width, 3), 128, np.uint8), fmt)

    return build


def _gif_bomb() -> bytes:
    """A GIF whose logical screen is 65535 x 65535 around one 40 x 40 frame."""
    data = bytearray(_poster("GIF", (40, 40)))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def _bmp_bomb() -> bytes:
    """A BMP header declaring 100000 x 100000 pixels over a few bytes of data."""
    data = bytearray(_poster("BMP", (40, 40)))
    data[18:26] = struct.pack("<ii", 100_000, 100_000)
    return bytes(data)


def _jpeg_zero_width() -> bytes:
    """A JPEG whose frame header (SOF0) declares a width of 0."""
    data = bytearray(_poster("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 7 : sof + 9] = b"\x00\x00"
    return bytes(data)


def _tiff_bad_strips() -> bytes:
    """A TIFF whose strip offsets point past the end of the file."""
    data = bytearray(_poster("TIFF", (64, 96)))
    offset = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[offset : offset + 2])[0]
    for i in range(count):
        entry = offset + 2 + 12 * i
        if struct.unpack("<H", data[entry : entry + 2])[0] == 273:  # StripOffsets
            kind, n = struct.unpack("<HI", data[entry + 2 : entry + 8])
            if n == 1:
                data[entry + 8 : entry + 12] = struct.pack("<I", 0x7FFF0000)
            else:
                pointer = struct.unpack("<I", data[entry + 8 : entry + 12])[0]
                size = 4 if kind == 4 else 2
                code = "<I" if size == 4 else "<H"
                for k in range(n):
                    data[pointer + size * k : pointer + size * (k + 1)] = struct.pack(
                        code, 0xFFF0 if size == 2 else 0x7FFF0000)
    return bytes(data)


def _tiff_page_without_width() -> bytes:
    """A two-page TIFF whose second page has no ImageWidth tag."""
    buffer = io.BytesIO()
    pages = [Image.fromarray(poster_array(seed, (64, 96))) for seed in (3, 4)]
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    data = bytearray(buffer.getvalue())
    first = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[first : first + 2])[0]
    second = struct.unpack("<I", data[first + 2 + 12 * count : first + 6 + 12 * count])[0]
    count = struct.unpack("<H", data[second : second + 2])[0]
    for i in range(count):
        entry = second + 2 + 12 * i
        if struct.unpack("<H", data[entry : entry + 2])[0] == 256:  # ImageWidth
            data[entry : entry + 2] = struct.pack("<H", 65000)
    return bytes(data)


def _unsupported(fmt: str) -> Callable[[], bytes]:
    def build() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(poster_array(4, (64, 96))).save(buffer, format=fmt)
        return buffer.getvalue()

    return build


def _ico() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(poster_array(4, (64, 64))).save(buffer, format="ICO", sizes=[(64, 64)])
    return buffer.getvalue()


def _gzip_png() -> bytes:
    import gzip

    return gzip.compress(_poster("PNG"))


def _zip() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("poster.jpg", _poster("JPEG"))
    return buffer.getvalue()


def _elf() -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HHI", 2, 62, 1) + b"\x00" * 200


def _pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n"
            b"%%EOF\n")


def _png_then_html() -> bytes:
    """A polyglot: the PNG signature and header, then an HTML page."""
    return _poster("PNG")[:33] + b"<html><script>alert(1)</script></html>" * 10


def _webp_header_only() -> bytes:
    return _poster("WEBP")[:30]


# --------------------------------------------------------------------------- posters


BAD_POSTERS: list[BadFile] = [
    BadFile("empty", lambda: b"", "empty", "empty"),
    BadFile("one-byte", lambda: b"\xff", "not_an_image", "not a recognised image"),
    BadFile("jpeg-first-2-bytes", _cut("JPEG", 2), "truncated", "truncated"),
    BadFile("jpeg-first-200-bytes", _cut("JPEG", 200), "truncated", "truncated"),
    BadFile("jpeg-first-600-bytes", _cut("JPEG", 600), "truncated", "truncated"),
    BadFile("jpeg-half", _cut("JPEG", 0.5), "truncated", "truncated"),
    BadFile("jpeg-progressive-half",
            lambda: _poster("JPEG", progressive=True)[: len(_poster("JPEG", progressive=True))
                                                       // 2], "truncated", "truncated"),
    BadFile("jpeg-zero-width", _jpeg_zero_width, "truncated", "corrupt"),
    BadFile("png-first-20-bytes", _cut("PNG", 20), "truncated", "truncated"),
    BadFile("png-first-100-bytes", _cut("PNG", 100), "truncated", "truncated"),
    BadFile("png-half", _cut("PNG", 0.5), "truncated", "truncated"),
    BadFile("png-without-iend-and-last-idat-bytes", _cut("PNG", 0.98), "truncated",
            "truncated"),
    BadFile("png-bad-ihdr-crc", _bad_crc(b"IHDR"), "truncated", "corrupt"),
    BadFile("png-idat-not-zlib", _scrambled_idat, "truncated", "corrupt"),
    BadFile("png-no-idat", _no_idat, "truncated", "truncated"),
    BadFile("png-bit-depth-7", _bad_bit_depth, "truncated", "corrupt"),
    BadFile("png-palette-not-whole-colours", _short_palette, "truncated", "corrupt"),
    BadFile("png-200mb-ztxt", _with_chunk(b"zTXt"), "too_large", "metadata", status=413),
    BadFile("png-200mb-iccp", _with_chunk(b"iCCP"), "too_large", "metadata", status=413),
    BadFile("png-200mb-ztxt-after-idat", _with_chunk(b"zTXt", after_idat=True), "too_large",
            "metadata", status=413),
    BadFile("png-70-ztxt-of-1mb", _many_ztxt, "too_large", "metadata", status=413),
    BadFile("png-declares-50000x50000", lambda: _png(50_000, 50_000, rows=2), "too_large",
            "too large", status=413),
    BadFile("png-declares-3000x3000", lambda: _png(3000, 3000, rows=2), "too_large",
            "too large", status=413),
    BadFile("gif-screen-65535x65535", _gif_bomb, "too_large", "too large", status=413),
    BadFile("bmp-declares-100000x100000", _bmp_bomb, "too_large", "too large", status=413),
    BadFile("png-1x1", _image("PNG", (1, 1)), "too_small", "too small"),
    BadFile("png-31x600", _image("PNG", (31, 600)), "too_small", "too small"),
    BadFile("png-32x60000", _image("PNG", (32, 60_000)), "bad_aspect", "aspect ratio"),
    BadFile("png-60000x32", _image("PNG", (60_000, 32)), "bad_aspect", "aspect ratio"),
    BadFile("jpeg-40x330", _image("JPEG", (40, 330)), "bad_aspect", "aspect ratio"),
    BadFile("gif-330x40", _image("GIF", (330, 40)), "bad_aspect", "aspect ratio"),
    BadFile("gif-first-100-bytes", _cut("GIF", 100), "truncated", "truncated"),
    BadFile("gif-half", _cut("GIF", 0.5), "truncated", "truncated"),
    BadFile("webp-first-30-bytes", _webp_header_only, "truncated", "truncated"),
    BadFile("webp-half", _cut("WEBP", 0.5), "truncated", "truncated"),
    BadFile("bmp-first-40-bytes", _cut("BMP", 40), "truncated", "truncated"),
    BadFile("bmp-half", _cut("BMP", 0.5), "truncated", "truncated"),
    BadFile("tiff-first-16-bytes", _cut("TIFF", 16), "truncated", "truncated"),
    BadFile("tiff-half", _cut("TIFF", 0.5), "truncated", "truncated"),
    BadFile("tiff-strips-past-the-end", _tiff_bad_strips, "truncated", "truncated"),
    BadFile("tiff-second-page-without-width", _tiff_page_without_width, "truncated",
            "missing dimensions"),
    BadFile("svg-named-jpg", lambda: b"<svg xmlns='http://www.w3.org/2000/svg'/>", "svg",
            "svg"),
    BadFile("svg-with-xml-prolog", lambda: b"<?xml version='1.0'?>\n<svg></svg>", "svg", "svg"),
    BadFile("html-error-page", lambda: b"<!DOCTYPE html><html><body>403</body></html>", "html",
            "html"),
    BadFile("plain-text", lambda: b"hello, this is not a picture\n" * 4, "not_an_image",
            "not a recognised image"),
    BadFile("json", lambda: b'{"error": "not found"}', "not_an_image",
            "not a recognised image"),
    BadFile("pdf", _pdf, "not_an_image", "pdf"),
    BadFile("zip-holding-a-jpeg", _zip, "not_an_image", "zip"),
    BadFile("gzip-of-a-png", _gzip_png, "not_an_image", "gzip"),
    BadFile("elf-executable", _elf, "not_an_image", "executable"),
    BadFile("png-signature-then-html", _png_then_html, "truncated", "corrupt"),
    BadFile("ico", _ico, "not_an_image", "not supported"),
    BadFile("ppm", _unsupported("PPM"), "not_an_image", "not supported"),
    BadFile("tga", _unsupported("TGA"), "not_an_image", "not supported"),
    BadFile("pcx", _unsupported("PCX"), "not_an_image", "not supported"),
]


# --------------------------------------------------------------------------- odd but good


def _cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(poster_array(5)).convert("CMYK").save(buffer, format="JPEG")
    return buffer.getvalue()


def _mode(mode: str, fmt: str = "PNG") -> Callable[[], bytes]:
    def build() -> bytes:
        buffer = io.BytesIO()
        image = Image.fromarray(poster_array(6))
        if mode == "I;16":
            grey = np.asarray(image.convert("L")).astype(np.uint16) * 257
            image = Image.fromarray(grey)
        elif mode == "RGBA":
            image = image.convert("RGBA")
            image.putalpha(Image.linear_gradient("L").resize(image.size))
        else:
            image = image.convert(mode)
        image.save(buffer, format=fmt)
        return buffer.getvalue()

    return build


def animated_gif() -> bytes:
    """Three different posters as an animated GIF."""
    frames = [Image.fromarray(poster_array(seed)) for seed in (7, 8, 9)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=80)
    return buffer.getvalue()


def _exif(orientation: int | None = None, blob: bytes | None = None) -> Callable[[], bytes]:
    def build() -> bytes:
        image = Image.fromarray(poster_array(10))
        buffer = io.BytesIO()
        if blob is not None:
            image.save(buffer, format="JPEG", exif=blob)
        else:
            exif = image.getexif()
            exif[0x0112] = orientation
            image.save(buffer, format="JPEG", exif=exif.tobytes())
        return buffer.getvalue()

    return build


def _exif_cut_short() -> bytes:
    """A JPEG whose EXIF block ends before the description it points to."""
    image = Image.fromarray(poster_array(11))
    exif = image.getexif()
    exif[0x010E] = "a long description " * 4  # ImageDescription, stored past the IFD
    blob = exif.tobytes()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=blob[:-40])
    return buffer.getvalue()


def _jpeg_with_trailing_zip() -> bytes:
    return _poster("JPEG") + _zip()


#: Files that look odd but are usable: each must be accepted (201), with the
#: phrase a note in ``details.notes`` must contain (``None``: no note needed).
GOOD_ODD_POSTERS: list[tuple[str, Callable[[], bytes], str | None]] = [
    ("cmyk-jpeg", _cmyk_jpeg, "CMYK"),
    ("greyscale-png", _mode("L"), "greyscale"),
    ("16-bit-greyscale-png", _mode("I;16"), "16-bit"),
    ("rgba-png", _mode("RGBA"), "transparency"),
    ("palette-png", _mode("P"), "palette"),
    ("1-bit-png", _mode("1"), "greyscale"),
    ("animated-gif", animated_gif, "first of 3 frames"),
    ("exif-orientation-99", _exif(orientation=99), None),
    ("exif-garbage-blob", _exif(blob=b"Exif\x00\x00" + bytes(range(200))), None),
    ("exif-cut-short", _exif_cut_short, "decoder warning: Tag data larger than file"),
    ("webp-named-jpg", lambda: _poster("WEBP"), None),
    ("jpeg-with-a-zip-appended", _jpeg_with_trailing_zip, None),
    ("jpeg-at-the-aspect-limit-portrait", _image("JPEG", (40, 320)), None),
    ("png-at-the-aspect-limit-landscape", _image("PNG", (4000, 500)), None),
    # Pillow checks no CRC of image data; these pixels decode intact
    ("png-with-a-bad-idat-crc", _bad_crc(b"IDAT"), None),
    # within Pillow's limits for uncompressed text; the metadata is not used
    ("png-with-2mb-of-text", _giant_text, None),
]


# --------------------------------------------------------------------------- trailers


def _video(size: tuple[int, int], n_frames: int = 30, fourcc: str = "MJPG",
           suffix: str = ".avi") -> bytes:
    """A video of ``n_frames`` moving noise frames of ``size`` (width, height)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip{suffix}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, size)
        rng = np.random.default_rng(0)
        base = poster_array(12, size)
        for i in range(n_frames):
            frame = np.roll(base, 3 * i, axis=1)
            frame = cv2.add(frame, rng.integers(0, 8, frame.shape, dtype=np.uint8))
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
        writer.release()
        return path.read_bytes()


@functools.cache
def good_trailer() -> bytes:
    """A 2-second 160 x 96 MJPG AVI."""
    return _video((160, 96), n_frames=50)


def _trailer_cut(fraction: float) -> Callable[[], bytes]:
    def build() -> bytes:
        data = good_trailer()
        return data[: int(len(data) * fraction)]

    return build


BAD_TRAILERS: list[BadFile] = [
    BadFile("empty", lambda: b"", "empty", "empty", filename="clip.mp4"),
    BadFile("text", lambda: b"just some words, not a video\n" * 10, "not_a_video", "text",
            filename="clip.mp4"),
    BadFile("html", lambda: b"<html><body>502 Bad Gateway</body></html>", "not_a_video",
            "text", filename="clip.mp4"),
    BadFile("text-under-a-long-non-ascii-name", lambda: b"not a video\n", "not_a_video", "text",
            filename="bande-annonce-" + "\u00e9" * 200 + ".mp4"),
    BadFile("random-bytes", lambda: np.random.default_rng(1).bytes(50_000), "not_a_video",
            "cannot open", filename="clip.mp4"),
    BadFile("jpeg-poster", lambda: _poster("JPEG"), "not_a_video", "jpeg image",
            filename="clip.mp4"),
    BadFile("png-poster", lambda: _poster("PNG"), "not_a_video", "png image",
            filename="clip.mp4"),
    BadFile("zip-holding-a-jpeg", _zip, "not_a_video", "zip archive", filename="clip.mp4"),
    BadFile("pdf", _pdf, "not_a_video", "pdf document", filename="clip.mp4"),
    BadFile("avi-first-200-bytes", lambda: good_trailer()[:200], "not_a_video", "cannot open",
            filename="clip.avi"),
    BadFile("avi-half", _trailer_cut(0.5), "truncated", "truncated", filename="clip.avi"),
    BadFile("avi-without-frames", lambda: _video((160, 96), n_frames=0), "no_frames",
            "no decodable frames", filename="clip.avi"),
    BadFile("avi-16x16-frames", lambda: _video((16, 16)), "too_small", "too small",
            filename="clip.avi"),
    BadFile("avi-40x400-frames", lambda: _video((40, 400)), "bad_aspect", "aspect ratio",
            filename="clip.avi"),
    BadFile("avi-1280x1024-frames", lambda: _video((1280, 1024), n_frames=3), "too_large",
            "too large", status=413, filename="clip.avi"),
]
