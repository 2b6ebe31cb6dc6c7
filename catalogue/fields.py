"""Checks of what callers give the catalogue (docs/architecture.md §3).

Names, genres, metadata, upload file names and the fields an image analysis
gives a variant, each checked before anything is stored, with errors naming
the argument, the expectation and the value received. Id and content-hash
checks are :mod:`catalogue.records`'.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from banditkit.errors import InvalidInputError
from banditkit.types import WHITESPACE, Features, check_features

__all__ = ["GENRE_PATTERN", "check_filename", "check_genres", "check_metadata", "check_name",
           "check_variant_fields"]

#: A genre: one word of 1 to 64 characters, not starting with ``_``. The class
#: of spaces is spelled out so that JSON Schema validators read it as ``re`` does.
GENRE_PATTERN = f"^[^{WHITESPACE}_][^{WHITESPACE}]{{0,63}}$"
_GENRE = re.compile(GENRE_PATTERN)
_MAX_GENRES = 32
_MAX_METADATA_BYTES = 16 * 1024


def check_genres(genres: object) -> tuple[str, ...]:
    """Lower-cased genres without repeats: at most 32 words of 1 to 64 characters."""
    if isinstance(genres, str) or not isinstance(genres, Sequence):
        raise InvalidInputError(f"genres must be a list of strings, got {genres!r}")
    if len(genres) > _MAX_GENRES:
        raise InvalidInputError(f"genres may hold at most {_MAX_GENRES} entries, got {len(genres)}")
    out: list[str] = []
    for position, genre in enumerate(genres):
        if not isinstance(genre, str) or not _GENRE.match(genre):
            raise InvalidInputError(
                f"genres[{position}] must be a non-empty word of at most 64 characters without "
                f"spaces, not starting with '_', got {genre!r}")
        if genre.lower() not in out:
            out.append(genre.lower())
    return tuple(out)


def check_name(name: object) -> str:
    """A display name, stripped: 1 to 256 characters."""
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise InvalidInputError(f"name must be a non-empty string of at most 256 characters, "
                                f"got {name!r}")
    return name.strip()


def check_metadata(metadata: object) -> dict[str, Any]:
    """A plain JSON object (no NaN or infinity) of at most 16 KiB, as a fresh dict."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be an object, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metadata must be plain JSON (no NaN or infinity): {exc}") from None
    if len(encoded) > _MAX_METADATA_BYTES:
        raise InvalidInputError(
            f"metadata must encode to at most {_MAX_METADATA_BYTES} bytes, got {len(encoded)}")
    return json.loads(encoded)


def check_filename(filename: object) -> str:
    """A plain file name of at most 255 characters, without path separators."""
    if not isinstance(filename, str) or len(filename) > 255:
        raise InvalidInputError(f"filename must be a string of at most 255 characters, "
                                f"got {filename!r}")
    if "/" in filename or "\\" in filename or "\x00" in filename or filename in (".", ".."):
        raise InvalidInputError(
            f"filename must be a plain name without path separators, got {filename!r}")
    return filename


def check_variant_fields(features: Features, warnings: Sequence[Mapping[str, str]],
                         details: Mapping[str, Any] | None, media_type: str,
                         source: str) -> None:
    """Check what an analysis gives of an image (features, warnings, details), its media
    type and source, naming the argument at fault."""
    check_features(features, name="features")
    for position, warning in enumerate(warnings):
        if not isinstance(warning, Mapping) or not isinstance(warning.get("code"), str) \
                or not isinstance(warning.get("message"), str):
            raise InvalidInputError(
                f"warnings[{position}] must be {{'code': str, 'message': str}}, "
                f"got {warning!r}")
    if details is not None and not isinstance(details, Mapping):
        raise InvalidInputError(f"details must be a mapping, got {type(details).__name__}")
    if not isinstance(media_type, str) or not media_type.startswith("image/"):
        raise InvalidInputError(f"media_type must be an image/* type, got {media_type!r}")
    if source not in ("upload", "trailer"):
        raise InvalidInputError(f"source must be 'upload' or 'trailer', got {source!r}")
