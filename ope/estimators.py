r"""Off-policy estimators: what a target policy would earn, from logs alone.

Notation used in every docstring: round :math:`i = 1..n` has context
:math:`x_i`, logged action :math:`a_i`, reward :math:`r_i` and logging
propensity :math:`\pi_b(a_i \mid x_i)`; the target policy gives the logged
action probability :math:`\pi_e(a_i \mid x_i)`, so the importance weight is
:math:`w_i = \pi_e(a_i \mid x_i) / \pi_b(a_i \mid x_i)`. A reward model gives
:math:`\hat q_i = \hat q(x_i, a_i)` and
:math:`\hat v_i = \sum_a \pi_e(a \mid x_i)\, \hat q(x_i, a)` (see
:class:`~ope.rounds.TargetRounds`).

Importance sampling (:class:`IPS`, :class:`ClippedIPS`, :class:`SNIPS`,
:class:`Replay`) needs the propensities only; the direct method and the doubly
robust family (:class:`DM`, :class:`DR`, :class:`SNDR`, :class:`SwitchDR`,
:class:`DRos`) need a reward model's predictions too. Intervals, streaming and
diagnostics are :class:`~ope.base.OffPolicyEstimator`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from ope._statistics import RoundStatistics
from ope.base import Estimate, OffPolicyEstimator
from ope.rounds import LoggedRounds, TargetRounds
from ope.validation import check_non_negative, check_positive

__all__ = [
    "DM",
    "DR",
    "DRos",
    "ClippedIPS",
    "IPS",
    "Replay",
    "SNDR",
    "SNIPS",
    "SwitchDR",
    "all_estimators",
]


def _weight(rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
    return target.probability / rounds.probability


def _residual(rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
    """:math:`r_i - \\hat q_i`."""
    return rounds.reward - np.asarray(target.model_reward)


def _corrected_model_value(rounds: LoggedRounds, target: TargetRounds,
                           weight: np.ndarray) -> np.ndarray:
    """The doubly robust terms :math:`\\hat v_i + \\tilde w_i (r_i - \\hat q_i)` for the
    weights :math:`\\tilde w_i` a variant keeps, shape (n_rounds, 1)."""
    return (np.asarray(target.model_value) + weight * _residual(rounds, target))[:, None]


@dataclass(frozen=True, kw_only=True)
class IPS(OffPolicyEstimator):
    r"""Inverse propensity scoring.

    .. math:: \hat V_{IPS} = \frac1n \sum_{i=1}^n w_i r_i

    Unbiased when the logging policy explores every action the target takes.
    Default interval: CLT.

    References
    ----------
    D. G. Horvitz and D. J. Thompson. "A Generalization of Sampling Without
    Replacement from a Finite Universe." JASA, 1952.
    """

    name: ClassVar[str] = "ips"

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        return (_weight(rounds, target) * rounds.reward)[:, None]


@dataclass(frozen=True, kw_only=True)
class ClippedIPS(OffPolicyEstimator):
    r"""IPS with weights capped at ``max_weight`` (:math:`\lambda`).

    .. math:: \hat V = \frac1n \sum_i \min(\lambda, w_i)\, r_i

    Parameters
    ----------
    max_weight : float
        Required (no default, so it never silently equals IPS); > 0.

    Default interval: CLT.

    References
    ----------
    L. Bottou et al. "Counterfactual Reasoning and Learning Systems." JMLR, 2013.
    """

    max_weight: float
    name: ClassVar[str] = "clipped_ips"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self.max_weight, name="max_weight")

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        return (np.minimum(_weight(rounds, target), self.max_weight) * rounds.reward)[:, None]


@dataclass(frozen=True, kw_only=True)
class SNIPS(OffPolicyEstimator):
    r"""Self-normalized IPS.

    .. math:: \hat V_{SNIPS} = \frac{\sum_i w_i r_i}{\sum_i w_i}

    Biased by O(1/n) but with bounded values and often far smaller variance.
    Terms :math:`t_i = (w_i r_i, w_i)`; default interval: delta-method CLT.
    ``nan`` when every weight is 0.

    References
    ----------
    A. Swaminathan and T. Joachims. "The Self-Normalized Estimator for
    Counterfactual Learning." NeurIPS, 2015.
    """

    name: ClassVar[str] = "snips"
    _is_ratio: ClassVar[bool] = True

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        weight = _weight(rounds, target)
        return np.column_stack([weight * rounds.reward, weight])

    def _combine(self, mean: np.ndarray) -> float:
        return float(mean[0] / mean[1]) if mean[1] > 0 else math.nan

    def _gradient(self, mean: np.ndarray) -> np.ndarray:
        return np.array([1 / mean[1], -mean[0] / mean[1] ** 2])


@dataclass(frozen=True, kw_only=True)
class DM(OffPolicyEstimator):
    r"""Direct method: the reward model's value of the target.

    .. math:: \hat V_{DM} = \frac1n \sum_i \hat v_i,\quad
              \hat v_i = \sum_a \pi_e(a \mid x_i)\, \hat q(x_i, a)

    Low variance, biased as far as the model is. The CLT interval (default)
    reflects only the spread over contexts, not the model's error.

    References
    ----------
    A. Beygelzimer and J. Langford. "The Offset Tree for Learning with Partial
    Labels." KDD, 2009.
    """

    name: ClassVar[str] = "dm"
    needs_model: ClassVar[bool] = True

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        return np.asarray(target.model_value)[:, None]


@dataclass(frozen=True, kw_only=True)
class DR(OffPolicyEstimator):
    r"""Doubly robust: the direct method corrected by importance-weighted residuals.

    .. math:: \hat V_{DR} = \frac1n \sum_i \left[\hat v_i + w_i (r_i - \hat q_i)\right]

    Unbiased when the propensities are right, whatever the model. Default
    interval: CLT.

    References
    ----------
    M. Dudík, J. Langford and L. Li. "Doubly Robust Policy Evaluation and
    Learning." ICML, 2011.
    """

    name: ClassVar[str] = "dr"
    needs_model: ClassVar[bool] = True

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        return _corrected_model_value(rounds, target, _weight(rounds, target))


@dataclass(frozen=True, kw_only=True)
class SNDR(OffPolicyEstimator):
    r"""Self-normalized doubly robust.

    .. math:: \hat V_{SNDR} = \frac1n \sum_i \hat v_i
              + \frac{\sum_i w_i (r_i - \hat q_i)}{\sum_i w_i}

    Terms :math:`t_i = (\hat v_i, w_i (r_i - \hat q_i), w_i)`; default
    interval: delta-method CLT. When every weight is 0 the correction is
    undefined and taken as 0, leaving the DM value.

    References
    ----------
    N. Kallus and M. Uehara. "Intrinsically Efficient, Stable, and Bounded
    Off-Policy Evaluation for Reinforcement Learning." NeurIPS, 2019.
    """

    name: ClassVar[str] = "sndr"
    needs_model: ClassVar[bool] = True
    _is_ratio: ClassVar[bool] = True

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        weight = _weight(rounds, target)
        return np.column_stack([np.asarray(target.model_value),
                                weight * _residual(rounds, target), weight])

    def _combine(self, mean: np.ndarray) -> float:
        return float(mean[0] + (mean[1] / mean[2] if mean[2] > 0 else 0.0))

    def _gradient(self, mean: np.ndarray) -> np.ndarray:
        return np.array([1.0, 1 / mean[2], -mean[1] / mean[2] ** 2])


@dataclass(frozen=True, kw_only=True)
class SwitchDR(OffPolicyEstimator):
    r"""Switch doubly robust: DR where weights are small, the model elsewhere.

    .. math:: \hat V = \frac1n \sum_i \left[\hat v_i
              + \mathbb 1\{w_i \le \tau\}\, w_i (r_i - \hat q_i)\right]

    (the form of Su et al. 2020 and Open Bandit Pipeline; the switch acts on
    the logged action's weight).

    Parameters
    ----------
    tau : float
        Required switch threshold :math:`\tau \ge 0` (0 is DM, ``inf`` is DR,
        so it has no default).

    Default interval: CLT.

    References
    ----------
    Y.-X. Wang, A. Agarwal and M. Dudík. "Optimal and Adaptive Off-policy
    Evaluation in Contextual Bandits." ICML, 2017.
    """

    tau: float
    name: ClassVar[str] = "switch_dr"
    needs_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_non_negative(self.tau, name="tau")

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        weight = _weight(rounds, target)
        return _corrected_model_value(rounds, target, (weight <= self.tau) * weight)


@dataclass(frozen=True, kw_only=True)
class DRos(OffPolicyEstimator):
    r"""Doubly robust with optimistic shrinkage.

    .. math:: \hat V = \frac1n \sum_i \left[\hat v_i
              + \hat w_i (r_i - \hat q_i)\right],\quad
              \hat w_i = \frac{\lambda w_i}{w_i^2 + \lambda}

    Parameters
    ----------
    shrinkage : float
        Required :math:`\lambda > 0` (``inf`` recovers DR, 0 the DM, so no
        default).

    Default interval: CLT.

    References
    ----------
    Y. Su, M. Dimakopoulou, A. Krishnamurthy and M. Dudík. "Doubly Robust
    Off-policy Evaluation with Shrinkage." ICML, 2020.
    """

    shrinkage: float
    name: ClassVar[str] = "dros"
    needs_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self.shrinkage, name="shrinkage")

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        weight = _weight(rounds, target)
        if math.isinf(self.shrinkage):
            shrunk = weight
        else:
            shrunk = self.shrinkage * weight / (weight ** 2 + self.shrinkage)
        return _corrected_model_value(rounds, target, shrunk)


@dataclass(frozen=True, kw_only=True)
class Replay(OffPolicyEstimator):
    r"""Replay with rejection sampling: keep a round with probability
    :math:`w_i / M`, average the kept rewards.

    .. math:: \hat V = \frac{\sum_i u_i r_i}{\sum_i u_i},\quad
              u_i = \mathbb 1\{U_i < w_i / M\},\ U_i \sim \mathrm{Uniform}(0, 1)

    With uniform logging and a deterministic target, :math:`M = K` keeps
    exactly the rounds where the logged action is the target's: Li et al.'s
    replay. Rejection sampling (Dudík et al. 2012) extends it to any logging
    policy; rounds with :math:`w_i > M` are kept surely and counted as
    ``n_capped`` (a bias warning). :math:`U_i` comes from a counter-based
    stream keyed by ``seed`` at the round's position in the whole log
    (``LoggedRounds.first_index``), so chunked and in-memory runs keep the same
    rounds. Terms :math:`t_i = (u_i r_i, u_i)`; default interval: delta-method CLT.

    Parameters
    ----------
    max_weight : float, default=None
        :math:`M`. ``None`` uses the largest weight of the rounds passed to
        :meth:`estimate`; streaming needs an explicit value.

    References
    ----------
    L. Li, W. Chu, J. Langford and X. Wang. "Unbiased Offline Evaluation of
    Contextual-bandit-based News Article Recommendation Algorithms." WSDM, 2011.
    M. Dudík, D. Erhan, J. Langford and L. Li. "Sample-efficient Nonstationary
    Policy Evaluation for Contextual Bandits." UAI, 2012.
    """

    max_weight: float | None = None
    name: ClassVar[str] = "replay"
    _is_ratio: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_weight is not None:
            check_positive(self.max_weight, name="max_weight")

    def statistics(self, rounds: LoggedRounds,
                   target: TargetRounds | np.ndarray) -> RoundStatistics:
        if self.max_weight is None:
            raise ValueError("Replay(max_weight=None) cannot stream: the bound M must be the "
                             "same for every chunk; pass max_weight (e.g. max pi_e/pi_b)")
        return super().statistics(rounds, target)

    def estimate(self, rounds: LoggedRounds, target: TargetRounds | np.ndarray) -> Estimate:
        """As the base method; ``max_weight=None`` resolves M over all ``rounds`` first."""
        return OffPolicyEstimator.estimate(self._resolved(rounds, target), rounds, target)

    def estimate_policy_value(self, rounds: LoggedRounds,
                              target: TargetRounds | np.ndarray) -> float:
        """As the base method; ``max_weight=None`` resolves M over all ``rounds`` first."""
        return OffPolicyEstimator.estimate_policy_value(self._resolved(rounds, target),
                                                        rounds, target)

    def _resolved(self, rounds: LoggedRounds, target: TargetRounds | np.ndarray) -> Replay:
        if self.max_weight is not None:
            return self
        return replace(self, max_weight=self._bound(rounds, self._check_target(rounds, target)))

    def _bound(self, rounds: LoggedRounds, target: TargetRounds) -> float:
        if self.max_weight is not None:
            return float(self.max_weight)
        bound = float(_weight(rounds, target).max())
        return bound if bound > 0 else 1.0

    def _accepted(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        uniform = _counter_uniforms(self.seed, rounds.first_index, len(rounds))
        return uniform < _weight(rounds, target) / self._bound(rounds, target)

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        accepted = self._accepted(rounds, target).astype(np.float64)
        return np.column_stack([accepted * rounds.reward, accepted])

    def _chunk_extra(self, rounds: LoggedRounds, target: TargetRounds) -> dict[str, float]:
        weight = _weight(rounds, target)
        return {"n_capped": float((weight > self._bound(rounds, target)).sum())}

    def _combine(self, mean: np.ndarray) -> float:
        return float(mean[0] / mean[1]) if mean[1] > 0 else math.nan

    def _gradient(self, mean: np.ndarray) -> np.ndarray:
        return np.array([1 / mean[1], -mean[0] / mean[1] ** 2])

    def _extra(self, stats: RoundStatistics) -> dict[str, float]:
        return {"acceptance_rate": float(stats.mean[1]),
                "accepted_rounds": float(round(stats.mean[1] * stats.n)),
                "n_capped": stats.extra.get("n_capped", 0.0),
                "rejection_bound": float(self.max_weight) if self.max_weight else math.nan}


def _counter_uniforms(seed: int, start: int, n: int) -> np.ndarray:
    """Uniforms number ``start .. start + n - 1`` of the stream keyed by ``seed``.

    Philox is counter-based: ``advance`` jumps to any position, and each counter
    step yields four 64-bit outputs, one per double.
    """
    bit_generator = np.random.Philox(key=seed)
    bit_generator.advance(start // 4)
    skip = start % 4
    return np.random.Generator(bit_generator).random(skip + n)[skip:]


def all_estimators() -> list[OffPolicyEstimator]:
    """One instance of each estimator with documented example settings."""
    return [Replay(), IPS(), ClippedIPS(max_weight=20.0), SNIPS(), DM(), DR(), SNDR(),
            SwitchDR(tau=20.0), DRos(shrinkage=20.0)]
