"""The page rules applied: which rows may still go in a slot, and what a page breaks."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from banditkit.errors import InvalidInputError
from banditkit.rows.types import PageRules, Row, Slot

__all__ = ["PageSearch", "page_search", "page_violations"]


class PageSearch(abc.ABC):
    """Which rows may go in a slot so that the page can still be completed under the rules.

    The page is filled top to bottom; a row is eligible in a slot iff some
    completion of the page that respects the rules starts with it. This base
    holds the rules' terms and the memoised search's node budget; the two
    searches below differ in the state they search over. Build one with
    :func:`page_search`.
    """

    _exhausted = "page rules too hard to satisfy for these rows"

    def __init__(self, *, genres: list[str | None], n_slots: int, rules: PageRules) -> None:
        self.genres = genres
        self.n_slots = n_slots
        self.no_adjacent = rules.no_adjacent_same_genre
        self.need = rules.min_distinct_genres
        self.within = min(rules.distinct_genres_within or n_slots, n_slots)
        self.memo: dict[tuple, bool] = {}
        self.budget = 200_000

    @abc.abstractmethod
    def page_feasible(self) -> bool:
        """Whether any page respects the rules."""

    @abc.abstractmethod
    def eligible(self, slot: int, chosen: list[int], last: str | None,
                 seen: frozenset[str]) -> list[int]:
        """Row indices, ascending, allowed in ``slot`` below the rows ``chosen``.

        ``last`` is the genre of the row just above, ``seen`` the genres seen so
        far in the diversity window (:meth:`seen_after`).
        """

    def seen_after(self, seen: frozenset[str], genre: str | None, slot: int) -> frozenset[str]:
        """The window's genres once a row of ``genre`` sits in ``slot``."""
        if genre is None or slot >= self.within or genre in seen:
            return seen
        return seen | {genre}

    def _conflict(self, genre: str | None, last: str | None) -> bool:
        return self.no_adjacent and genre is not None and genre == last

    def _short(self, slot: int, seen: frozenset[str]) -> bool:
        """Whether the diversity rule can no longer be met from ``slot`` on."""
        if slot >= self.within:
            return len(seen) < self.need
        return len(seen) + (self.within - slot) < self.need

    def _spend(self) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise InvalidInputError(f"{self._exhausted} (search budget exhausted); relax "
                                    "the rules")


class _GenreSearch(PageSearch):
    """The search when no slot excludes rows of its own.

    Rows of one genre are interchangeable for the rules, so a memoised
    depth-first search runs over genre counts; ``None`` (no genre) rows never
    conflict.
    """

    def __init__(self, *, genres: list[str | None], n_slots: int, pinned_at: dict[int, int],
                 pool: set[int], rules: PageRules) -> None:
        super().__init__(genres=genres, n_slots=n_slots, rules=rules)
        self.pinned_at = pinned_at  # slot -> row index
        self.pool = pool  # rows that may be shown, pinned rows aside
        self.keys = sorted({g for g in genres if g is not None})
        self.key_index = {g: i for i, g in enumerate(self.keys)}
        self.last_pin = max(pinned_at, default=-1)

    def page_feasible(self) -> bool:
        counts, none = self.counts(self.pool)
        return self.feasible(0, None, counts, none, frozenset())

    def eligible(self, slot: int, chosen: list[int], last: str | None,
                 seen: frozenset[str]) -> list[int]:
        if slot in self.pinned_at:
            return [self.pinned_at[slot]]
        pool = self.pool.difference(chosen)
        counts, none = self.counts(pool)
        verdict: dict[str | None, bool] = {}
        out = []
        for index in sorted(pool):
            genre = self.genres[index]
            if genre not in verdict:
                verdict[genre] = self.allowed_genre(slot, genre, last, counts, none, seen)
            if verdict[genre]:
                out.append(index)
        return out

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
            seen = self.seen_after(seen, genre, k)
            last = genre
        return len(seen) >= self.need

    def _search(self, slot: int, last: str | None, counts: tuple[int, ...], none: int,
                seen: frozenset[str]) -> bool:
        if self._short(slot, seen):
            return False
        if slot == self.n_slots:
            return True
        if self._closed_form_applies(slot, seen):
            return self._closed_form(slot, last, counts, none)
        key = (slot, last, counts, none, seen if slot < self.within else None)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        self._spend()
        result = False
        if slot in self.pinned_at:
            genre = self.genres[self.pinned_at[slot]]
            if not self._conflict(genre, last):
                result = self._search(slot + 1, genre, counts, none,
                                       self.seen_after(seen, genre, slot))
        else:
            # Unseen genres first while diversity is short, then the most plentiful.
            order = sorted(range(len(self.keys)), key=lambda i: (
                self.keys[i] in seen, -counts[i]))
            for i in order:
                genre = self.keys[i]
                if counts[i] == 0 or self._conflict(genre, last):
                    continue
                fewer = counts[:i] + (counts[i] - 1,) + counts[i + 1:]
                if self._search(slot + 1, genre, fewer, none, self.seen_after(seen, genre, slot)):
                    result = True
                    break
            if not result and none > 0:
                result = self._search(slot + 1, None, counts, none - 1, seen)
        self.memo[key] = result
        return result

    def allowed_genre(self, slot: int, genre: str | None, last: str | None,
                      counts: tuple[int, ...], none: int, seen: frozenset[str]) -> bool:
        """Whether a row of ``genre`` taken from the pool at ``slot`` keeps the page completable."""
        if self._conflict(genre, last):
            return False
        if genre is None:
            return self.feasible(slot + 1, None, counts, none - 1, seen)
        i = self.key_index[genre]
        fewer = counts[:i] + (counts[i] - 1,) + counts[i + 1:]
        return self.feasible(slot + 1, genre, fewer, none, self.seen_after(seen, genre, slot))


class _RowSearch(PageSearch):
    """The search when slots exclude rows of their own: rows are no longer
    interchangeable within a genre, so the search runs over rows.

    Without genre rules a completion is a matching of the remaining slots to
    rows (each slot to a row it allows): exact and polynomial, by augmenting
    paths. With genre rules too, a memoised depth-first search over rows,
    bounded by a node budget.
    """

    _exhausted = "page rules too hard to satisfy with these per-slot exclusions"

    def __init__(self, *, allowed: list[set[int]], genres: list[str | None],
                 rules: PageRules) -> None:
        super().__init__(genres=genres, n_slots=len(allowed), rules=rules)
        self.allowed = allowed  # slot -> rows it may show (pins and exclusions applied)
        self.genre_rules = self.no_adjacent or self.need > 0

    def page_feasible(self) -> bool:
        return self.feasible(0, frozenset(), None, frozenset())

    def eligible(self, slot: int, chosen: list[int], last: str | None,
                 seen: frozenset[str]) -> list[int]:
        used = set(chosen)
        candidates = sorted(self.allowed[slot] - used)
        if not self.genre_rules:
            return self._matching_eligible(slot, used, candidates)
        out = []
        for row in candidates:
            genre = self.genres[row]
            if self._conflict(genre, last):
                continue
            if self.feasible(slot + 1, frozenset(used | {row}), genre,
                             self.seen_after(seen, genre, slot)):
                out.append(row)
        return out

    def feasible(self, slot: int, used: frozenset[int], last: str | None,
                 seen: frozenset[str]) -> bool:
        if not self.genre_rules:
            return len(self._matching(slot, set(used))) == self.n_slots - slot
        if self._short(slot, seen):
            return False
        if slot == self.n_slots:
            return True
        key = (slot, used, last, seen if slot < self.within else None)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        self._spend()
        result = False
        for row in sorted(self.allowed[slot] - used,
                          key=lambda r: self.genres[r] in seen):
            genre = self.genres[row]
            if self._conflict(genre, last):
                continue
            if self.feasible(slot + 1, used | {row}, genre, self.seen_after(seen, genre, slot)):
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


def page_search(rows: Sequence[Row], slots: Sequence[Slot], rules: PageRules,
                excluded: set[str]) -> PageSearch:
    """The search deciding which rows each slot of this page allows.

    Over genre counts when no slot excludes rows of its own, else over rows.

    Raises
    ------
    InvalidInputError
        When no page satisfies the rules.
    """
    n_slots = len(slots)
    pinned_at = _pinned_slots(rows, rules, excluded, n_slots)
    pinned_rows = set(pinned_at.values())
    pool = {i for i, row in enumerate(rows) if row.id not in excluded and i not in pinned_rows}
    if len(pool) + len(pinned_at) < n_slots:
        raise InvalidInputError(
            f"{n_slots} slots but only {len(pool) + len(pinned_at)} rows may be shown")
    genres = [row.genre for row in rows]
    search: PageSearch
    if any(slot.excluded for slot in slots):
        search = _RowSearch(allowed=_allowed_per_slot(rows, slots, pool, pinned_at),
                            genres=genres, rules=rules)
        unsatisfiable = (f"no page of {n_slots} slots satisfies the rules {rules.to_dict()} "
                         f"and the slots' exclusions with these {len(rows)} rows")
    else:
        search = _GenreSearch(genres=genres, n_slots=n_slots, pinned_at=pinned_at, pool=pool,
                              rules=rules)
        unsatisfiable = (f"no page of {n_slots} slots satisfies the rules {rules.to_dict()} "
                         f"with these {len(rows)} rows ({len(excluded)} excluded)")
    if not search.page_feasible():
        raise InvalidInputError(unsatisfiable)
    return search


def _allowed_per_slot(rows: Sequence[Row], slots: Sequence[Slot], pool: set[int],
                      pinned_at: dict[int, int]) -> list[set[int]]:
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
    return allowed


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
