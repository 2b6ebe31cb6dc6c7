"""What an artwork variant shows: its label and tags, and the action features they give.

A marketer names each variant (its **label**) and tags it: the **themes** it
speaks to, from a vocabulary the catalogue owner extends
(:data:`DEFAULT_THEMES` to start), its **tone**, the **cast** or characters
shown, its **setting**, and **visual** tags from :data:`VISUAL_TAGS` (which
the analysis suggests on upload and the marketer confirms). Ranking sees the
tags as one action namespace, :data:`TAGS_NAMESPACE`, so a learner crosses a
member's taste with a poster's theme across titles (docs/architecture.md §3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from banditkit.errors import InvalidInputError

__all__ = [
    "DEFAULT_THEMES",
    "LABEL_MAX_LENGTH",
    "TAGS_NAMESPACE",
    "TAG_MAX_LENGTH",
    "TAG_MAX_PER_FIELD",
    "THEME_PATTERN",
    "Tags",
    "UnknownThemeError",
    "VISUAL_TAGS",
    "check_label",
    "check_suggestions",
    "check_theme_names",
    "check_visual_tags",
]

#: The action namespace of a variant's tags. Its first letter is no other
#: namespace's (VW's ``-q`` pairs namespaces by first letter; docs/marketer.md).
TAGS_NAMESPACE = "Depicts"

#: The theme vocabulary of a new catalogue; the owner adds to it.
DEFAULT_THEMES = ("romance", "action", "comedy", "drama", "horror", "family", "thriller",
                  "documentary", "scifi", "crime", "fantasy", "adventure")

#: Visual tags, each derived from the analysis (``catalogue.curation.suggest_visual_tags``).
VISUAL_TAGS = ("closeup", "group", "no-people", "dark", "bright", "warm", "cool",
               "text-heavy", "minimal")

#: A theme: a word of 1 to 32 letters, digits or ``-`` (stored lower-cased).
THEME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$"
_THEME = re.compile(THEME_PATTERN)
LABEL_MAX_LENGTH = 128
TAG_MAX_LENGTH = 64
TAG_MAX_PER_FIELD = 16
_MAX_THEMES = 256


class UnknownThemeError(InvalidInputError):
    """A theme that is not in the catalogue's vocabulary.

    Attributes
    ----------
    field : str
        Where it was given (``tags.themes[0]``).
    theme : str
    vocabulary : tuple of str
    """

    def __init__(self, field: str, theme: str, vocabulary: Sequence[str]) -> None:
        super().__init__(f"{field}: unknown theme {theme!r}; the theme vocabulary is "
                         f"{sorted(vocabulary)} (the catalogue owner can extend it)")
        self.field = field
        self.theme = theme
        self.vocabulary = tuple(vocabulary)


@dataclass(frozen=True)
class Tags:
    """The tags of one variant, each field a tuple of distinct strings.

    Attributes
    ----------
    themes : tuple of str
        From the catalogue's theme vocabulary.
    tone, cast, setting : tuple of str
        Free words or short phrases (``"tense"``, ``"Eleven"``, ``"1980s town"``).
    visual : tuple of str
        From :data:`VISUAL_TAGS`, confirmed by a marketer.
    """

    themes: tuple[str, ...] = ()
    tone: tuple[str, ...] = ()
    cast: tuple[str, ...] = ()
    setting: tuple[str, ...] = ()
    visual: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, value: Mapping[str, Sequence[str]]) -> Tags:
        """Tags from their stored form (``{"themes": [...], ...}``, fields optional)."""
        return cls(**{f.name: tuple(value.get(f.name, ())) for f in fields(cls)})

    def to_dict(self) -> dict[str, list[str]]:
        """``{"themes": [...], "tone": [...], ...}``, every field present."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    def replace(self, changes: Mapping[str, Any], *, themes: Sequence[str]) -> Tags:
        """These tags with the fields in ``changes`` replaced, checked.

        Parameters
        ----------
        changes : mapping of str to sequence of str
            Fields to replace; the others are kept.
        themes : sequence of str
            The catalogue's theme vocabulary.

        Raises
        ------
        InvalidInputError
            Naming the field (``tags.tone``), the expectation and the value.
        UnknownThemeError
            Naming the theme and the vocabulary.
        """
        if not isinstance(changes, Mapping):
            raise InvalidInputError(f"tags must be an object, got {type(changes).__name__}")
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidInputError(f"tags has no field {unknown[0]!r}; the fields are "
                                    f"{sorted(known)}")
        kept = self.to_dict()
        for name, values in changes.items():
            kept[name] = list(_check_field(name, values, themes=themes))
        return Tags.from_dict(kept)

    def features(self) -> dict[str, float]:
        """The tags as the features of :data:`TAGS_NAMESPACE`: ``{"theme=romance": 1.0, ...}``.

        Names are lower-cased with spaces as ``_``, so ``"Jim Hopper"`` and
        ``"jim hopper"`` are one feature.
        """
        out: dict[str, float] = {}
        for name, prefix in (("themes", "theme"), ("tone", "tone"), ("cast", "cast"),
                             ("setting", "setting"), ("visual", "visual")):
            for value in getattr(self, name):
                out[f"{prefix}={'_'.join(value.lower().split())}"] = 1.0
        return out



def _check_field(name: str, values: object, *, themes: Sequence[str],
                 path: str | None = None) -> tuple[str, ...]:
    path = path or f"tags.{name}"
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{path} must be a list of strings, got {values!r}")
    if len(values) > TAG_MAX_PER_FIELD:
        raise InvalidInputError(f"{path} may hold at most {TAG_MAX_PER_FIELD} tags, "
                                f"got {len(values)}")
    out: list[str] = []
    for position, value in enumerate(values):
        if not isinstance(value, str) or not value.strip() or len(value) > TAG_MAX_LENGTH:
            raise InvalidInputError(
                f"{path}[{position}] must be a non-blank string of at most {TAG_MAX_LENGTH} "
                f"characters, got {value!r}")
        value = " ".join(value.split())
        if name == "themes":
            value = value.lower()
            if value not in themes:
                raise UnknownThemeError(f"{path}[{position}]", value, themes)
        elif name == "visual" and value not in VISUAL_TAGS:
            raise InvalidInputError(f"{path}[{position}]: unknown visual tag {value!r}; "
                                    f"the visual tags are {list(VISUAL_TAGS)}")
        if value.lower() not in (v.lower() for v in out):
            out.append(value)
    return tuple(out)


def check_label(label: object) -> str:
    """A variant's display name, stripped: a non-blank string of at most 128 characters."""
    if not isinstance(label, str) or not label.strip() or len(label) > LABEL_MAX_LENGTH:
        raise InvalidInputError(
            f"label must be a non-blank string of at most {LABEL_MAX_LENGTH} characters, "
            f"got {label!r}")
    return label.strip()


def check_theme_names(names: object, *, present: int = 0) -> tuple[str, ...]:
    """New themes, lower-cased and without repeats; the vocabulary holds at most 256.

    Parameters
    ----------
    names : sequence of str
        Each matching :data:`THEME_PATTERN` once lower-cased.
    present : int, default=0
        Themes already in the vocabulary.
    """
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise InvalidInputError(f"themes must be a non-empty list of strings, got {names!r}")
    out: list[str] = []
    for position, name in enumerate(names):
        if not isinstance(name, str) or not _THEME.match(name):
            raise InvalidInputError(
                f"themes[{position}] must be a word of 1 to 32 letters, digits or '-' "
                f"(matching {THEME_PATTERN}), got {name!r}")
        if name.lower() not in out:
            out.append(name.lower())
    if present + len(out) > _MAX_THEMES:
        raise InvalidInputError(f"the theme vocabulary may hold at most {_MAX_THEMES} themes; "
                                f"it has {present}, got {len(out)} more")
    return tuple(out)


def check_visual_tags(values: object, *, name: str) -> tuple[str, ...]:
    """Distinct tags of :data:`VISUAL_TAGS` (suggestions an analysis makes), in the order given."""
    return _check_field("visual", values, themes=(), path=name)


def check_suggestions(kept: object, *, pending: Sequence[str]) -> tuple[str, ...]:
    """The suggested visual tags a marketer leaves pending: a subset of ``pending``."""
    if isinstance(kept, str) or not isinstance(kept, Sequence):
        raise InvalidInputError(f"suggestedTags must be a list of strings, got {kept!r}")
    for position, tag in enumerate(kept):
        if tag not in pending:
            raise InvalidInputError(
                f"suggestedTags[{position}] must be one of the pending suggestions "
                f"{list(pending)} (remove a suggestion by leaving it out), got {tag!r}")
    return tuple(t for t in pending if t in kept)
