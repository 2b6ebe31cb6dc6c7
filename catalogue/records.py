"""What the catalogue holds: titles, variants, candidates, their ids and errors.

Frozen records that :class:`catalogue.store.Catalogue` returns, the id checks
every caller shares (the HTTP API states :data:`ID_PATTERN` in its schema) and
the two errors of the catalogue.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from banditkit.errors import BanditkitError, InvalidInputError
from banditkit.types import Action, Features
from catalogue.tags import Tags

__all__ = [
    "ID_PATTERN",
    "Candidate",
    "CatalogueConflictError",
    "RankableVariant",
    "Title",
    "UnknownItemError",
    "Variant",
    "VariantRevision",
    "check_content_hash",
    "check_id",
]

#: Title ids: letters, digits, ``.``, ``_``, ``-``; no path separators, no leading dot.
# No ".." anywhere (a path segment of the image store), stated in the pattern so
# that the OpenAPI schema says what the check refuses.
ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ID = re.compile(ID_PATTERN)
_HASH = re.compile(r"^[0-9a-f]{64}$")


class UnknownItemError(BanditkitError, KeyError):
    """A title, variant, candidate or image id that the catalogue does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CatalogueConflictError(BanditkitError):
    """A write that contradicts what is stored (a title id taken, an image uploaded twice)."""


@dataclass(frozen=True)
class Title:
    """One title of the catalogue.

    Attributes
    ----------
    id : str
    name : str
    genres : tuple of str
    metadata : dict
        Any JSON object (release year, maturity rating, expected artwork aspect...).
    created_at : float
        Unix seconds.
    """

    id: str
    name: str
    genres: tuple[str, ...]
    metadata: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class Variant:
    """One artwork variant of a title.

    Attributes
    ----------
    id, title_id : str
    content_hash : str
        SHA-256 (hex) of the stored image bytes.
    media_type : str
        ``image/jpeg``, ``image/png``...
    features : Features
        The image's namespaced features, as given when it was added.
    warnings : list of dict
        ``{"code": ..., "message": ...}`` problems a marketer can act on.
    details : dict
        Other analysis results (sizes, boxes, palette, notes).
    active : bool
        Whether ranking may choose it.
    source : {"upload", "trailer"}
    filename : str
        The uploaded file's name (display only; never used as a path).
    created_at : float
    near_duplicates : tuple of str
        Ids of the title's other variants that look the same.
    fingerprint : bytes or None
        Opaque blob for near-duplicate checks (owned by the caller's analysis).
    label : str
        Its display name (the file name, or the id, until a marketer names it).
    tags : Tags
        What it shows, set by marketers.
    suggested_tags : tuple of str
        Visual tags the analysis suggests and no marketer has confirmed or removed.
    revision : int
        1 when added; one more at each change of its label, tags or active flag.
    """

    id: str
    title_id: str
    content_hash: str
    media_type: str
    features: Features
    warnings: list[dict[str, str]]
    details: dict[str, Any]
    active: bool
    source: str
    filename: str
    created_at: float
    near_duplicates: tuple[str, ...] = ()
    fingerprint: bytes | None = field(default=None, repr=False)
    label: str = ""
    tags: Tags = Tags()
    suggested_tags: tuple[str, ...] = ()
    revision: int = 1


@dataclass(frozen=True)
class VariantRevision:
    """A variant's label, tags and active flag as one revision left them.

    Attributes
    ----------
    revision : int
    label : str
    tags : Tags
    active : bool
    changed_at : float
        Unix seconds.
    """

    revision: int
    label: str
    tags: Tags
    active: bool
    changed_at: float


@dataclass(frozen=True)
class Candidate:
    """A trailer frame proposed as artwork, waiting for a marketer's approval.

    Attributes are those of :class:`Variant` that exist before approval;
    ``details`` holds the frame's time, score and the analysis summary.
    """

    id: str
    title_id: str
    content_hash: str
    media_type: str
    features: Features
    warnings: list[dict[str, str]]
    details: dict[str, Any]
    filename: str
    created_at: float
    fingerprint: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RankableVariant:
    """What ranking needs of one active variant: its id, image and action features."""

    id: str
    content_hash: str
    media_type: str
    features: Features

    @functools.cached_property
    def action(self) -> Action:
        """The variant as a ranking action (made once: the catalogue cache keeps it)."""
        return Action(id=self.id, features=self.features)


def check_id(value: object, *, name: str = "title id") -> str:
    """Validate a catalogue id (no path separators, no ``..``, at most 128 characters).

    Raises
    ------
    InvalidInputError
        Naming ``name``, the pattern and the value received.
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInputError(
            f"{name} must match {ID_PATTERN} (letters, digits, '.', '_', '-'; no '/' or '..'), "
            f"got {value!r}")
    return value


def check_content_hash(value: object) -> str:
    """Validate a lowercase hex SHA-256."""
    if not isinstance(value, str) or not _HASH.match(value):
        raise InvalidInputError(f"content hash must be 64 lowercase hex digits, got {value!r}")
    return value
