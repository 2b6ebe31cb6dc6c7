"""The edge: bytes, files and arrays to one validated RGB ``uint8`` array.

Everything downstream of :func:`load_image` receives an array of shape
``(height, width, 3)`` and dtype ``uint8`` and never converts again
(STYLE.md). Every refusal is an :class:`~artwork.ArtworkInputError` whose
``code`` names the problem.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from artwork._errors import ArtworkInputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "MAX_ASPECT",
    "LoadedImage",
    "check_image",
    "check_size",
    "claimed_format",
    "document_kind",
    "load_image",
    "save_image",
]

#: Largest accepted image, in pixels (width x height), checked from the
#: header before any pixel is decoded. 100 MP is a 10000 x 10000 poster.
DEFAULT_MAX_PIXELS = 100_000_000
#: Smallest accepted side in pixels: below this nothing can be measured.
DEFAULT_MIN_SIDE = 32
#: Largest accepted ratio of the longer side to the shorter. The colour
#: features read a copy whose longer side is 256 pixels, and its shorter side
#: must keep ``DEFAULT_MIN_SIDE`` pixels: 256 / 32 = 8. Every artwork slot
#: (2:3 poster, 16:9 billboard, 2.39:1 banner) is well inside it.
MAX_ASPECT = 8.0
_MAX_FILE_BYTES = 200 * 1024 * 1024
_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO")
# What Pillow raises on bytes it cannot decode: the exceptions its own fuzz
# test expects from open and load, plus low-level errors a damaged header can
# let through some plugins (a TIFF page without dimensions is a TypeError).
# MemoryError is not among them: that is the server's.
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, NotImplementedError, OverflowError,
                   EOFError, TypeError, struct.error, zlib.error, IndexError)
# Signatures of the supported formats: bytes starting like one of these that
# Pillow cannot open are a damaged image, not some other kind of file.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
# Documents, archives and programs people upload by mistake, named so the
# refusal says what was sent.
_DOCUMENTS = (
    (b"%PDF", "a PDF document"),
    (b"%!PS", "a PostScript document"),
    (b"PK\x03\x04", "a ZIP archive (or a document stored as one, such as .docx)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "an executable program (ELF)"),
)
_MEDIA = (
    (b"\x1a\x45\xdf\xa3", "a Matroska or WebM video"),
    (b"OggS", "an Ogg audio or video file"),
    (b"ID3", "an MP3 audio file"),
)


@dataclass(frozen=True, kw_only=True)
class LoadedImage:
    """An image decoded at the edge.

    Attributes
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
        RGB pixels, EXIF orientation applied.
    format : str
        The container format Pillow identified (``"JPEG"``, ``"PNG"``, ...),
        or ``"array"`` for an array passed in.
    source_mode : str
        Pillow's mode before conversion (``"CMYK"``, ``"I;16"``, ``"P"``...).
    content_hash : str
        SHA-256 of the bytes received (of the array's bytes for an array):
        the storage key.
    notes : list of str
        What was done to get RGB (``"EXIF orientation 6 applied"``,
        ``"animated GIF: first of 12 frames analysed"``, ...).
    """

    image: np.ndarray
    format: str
    source_mode: str
    content_hash: str
    notes: list[str] = field(default_factory=list)


def check_image(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Check that ``image`` is an RGB ``uint8`` array and return it unchanged.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    name : str, default="image"
        The argument name used in the error message.

    Returns
    -------
    ndarray of shape (height, width, 3), dtype uint8

    Raises
    ------
    ArtworkInputError
        ``code="bad_array"`` for another type, dtype or shape;
        ``code="too_small"`` for a side under ``DEFAULT_MIN_SIDE``;
        ``code="bad_aspect"`` for a longer side over ``MAX_ASPECT`` times the shorter.
    """
    if not isinstance(image, np.ndarray):
        raise ArtworkInputError(
            "bad_array", f"{name} must be a numpy array, got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise ArtworkInputError(
            "bad_array", f"{name} must have dtype uint8 (RGB 0-255), got {image.dtype}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ArtworkInputError(
            "bad_array",
            f"{name} must have shape (height, width, 3) in RGB order, got {image.shape}; "
            "decode files with artwork.load_image",
        )
    height, width = image.shape[:2]
    check_size(width, height, subject=name)
    return image


def check_size(width: int, height: int, *, subject: str) -> None:
    """Refuse a side under ``DEFAULT_MIN_SIDE`` or an aspect ratio over ``MAX_ASPECT``."""
    if min(width, height) < DEFAULT_MIN_SIDE:
        raise ArtworkInputError(
            "too_small",
            f"{subject} is too small: {width}x{height} pixels; both sides must be at least "
            f"{DEFAULT_MIN_SIDE} pixels",
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        ratio = max(width, height) / min(width, height)
        shape = "wide" if width > height else "tall"
        raise ArtworkInputError(
            "bad_aspect",
            f"{subject} is {width}x{height} pixels, an aspect ratio of {ratio:.4g}:1 (too "
            f"{shape}); the longer side may be at most {MAX_ASPECT:g} times the shorter",
        )


def _sniff(data: bytes) -> None:
    """Refuse empty, markup and vector content before Pillow sees it."""
    if len(data) == 0:
        raise ArtworkInputError("empty", "the file is empty (0 bytes), expected an image")
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        raise ArtworkInputError(
            "svg",
            "the file is an SVG vector drawing, not a raster image; export it as PNG or JPEG",
        )
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise ArtworkInputError(
            "html", "the file is an HTML page, not an image (was an error page saved?)"
        )
    if head.startswith(b"<"):
        raise ArtworkInputError("not_an_image", "the file is text markup, not an image")


def _to_rgb(img: Image.Image, background: tuple[int, int, int], notes: list[str]) -> np.ndarray:
    """Convert any Pillow mode to an RGB uint8 array, saying what was done."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(img)
        if mode.startswith("I;16"):
            scaled = values.astype(np.float64) / 257.0
            notes.append("16-bit greyscale scaled to 8 bits")
        else:
            lo, hi = float(values.min()), float(values.max())
            span = hi - lo if hi > lo else 1.0
            scaled = (values.astype(np.float64) - lo) * (255.0 / span)
            notes.append(f"{mode}-mode values stretched from [{lo:g}, {hi:g}] to 8 bits")
        grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    )
    if mode == "P":
        notes.append("palette image expanded to RGB")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode in ("L", "1", "LA"):
        notes.append("greyscale expanded to RGB")
    if has_alpha:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        flat = Image.alpha_composite(base, rgba).convert("RGB")
        notes.append(f"transparency flattened onto RGB{background}")
        return np.asarray(flat, dtype=np.uint8)
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8)


def document_kind(data: bytes) -> str | None:
    """Name a document, archive or program from its first bytes."""
    for signature, kind in _DOCUMENTS:
        if data.startswith(signature):
            return kind
    return None


def _what_file(data: bytes) -> str | None:
    """Name the kind of a file Pillow does not open, when its first bytes tell."""
    kind = document_kind(data)
    if kind is not None:
        return kind
    for signature, kind in _MEDIA:
        if data.startswith(signature):
            return kind
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc"):
            return "a HEIC/HEIF image, which is not supported (export it as JPEG or PNG)"
        return "an MP4/MOV video"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "an AVI video"
    return None


def claimed_format(data: bytes) -> str | None:
    """The supported format ``data`` starts like (its first bytes, or all of them)."""
    for signature, name in _SIGNATURES:
        n = min(len(signature), len(data))
        if n >= 2 and data[:n] == signature[:n]:
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM" and len(data) >= 10 and data[6:10] == b"\x00\x00\x00\x00":
        return "BMP"
    return None


def _unreadable(exc: Exception, image_format: str) -> ArtworkInputError:
    """The refusal for a decoder error: a metadata bomb, or damaged image data."""
    text = str(exc) or type(exc).__name__
    if "MAX_TEXT_" in text:
        return ArtworkInputError(
            "too_large",
            f"the {image_format}'s metadata is too large: its text or ICC colour-profile "
            f"chunks decompress past {PngImagePlugin.MAX_TEXT_CHUNK >> 20} MB in one chunk or "
            f"{PngImagePlugin.MAX_TEXT_MEMORY >> 20} MB in all (a decompression bomb); strip "
            "the metadata and upload the image again",
        )
    return ArtworkInputError(
        "truncated",
        f"the {image_format} data is truncated or corrupt and cannot be decoded ({text})",
    )


def _open(data: bytes, *, max_pixels: int) -> Image.Image:
    """Pillow's lazy image for ``data``, its header checked, no pixel decoded."""
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ArtworkInputError(
            "too_large",
            f"the image is too large: its header declares over "
            f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb); the limit is "
            f"{max_pixels:,}; refused before decoding",
        ) from None
    except UnidentifiedImageError:
        claimed = claimed_format(data)
        if claimed is not None:
            raise ArtworkInputError(
                "truncated",
                f"the file starts like a {claimed} image but its header is truncated or "
                f"corrupt ({len(data):,} bytes in all)",
            ) from None
        kind = _what_file(data)
        what = f"the file is {kind}, not an image" if kind else (
            f"the bytes are not a recognised image (first bytes {data[:8]!r})")
        raise ArtworkInputError(
            "not_an_image", f"{what}; expected one of {', '.join(_FORMATS)}"
        ) from None
    except _DECODER_ERRORS as exc:
        raise _unreadable(exc, claimed_format(data) or "image") from None
    if img.format not in _FORMATS:
        raise ArtworkInputError(
            "not_an_image",
            f"image format {img.format} is not supported; expected one of "
            f"{', '.join(_FORMATS)}",
        )
    width, height = img.size
    if width * height > max_pixels:
        raise ArtworkInputError(
            "too_large",
            f"the image is too large: {width}x{height} = {width * height:,} pixels, over the "
            f"limit of {max_pixels:,} (a decompression bomb or an unscaled master); refused "
            "before decoding",
        )
    check_size(width, height, subject="the image")
    return img


def _orient(img: Image.Image, notes: list[str]) -> Image.Image:
    """Apply a valid EXIF orientation (2-8); say so, or say why one was ignored."""
    orientation = img.getexif().get(0x0112, 1)
    if orientation in (None, 1):
        return img
    if isinstance(orientation, int) and 2 <= orientation <= 8:
        notes.append(f"EXIF orientation {orientation} applied")
        return ImageOps.exif_transpose(img)
    notes.append(f"EXIF orientation {orientation!r} is not a valid value (1-8); ignored")
    return img


def _check_palette(img: Image.Image) -> None:
    """Refuse a PNG whose pixels index colours its palette does not have."""
    if img.format != "PNG" or img.mode != "P":
        return
    n_colours = len(img.getpalette() or []) // 3
    used = int(np.asarray(img).max(initial=0))
    if used >= n_colours:
        raise ArtworkInputError(
            "truncated",
            f"the PNG is corrupt: its palette has {n_colours} colour(s) but its pixels use "
            f"colour index {used}",
        )


def _decode(
    data: bytes,
    *,
    max_pixels: int,
    background: tuple[int, int, int],
) -> LoadedImage:
    _sniff(data)
    notes: list[str] = []
    # Pillow warns about what it skipped in a damaged file (EXIF tags, TIFF
    # tags); those warnings become notes, so the caller hears of them
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = _open(data, max_pixels=max_pixels)
        image_format = str(img.format)
        source_mode = img.mode
        try:
            n_frames = int(getattr(img, "n_frames", 1) or 1)
            if getattr(img, "is_animated", False) and n_frames > 1:
                notes.append(f"animated {image_format}: first of {n_frames} frames analysed")
            img.load()
            _check_palette(img)
            image = _to_rgb(_orient(img, notes), background, notes)
        except ArtworkInputError:
            raise
        except Image.DecompressionBombError as exc:  # pragma: no cover - checked in _open
            raise ArtworkInputError("too_large", f"the image is too large ({exc})") from None
        except _DECODER_ERRORS as exc:
            raise _unreadable(exc, image_format) from None
    for message in dict.fromkeys(str(w.message) for w in caught):
        notes.append(f"decoder warning: {message}")
    return LoadedImage(
        image=check_image(image),
        format=image_format,
        source_mode=source_mode,
        content_hash=hashlib.sha256(data).hexdigest(),
        notes=notes,
    )


def load_image(
    source: str | os.PathLike | bytes | bytearray | memoryview | np.ndarray,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = (0, 0, 0),
) -> LoadedImage:
    """Decode a path, bytes or array into a validated RGB ``uint8`` image.

    Parameters
    ----------
    source : path, bytes or ndarray of shape (height, width, 3), dtype uint8
        A file path, the file's bytes (an upload), or an RGB array.
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Largest accepted width x height, read from the header before decoding
        (the guard against decompression bombs).
    background : tuple of 3 int, default=(0, 0, 0)
        RGB colour that transparent pixels are flattened onto (black, as on
        a dark streaming UI).

    Returns
    -------
    LoadedImage
        ``image`` of shape (height, width, 3), dtype uint8, plus the format,
        the source mode, the content hash and the conversion notes.

    Raises
    ------
    ArtworkInputError
        For every file that is not a decodable raster image within limits;
        ``code`` names the problem.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ArtworkInputError(
            "bad_argument", f"max_pixels must be a positive int, got {max_pixels!r}"
        )
    if isinstance(source, np.ndarray):
        image = check_image(source, name="source")
        if image.shape[0] * image.shape[1] > max_pixels:
            raise ArtworkInputError(
                "too_large",
                f"the array is {image.shape[1]}x{image.shape[0]} pixels, over the limit of "
                f"{max_pixels:,}",
            )
        image = np.ascontiguousarray(image)
        return LoadedImage(
            image=image,
            format="array",
            source_mode="RGB",
            content_hash=hashlib.sha256(image.tobytes()).hexdigest(),
        )
    if isinstance(source, bytes | bytearray | memoryview):
        return _decode(bytes(source), max_pixels=max_pixels, background=background)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ArtworkInputError("not_found", f"no such image file: {str(path)!r}")
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise ArtworkInputError(
                "too_large",
                f"{str(path)!r} is {size:,} bytes, over the limit of {_MAX_FILE_BYTES:,}",
            )
        try:
            return _decode(path.read_bytes(), max_pixels=max_pixels, background=background)
        except ArtworkInputError as exc:
            raise ArtworkInputError(exc.code, f"{path.name}: {exc.message}") from None
    raise ArtworkInputError(
        "bad_argument",
        f"source must be a path, bytes or an RGB uint8 array, got {type(source).__name__}",
    )


def save_image(image: np.ndarray, path: str | os.PathLike, *, quality: int = 92) -> Path:
    """Write an RGB ``uint8`` array as JPEG or PNG (chosen by the file suffix).

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    path : str or PathLike
        Ends in ``.jpg``/``.jpeg`` or ``.png``.
    quality : int, default=92
        JPEG quality.

    Returns
    -------
    Path
    """
    check_image(image)
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise ArtworkInputError(
            "bad_argument", f"path must end in .jpg, .jpeg or .png, got {str(target)!r}"
        )
    pil = Image.fromarray(np.ascontiguousarray(image))
    if suffix == ".png":
        pil.save(target, format="PNG")
    else:
        pil.save(target, format="JPEG", quality=quality)
    return target
