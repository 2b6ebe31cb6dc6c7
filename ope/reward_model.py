r"""Cross-fitted reward models for the direct method and the doubly robust family.

The model learns :math:`\hat q(x, a)`, the expected reward of action :math:`a`
in context :math:`x`, from the logged (context, action, reward) triples. With
cross-fitting the rounds are split into ``n_folds`` folds and the predictions
for a fold come from a model fitted on the other folds only, so no round is
scored by a model that saw its reward (Chernozhukov et al. 2018); this keeps
DR's correction term honest.

References
----------
V. Chernozhukov et al. "Double/debiased machine learning for treatment and
structural parameters." The Econometrics Journal, 2018.
M. Dudík, J. Langford and L. Li. "Doubly Robust Policy Evaluation and
Learning." ICML, 2011.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from ope.rounds import LoggedRounds, TargetRounds
from ope.validation import check_integer_at_least

__all__ = ["CrossFitRewardModel"]


@dataclass(frozen=True, kw_only=True)
class CrossFitRewardModel:
    r"""A scikit-learn model of :math:`\hat q(x, a)`, fitted with cross-fitting.

    Each (context, action) pair is encoded as the context features, a one-hot
    of the action and (with ``interactions``) their products, so that even a
    linear model can give each action its own slope on the context.

    Parameters
    ----------
    model : scikit-learn estimator, default=None
        Regressor, or binary classifier (its ``predict_proba`` of class 1 is
        used). ``None`` means ``Ridge(alpha=1.0)``. Cloned for every fold.
    n_folds : int, default=5
        Cross-fitting folds, >= 2.
    interactions : bool, default=True
        Add context x action-one-hot products to the encoding.
    seed : int, default=0
        Seeds the fold assignment.
    """

    model: Any = None
    n_folds: int = 5
    interactions: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_integer_at_least(self.n_folds, 2, name="n_folds")
        check_integer_at_least(self.seed, 0, name="seed")
        if self.model is not None and not hasattr(self.model, "fit"):
            raise TypeError(f"model must be a scikit-learn estimator, got "
                            f"{type(self.model).__name__}")

    def predict(self, rounds: LoggedRounds, features: np.ndarray) -> np.ndarray:
        r"""Held-out predictions for every action of every round.

        Parameters
        ----------
        rounds : LoggedRounds
        features : ndarray of shape (n_rounds, n_features)
            Numeric context features of each round.

        Returns
        -------
        ndarray of shape (n_rounds, max_actions)
            :math:`\hat q(x_i, a)` from the model that did not see round ``i``;
            0 at positions ``>= rounds.n_actions``.
        """
        features = self._check_features(rounds, features)
        n_max = int(rounds.n_actions.max())
        if len(rounds) < self.n_folds:
            raise ValueError(f"rounds must hold at least n_folds={self.n_folds} rounds, "
                             f"got {len(rounds)}")
        predictions = np.zeros((len(rounds), n_max))
        folds = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        for train, test in folds.split(features):
            model = self._fit(features[train], rounds.action[train], rounds.reward[train],
                              n_max)
            for action in range(n_max):
                design = self._design(features[test], np.full(len(test), action), n_max)
                predictions[test, action] = self._predict(model, design)
        outside = np.arange(n_max)[None, :] >= rounds.n_actions[:, None]
        predictions[outside] = 0.0
        return predictions

    def target_rounds(self, rounds: LoggedRounds, features: np.ndarray,
                      action_dist: np.ndarray, *,
                      logging_dist: np.ndarray | None = None) -> TargetRounds:
        """A target policy's per-round arrays with cross-fitted model values.

        Parameters
        ----------
        rounds : LoggedRounds
        features : ndarray of shape (n_rounds, n_features)
        action_dist : ndarray of shape (n_rounds, max_actions)
            The target policy's distribution over each round's actions.
        logging_dist : ndarray of shape (n_rounds, max_actions), default=None
            For the support diagnostic.
        """
        return TargetRounds.from_dense(rounds, action_dist,
                                       model_predictions=self.predict(rounds, features),
                                       logging_dist=logging_dist)

    # -- internals ------------------------------------------------------------

    def _check_features(self, rounds: LoggedRounds, features: np.ndarray) -> np.ndarray:
        if not isinstance(rounds, LoggedRounds):
            raise TypeError(f"rounds must be a LoggedRounds, got {type(rounds).__name__}")
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) != len(rounds):
            raise ValueError(f"features must have shape (n_rounds={len(rounds)}, n_features), "
                             f"got {features.shape}")
        if not np.all(np.isfinite(features)):
            raise ValueError("features must be finite")
        return features

    def _design(self, features: np.ndarray, action: np.ndarray, n_actions: int) -> np.ndarray:
        one_hot = (action[:, None] == np.arange(n_actions)).astype(np.float64)
        parts = [features, one_hot]
        if self.interactions:
            parts.append((features[:, :, None] * one_hot[:, None, :]).reshape(len(features), -1))
        return np.hstack(parts)

    def _fit(self, features: np.ndarray, action: np.ndarray, reward: np.ndarray,
             n_actions: int) -> Any:
        model = Ridge(alpha=1.0) if self.model is None else clone(self.model)
        target = reward
        if is_classifier(model):
            values = np.unique(reward)
            if not np.all(np.isin(values, [0.0, 1.0])):
                raise ValueError(f"a classifier reward model needs 0/1 rewards, got values "
                                 f"{values[:5].tolist()}")
            target = reward.astype(int)
        return model.fit(self._design(features, action, n_actions), target)

    @staticmethod
    def _predict(model: Any, design: np.ndarray) -> np.ndarray:
        if is_classifier(model):
            classes = list(model.classes_)
            if 1 not in classes:
                return np.zeros(len(design))
            return model.predict_proba(design)[:, classes.index(1)]
        return model.predict(design)
