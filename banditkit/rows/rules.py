"""The page rules applied: which rows may still go in a slot, and what a page breaks.

One search decides every page. Its state is the slot being filled, the genre
just above, the genres seen in the diversity window, and how many rows are
left of each *class*: rows that share a genre and the slots that exclude them
are interchangeable for the rules, so only their count matters. Without
per-slot exclusions the classes are the genres. Exact shortcuts answer the
common cases before the memoised depth-first search runs:

- only per-slot exclusions constrain the page: a completion is a matching of
  the remaining slots to rows, found by augmenting paths
  (:meth:`PageSearch._matching`);
- only the adjacency rule is left (past the last pinned or excluding slot,
  diversity met): a counting argument (:meth:`PageSearch._closed_form`);
- otherwise a greedy completion proves most pages completable
  (:meth:`PageSearch._greedy`) and the search settles the rest, bounded by a
  node budget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from banditkit.errors import InvalidInputError
from banditkit.rows.types import PageRules, Row, Slot

__all__ = ["PageSearch", "page_search", "page_violations"]

_BUDGET = 200_000


class PageSearch:
    """Which rows may go in a slot so that the page can still be completed under the rules.

    The page is filled top to bottom; a row is eligible in a slot iff some
    completion of the page that respects the rules starts with it. Build one
    with :func:`page_search`.

    Parameters
    ----------
    genres : list of str or None
        The genre of each candidate row.
    pinned_at : dict of int to int
        Slot -> the row pinned there.
    pool : set of int
        The rows that may be shown, pinned rows aside.
    banned_at : list of set of int
        Per slot, the pool rows it excludes.
    rules : PageRules
    exhausted : str
        What the error says when the search budget runs out.
    """

    def __init__(self, *, genres: list[str | None], pinned_at: dict[int, int], pool: set[int],
                 banned_at: list[set[int]], rules: PageRules, exhausted: str) -> None:
        self.genres = genres
        self.pinned_at = pinned_at
        self.pool = pool
        self.n_slots = len(banned_at)
        self.no_adjacent = rules.no_adjacent_same_genre
        self.need = rules.min_distinct_genres
        self.within = min(rules.distinct_genres_within or self.n_slots, self.n_slots)
        self.genre_rules = self.no_adjacent or self.need > 0
        self.exhausted = exhausted
        excluding = [(s, banned) for s, banned in enumerate(banned_at) if banned]
        signature = {r: (genres[r], frozenset(s for s, banned in excluding if r in banned))
                     for r in pool}
        classes = sorted(set(signature.values()),
                         key=lambda c: (c[0] is None, c[0] or "", sorted(c[1])))
        index = {c: i for i, c in enumerate(classes)}
        self.class_of = {r: index[c] for r, c in signature.items()}
        self.class_genre = [genre for genre, _ in classes]
        self.one_class_per_genre = len(set(self.class_genre)) == len(classes)
        self.usable = [[] if s in pinned_at else
                       [c for c, (_, banned) in enumerate(classes) if s not in banned]
                       for s in range(self.n_slots)]
        # Past this slot nothing is pinned and rows of one genre are interchangeable.
        self.last_restricted = max([*pinned_at, *(s for s, _ in excluding)], default=-1)
        self.memo: dict[tuple, bool] = {}
        self.budget = _BUDGET

    def eligible(self, slot: int, chosen: list[int], last: str | None,
                 seen: frozenset[str]) -> list[int]:
        """Row indices, ascending, allowed in ``slot`` below the rows ``chosen``.

        ``last`` is the genre of the row just above, ``seen`` the genres seen so
        far in the diversity window (:meth:`seen_after`).
        """
        if slot in self.pinned_at:
            return [self.pinned_at[slot]]
        pool = self.pool.difference(chosen)
        counts = self._counts(pool)
        if self.genre_rules:
            allowed = {c for c in self.usable[slot]
                       if self._allowed_class(slot, c, last, counts, seen)}
        else:
            allowed = self._matching_allows(slot, counts)
        return [r for r in sorted(pool) if self.class_of[r] in allowed]

    def seen_after(self, seen: frozenset[str], genre: str | None, slot: int) -> frozenset[str]:
        """The window's genres once a row of ``genre`` sits in ``slot``."""
        if genre is None or slot >= self.within or genre in seen:
            return seen
        return seen | {genre}

    def page_feasible(self) -> bool:
        """Whether any page respects the rules."""
        return self._feasible(0, None, self._counts(self.pool), frozenset())

    def _counts(self, pool: Iterable[int]) -> tuple[int, ...]:
        counts = [0] * len(self.class_genre)
        for row in pool:
            counts[self.class_of[row]] += 1
        return tuple(counts)

    def _allowed_class(self, slot: int, taken: int, last: str | None, counts: tuple[int, ...],
                       seen: frozenset[str]) -> bool:
        """Whether a row of class ``taken`` placed in ``slot`` keeps the page completable."""
        genre = self.class_genre[taken]
        if counts[taken] == 0 or self._conflict(genre, last):
            return False
        return self._feasible(slot + 1, genre, _minus_one(counts, taken),
                              self.seen_after(seen, genre, slot))

    def _feasible(self, slot: int, last: str | None, counts: tuple[int, ...],
                  seen: frozenset[str]) -> bool:
        """Whether slots ``slot..`` can be filled from ``counts``."""
        if slot >= self.within and len(seen) < self.need:
            return False  # the diversity window closed short
        if not self.genre_rules:
            return self._matching(slot, counts) is not None
        if self._closed_form_applies(slot, seen):
            return self._closed_form(slot, last, counts)
        return self._greedy(slot, last, counts, seen) or self._search(slot, last, counts, seen)

    def _matching(self, slot: int, counts: tuple[int, ...]) -> dict[int, int] | None:
        """Slot -> class for the open slots ``slot..``, at most ``counts[c]`` slots per
        class, each class allowed where it goes; None when no such matching exists."""
        # Only exclusions constrain: the page completes iff the open slots match
        # (augmenting paths). The pool always holds enough rows for the open slots.
        assigned: dict[int, int] = {}
        for s in range(slot, self.n_slots):
            if s not in self.pinned_at and not self._augment(s, counts, assigned, set()):
                return None
        return assigned

    def _matching_allows(self, slot: int, counts: tuple[int, ...]) -> set[int]:
        """The classes a row may come from in ``slot`` when only exclusions constrain."""
        usable = {c for c in self.usable[slot] if counts[c] > 0}
        if slot + 1 > self.last_restricted:
            return usable
        below = self._matching(slot + 1, counts)
        if below is None:
            return set()
        allowed = set()
        for c in usable:
            holders = [s for s, held in below.items() if held == c]
            if len(holders) < counts[c]:
                allowed.add(c)  # a row of c is left over below
                continue
            # c's rows are all taken below: one of its slots must move elsewhere.
            trial = {s: held for s, held in below.items() if s != holders[0]}
            if self._augment(holders[0], _minus_one(counts, c), trial, set()):
                allowed.add(c)
        return allowed

    def _augment(self, slot: int, counts: tuple[int, ...], assigned: dict[int, int],
                 visited: set[int]) -> bool:
        """Give ``slot`` a class, moving other slots along an augmenting path if needed."""
        load = Counter(assigned.values())
        for c in self.usable[slot]:
            if load[c] < counts[c]:  # a class with a row to spare ends the path at once
                assigned[slot] = c
                return True
        for c in self.usable[slot]:
            if c in visited or counts[c] == 0:
                continue
            visited.add(c)
            if any(self._augment(s, counts, assigned, visited)
                   for s in [s for s, held in assigned.items() if held == c]):
                assigned[slot] = c
                return True
        return False

    def _closed_form_applies(self, slot: int, seen: frozenset[str]) -> bool:
        return self.last_restricted < slot and len(seen) >= self.need

    def _closed_form(self, slot: int, last: str | None, counts: tuple[int, ...]) -> bool:
        # Only adjacency left. m rows, none of two neighbours sharing a genre, exist
        # iff some x_g <= c_g with sum m fit: at most ceil(m/2) of a genre, floor(m/2)
        # of the genre just placed (it cannot open the rest); rows without genre
        # fit anywhere. So: none + sum_g min(c_g, cap_g) >= m.
        m = self.n_slots - slot
        if m <= 0:
            return True
        if not self.no_adjacent:
            return sum(counts) >= m
        cap, cap_last = (m + 1) // 2, m // 2
        total = 0
        for genre, count in self._genre_counts(counts):
            total += count if genre is None else min(count, cap_last if genre == last else cap)
        return total >= m

    def _genre_counts(self, counts: tuple[int, ...]) -> Iterable[tuple[str | None, int]]:
        """Rows left per genre (rows without genre possibly in several entries)."""
        if self.one_class_per_genre:
            return zip(self.class_genre, counts, strict=True)
        per_genre: dict[str | None, int] = {}
        for genre, count in zip(self.class_genre, counts, strict=True):
            per_genre[genre] = per_genre.get(genre, 0) + count
        return per_genre.items()

    def _greedy(self, slot: int, last: str | None, counts: tuple[int, ...],
                seen: frozenset[str]) -> bool:
        # Unseen genres while diversity is short, else the most plentiful genre that
        # does not repeat the last one, else a row without genre. Sufficient only.
        remaining = list(counts)
        for k in range(slot, self.n_slots):
            if self._closed_form_applies(k, seen):  # only adjacency left: decide exactly
                return self._closed_form(k, last, tuple(remaining))
            if k < self.within and len(seen) + (self.within - k) < self.need:
                return False
            if k in self.pinned_at:
                genre = self.genres[self.pinned_at[k]]
                if self._conflict(genre, last):
                    return False
            else:
                best, best_key, plain = -1, None, -1
                blocked = last if self.no_adjacent else None
                for c in self.usable[k]:
                    if remaining[c] == 0:
                        continue
                    genre = self.class_genre[c]
                    if genre is None:
                        plain = c if plain < 0 else plain
                    elif genre != blocked:
                        key = (genre not in seen, remaining[c])
                        if best_key is None or key > best_key:
                            best, best_key = c, key
                if best >= 0 and (plain < 0 or best_key[0] or self.need > len(seen)
                                  or remaining[best] > 1):
                    pick = best
                elif plain >= 0:
                    pick = plain
                elif best >= 0:
                    pick = best
                else:
                    return False
                remaining[pick] -= 1
                genre = self.class_genre[pick]
            seen = self.seen_after(seen, genre, k)
            last = genre
        return len(seen) >= self.need

    def _search(self, slot: int, last: str | None, counts: tuple[int, ...],
                seen: frozenset[str]) -> bool:
        if self._short(slot, seen):
            return False
        if slot == self.n_slots:
            return True
        if self._closed_form_applies(slot, seen):
            return self._closed_form(slot, last, counts)
        key = (slot, last, counts, seen if slot < self.within else None)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        self._spend()
        result = False
        if slot in self.pinned_at:
            genre = self.genres[self.pinned_at[slot]]
            if not self._conflict(genre, last):
                result = self._search(slot + 1, genre, counts, self.seen_after(seen, genre, slot))
        else:
            # Unseen genres first while diversity is short, then the most plentiful,
            # rows without genre last.
            order = sorted(self.usable[slot], key=lambda c: (
                self.class_genre[c] is None, self.class_genre[c] in seen, -counts[c]))
            for c in order:
                genre = self.class_genre[c]
                if counts[c] == 0 or self._conflict(genre, last):
                    continue
                if self._search(slot + 1, genre, _minus_one(counts, c),
                                self.seen_after(seen, genre, slot)):
                    result = True
                    break
        self.memo[key] = result
        return result

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
            raise InvalidInputError(f"{self.exhausted} (search budget exhausted); relax "
                                    "the rules")


def _minus_one(counts: tuple[int, ...], taken: int) -> tuple[int, ...]:
    return counts[:taken] + (counts[taken] - 1,) + counts[taken + 1:]


def page_search(rows: Sequence[Row], slots: Sequence[Slot], rules: PageRules,
                excluded: set[str]) -> PageSearch:
    """The search deciding which rows each slot of this page allows.

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
    banned_at = _banned_per_slot(rows, slots, pool, pinned_at)
    if any(slot.excluded for slot in slots):
        exhausted = "page rules too hard to satisfy with these per-slot exclusions"
        unsatisfiable = (f"no page of {n_slots} slots satisfies the rules {rules.to_dict()} "
                         f"and the slots' exclusions with these {len(rows)} rows")
    else:
        exhausted = "page rules too hard to satisfy for these rows"
        unsatisfiable = (f"no page of {n_slots} slots satisfies the rules {rules.to_dict()} "
                         f"with these {len(rows)} rows ({len(excluded)} excluded)")
    search = PageSearch(genres=[row.genre for row in rows], pinned_at=pinned_at, pool=pool,
                        banned_at=banned_at, rules=rules, exhausted=exhausted)
    if not search.page_feasible():
        raise InvalidInputError(unsatisfiable)
    return search


def _banned_per_slot(rows: Sequence[Row], slots: Sequence[Slot], pool: set[int],
                     pinned_at: dict[int, int]) -> list[set[int]]:
    index = {row.id: i for i, row in enumerate(rows)}
    banned_at: list[set[int]] = []
    for slot_index, slot in enumerate(slots):
        banned = {index[row_id] for row_id in slot.excluded}
        if pinned_at.get(slot_index) in banned:
            raise InvalidInputError(f"slot {slot.id!r} excludes the row pinned to it, "
                                    f"{rows[pinned_at[slot_index]].id!r}")
        banned_at.append(set() if slot_index in pinned_at else banned & pool)
    return banned_at


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
