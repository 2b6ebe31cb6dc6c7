"""The page's types: candidate rows, slots, the page rules, the decided page, and their checks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from banditkit.errors import InvalidInputError
from banditkit.types import Features, check_features

__all__ = ["PageDecision", "PageRules", "Row", "Slot", "SlotDecision", "check_excluded",
           "check_rows", "check_slots", "default_slots"]


@dataclass(frozen=True)
class Row:
    """A candidate row of the page.

    Parameters
    ----------
    id : str
        Caller's identifier, unique within one page.
    features : Features
        Row features, e.g. ``{"Row": {"type": "genre", "genre": "comedy", "freshness": 0.3}}``.
    genre : str, default=None
        What the adjacency and diversity rules compare; None never conflicts
        and does not count as a genre.
    """

    id: str
    features: Features
    genre: str | None = None


@dataclass(frozen=True)
class Slot:
    """A position of the page.

    Parameters
    ----------
    id : str
        Caller's identifier (``"1"``, ``"hero"``), unique within one page.
    features : Features, default={}
        Slot features; :func:`default_slots` gives ``{"Slot": {"position": "k"}}``.
    baseline : str, default=None
        Row shown in this slot in apprentice and logging-only modes.
    excluded : tuple of str, default=()
        Rows that must not be shown in this slot (Personalizer's per-slot
        ``excludedActions``).
    """

    id: str
    features: Features = field(default_factory=dict)
    baseline: str | None = None
    excluded: tuple[str, ...] = ()


def default_slots(n_slots: int) -> list[Slot]:
    """Slots ``"1"..str(n_slots)`` with a categorical position feature."""
    return [Slot(id=str(k + 1), features={"Slot": {"position": str(k + 1)}})
            for k in range(n_slots)]


@dataclass(frozen=True)
class PageRules:
    """What every page must respect; applied before sampling.

    Parameters
    ----------
    pinned : mapping of str to int, default={}
        Row id to its 1-based slot position (``{"continue-watching": 1}``);
        applies when the row is a candidate, not excluded, and the page has
        that slot.
    no_adjacent_same_genre : bool, default=False
        Two rows of the same genre never sit in neighbouring slots.
    min_distinct_genres : int, default=0
        Fewest distinct genres among the first ``distinct_genres_within`` slots.
    distinct_genres_within : int, default=0
        K of the diversity rule; 0 means the whole page.
    """

    pinned: Mapping[str, int] = field(default_factory=dict)
    no_adjacent_same_genre: bool = False
    min_distinct_genres: int = 0
    distinct_genres_within: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.pinned, Mapping):
            raise InvalidInputError(
                f"pinned must map row ids to slot positions, got {type(self.pinned).__name__}")
        positions: dict[int, str] = {}
        for row_id, position in self.pinned.items():
            if not isinstance(row_id, str) or isinstance(position, bool) or not isinstance(
                    position, int) or position < 1:
                raise InvalidInputError(
                    f"pinned must map row ids to 1-based positions, got {row_id!r}: {position!r}")
            if position in positions:
                raise InvalidInputError(f"pinned rows {positions[position]!r} and {row_id!r} "
                                        f"both claim slot {position}")
            positions[position] = row_id
        for name in ("min_distinct_genres", "distinct_genres_within"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an integer >= 0, got {value!r}")

    def to_dict(self) -> dict[str, object]:
        return {"pinned": dict(self.pinned),
                "noAdjacentSameGenre": self.no_adjacent_same_genre,
                "minDistinctGenres": self.min_distinct_genres,
                "distinctGenresWithin": self.distinct_genres_within}


@dataclass(frozen=True)
class SlotDecision:
    """One slot of a decided page.

    Attributes
    ----------
    slot_id : str
    row_id : str
        The row shown there.
    probability : float
        Probability of that row in this slot given the rows placed above.
    n_eligible : int
        Rows the rules allowed in this slot.
    """

    slot_id: str
    row_id: str
    probability: float
    n_eligible: int


@dataclass(frozen=True)
class PageDecision:
    """The answer to :meth:`RowEngine.rank_rows`.

    Attributes
    ----------
    event_id : str
        Names the page for rewards and activation.
    slots : tuple of SlotDecision
        Top to bottom.
    model_version : str
    """

    event_id: str
    slots: tuple[SlotDecision, ...]
    model_version: str

    @property
    def row_ids(self) -> list[str]:
        return [slot.row_id for slot in self.slots]

    @property
    def probability(self) -> float:
        """Probability of the whole page (product of the slot probabilities)."""
        return float(math.prod(slot.probability for slot in self.slots))


# --------------------------------------------------------------------- validation


def check_rows(rows: object, max_rows: int) -> list[Row]:
    """Validate a page's candidate rows: 1 to ``max_rows`` Rows with unique ids."""
    if not isinstance(rows, Sequence) or isinstance(rows, str) or not rows:
        raise InvalidInputError("candidate_rows must be a non-empty list of Row")
    if len(rows) > max_rows:
        raise InvalidInputError(
            f"too many candidate rows: at most {max_rows} per page, got {len(rows)}")
    seen: set[str] = set()
    for position, row in enumerate(rows):
        if not isinstance(row, Row):
            raise InvalidInputError(
                f"candidate_rows[{position}] must be a Row, got {type(row).__name__}")
        if not isinstance(row.id, str) or not row.id:
            raise InvalidInputError(f"candidate_rows[{position}].id must be a non-empty string")
        if row.id in seen:
            raise InvalidInputError(f"duplicate row id {row.id!r}")
        if row.genre is not None and not isinstance(row.genre, str):
            raise InvalidInputError(
                f"candidate_rows[{position}].genre must be a string or None, got {row.genre!r}")
        seen.add(row.id)
        check_features(row.features, name=f"candidate_rows[{position}].features")
    return list(rows)


def check_slots(n_slots: int | None, slots: Sequence[Slot] | None, n_rows: int) -> list[Slot]:
    """The page's slots, from exactly one of ``n_slots`` and ``slots``, at most ``n_rows``."""
    if (n_slots is None) == (slots is None):
        raise InvalidInputError("give exactly one of n_slots and slots")
    if slots is None:
        if isinstance(n_slots, bool) or not isinstance(n_slots, int) or n_slots < 1:
            raise InvalidInputError(f"n_slots must be an integer >= 1, got {n_slots!r}")
        slots = default_slots(n_slots)
    if not isinstance(slots, Sequence) or not slots:
        raise InvalidInputError("slots must be a non-empty list of Slot")
    seen: set[str] = set()
    for position, slot in enumerate(slots):
        if not isinstance(slot, Slot):
            raise InvalidInputError(f"slots[{position}] must be a Slot, got {type(slot).__name__}")
        if not isinstance(slot.id, str) or not slot.id or slot.id in seen:
            raise InvalidInputError(f"slots[{position}].id must be a unique non-empty string, "
                                    f"got {slot.id!r}")
        seen.add(slot.id)
        check_features(slot.features, name=f"slots[{position}].features")
        if isinstance(slot.excluded, str) or not isinstance(slot.excluded, tuple | list):
            raise InvalidInputError(f"slots[{position}].excluded must be a list of row ids")
    if len(slots) > n_rows:
        raise InvalidInputError(f"{len(slots)} slots but only {n_rows} candidate rows")
    return list(slots)


def check_excluded(excluded: Iterable[str], rows: Sequence[Row]) -> set[str]:
    """Row ids excluded from the page, each one of ``rows``."""
    if isinstance(excluded, str):
        raise InvalidInputError("excluded must be a list of row ids, not a string")
    excluded = set(excluded)
    unknown = excluded - {row.id for row in rows}
    if unknown:
        raise InvalidInputError(f"excluded row ids are not among the candidates: "
                                f"{sorted(unknown)}")
    return excluded
