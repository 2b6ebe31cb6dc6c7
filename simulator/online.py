r"""Online simulation of a learning policy against the oracle: the regret curve.

At each step a (member, title) request is drawn, the learner gives a pmf over
the title's artwork variants, one is shown, the take is drawn and the learner
learns from it with the probability it used. Regret is computed *exactly* from
the world's take probabilities, not from the noisy takes:

.. math:: R_T = \sum_{t=1}^T \Big[\max_a p(m_t, v_t, a)
          - \sum_a \pi_t(a \mid x_t)\, p(m_t, v_t, a)\Big]

(expected regret of the pmf actually played, exploration included).

References
----------
L. Li, W. Chu, J. Langford and R. E. Schapire. "A Contextual-Bandit Approach
to Personalized News Article Recommendation." WWW, 2010.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ope.validation import check_integer_at_least
from simulator.world import ArtworkWorld

__all__ = ["OnlineResult", "run_online"]


@dataclass(frozen=True, eq=False)
class OnlineResult:
    """Per-step exact values of an online run.

    Attributes
    ----------
    expected_take : ndarray of shape (n_rounds,)
        :math:`\\sum_a \\pi_t(a)\\, p(a)` of the pmf played at each step.
    oracle_take : ndarray of shape (n_rounds,)
        Best variant's take probability at each step.
    uniform_take : ndarray of shape (n_rounds,)
        Uniform policy's take probability at each step.
    reward : ndarray of shape (n_rounds,)
        The takes drawn (what the learner saw).
    """

    expected_take: np.ndarray
    oracle_take: np.ndarray
    uniform_take: np.ndarray
    reward: np.ndarray

    @property
    def cumulative_regret(self) -> np.ndarray:
        """Regret against the oracle summed over steps, shape (n_rounds,)."""
        return np.cumsum(self.oracle_take - self.expected_take)

    @property
    def uniform_cumulative_regret(self) -> np.ndarray:
        """The same for a uniform policy on the same requests, for reference."""
        return np.cumsum(self.oracle_take - self.uniform_take)

    def to_frame(self, every: int = 100) -> pd.DataFrame:
        """The regret curve every ``every`` steps: step, cumulative regret, windowed take rates."""
        check_integer_at_least(every, 1, name="every")
        steps = np.arange(every, len(self.reward) + 1, every)
        windows = [slice(s - every, s) for s in steps]
        return pd.DataFrame({
            "step": steps,
            "cumulative_regret": self.cumulative_regret[steps - 1],
            "uniform_cumulative_regret": self.uniform_cumulative_regret[steps - 1],
            "take_rate": [self.expected_take[w].mean() for w in windows],
            "oracle_take_rate": [self.oracle_take[w].mean() for w in windows],
        })


def run_online(world: ArtworkWorld, learner: Any, *, n_rounds: int, seed: int,
               progress: Callable[[int], None] | None = None) -> OnlineResult:
    """Let a banditkit learner learn online in a world.

    Parameters
    ----------
    world : ArtworkWorld
    learner : banditkit.learner.Learner
        Anything with ``predict_one(context, actions) -> pmf`` and
        ``learn_one(context, actions, *, chosen, reward, probability)``.
    n_rounds : int
    seed : int
        Seeds requests, the choice from each pmf and the takes.
    progress : callable, default=None
        Called with 1 after each step (e.g. ``tqdm.update``).

    Returns
    -------
    OnlineResult
    """
    check_integer_at_least(n_rounds, 1, name="n_rounds")
    rng = np.random.default_rng(seed)
    requests = world.sample_requests(n_rounds, seed=int(rng.integers(2**32)))
    expected = np.empty(n_rounds)
    reward = np.empty(n_rounds)
    take = world.take_probability[requests[:, 0], requests[:, 1]]  # (n_rounds, n_variants)
    for step, (member, title) in enumerate(requests):
        context = world.context(int(member))
        actions = world.action_features(int(title))
        pmf = np.asarray(learner.predict_one(context, actions), dtype=np.float64)
        chosen = int(rng.choice(len(pmf), p=pmf / pmf.sum()))
        reward[step] = float(rng.random() < take[step, chosen])
        learner.learn_one(context, actions, chosen=chosen, reward=reward[step],
                          probability=float(pmf[chosen]))
        expected[step] = float(pmf @ take[step])
        if progress is not None:
            progress(1)
    return OnlineResult(expected_take=expected, oracle_take=take.max(axis=1),
                        uniform_take=take.mean(axis=1), reward=reward)
