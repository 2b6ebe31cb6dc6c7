"""Deciding a page: each slot top to bottom, from the rows the rules allow there."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from banditkit.errors import InvalidInputError
from banditkit.rows.learner import OpenPage
from banditkit.rows.rules import page_search
from banditkit.rows.types import PageRules, Row, Slot
from banditkit.sampling import sample_index, strictly_preferred

__all__ = ["DecidedPage", "decide_page"]


@dataclass(frozen=True)
class DecidedPage:
    """A filled page in row indices, before the engine names it and logs it.

    The engine turns it into the decision record (``_inc``, ``_a``, ``_p`` per
    slot) and the :class:`~banditkit.rows.types.PageDecision` it answers with.
    """

    chosen: list[int]                 # row index per slot
    eligible: list[list[int]]         # allowed row indices per slot
    pmfs: list[np.ndarray]            # aligned with eligible
    model_agrees: list[bool] | None   # apprentice: the model prefers the baseline alone


def decide_page(page: OpenPage | None, rows: Sequence[Row], slots: Sequence[Slot], *,
                rules: PageRules, event_id: str, excluded: Iterable[str] = (),
                mode: str = "online") -> DecidedPage:
    """Fill the slots top to bottom, each from the rows the rules allow there.

    Slot ``k``'s row is drawn from ``page.slot_pmf`` restricted to its eligible
    rows, with the uniform of ``event_id + "/k"`` (reproducible). In
    ``apprentice`` and ``logging_only`` modes each slot shows its baseline
    (the slot's ``baseline`` when eligible, else the first eligible row in
    candidate order) with probability 1.

    Parameters
    ----------
    page : OpenPage or None
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
    search = page_search(rows, slots, rules, set(excluded))
    index = {row.id: i for i, row in enumerate(rows)}
    chosen: list[int] = []
    eligible_per_slot: list[list[int]] = []
    pmfs: list[np.ndarray] = []
    agrees: list[bool] = []
    last: str | None = None
    seen: frozenset[str] = frozenset()
    for slot_index, slot in enumerate(slots):
        eligible = search.eligible(slot_index, chosen, last, seen)
        pick, pmf = _draw(page, slot_index, eligible, chosen, mode=mode, event_id=event_id,
                          baseline=index.get(slot.baseline or "", -1), agrees=agrees)
        row = eligible[pick]
        chosen.append(row)
        eligible_per_slot.append(eligible)
        pmfs.append(pmf)
        last = rows[row].genre
        seen = search.seen_after(seen, last, slot_index)
    return DecidedPage(chosen=chosen, eligible=eligible_per_slot, pmfs=pmfs,
                        model_agrees=agrees if mode != "online" and page is not None else None)


def _draw(page: OpenPage | None, slot: int, eligible: list[int], chosen: list[int], *,
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
