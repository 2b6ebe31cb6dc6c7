"""The page learner interface: fills a page slot by slot and learns from per-slot costs.

The multi-slot counterpart of :class:`banditkit.learner.Learner`. A page is
decided one slot at a time, top to bottom: for slot ``k`` the caller names the
rows allowed there (page rules applied, rows placed above removed) and the
rows already placed above; the learner answers a probability for each allowed
row. Vowpal Wabbit's conditional contextual bandit (``--ccb_explore_adf``) sits
behind it in :mod:`banditkit.vw` (:class:`banditkit.vw.VWPageLearner`).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence

import numpy as np

from banditkit.errors import InvalidInputError
from banditkit.types import Features, check_features

_log = logging.getLogger(__name__)

__all__ = ["OpenPage", "PageLearner"]


class OpenPage(abc.ABC):
    """One page being filled: the context, candidate rows and slots, prepared once.

    Obtained from :meth:`PageLearner.open_page`; not thread-safe, use it from
    the thread that opened it and drop it once the page is decided.
    """

    def __init__(self, *, n_actions: int, n_slots: int) -> None:
        self.n_actions = n_actions
        self.n_slots = n_slots

    def slot_pmf(self, slot: int, included: Sequence[int], chosen_above: Sequence[int]) -> \
            np.ndarray:
        """Probability of each allowed row in ``slot`` given the rows placed above.

        Parameters
        ----------
        slot : int
            0-based slot index; slots are decided in order, ``slot == len(chosen_above)``.
        included : sequence of int, length n_included
            0-based indices of the rows allowed in this slot (not placed above).
        chosen_above : sequence of int, length slot
            Row index placed in each slot above.

        Returns
        -------
        ndarray of shape (n_included,)
            Non-negative, sums to 1, aligned with ``included``; includes exploration.
            Uniform, with a logged warning, when the model's are not finite.
        """
        if slot != len(chosen_above) or not 0 <= slot < self.n_slots:
            raise InvalidInputError(
                f"slot must be the next slot to fill ({len(chosen_above)}) and below "
                f"{self.n_slots}, got {slot}")
        if not included:
            raise InvalidInputError(f"included must name at least one row for slot {slot}")
        if set(included) & set(chosen_above):
            raise InvalidInputError("included must not contain rows placed above")
        if min(included) < 0 or max(included) >= self.n_actions:
            raise InvalidInputError(f"included rows must be in [0, {self.n_actions})")
        pmf = self._slot_pmf(slot, list(included), list(chosen_above))
        if not np.isfinite(pmf).all():
            _log.warning("the row model's probabilities for slot %d are not finite (%s); "
                         "the slot is drawn uniformly", slot, pmf)
            return np.full(len(included), 1.0 / len(included))
        return pmf

    @abc.abstractmethod
    def _slot_pmf(self, slot: int, included: list[int], chosen_above: list[int]) -> np.ndarray:
        ...


class PageLearner(abc.ABC):
    """Decides pages slot by slot and learns from logged CCB dsjson lines."""

    def open_page(self, context: Features, actions: Sequence[Features],
                  slots: Sequence[Features], *, check_input: bool = True) -> OpenPage:
        """Prepare one page for :meth:`OpenPage.slot_pmf`.

        Parameters
        ----------
        context : Features
            Member and moment features.
        actions : sequence of Features, length n_actions
            Candidate row features.
        slots : sequence of Features, length n_slots
            Slot features (e.g. ``{"Slot": {"position": "1"}}``).
        check_input : bool, default=True
            Skip validation when the caller validated already.
        """
        if check_input:
            check_features(context, name="context")
            if not actions:
                raise InvalidInputError("actions must not be empty")
            for position, features in enumerate(actions):
                check_features(features, name=f"actions[{position}]")
            if not slots or len(slots) > len(actions):
                raise InvalidInputError(
                    f"slots must number between 1 and n_actions={len(actions)}, got {len(slots)}")
            for position, features in enumerate(slots):
                check_features(features, name=f"slots[{position}]")
        return self._open_page(context, actions, slots)

    @abc.abstractmethod
    def _open_page(self, context: Features, actions: Sequence[Features],
                   slots: Sequence[Features]) -> OpenPage: ...

    @abc.abstractmethod
    def learn_dsjson(self, line: str, *, skip_learn: bool | None = None) -> bool:
        """Learn from one joined CCB dsjson line; False when it is marked ``_skipLearn``
        (``skip_learn``: that mark, when the caller knows it)."""

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """The model as bytes; the constructor's ``model_data`` restores it."""
