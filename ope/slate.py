r"""Slate estimators for row ordering: one logged choice and one reward per slot.

A homepage of :math:`L` slots (row positions) is filled slot by slot; the log
holds, for each round :math:`i` and slot :math:`l`, the reward :math:`r_{il}`
and the logging probability :math:`\mu_{il}` of the row shown there. A target
policy gives :math:`\pi_{il}` for the same row in the same slot. Per-slot
weights are :math:`w_{il} = \pi_{il} / \mu_{il}`.

What the probabilities mean depends on the estimator and is stated in each
docstring: *marginal* (the chance the row lands in slot :math:`l`) for
:class:`SlateIndependentIPS` and :class:`SlatePseudoInverse`, *conditional on
the slots above* (slot-by-slot choice, so their product is the probability of
the top of the page) for :class:`SlateRewardInteractionIPS` and
:class:`SlateStandardIPS`. When the logging policy fills slots independently
the two coincide.

Memory is O(n_rounds x n_slots), never x n_candidate_rows. All four reuse the
machinery of :class:`~ope.base.OffPolicyEstimator` (CLT intervals by
default, streaming statistics, diagnostics on a per-round weight each class
names).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from ope._statistics import RoundStatistics
from ope.base import OffPolicyEstimator
from ope.validation import check_finite, check_probability_vector

__all__ = [
    "SlateIndependentIPS",
    "SlatePseudoInverse",
    "SlateRewardInteractionIPS",
    "PageRounds",
    "SlateStandardIPS",
    "PageTarget",
]


def _check_matrix(values: object, *, name: str, shape: tuple[int, int] | None = None
                  ) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (n_rounds, n_slots), got {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    check_finite(array, name=name)
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class PageRounds:
    """Logged pages.

    Parameters
    ----------
    reward : ndarray of shape (n_rounds, n_slots)
        Reward observed in each slot. Pad shorter pages with reward 0 and
        probability 1 (a padded slot then has weight ``pi / 1``; give the
        target probability 1 there too).
    probability : ndarray of shape (n_rounds, n_slots)
        Logging probability of each slot's row, in (0, 1] (marginal or
        conditional: see the estimator).
    first_index : int, default=0
        Position of the first round in the whole log.
    """

    reward: np.ndarray
    probability: np.ndarray
    first_index: int = 0

    def __post_init__(self) -> None:
        reward = _check_matrix(self.reward, name="reward")
        if reward.shape[0] == 0 or reward.shape[1] == 0:
            raise ValueError(f"reward must hold at least one round and one slot, "
                             f"got shape {reward.shape}")
        probability = _check_matrix(self.probability, name="probability", shape=reward.shape)
        bad = (probability <= 0) | (probability > 1)
        if bad.any():
            row, slot = np.argwhere(bad)[0]
            value = float(probability[row, slot])
            raise ValueError(f"probability must be in (0, 1], got {value!r} "
                             f"at round {row}, slot {slot}")
        object.__setattr__(self, "reward", reward)
        object.__setattr__(self, "probability", probability)

    def __len__(self) -> int:
        return self.reward.shape[0]

    @property
    def n_slots(self) -> int:
        return self.reward.shape[1]

    def block(self, start: int, stop: int) -> PageRounds:
        view = object.__new__(PageRounds)
        object.__setattr__(view, "reward", self.reward[start:stop])
        object.__setattr__(view, "probability", self.probability[start:stop])
        object.__setattr__(view, "first_index", self.first_index + start)
        return view

    def take(self, index: slice) -> PageRounds:
        start = index.indices(len(self))[0]
        return PageRounds(reward=self.reward[index], probability=self.probability[index],
                           first_index=self.first_index + start)


@dataclass(frozen=True, eq=False)
class PageTarget:
    """The target policy's probability of each logged slot's row.

    Parameters
    ----------
    probability : ndarray of shape (n_rounds, n_slots)
        In [0, 1], with the same meaning (marginal or conditional) as the log's.
    """

    probability: np.ndarray

    def __post_init__(self) -> None:
        probability = _check_matrix(self.probability, name="target probability")
        check_probability_vector(probability, name="target probability")
        object.__setattr__(self, "probability", probability)

    def __len__(self) -> int:
        return self.probability.shape[0]

    def block(self, start: int, stop: int) -> PageTarget:
        view = object.__new__(PageTarget)
        object.__setattr__(view, "probability", self.probability[start:stop])
        return view

    def take(self, index: slice) -> PageTarget:
        return PageTarget(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass(frozen=True, kw_only=True)
class _SlateEstimator(OffPolicyEstimator):
    """Shared plumbing: slate inputs in, per-round terms out."""

    def _check_target(self, rounds: PageRounds,  # type: ignore[override]
                      target: PageTarget | np.ndarray) -> PageTarget:
        if not isinstance(rounds, PageRounds):
            raise TypeError(f"rounds must be a PageRounds, got {type(rounds).__name__}")
        if not isinstance(target, PageTarget):
            target = PageTarget(probability=target)
        if target.probability.shape != rounds.reward.shape:
            raise ValueError(f"target probability must have shape {rounds.reward.shape}, "
                             f"got {target.probability.shape}")
        return target

    def _statistics(self, *, rounds: PageRounds, target: PageTarget,  # type: ignore[override]
                    terms: np.ndarray | None = None) -> RoundStatistics:
        if terms is None:
            terms = self._round_rewards(rounds, target)
        weight = self._diagnostic_weight(target.probability / rounds.probability)
        return RoundStatistics.from_terms(terms, weight, None)

    def _diagnostic_weight(self, slot_weight: np.ndarray) -> np.ndarray:
        return slot_weight.mean(axis=1)


@dataclass(frozen=True, kw_only=True)
class SlateIndependentIPS(_SlateEstimator):
    r"""Independent (item-position) IPS: each slot weighted by its own marginal ratio.

    .. math:: \hat V = \frac1n \sum_i \sum_{l=1}^L w_{il}\, r_{il},\quad
              w_{il} = \frac{\pi_e(s_{il} \text{ in slot } l \mid x_i)}
                            {\pi_b(s_{il} \text{ in slot } l \mid x_i)}

    Probabilities are **marginal**. Unbiased when the reward in a slot depends
    only on the row in that slot. Diagnostics use the mean slot weight per round.

    References
    ----------
    S. Li, Y. Abbasi-Yadkori, B. Kveton, S. Muthukrishnan, V. Vinay and Z. Wen.
    "Offline Evaluation of Ranking Policies with Click Models." KDD, 2018.
    """

    name: ClassVar[str] = "slate_iips"

    def _round_rewards(self, rounds: PageRounds, target: PageTarget) -> np.ndarray:
        weight = target.probability / rounds.probability
        return (weight * rounds.reward).sum(axis=1)[:, None]


@dataclass(frozen=True, kw_only=True)
class SlateRewardInteractionIPS(_SlateEstimator):
    r"""Reward-interaction IPS: slot :math:`l` weighted by the slots at and above it.

    .. math:: \hat V = \frac1n \sum_i \sum_{l=1}^L
              \Big(\prod_{k \le l} w_{ik}\Big) r_{il}

    Probabilities are **conditional on the slots above** (their product is
    the probability of the top :math:`l` slots). Unbiased under the cascade
    assumption: a slot's reward depends on the rows at and above it only.
    Diagnostics use the mean cumulative weight per round.

    References
    ----------
    J. McInerney, B. Brost, P. Chandar, R. Mehrotra and B. Carterette.
    "Counterfactual Evaluation of Slate Recommendations with Sequential Reward
    Interactions." KDD, 2020.
    """

    name: ClassVar[str] = "slate_rips"

    def _round_rewards(self, rounds: PageRounds, target: PageTarget) -> np.ndarray:
        cumulative = np.cumprod(target.probability / rounds.probability, axis=1)
        return (cumulative * rounds.reward).sum(axis=1)[:, None]

    def _diagnostic_weight(self, slot_weight: np.ndarray) -> np.ndarray:
        return np.cumprod(slot_weight, axis=1).mean(axis=1)


@dataclass(frozen=True, kw_only=True)
class SlateStandardIPS(_SlateEstimator):
    r"""Standard IPS on whole slates: the page's weight times the page's reward.

    .. math:: \hat V = \frac1n \sum_i \Big(\prod_{l=1}^L w_{il}\Big) \sum_l r_{il}

    Probabilities are **conditional on the slots above**. Unbiased with no
    assumption on how rewards interact, at the price of the largest variance.
    Diagnostics use the page weight.

    References
    ----------
    D. G. Horvitz and D. J. Thompson. "A Generalization of Sampling Without
    Replacement from a Finite Universe." JASA, 1952.
    """

    name: ClassVar[str] = "slate_sips"

    def _round_rewards(self, rounds: PageRounds, target: PageTarget) -> np.ndarray:
        joint = np.prod(target.probability / rounds.probability, axis=1)
        return (joint * rounds.reward.sum(axis=1))[:, None]

    def _diagnostic_weight(self, slot_weight: np.ndarray) -> np.ndarray:
        return np.prod(slot_weight, axis=1)


@dataclass(frozen=True, kw_only=True)
class SlatePseudoInverse(_SlateEstimator):
    r"""Pseudo-inverse estimator for additive page rewards and slot-wise logging.

    .. math:: \hat V = \frac1n \sum_i \Big(\sum_{l=1}^L w_{il} - L + 1\Big)
              \sum_l r_{il}

    Probabilities are **marginal**, and the logging policy must fill slots
    independently of each other (a product distribution); the page reward is
    assumed to be a sum of (unobserved) per-slot contributions, so only the
    page total :math:`\sum_l r_{il}` is used. Its weight can be negative.
    Diagnostics use the mean slot weight per round.

    References
    ----------
    A. Swaminathan, A. Krishnamurthy, A. Agarwal, M. Dudík, J. Langford,
    D. Jose and I. Zitouni. "Off-policy Evaluation for Slate Recommendation."
    NeurIPS, 2017.
    """

    name: ClassVar[str] = "slate_pi"

    def _round_rewards(self, rounds: PageRounds, target: PageTarget) -> np.ndarray:
        weight = target.probability / rounds.probability
        pseudo = weight.sum(axis=1) - rounds.n_slots + 1
        return (pseudo * rounds.reward.sum(axis=1))[:, None]
