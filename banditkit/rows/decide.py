"""Deciding a page: each slot top to bottom, from the rows the rules allow there."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from banditkit.errors import InvalidInputError
from banditkit.rows.learner import SlatePage
from banditkit.rows.rules import _Feasibility, _pinned_slots, _SlotSearch
from banditkit.rows.types import PageRules, Row, Slot
from banditkit.sampling import sample_index, strictly_preferred

__all__ = ["decide_page"]


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
