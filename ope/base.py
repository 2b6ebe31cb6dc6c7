r"""The machinery every off-policy estimator shares: terms, intervals, diagnostics.

Each estimator (:mod:`ope.estimators`, :mod:`ope.slate`) maps round :math:`i`
to a small vector of terms :math:`t_i`
(:meth:`OffPolicyEstimator._round_rewards`) and the estimate to a smooth
function :math:`g(\bar t)` of their mean: :math:`g` is the identity for IPS,
DR and their variants, a ratio for SNIPS, SNDR and Replay. This gives

* the point estimate :math:`g(\bar t)` on all rounds (never a bootstrap mean);
* intervals (``ci_method``):

  - ``"clt"`` (default for every estimator): Gaussian interval
    :math:`g(\bar t) \pm z_{1-\alpha/2} \sqrt{\nabla g^\top \hat\Sigma \nabla g / n}`,
    the delta method for ratios; computed from mergeable moments, so it
    streams;
  - ``"bernstein"``: empirical Bernstein bound (Maurer and Pontil, 2009) for
    mean-type estimators, with the observed range of the terms as plug-in
    bound; wider, but valid in finite samples when that range is the true one;
  - ``"bootstrap"``: percentile bootstrap of the rounds (vectorized; needs all
    rounds in memory, so it does not stream);

* diagnostics on the importance weights (:class:`WeightDiagnostics`).

Streaming: ``statistics(rounds, target)`` on each chunk, ``a.merge(b)``, then
``estimate_from_statistics``; :meth:`OffPolicyEstimator.estimate_chunks` does
all three.

References
----------
A. Maurer and M. Pontil. "Empirical Bernstein Bounds and Sample Variance
Penalization." COLT, 2009.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import ClassVar

import numpy as np

from ope._statistics import RoundStatistics, WeightStatistics
from ope.rounds import LoggedRounds, TargetRounds
from ope.validation import check_confidence_level, check_integer_at_least

__all__ = [
    "CI_METHODS",
    "Estimate",
    "OffPolicyEstimator",
    "WeightDiagnostics",
    "bootstrap_means",
    "check_streamable",
]

CI_METHODS = ("clt", "bernstein", "bootstrap")
_BLOCK = 1 << 16
WEIGHT_QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class WeightDiagnostics:
    """How much the data support the target policy.

    Attributes
    ----------
    effective_sample_size : float
        Kish's :math:`(\\sum w_i)^2 / \\sum w_i^2`; compare with ``n_rounds``.
    max_weight, mean_weight : float
        Largest and mean importance weight (the mean should be near 1).
    weight_quantiles : dict of float to float
        Median, 90 % and 99 % quantiles of the weights (to one 2.3 % bin).
    unsupported_share : float or None
        Share of rounds where the target puts mass on actions the logging
        policy never explores there; ``None`` when the logging distribution
        was not given.
    unsupported_mass : float or None
        Mean of that mass over the rounds.
    """

    effective_sample_size: float
    max_weight: float
    mean_weight: float
    weight_quantiles: dict[float, float]
    unsupported_share: float | None
    unsupported_mass: float | None

    @classmethod
    def from_statistics(cls, stats: WeightStatistics) -> WeightDiagnostics:
        known = stats.n_support_known == stats.n and stats.n > 0
        return cls(
            effective_sample_size=stats.effective_sample_size,
            max_weight=stats.max_weight, mean_weight=stats.sum_weight / stats.n,
            weight_quantiles={q: stats.quantile(q) for q in WEIGHT_QUANTILES},
            unsupported_share=stats.n_unsupported / stats.n if known else None,
            unsupported_mass=stats.sum_unsupported_mass / stats.n if known else None)


@dataclass(frozen=True)
class Estimate:
    """One estimator's answer for one target policy.

    Attributes
    ----------
    estimator : str
        Short name (``"ips"``, ``"snips"``, ...).
    value : float
        Point estimate on all rounds.
    ci : tuple of float
        ``(low, high)`` interval at ``confidence_level``.
    ci_method : str
        ``"clt"``, ``"bernstein"`` or ``"bootstrap"``.
    confidence_level : float
    std_error : float
        CLT / delta-method standard error (reported whatever the interval kind).
    n_rounds : int
    diagnostics : WeightDiagnostics
    extra : dict of str to float
        Estimator-specific figures (Replay's acceptance rate, ...).
    """

    estimator: str
    value: float
    ci: tuple[float, float]
    ci_method: str
    confidence_level: float
    std_error: float
    n_rounds: int
    diagnostics: WeightDiagnostics
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready flat dict: ``{"value", "ci", "ess", ...}``."""
        d = self.diagnostics
        out: dict[str, object] = {
            "value": _json_float(self.value),
            "ci": [_json_float(self.ci[0]), _json_float(self.ci[1])],
            "ci_method": self.ci_method, "confidence_level": self.confidence_level,
            "std_error": _json_float(self.std_error), "n_rounds": self.n_rounds,
            "ess": d.effective_sample_size, "max_weight": d.max_weight,
            "mean_weight": d.mean_weight,
            "weight_quantiles": {f"{q:g}": v for q, v in d.weight_quantiles.items()},
            "unsupported_share": d.unsupported_share,
            "unsupported_mass": d.unsupported_mass,
        }
        out.update({key: _json_float(value) for key, value in self.extra.items()})
        return out

    def to_row(self) -> dict[str, object]:
        """A flat row for a pandas DataFrame."""
        d = self.diagnostics
        row: dict[str, object] = {
            "estimator": self.estimator, "value": self.value, "ci_low": self.ci[0],
            "ci_high": self.ci[1], "ci_method": self.ci_method, "std_error": self.std_error,
            "n_rounds": self.n_rounds, "ess": d.effective_sample_size,
            "max_weight": d.max_weight, "mean_weight": d.mean_weight,
            "unsupported_share": d.unsupported_share,
        }
        row.update({f"weight_q{q:g}": v for q, v in d.weight_quantiles.items()})
        row.update(self.extra)
        return row


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _as_target(rounds: LoggedRounds, target: TargetRounds | np.ndarray) -> TargetRounds:
    if not isinstance(rounds, LoggedRounds):
        raise TypeError(f"rounds must be a LoggedRounds, got {type(rounds).__name__}")
    if not isinstance(target, TargetRounds):
        target = TargetRounds(probability=target)
    if len(target) != len(rounds):
        raise ValueError(f"target must have length n_rounds={len(rounds)}, got {len(target)}")
    return target


@dataclass(frozen=True, kw_only=True)
class OffPolicyEstimator:
    """Base of every estimator; see the module docstring for the shared machinery.

    Parameters
    ----------
    confidence_level : float, default=0.95
        Coverage of the interval.
    ci_method : {"clt", "bernstein", "bootstrap"}, default="clt"
        Interval kind (module docstring).
    n_bootstrap : int, default=1000
        Resamples when ``ci_method="bootstrap"``.
    seed : int, default=0
        Seeds the bootstrap (and Replay's rejection sampling).
    """

    confidence_level: float = 0.95
    ci_method: str = "clt"
    n_bootstrap: int = 1000
    seed: int = 0

    name: ClassVar[str] = ""
    #: Whether the estimate needs a reward model's predictions (``model_reward``).
    needs_model: ClassVar[bool] = False
    _is_ratio: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_confidence_level(self.confidence_level)
        if self.ci_method not in CI_METHODS:
            raise ValueError(f"ci_method must be one of {CI_METHODS}, got {self.ci_method!r}")
        if self.ci_method == "bernstein" and self._is_ratio:
            raise ValueError(f"ci_method='bernstein' is for mean-type estimators; "
                             f"{type(self).__name__} is a ratio, use 'clt' or 'bootstrap'")
        check_integer_at_least(self.n_bootstrap, 10, name="n_bootstrap")
        check_integer_at_least(self.seed, 0, name="seed")

    # -- the estimator-specific part --------------------------------------

    def _round_rewards(self, rounds: LoggedRounds, target: TargetRounds) -> np.ndarray:
        """Per-round terms, shape (n_rounds, n_terms)."""
        raise NotImplementedError

    def _combine(self, mean: np.ndarray) -> float:
        """The estimate as a function of the mean terms."""
        return float(mean[0])

    def _gradient(self, mean: np.ndarray) -> np.ndarray:
        return np.array([1.0])

    def _extra(self, stats: RoundStatistics) -> dict[str, float]:
        return {}

    # -- shared public API --------------------------------------------------

    def statistics(self, rounds: LoggedRounds,
                   target: TargetRounds | np.ndarray) -> RoundStatistics:
        """Mergeable statistics of one chunk (see :class:`RoundStatistics`).

        Parameters
        ----------
        rounds : LoggedRounds
        target : TargetRounds or ndarray of shape (n_rounds,)
            The target policy on these rounds; an array means
            :math:`\\pi_e(a_i \\mid x_i)` only.
        """
        target = self._check_target(rounds, target)
        return self._blocked_statistics(rounds=rounds, target=target)

    def estimate(self, rounds: LoggedRounds, target: TargetRounds | np.ndarray) -> Estimate:
        """Point value, interval and diagnostics on rounds held in memory.

        Beyond its inputs, this needs O(min(n_rounds, 65536)) memory, except
        for ``ci_method="bootstrap"``, which holds every round's terms.
        """
        target = self._check_target(rounds, target)
        if self.ci_method != "bootstrap":
            return self._finish(stats=self._blocked_statistics(rounds=rounds, target=target),
                                interval=None)
        stats = self._blocked_statistics(rounds=rounds, target=target)
        terms = self._round_rewards(rounds, target)
        return self._finish(stats=stats, interval=self._bootstrap_interval(terms=terms))

    def estimate_from_statistics(self, stats: RoundStatistics) -> Estimate:
        """Finish a streamed evaluation (``ci_method`` must be "clt" or "bernstein")."""
        if not isinstance(stats, RoundStatistics):
            raise TypeError(f"stats must be RoundStatistics, got {type(stats).__name__}")
        if self.ci_method == "bootstrap":
            raise ValueError("ci_method='bootstrap' needs every round in memory; "
                             "use 'clt' (or 'bernstein') to stream chunks")
        return self._finish(stats=stats, interval=None)

    def estimate_chunks(
        self, chunks: Iterable[tuple[LoggedRounds, TargetRounds | np.ndarray]]) -> Estimate:
        """Evaluate a log chunk by chunk: memory is that of one chunk."""
        total = None
        for rounds, target in chunks:
            stats = self.statistics(rounds, target)
            total = stats if total is None else total.merge(stats)
        if total is None:
            raise ValueError("chunks must yield at least one (rounds, target) pair, got none")
        return self.estimate_from_statistics(total)

    def estimate_policy_value(self, rounds: LoggedRounds,
                              target: TargetRounds | np.ndarray) -> float:
        """The point estimate: :math:`g` of the mean of the round terms."""
        target = self._check_target(rounds, target)
        return self._combine(self._blocked_statistics(rounds=rounds, target=target).mean)

    def estimate_interval(self, rounds: LoggedRounds,
                          target: TargetRounds | np.ndarray) -> tuple[float, float]:
        """The ``confidence_level`` interval of kind ``ci_method``."""
        return self.estimate(rounds, target).ci

    # -- internals ------------------------------------------------------------

    def _check_target(self, rounds: LoggedRounds,
                      target: TargetRounds | np.ndarray) -> TargetRounds:
        target = _as_target(rounds, target)
        if self.needs_model and (target.model_reward is None or target.model_value is None):
            raise ValueError(
                f"{type(self).__name__} needs a reward model: target must be a TargetRounds "
                f"with model_reward and model_value (see CrossFitRewardModel or "
                f"TargetRounds.from_dense), got model_reward="
                f"{'set' if target.model_reward is not None else 'None'}, model_value="
                f"{'set' if target.model_value is not None else 'None'}")
        return target

    def _blocked_statistics(self, *, rounds: LoggedRounds,
                            target: TargetRounds) -> RoundStatistics:
        # Blocks of 65536 rounds keep temporaries small and in cache; merging
        # them is exact (Chan et al.), so blocking does not change the result.
        total = None
        for start in range(0, len(rounds), _BLOCK):
            stop = min(start + _BLOCK, len(rounds))
            stats = self._statistics(rounds=rounds.block(start, stop),
                                     target=target.block(start, stop))
            total = stats if total is None else total.merge(stats)
        return total

    def _statistics(self, *, rounds: LoggedRounds, target: TargetRounds,
                    terms: np.ndarray | None = None) -> RoundStatistics:
        if terms is None:
            terms = self._round_rewards(rounds, target)
        weight = target.probability / rounds.probability
        return RoundStatistics.from_terms(terms, weight, target.unsupported_mass,
                                          extra=self._chunk_extra(rounds, target))

    def _chunk_extra(self, rounds: LoggedRounds, target: TargetRounds) -> dict[str, float]:
        return {}

    def _finish(self, *, stats: RoundStatistics,
                interval: tuple[float, float] | None) -> Estimate:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = self._combine(stats.mean)
            gradient = self._gradient(stats.mean)
            variance = float(gradient @ stats.covariance @ gradient) / stats.n
        std_error = math.sqrt(max(variance, 0.0)) if math.isfinite(variance) else math.nan
        if interval is None:
            if self.ci_method == "bernstein":
                interval = _bernstein_interval(stats, value, self.confidence_level)
            else:
                z = NormalDist().inv_cdf(0.5 + self.confidence_level / 2)
                interval = (value - z * std_error, value + z * std_error)
        return Estimate(estimator=self.name, value=value,
                        ci=(float(interval[0]), float(interval[1])),
                        ci_method=self.ci_method, confidence_level=self.confidence_level,
                        std_error=std_error, n_rounds=stats.n,
                        diagnostics=WeightDiagnostics.from_statistics(stats.weights),
                        extra=self._extra(stats))

    def _bootstrap_interval(self, *, terms: np.ndarray) -> tuple[float, float]:
        means = bootstrap_means(terms, n_bootstrap=self.n_bootstrap, seed=self.seed)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.array([self._combine(m) for m in means]) if self._is_ratio \
                else means[:, 0]
        alpha = 1 - self.confidence_level
        low, high = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
        return float(low), float(high)


def bootstrap_means(terms: np.ndarray, *, n_bootstrap: int, seed: int,
                    max_block: int = 1 << 22) -> np.ndarray:
    """Means of ``n_bootstrap`` resamples of the rows of ``terms``, vectorized.

    When the rows take few distinct values (fewer than n_rounds / 20: binary
    rewards and a handful of weights), the resample counts of each distinct row
    are drawn from one multinomial per resample, O(n_bootstrap x n_distinct);
    otherwise rows are gathered in blocks of at most ``max_block`` entries.

    Parameters
    ----------
    terms : ndarray of shape (n_rounds, n_terms)
    n_bootstrap : int
    seed : int

    Returns
    -------
    ndarray of shape (n_bootstrap, n_terms)
    """
    rng = np.random.default_rng(seed)
    n = len(terms)
    # A multinomial draw costs about 10x a gathered row per category, so the
    # shortcut pays when distinct rows are fewer than n / 20. Cheap test first.
    limit = min(4096, n // 20)
    if len(np.unique(terms[:20_000], axis=0)) <= limit:
        unique, counts = np.unique(terms, axis=0, return_counts=True)
        if len(unique) <= limit:
            draws = rng.multinomial(n, counts / n, size=n_bootstrap)
            return np.einsum("bu,um->bm", draws, unique) / n  # no threaded BLAS
    columns = np.ascontiguousarray(terms.T)
    index_type = np.int32 if n < 2**31 else np.int64
    per_block = max(1, max_block // n)
    means = np.empty((n_bootstrap, terms.shape[1]))
    for start in range(0, n_bootstrap, per_block):
        stop = min(start + per_block, n_bootstrap)
        index = rng.integers(n, size=(stop - start, n), dtype=index_type)
        for j, column in enumerate(columns):
            means[start:stop, j] = column[index].mean(axis=1)
    return means


def _bernstein_interval(stats: RoundStatistics, value: float,
                        level: float) -> tuple[float, float]:
    # Maurer & Pontil (2009), Thm 4, applied to each side at delta/2:
    # |mean - mu| <= sqrt(2 V ln(4/delta) / n) + 7 R ln(4/delta) / (3 (n - 1)).
    n = stats.n
    if n < 2:
        return (-math.inf, math.inf)
    log_term = math.log(4 / (1 - level))
    variance = float(stats.covariance[0, 0])
    spread = float(stats.maximum[0] - stats.minimum[0])
    half = math.sqrt(2 * variance * log_term / n) + 7 * spread * log_term / (3 * (n - 1))
    return (value - half, value + half)


def check_streamable(estimators: Iterable[OffPolicyEstimator], *, purpose: str) -> None:
    """Refuse, before anything is read, an estimator whose interval needs every round
    in memory (``ci_method='bootstrap'``); ``purpose`` ends the message."""
    for estimator in estimators:
        if estimator.ci_method == "bootstrap":
            raise ValueError(f"{estimator.name}: ci_method='bootstrap' needs every round in "
                             f"memory; use 'clt' (or 'bernstein') to {purpose}")
