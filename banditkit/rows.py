"""Row ordering: multi-slot decisions for a homepage.

For a member, fill the page's slots top to bottom from candidate rows. Each
slot's row is drawn from Vowpal Wabbit's conditional contextual bandit
(``--ccb_explore_adf``) restricted to the rows the page rules allow there, so
its logged probability is exactly the probability it was shown with, given the
rows placed above. One event id names the page; rewards come per slot (a play
from row k) and for the whole page; each slot is joined with the foundation's
rules (reward wait, ``earliest``/``sum``, default reward, deferred activation).

The joined page is one CCB dsjson line, read as is by ``vw --dsjson
--ccb_explore_adf`` and ``vowpal_wabbit_next.DSJsonFormatParser``::

    {"EventId": "...", "Timestamp": "...", "Version": "1", "VWState": {"m": "3"},
     "c": {"Member": {...}, "_multi": [{"Row": {...}}, ...],
           "_slots": [{"_id": "1", "_inc": [0, 1, 3], "Slot": {"position": "1"}}, ...]},
     "_outcomes": [{"_id": "1", "_label_cost": -1.0, "_a": [3, 0, 1], "_p": [0.9, 0.05, 0.05],
                    "_o": [{"v": 1.0, "t": "..."}]}, ...],
     "_banditkit": {"rowIds": [...], "slotIds": [...], "pageReward": 0.0, ...}}

``c`` must precede ``_outcomes``: VW's parser attaches outcomes to the slots
it has already read.

``_a`` are 0-based indices into ``_multi`` (VW's CCB convention), chosen first;
``_p`` their probabilities in that slot; ``_inc`` the rows the rules allowed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from banditkit.dsjson import (
    CcbSlot,
    CcbSlotJoin,
    JoinedLine,
    ccb_decision_line,
    ccb_slot_ids,
    joined_ccb_line,
)
from banditkit.errors import InvalidInputError
from banditkit.eventlog import EventLogWriter, iso_timestamp
from banditkit.join import JoinOutcome, join_event
from banditkit.loop import LoopEngine, check_event_id, check_reward
from banditkit.rows_learner import SlatePage
from banditkit.rows_store import RowStore
from banditkit.sampling import sample_index, strictly_preferred
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, RewardRecord
from banditkit.types import Features, check_features
from banditkit.vw import VWSlateLearner

__all__ = [
    "PageDecision",
    "PageRules",
    "Row",
    "RowEngine",
    "Slot",
    "SlotDecision",
    "ccb_args",
    "decide_page",
    "default_slots",
    "joined_page_line",
    "page_violations",
]



# --------------------------------------------------------------------------- types


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


# --------------------------------------------------------------------------- rules


class _Feasibility:
    """Can the page still be completed under the rules? Memoised depth-first search.

    Rows of one genre are interchangeable for the rules, so the search runs
    over genre counts; ``None`` (no genre) rows never conflict.
    """

    def __init__(self, *, genres: list[str | None], n_slots: int, pinned_at: dict[int, int],
                 rules: PageRules) -> None:
        self.genres = genres
        self.n_slots = n_slots
        self.pinned_at = pinned_at  # slot -> row index
        self.no_adjacent = rules.no_adjacent_same_genre
        self.need = rules.min_distinct_genres
        within = rules.distinct_genres_within or n_slots
        self.within = min(within, n_slots)
        self.keys = sorted({g for g in genres if g is not None})
        self.key_index = {g: i for i, g in enumerate(self.keys)}
        self.last_pin = max(pinned_at, default=-1)
        self.memo: dict[tuple, bool] = {}
        self.budget = 200_000

    def counts(self, pool: Iterable[int]) -> tuple[tuple[int, ...], int]:
        per_genre = [0] * len(self.keys)
        none = 0
        for index in pool:
            genre = self.genres[index]
            if genre is None:
                none += 1
            else:
                per_genre[self.key_index[genre]] += 1
        return tuple(per_genre), none

    def feasible(self, slot: int, last: str | None, counts: tuple[int, ...], none: int,
                 seen: frozenset[str]) -> bool:
        """Whether slots ``slot..`` can be filled; a greedy completion first, then search."""
        if slot >= self.within and len(seen) < self.need:
            return False  # the diversity window closed short
        if not self.no_adjacent and not self.need:
            return True  # only pins: any pool of the right size completes the page
        if self._closed_form_applies(slot, seen):
            return self._closed_form(slot, last, counts, none)
        return self._greedy(slot, last, counts, none, seen) or self._search(
            slot, last, counts, none, seen)

    def _closed_form_applies(self, slot: int, seen: frozenset[str]) -> bool:
        return self.last_pin < slot and len(seen) >= self.need

    def _closed_form(self, slot: int, last: str | None, counts: tuple[int, ...],
                     none: int) -> bool:
        # Only adjacency left. m rows, none of two neighbours sharing a genre, exist
        # iff some x_g <= c_g with sum m fit: at most ceil(m/2) of a genre, floor(m/2)
        # of the genre just placed (it cannot open the rest); rows without genre
        # fit anywhere. So: none + sum_g min(c_g, cap_g) >= m.
        m = self.n_slots - slot
        if m <= 0:
            return True
        if not self.no_adjacent:
            return none + sum(counts) >= m
        cap, cap_last = (m + 1) // 2, m // 2
        total = none
        for key, count in zip(self.keys, counts, strict=True):
            total += min(count, cap_last if key == last else cap)
        return total >= m

    def _greedy(self, slot: int, last: str | None, counts: tuple[int, ...], none: int,
                seen: frozenset[str]) -> bool:
        # Unseen genres while diversity is short, else the most plentiful genre that
        # does not repeat the last one, else a row without genre. Sufficient only.
        remaining = list(counts)
        for k in range(slot, self.n_slots):
            if self._closed_form_applies(k, seen):  # only adjacency left: decide exactly
                return self._closed_form(k, last, tuple(remaining), none)
            if k < self.within and len(seen) + (self.within - k) < self.need:
                return False
            if k in self.pinned_at:
                genre = self.genres[self.pinned_at[k]]
                if self._conflict(genre, last):
                    return False
            else:
                best, best_key = -1, None
                blocked = last if self.no_adjacent else None
                for i, count in enumerate(remaining):
                    if count == 0 or (blocked is not None and self.keys[i] == blocked):
                        continue
                    key = (self.keys[i] not in seen, count)
                    if best_key is None or key > best_key:
                        best, best_key = i, key
                if best >= 0 and (none == 0 or best_key[0] or self.need > len(seen)
                                  or remaining[best] > 1):
                    genre = self.keys[best]
                    remaining[best] -= 1
                elif none > 0:
                    genre, none = None, none - 1
                elif best >= 0:
                    genre = self.keys[best]
                    remaining[best] -= 1
                else:
                    return False
            seen = self._seen(seen, genre, k)
            last = genre
        return len(seen) >= self.need

    def _search(self, slot: int, last: str | None, counts: tuple[int, ...], none: int,
                seen: frozenset[str]) -> bool:
        if slot < self.within and len(seen) + (self.within - slot) < self.need:
            return False
        if slot >= self.within and len(seen) < self.need:
            return False
        if slot == self.n_slots:
            return True
        if self._closed_form_applies(slot, seen):
            return self._closed_form(slot, last, counts, none)
        key = (slot, last, counts, none, seen if slot < self.within else None)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        self.budget -= 1
        if self.budget < 0:
            raise InvalidInputError("page rules too hard to satisfy for these rows "
                                    "(search budget exhausted); relax the rules")
        result = False
        if slot in self.pinned_at:
            genre = self.genres[self.pinned_at[slot]]
            if not self._conflict(genre, last):
                result = self._search(slot + 1, genre, counts, none,
                                       self._seen(seen, genre, slot))
        else:
            # Unseen genres first while diversity is short, then the most plentiful.
            order = sorted(range(len(self.keys)), key=lambda i: (
                self.keys[i] in seen, -counts[i]))
            for i in order:
                genre = self.keys[i]
                if counts[i] == 0 or self._conflict(genre, last):
                    continue
                fewer = counts[:i] + (counts[i] - 1,) + counts[i + 1:]
                if self._search(slot + 1, genre, fewer, none, self._seen(seen, genre, slot)):
                    result = True
                    break
            if not result and none > 0:
                result = self._search(slot + 1, None, counts, none - 1, seen)
        self.memo[key] = result
        return result

    def _conflict(self, genre: str | None, last: str | None) -> bool:
        return self.no_adjacent and genre is not None and genre == last

    def _seen(self, seen: frozenset[str], genre: str | None, slot: int) -> frozenset[str]:
        if genre is None or slot >= self.within or genre in seen:
            return seen
        return seen | {genre}

    def allowed_genre(self, slot: int, genre: str | None, last: str | None,
                      counts: tuple[int, ...], none: int, seen: frozenset[str]) -> bool:
        """Whether a row of ``genre`` taken from the pool at ``slot`` keeps the page completable."""
        if self._conflict(genre, last):
            return False
        if genre is None:
            return self.feasible(slot + 1, None, counts, none - 1, seen)
        i = self.key_index[genre]
        fewer = counts[:i] + (counts[i] - 1,) + counts[i + 1:]
        return self.feasible(slot + 1, genre, fewer, none, self._seen(seen, genre, slot))


class _SlotSearch:
    """Feasibility when slots exclude rows of their own: rows are no longer
    interchangeable within a genre, so the search runs over rows.

    Without genre rules a completion is a matching of the remaining slots to
    rows (each slot to a row it allows): exact and polynomial, by augmenting
    paths. With genre rules too, a memoised depth-first search over rows,
    bounded by a node budget.
    """

    def __init__(self, *, allowed: list[set[int]], genres: list[str | None],
                 rules: PageRules) -> None:
        self.allowed = allowed  # slot -> rows it may show (pins and exclusions applied)
        self.genres = genres
        self.n_slots = len(allowed)
        self.no_adjacent = rules.no_adjacent_same_genre
        self.need = rules.min_distinct_genres
        self.within = min(rules.distinct_genres_within or self.n_slots, self.n_slots)
        self.genre_rules = self.no_adjacent or self.need > 0
        self.memo: dict[tuple, bool] = {}
        self.budget = 200_000

    def _seen(self, seen: frozenset[str], genre: str | None, slot: int) -> frozenset[str]:
        if genre is None or slot >= self.within or genre in seen:
            return seen
        return seen | {genre}

    def eligible(self, slot: int, used: set[int], last: str | None,
                 seen: frozenset[str]) -> list[int]:
        candidates = sorted(self.allowed[slot] - used)
        if not self.genre_rules:
            return self._matching_eligible(slot, used, candidates)
        out = []
        for row in candidates:
            genre = self.genres[row]
            if self.no_adjacent and genre is not None and genre == last:
                continue
            if self.feasible(slot + 1, frozenset(used | {row}), genre,
                             self._seen(seen, genre, slot)):
                out.append(row)
        return out

    def feasible(self, slot: int, used: frozenset[int], last: str | None,
                 seen: frozenset[str]) -> bool:
        if not self.genre_rules:
            return len(self._matching(slot, set(used))) == self.n_slots - slot
        if slot >= self.within and len(seen) < self.need:
            return False
        if slot < self.within and len(seen) + (self.within - slot) < self.need:
            return False
        if slot == self.n_slots:
            return True
        key = (slot, used, last, seen if slot < self.within else None)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        self.budget -= 1
        if self.budget < 0:
            raise InvalidInputError("page rules too hard to satisfy with these per-slot "
                                    "exclusions (search budget exhausted); relax them")
        result = False
        for row in sorted(self.allowed[slot] - used,
                          key=lambda r: self.genres[r] in seen):
            genre = self.genres[row]
            if self.no_adjacent and genre is not None and genre == last:
                continue
            if self.feasible(slot + 1, used | {row}, genre, self._seen(seen, genre, slot)):
                result = True
                break
        self.memo[key] = result
        return result

    def _matching(self, start: int, used: set[int]) -> dict[int, int]:
        """A maximum matching ``row -> slot`` of slots ``start..`` to unused rows."""
        match: dict[int, int] = {}
        for slot in range(start, self.n_slots):
            self._augment(slot, used, match, set())
        return match

    def _augment(self, slot: int, used: set[int], match: dict[int, int],
                 visited: set[int]) -> bool:
        for row in self.allowed[slot]:
            if row in used or row in visited:
                continue
            visited.add(row)
            if row not in match or self._augment(match[row], used, match, visited):
                match[row] = slot
                return True
        return False

    def _matching_eligible(self, slot: int, used: set[int], candidates: list[int]) -> list[int]:
        # Row r may go to `slot` iff the slots below still match without r: true when
        # a maximum matching of them leaves r free, else iff r's slot re-augments
        # around r.
        match = self._matching(slot + 1, used)
        if len(match) < self.n_slots - slot - 1:
            return []
        out = []
        for row in candidates:
            if row not in match:
                out.append(row)
                continue
            trial = {r: s for r, s in match.items() if r != row}
            if self._augment(match[row], used | {row}, trial, set()):
                out.append(row)
        return out


def _pinned_slots(rows: Sequence[Row], rules: PageRules, excluded: set[str],
                  n_slots: int) -> dict[int, int]:
    index = {row.id: i for i, row in enumerate(rows)}
    return {position - 1: index[row_id] for row_id, position in rules.pinned.items()
            if row_id in index and row_id not in excluded and position <= n_slots}


def page_violations(rows: Sequence[Row], page: Sequence[str], rules: PageRules, *,
                    excluded: Iterable[str] = (),
                    slots: Sequence[Slot] | None = None) -> list[str]:
    """The rules a page breaks, in words (empty when it respects them all).

    Parameters
    ----------
    rows : sequence of Row
        The candidates.
    page : sequence of str
        Row ids, top to bottom.
    excluded : iterable of str, default=()
        Rows excluded from the whole page.
    slots : sequence of Slot, default=None
        The page's slots, for their own exclusions.
    """
    by_id = {row.id: row for row in rows}
    excluded = set(excluded)
    problems: list[str] = []
    if len(set(page)) != len(page):
        problems.append("a row appears twice")
    for position, row_id in enumerate(page, start=1):
        if row_id not in by_id:
            problems.append(f"slot {position}: {row_id!r} is not a candidate")
        elif row_id in excluded:
            problems.append(f"slot {position}: {row_id!r} is excluded")
    for position, (slot, row_id) in enumerate(zip(slots or (), page, strict=False), start=1):
        if row_id in slot.excluded:
            problems.append(f"slot {position}: {row_id!r} is excluded from slot {slot.id!r}")
    pinned = _pinned_slots(rows, rules, excluded, len(page))
    ids = [row.id for row in rows]
    for slot, index in pinned.items():
        if page[slot] != ids[index]:
            problems.append(f"slot {slot + 1}: pinned row {ids[index]!r} is not there")
    genres = [by_id[r].genre if r in by_id else None for r in page]
    if rules.no_adjacent_same_genre:
        for slot in range(1, len(page)):
            if genres[slot] is not None and genres[slot] == genres[slot - 1]:
                problems.append(f"slots {slot} and {slot + 1} share genre {genres[slot]!r}")
    within = min(rules.distinct_genres_within or len(page), len(page))
    distinct = {g for g in genres[:within] if g is not None}
    if len(distinct) < rules.min_distinct_genres:
        problems.append(f"{len(distinct)} distinct genres in the first {within} slots, "
                        f"fewer than {rules.min_distinct_genres}")
    return problems


# ------------------------------------------------------------------------ deciding


@dataclass(frozen=True)
class _DecidedPage:
    chosen: list[int]                 # row index per slot
    eligible: list[list[int]]         # allowed row indices per slot
    pmfs: list[np.ndarray]            # aligned with eligible
    model_agrees: list[bool] | None   # apprentice: the model prefers the baseline alone


def decide_page(page: SlatePage | None, rows: Sequence[Row], slots: Sequence[Slot], *,
                rules: PageRules, event_id: str, excluded: Iterable[str] = (),
                mode: str = "online") -> _DecidedPage:
    """Fill the slots top to bottom, each from the rows the rules allow there.

    Slot ``k``'s row is drawn from ``page.slot_pmf`` restricted to its eligible
    rows, with the uniform of ``event_id + "/k"`` (reproducible). In
    ``apprentice`` and ``logging_only`` modes each slot shows its baseline
    (the slot's ``baseline`` when eligible, else the first eligible row in
    candidate order) with probability 1.

    Parameters
    ----------
    page : SlatePage or None
        The learner's prepared page; None allowed only in ``logging_only`` mode.
    rows : sequence of Row
    slots : sequence of Slot
    rules : PageRules
    event_id : str
    excluded : iterable of str
        Row ids that must not be shown.
    mode : {"online", "apprentice", "logging_only"}, default="online"

    Raises
    ------
    InvalidInputError
        When no page satisfies the rules.
    """
    excluded = set(excluded)
    n_slots = len(slots)
    pinned_at = _pinned_slots(rows, rules, excluded, n_slots)
    pinned_rows = set(pinned_at.values())
    pool = {i for i, row in enumerate(rows) if row.id not in excluded and i not in pinned_rows}
    if len(pool) + len(pinned_at) < n_slots:
        raise InvalidInputError(
            f"{n_slots} slots but only {len(pool) + len(pinned_at)} rows may be shown")
    genres = [row.genre for row in rows]
    if any(slot.excluded for slot in slots):
        return _decide_with_slot_exclusions(
            page, rows, slots, rules=rules, event_id=event_id, mode=mode, pool=pool,
            pinned_at=pinned_at)
    search = _Feasibility(genres=genres, n_slots=n_slots, pinned_at=pinned_at, rules=rules)
    counts, none = search.counts(pool)
    if not search.feasible(0, None, counts, none, frozenset()):
        raise InvalidInputError(
            f"no page of {n_slots} slots satisfies the rules {rules.to_dict()} "
            f"with these {len(rows)} rows ({len(excluded)} excluded)")
    baseline_index = {row.id: i for i, row in enumerate(rows)}
    chosen: list[int] = []
    eligible_per_slot: list[list[int]] = []
    pmfs: list[np.ndarray] = []
    agrees: list[bool] = []
    last: str | None = None
    seen: frozenset[str] = frozenset()
    for slot in range(n_slots):
        if slot in pinned_at:
            eligible = [pinned_at[slot]]
        else:
            verdict: dict[str | None, bool] = {}
            eligible = []
            for index in sorted(pool):
                genre = genres[index]
                if genre not in verdict:
                    verdict[genre] = search.allowed_genre(slot, genre, last, counts, none, seen)
                if verdict[genre]:
                    eligible.append(index)
        pick, pmf = _draw(page, slot, eligible, chosen, mode=mode, event_id=event_id,
                          baseline=baseline_index.get(slots[slot].baseline or "", -1),
                          agrees=agrees)
        row = eligible[pick]
        chosen.append(row)
        eligible_per_slot.append(eligible)
        pmfs.append(pmf)
        genre = genres[row]
        if row in pool:
            pool.discard(row)
            counts, none = search.counts(pool)
        last = genre
        seen = search._seen(seen, genre, slot)
    return _DecidedPage(chosen=chosen, eligible=eligible_per_slot, pmfs=pmfs,
                        model_agrees=agrees if mode != "online" and page is not None else None)


def _draw(page: SlatePage | None, slot: int, eligible: list[int], chosen: list[int], *,
          mode: str, event_id: str, baseline: int, agrees: list[bool]) -> tuple[int, np.ndarray]:
    """Index into ``eligible`` of the slot's row, and the slot's pmf over ``eligible``."""
    if mode == "online":
        if page is None:
            raise InvalidInputError("online mode needs a learner's page")
        pmf = page.slot_pmf(slot, eligible, chosen)
        return sample_index(pmf, f"{event_id}/{slot}"), pmf
    pick = eligible.index(baseline) if baseline in eligible else 0
    if page is not None:
        model = page.slot_pmf(slot, eligible, [*chosen])
        agrees.append(strictly_preferred(model, pick))
    pmf = np.zeros(len(eligible))
    pmf[pick] = 1.0
    return pick, pmf


def _decide_with_slot_exclusions(page: SlatePage | None, rows: Sequence[Row],
                                 slots: Sequence[Slot], *, rules: PageRules, event_id: str,
                                 mode: str, pool: set[int],
                                 pinned_at: dict[int, int]) -> _DecidedPage:
    index = {row.id: i for i, row in enumerate(rows)}
    allowed: list[set[int]] = []
    for slot_index, slot in enumerate(slots):
        banned = {index[row_id] for row_id in slot.excluded}
        if slot_index in pinned_at:
            if pinned_at[slot_index] in banned:
                raise InvalidInputError(f"slot {slot.id!r} excludes the row pinned to it, "
                                        f"{rows[pinned_at[slot_index]].id!r}")
            allowed.append({pinned_at[slot_index]})
        else:
            allowed.append(pool - banned)
    genres = [row.genre for row in rows]
    search = _SlotSearch(allowed=allowed, genres=genres, rules=rules)
    if not search.feasible(0, frozenset(), None, frozenset()):
        raise InvalidInputError(
            f"no page of {len(slots)} slots satisfies the rules {rules.to_dict()} and the "
            f"slots' exclusions with these {len(rows)} rows")
    chosen: list[int] = []
    eligible_per_slot: list[list[int]] = []
    pmfs: list[np.ndarray] = []
    agrees: list[bool] = []
    last: str | None = None
    seen: frozenset[str] = frozenset()
    for slot_index, slot in enumerate(slots):
        eligible = search.eligible(slot_index, set(chosen), last, seen)
        pick, pmf = _draw(page, slot_index, eligible, chosen, mode=mode, event_id=event_id,
                          baseline=index.get(slot.baseline or "", -1), agrees=agrees)
        row = eligible[pick]
        chosen.append(row)
        eligible_per_slot.append(eligible)
        pmfs.append(pmf)
        last = genres[row]
        seen = search._seen(seen, last, slot_index)
    return _DecidedPage(chosen=chosen, eligible=eligible_per_slot, pmfs=pmfs,
                        model_agrees=agrees if mode != "online" and page is not None else None)


def ccb_args(cb_args: str) -> str:
    """The ``--ccb_explore_adf`` arguments for a ``--cb_explore_adf`` policy.

    The loop settings keep one readable policy; each slot of a page explores as
    that CB policy would.
    """
    return " ".join("--ccb_explore_adf" if token == "--cb_explore_adf" else token
                    for token in cb_args.split())


# --------------------------------------------------------------------------- engine


class RowEngine(LoopEngine):
    """Ranks pages of rows, records per-slot and page rewards, and learns.

    Build it with :meth:`open`. Thread-safe like :class:`~banditkit.engine.Engine`:
    ``rank_rows``, rewards and ``activate`` from many threads, ``process_due``
    from one learner at a time.

    Parameters
    ----------
    store : RowStore
        Pages, rewards, models and settings.
    log : EventLogWriter
        Where joined CCB lines are appended.
    models_dir : path
        Where each published model is also written as a VW model file.
    clock : callable, default=time.time
        Current time in Unix seconds.
    rules : PageRules, default=None
        Rules of every page unless a call passes its own; None means none.
    max_rows : int, default=256
        Most candidate rows per page.
    refresh_seconds : float, default=1.0
        How often ranking looks for a new snapshot and settings.
    """

    def __init__(self, *, store: RowStore, log: EventLogWriter, models_dir: Path,
                 clock: Callable[[], float] = time.time, rules: PageRules | None = None,
                 max_rows: int = 256, refresh_seconds: float = 1.0) -> None:
        super().__init__(store=store, log=log, models_dir=models_dir, clock=clock,
                         refresh_seconds=refresh_seconds)
        self.rules = rules
        self.max_rows = max_rows

    # -- hooks of the loop ----------------------------------------------------------

    def _learner_args(self, settings: LoopSettings) -> str:
        return ccb_args(settings.learner_args())

    def _new_learner(self, args: str, model_data: bytes | None = None) -> VWSlateLearner:
        return VWSlateLearner(args=args, model_data=model_data)

    @classmethod
    def open(cls, data_dir: str | Path, *, settings: LoopSettings | None = None,
             clock: Callable[[], float] = time.time, synchronous: str = "NORMAL",
             rules: PageRules | None = None, max_rows: int = 256) -> RowEngine:
        """Open (or create) the row engine of a data directory.

        Its files sit in one folder beside the single-slot engine's, so that
        readers of ``logs/`` never meet CCB lines: ``rows/rows.sqlite3``,
        ``rows/logs/dt=.../events.dsjson`` and ``rows/models/``.
        """
        root = Path(data_dir) / "rows"
        store = RowStore(path=root / "rows.sqlite3", synchronous=synchronous)
        engine = cls(store=store, log=EventLogWriter(root=root / "logs"),
                     models_dir=root / "models", clock=clock, rules=rules, max_rows=max_rows)
        if settings is not None:
            engine.update_settings(settings)
        return engine

    # -- settings and snapshots ----------------------------------------------------

    def follow(self, settings: LoopSettings) -> None:
        """Adopt the single-slot loop's settings, all but its policy.

        The main policy's interactions name artwork namespaces; the row loop
        keeps its own VW arguments.
        """
        current = self._load_settings()
        wanted = settings.replace(policy_args=current.policy_args)
        if current != wanted:
            self.update_settings(wanted)

    # -- decisions -------------------------------------------------------------

    def rank_rows(self, context: Features, candidate_rows: Sequence[Row],
                  n_slots: int | None = None, *, slots: Sequence[Slot] | None = None,
                  rules: PageRules | None = None, excluded: Iterable[str] = (),
                  event_id: str | None = None, defer_activation: bool = False,
                  extra: dict | None = None) -> PageDecision:
        """Fill a page, log it durably, and return each slot's row and probability.

        Parameters
        ----------
        context : Features
            Member and moment features.
        candidate_rows : sequence of Row
            Candidates, each with features and an optional genre.
        n_slots : int, default=None
            Slots to fill (ids ``"1".."n"``); give this or ``slots``.
        slots : sequence of Slot, default=None
            Explicit slots (ids, features, baselines).
        rules : PageRules, default=None
            This page's rules; None uses the engine's.
        excluded : iterable of str
            Row ids not to show this member.
        event_id : str, default=None
            Names the page and seeds every slot's draw; made if None.
        defer_activation : bool, default=False
            Rewards count only after :meth:`activate`.
        extra : dict, default=None
            Stored under ``_banditkit`` in the log.

        Raises
        ------
        InvalidInputError, DuplicateEventError
        """
        self._refresh()
        settings = self._settings
        assert settings is not None
        context = check_features(context, name="context")
        rows = _check_rows(candidate_rows, self.max_rows)
        slots = _check_slots(n_slots, slots, len(rows))
        ids = {row.id for row in rows}
        for slot in slots:
            unknown = set(slot.excluded) - ids
            if unknown:
                raise InvalidInputError(f"slot {slot.id!r} excludes rows that are not "
                                        f"candidates: {sorted(unknown)}")
        rules = rules if rules is not None else (self.rules or PageRules())
        if not isinstance(rules, PageRules):
            raise InvalidInputError(f"rules must be PageRules, got {type(rules).__name__}")
        excluded = _check_excluded(excluded, rows)
        event_id = check_event_id(event_id)
        mode = settings.learning_mode
        with self._rank_lock:
            ranker, version = self._ranker, self._ranker_version
            assert ranker is not None
            page = ranker.open_page(context, [row.features for row in rows],
                                    [slot.features for slot in slots], check_input=False)
            decided = decide_page(page, rows, slots, rules=rules, event_id=event_id,
                                  excluded=excluded, mode=mode)
        now = self.clock()
        line = _decision_line(event_id=event_id, timestamp=iso_timestamp(now),
                              version=str(version), context=context, rows=rows,
                              slots=slots, decided=decided, excluded=excluded,
                              rules=rules, mode=mode, extra=extra or {})
        self.store.insert_page(PendingEvent(
            event_id=event_id, created_at=now, deferred=bool(defer_activation),
            activated_at=None, decision=line),
            [slot.id for slot in slots])
        return PageDecision(
            event_id=event_id, model_version=str(version),
            slots=tuple(SlotDecision(slot_id=slot.id, row_id=rows[row].id,
                                     probability=float(pmf[eligible.index(row)]),
                                     n_eligible=len(eligible))
                        for slot, row, eligible, pmf in zip(
                            slots, decided.chosen, decided.eligible, decided.pmfs,
                            strict=True)))

    # -- outcomes --------------------------------------------------------------

    def reward_slots(self, event_id: str, rewards: Mapping[str, float] | Sequence[
            tuple[str, float]]) -> bool:
        """Record rewards of some slots of a page (all or none).

        Parameters
        ----------
        rewards : mapping of slot id to float, or sequence of (slot_id, value)

        Returns
        -------
        bool
            True when they came after the page was joined (late).
        """
        pairs = list(rewards.items()) if isinstance(rewards, Mapping) else list(rewards)
        if not pairs:
            raise InvalidInputError("rewards must name at least one slot")
        checked = []
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2 or not isinstance(
                    pair[0], str):
                raise InvalidInputError(f"each reward must be (slot_id, value), got {pair!r}")
            checked.append((pair[0], check_reward(pair[1])))
        return self.store.add_slot_rewards(check_event_id(event_id), checked, self.clock())

    def reward_slot(self, event_id: str, slot_id: str, value: float) -> bool:
        """Record the reward of one slot (a play from that row); True if late."""
        return self.reward_slots(event_id, [(slot_id, value)])

    def reward_page(self, event_id: str, value: float) -> bool:
        """Record a reward of the whole page (logged as ``pageReward``); True if late."""
        return self.store.add_reward(check_event_id(event_id), check_reward(value),
                                     self.clock())

    def activate(self, event_id: str) -> bool:
        """Mark a deferred page as shown; returns True if it came too late to count."""
        return self.store.activate(check_event_id(event_id), self.clock())

    # -- the learner -------------------------------------------------------------

    def _join(self, events: list[PendingEvent], rewards: dict[str, list[RewardRecord]],
              settings: LoopSettings) -> list[JoinedLine]:
        slot_rewards = self.store.slot_rewards([event.event_id for event in events])
        return [joined_page_line(event, rewards.get(event.event_id, []),
                                 slot_rewards.get(event.event_id, {}), settings)
                for event in events]

# ------------------------------------------------------------------------ the log


def _decision_line(*, event_id: str, timestamp: str, version: str, context: Features,
                   rows: Sequence[Row], slots: Sequence[Slot], decided: _DecidedPage,
                   excluded: set[str], rules: PageRules, mode: str, extra: dict) -> str:
    ccb_slots = []
    for slot, row, eligible, pmf in zip(slots, decided.chosen, decided.eligible, decided.pmfs,
                                        strict=True):
        position = eligible.index(row)
        others = [i for i in np.argsort(-pmf, kind="stable") if i != position]
        order = [position, *others]
        ccb_slots.append(CcbSlot(slot.id, slot.features, list(eligible),
                                 [int(eligible[i]) for i in order],
                                 [float(pmf[i]) for i in order]))
    info: dict = {"rowIds": [row.id for row in rows], "slotIds": [slot.id for slot in slots],
                  "genres": [row.genre for row in rows], **extra}
    if excluded:
        info["excludedRowIds"] = [row.id for row in rows if row.id in excluded]
    if rules != PageRules():
        info["rules"] = rules.to_dict()
    if mode != "online":
        info["learningMode"] = mode
        if decided.model_agrees is not None:
            info["modelAgreesWithBaseline"] = decided.model_agrees
    return ccb_decision_line(event_id, timestamp, version, context,
                             [row.features for row in rows], ccb_slots, info)


def join_page(event: PendingEvent, page_rewards: Sequence[RewardRecord],
              slot_rewards: Mapping[str, Sequence[RewardRecord]],
              settings: LoopSettings) -> tuple[dict[str, JoinOutcome], JoinOutcome]:
    """The foundation's join rules, applied to each slot and to the page.

    Returns
    -------
    per_slot : dict of slot id to JoinOutcome
    page : JoinOutcome
        Of the page-level rewards (its ``reward`` is the default when none came).
    """
    slot_ids = ccb_slot_ids(event.decision)
    per_slot = {slot: join_event(event, list(slot_rewards.get(slot, ())), settings)
                for slot in slot_ids}
    return per_slot, join_event(event, list(page_rewards), settings)


def joined_page_line(event: PendingEvent, page_rewards: Sequence[RewardRecord],
                     slot_rewards: Mapping[str, Sequence[RewardRecord]],
                     settings: LoopSettings) -> JoinedLine:
    """The CCB dsjson line of a joined page, as ``(timestamp, line)``.

    Each slot's outcome gets ``_label_cost`` = minus its joined reward and
    ``_o``, the rewards that counted; the page reward goes to
    ``_banditkit.pageReward``.
    """
    per_slot, page = join_page(event, page_rewards, slot_rewards, settings)
    return joined_ccb_line(
        event.decision,
        {slot: CcbSlotJoin(j.reward, j.used_default, _reward_records(j.counted),
                           _reward_records(j.ignored)) for slot, j in per_slot.items()},
        deferred=event.deferred,
        activated_at=None if event.activated_at is None else iso_timestamp(event.activated_at),
        skip_learn=page.skip_learn, page_reward=page.reward,
        page_used_default=page.used_default, page_ignored=_reward_records(page.ignored))


def _reward_records(rewards: Sequence[RewardRecord]) -> list[dict]:
    return [{"v": r.value, "t": iso_timestamp(r.received_at)} for r in rewards]


# --------------------------------------------------------------------- validation


def _check_rows(rows: object, max_rows: int) -> list[Row]:
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


def _check_slots(n_slots: int | None, slots: Sequence[Slot] | None, n_rows: int) -> list[Slot]:
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


def _check_excluded(excluded: Iterable[str], rows: Sequence[Row]) -> set[str]:
    if isinstance(excluded, str):
        raise InvalidInputError("excluded must be a list of row ids, not a string")
    excluded = set(excluded)
    unknown = excluded - {row.id for row in rows}
    if unknown:
        raise InvalidInputError(f"excluded row ids are not among the candidates: "
                                f"{sorted(unknown)}")
    return excluded
