r"""Supervised-to-bandit conversion: a second ground truth from a labelled data set.

Each example :math:`(x_i, y_i)` of a K-class data set becomes one bandit round
with K actions: the logging policy draws an action :math:`a_i \sim \pi_b(\cdot
\mid x_i)`, and the reward is :math:`r_i = \mathbb 1\{a_i = y_i\}`, all other
rewards staying hidden. Any target policy's value on these rounds is then known
exactly: :math:`V(\pi_e) = \frac1n \sum_i \pi_e(y_i \mid x_i)`.

References
----------
M. Dudík, J. Langford and L. Li. "Doubly Robust Policy Evaluation and
Learning." ICML, 2011 (Section 5.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ope.rounds import LoggedRounds, TargetRounds
from ope.validation import check_integer_at_least, check_non_negative

__all__ = ["SupervisedBandit", "digits_bandit", "supervised_to_bandit"]


@dataclass(frozen=True, eq=False)
class SupervisedBandit:
    """A bandit log made from labelled data, with exact policy values.

    Attributes
    ----------
    features : ndarray of shape (n_rounds, n_features)
    labels : ndarray of shape (n_rounds,), dtype int
        Class of each example, in ``[0, n_classes)``.
    logging_dist : ndarray of shape (n_rounds, n_classes)
    rounds : LoggedRounds
    """

    features: np.ndarray
    labels: np.ndarray
    logging_dist: np.ndarray
    rounds: LoggedRounds

    def true_value(self, action_dist: np.ndarray) -> float:
        r"""Exact :math:`\frac1n \sum_i \pi_e(y_i \mid x_i)` of a target distribution."""
        dist = self._check_dist(action_dist)
        return float(dist[np.arange(len(self.labels)), self.labels].mean())

    def target(self, action_dist: np.ndarray, *,
               model_predictions: np.ndarray | None = None) -> TargetRounds:
        """The target on the logged rounds, with support from ``logging_dist``."""
        return TargetRounds.from_dense(self.rounds, self._check_dist(action_dist),
                                       model_predictions=model_predictions,
                                       logging_dist=self.logging_dist)

    def _check_dist(self, action_dist: np.ndarray) -> np.ndarray:
        dist = np.asarray(action_dist, dtype=np.float64)
        if dist.shape != self.logging_dist.shape:
            raise ValueError(f"action_dist must have shape {self.logging_dist.shape}, "
                             f"got {dist.shape}")
        return dist


def supervised_to_bandit(features: np.ndarray, labels: np.ndarray, *,
                         logging_dist: np.ndarray, seed: int) -> SupervisedBandit:
    """Log one bandit round per labelled example.

    Parameters
    ----------
    features : ndarray of shape (n_rounds, n_features)
    labels : ndarray of shape (n_rounds,), dtype int
        Classes in ``[0, n_classes)``.
    logging_dist : ndarray of shape (n_rounds, n_classes)
        Logging policy; rows sum to 1.
    seed : int
        Seeds the logged actions.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    logging_dist = np.asarray(logging_dist, dtype=np.float64)
    n = len(labels)
    if features.ndim != 2 or len(features) != n:
        raise ValueError(f"features must have shape (n_rounds={n}, n_features), "
                         f"got {features.shape}")
    if logging_dist.ndim != 2 or len(logging_dist) != n:
        raise ValueError(f"logging_dist must have shape (n_rounds={n}, n_classes), "
                         f"got {logging_dist.shape}")
    n_classes = logging_dist.shape[1]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) \
            or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must be integers in [0, {n_classes}), got {labels[:5]}")
    if not np.allclose(logging_dist.sum(axis=1), 1.0, atol=1e-6) or (logging_dist < 0).any():
        raise ValueError("logging_dist rows must be probabilities summing to 1")
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(logging_dist, axis=1)
    action = np.minimum((rng.random(n)[:, None] * cumulative[:, -1:] >= cumulative).sum(axis=1),
                        n_classes - 1)
    rounds = LoggedRounds(reward=(action == labels).astype(np.float64), action=action,
                          probability=logging_dist[np.arange(n), action], n_actions=n_classes)
    return SupervisedBandit(features=features, labels=labels.astype(np.int64),
                            logging_dist=logging_dist, rounds=rounds)


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    logit = scores / temperature
    logit -= logit.max(axis=1, keepdims=True)
    exp = np.exp(logit)
    return exp / exp.sum(axis=1, keepdims=True)


def digits_bandit(*, seed: int, n_train: int = 300, temperature: float = 0.5,
                  epsilon: float = 0.1) -> tuple[SupervisedBandit, dict[str, np.ndarray]]:
    """scikit-learn's bundled digits as a 10-armed bandit with known truth.

    The first ``n_train`` shuffled examples train two classifiers: the logging
    policy (logistic regression on pixel rows 0-3 only, softened by
    ``temperature`` and mixed with ``epsilon`` uniform exploration), and the
    target policies (a logistic regression on all pixels, greedy and softened).
    The remaining ~1500 examples are logged.

    Parameters
    ----------
    seed : int
        Seeds the shuffle and the logged actions.
    n_train : int, default=300
    temperature : float, default=0.5
        Softmax temperature of the logging policy's decision scores.
    epsilon : float, default=0.1
        Uniform exploration of the logging policy.

    Returns
    -------
    bandit : SupervisedBandit
    targets : dict of str to ndarray of shape (n_rounds, 10)
        ``"greedy"``, ``"softmax"``, ``"uniform"`` and ``"logging"``.
    """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    check_integer_at_least(n_train, 20, name="n_train")
    check_non_negative(epsilon, name="epsilon")
    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    x = data.data[order] / 16.0
    y = data.target[order]
    x_train, y_train, x_log, y_log = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    weak = LogisticRegression(max_iter=500).fit(x_train[:, :32], y_train)
    logging = (1 - epsilon) * _softmax(weak.decision_function(x_log[:, :32]), temperature) \
        + epsilon / 10
    strong = LogisticRegression(max_iter=500).fit(x_train, y_train)
    scores = strong.decision_function(x_log)
    greedy = (scores.argmax(axis=1)[:, None] == np.arange(10)).astype(np.float64)
    targets = {"greedy": greedy, "softmax": _softmax(scores, 1.0),
               "uniform": np.full((len(y_log), 10), 0.1), "logging": logging}
    bandit = supervised_to_bandit(x_log, y_log, logging_dist=logging, seed=seed + 1)
    return bandit, targets
