"""Reproducible sampling: the event id seeds the draw (docs/architecture.md §4).

The same event id with the same model gives the same choice, in any process, so
a decision can be replayed exactly from the log.
"""

from __future__ import annotations

import hashlib
import uuid
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

__all__ = ["new_event_id", "rank_order", "sample_index", "strictly_preferred",
           "uniform_from_event_id"]


def new_event_id() -> str:
    return uuid.uuid4().hex


def uniform_from_event_id(event_id: str) -> float:
    """A number in [0, 1) determined by the event id (53 bits of its BLAKE2b hash)."""
    digest = hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


def sample_index(pmf: Sequence[float], event_id: str) -> int:
    """Draw an index from ``pmf`` (length n, sums to 1) with the event id's uniform.

    Plain Python: for the handful of actions of a decision it is several times
    faster than numpy, and it draws what ``searchsorted`` on ``cumsum`` would.
    """
    cumulative = list(accumulate(pmf))
    index = bisect_right(cumulative, uniform_from_event_id(event_id) * cumulative[-1])
    # Guard the float edge: never land on a zero-probability action.
    index = min(index, len(cumulative) - 1)
    while pmf[index] <= 0.0:
        index -= 1
    return index


def rank_order(pmf: Sequence[float], chosen: int) -> list[int]:
    """The chosen index first, then the others by decreasing probability (stable)."""
    order = sorted(range(len(pmf)), key=pmf.__getitem__, reverse=True)  # reverse is stable
    order.remove(chosen)
    return [chosen, *order]


def strictly_preferred(pmf: Sequence[float], index: int) -> bool:
    """Whether ``pmf`` gives ``index`` more probability than each other action.

    This is what apprentice mode counts as the model agreeing with the baseline
    shown: the model, left to choose greedily, would have picked the baseline
    whatever the tie-break. A model indifferent between the baseline and
    another action (an untrained one gives every action the same probability)
    has not learned to choose the baseline, so it does not agree. With one
    action there is nothing else to prefer, and it agrees.

    Parameters
    ----------
    pmf : sequence of float, length n_actions
        The model's probabilities.
    index : int
        The action asked about (the baseline), in ``range(n_actions)``.
    """
    top = pmf[index]
    return all(p < top for i, p in enumerate(pmf) if i != index)
