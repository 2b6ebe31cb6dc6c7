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
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from artwork._errors import ArtworkInputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "LoadedImage",
    "check_image",
    "load_image",
    "save_image",
]

#: Largest accepted image, in pixels (width x height), checked from the
#: header before any pixel is decoded. 100 MP is a 10000 x 10000 poster.
DEFAULT_MAX_PIXELS = 100_000_000
#: Smallest accepted side in pixels: below this nothing can be measured.
DEFAULT_MIN_SIDE = 32
_MAX_FILE_BYTES = 200 * 1024 * 1024
_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO")


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
        ``code="too_small"`` for a side under ``DEFAULT_MIN_SIDE``.
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
    if min(height, width) < DEFAULT_MIN_SIDE:
        raise ArtworkInputError(
            "too_small",
            f"{name} is {width}x{height} pixels; both sides must be at least "
            f"{DEFAULT_MIN_SIDE} pixels",
        )
    return image


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


def _decode(
    data: bytes,
    *,
    max_pixels: int,
    background: tuple[int, int, int],
) -> LoadedImage:
    _sniff(data)
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ArtworkInputError(
                "too_large", f"the image header declares too many pixels ({exc})"
            ) from None
        except UnidentifiedImageError:
            raise ArtworkInputError(
                "not_an_image",
                f"the bytes are not a recognised image (first bytes {data[:8]!r}); "
                f"expected one of {', '.join(_FORMATS)}",
            ) from None
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
                f"the image is {width}x{height} = {width * height:,} pixels, over the limit "
                f"of {max_pixels:,} (a decompression bomb or an unscaled master); "
                "refused before decoding",
            )
        if min(width, height) < DEFAULT_MIN_SIDE:
            raise ArtworkInputError(
                "too_small",
                f"the image is {width}x{height} pixels; both sides must be at least "
                f"{DEFAULT_MIN_SIDE} pixels",
            )
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        if getattr(img, "is_animated", False) and n_frames > 1:
            notes.append(f"animated {img.format}: first of {n_frames} frames analysed")
        source_mode = img.mode
        image_format = str(img.format)
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ArtworkInputError(
                "truncated",
                f"the {img.format} data is truncated or corrupt and cannot be decoded ({exc})",
            ) from None
        except Image.DecompressionBombError as exc:  # pragma: no cover - checked above
            raise ArtworkInputError("too_large", str(exc)) from None
    exif_orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    if exif_orientation not in (None, 1):
        img = ImageOps.exif_transpose(img)
        notes.append(f"EXIF orientation {exif_orientation} applied")
    image = _to_rgb(img, background, notes)
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
