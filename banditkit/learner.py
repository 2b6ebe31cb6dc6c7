"""The learner interface: any engine that picks among actions and learns from rewards.

Vowpal Wabbit sits behind it in :mod:`banditkit.vw`; nothing else in banditkit
knows which engine learns (docs/architecture.md §2).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from banditkit.encoding import FeatureEncoder
from banditkit.errors import InvalidInputError
from banditkit.types import Features, check_features

__all__ = ["Learner"]


class Learner(abc.ABC):
    """Gives a probability to each action for a context and learns from one reward at a time.

    Public methods validate, then call the private hooks subclasses implement.
    Subclasses call ``super().__init__()``: it makes the encoder :meth:`predict_one`
    keeps its encoded features in.
    """

    def __init__(self) -> None:
        self._encoder = FeatureEncoder()

    def predict_one(self, context: Features, actions: Sequence[Features]) -> np.ndarray:
        """Probability of choosing each action.

        Parameters
        ----------
        context : Features
            Shared (member and moment) features.
        actions : sequence of Features, length n_actions
            Action features, in the caller's order.

        Returns
        -------
        ndarray of shape (n_actions,)
            Non-negative, sums to 1; includes exploration.
        """
        if not actions:
            raise InvalidInputError("actions must not be empty")
        return np.asarray(self._predict_encoded(
            self._encoder.encode(context, name="context"),
            self._encoder.encode_all(actions, name="actions[{}]")))

    def learn_one(self, context: Features, actions: Sequence[Features], *, chosen: int,
                  reward: float, probability: float) -> None:
        """Learn from the reward of the action that was shown.

        Parameters
        ----------
        chosen : int
            0-based index into ``actions`` of the action that was shown.
        reward : float
            Observed reward (the learner minimises ``-reward``).
        probability : float
            Probability with which ``chosen`` was picked, in (0, 1].
        """
        self._check(context, actions)
        if not 0 <= chosen < len(actions):
            raise InvalidInputError(f"chosen must be in [0, {len(actions)}), got {chosen}")
        if not 0.0 < probability <= 1.0:
            raise InvalidInputError(f"probability must be in (0, 1], got {probability}")
        if not np.isfinite(reward):
            raise InvalidInputError(f"reward must be finite, got {reward}")
        self._learn_one(context, actions, chosen, float(reward), float(probability))

    @staticmethod
    def _check(context: Features, actions: Sequence[Features]) -> None:
        check_features(context, name="context")
        if not actions:
            raise InvalidInputError("actions must not be empty")
        for position, features in enumerate(actions):
            check_features(features, name=f"actions[{position}]")

    @abc.abstractmethod
    def _predict_encoded(self, context: str, actions: Sequence[str]) -> Sequence[float]:
        """Probabilities for features validated and encoded by a
        :class:`~banditkit.encoding.FeatureEncoder` (VW's JSON)."""

    @abc.abstractmethod
    def _learn_one(self, context: Features, actions: Sequence[Features], chosen: int,
                   reward: float, probability: float) -> None: ...

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """The model as bytes; ``from_bytes`` with the same arguments restores it."""
