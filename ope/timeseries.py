"""A policy's value over a window and through time, in Personalizer's shapes.

:func:`summary` runs banditkit's estimators (SNIPS first, Personalizer's
estimator, then IPS) on the whole window; :func:`series` gives the same
estimator per time bucket of ``interval_minutes``, either per bucket
(``Rolling``) or over everything up to the bucket's end (``Expanding``). Both
merge the estimators' own per-chunk statistics (:mod:`ope.base`), so no new
formula appears here and the last Expanding point is the summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from banditkit.eventlog import iso_timestamp
from ope.base import Estimate, OffPolicyEstimator
from ope.estimators import IPS, SNIPS
from ope.rounds import LoggedRounds, TargetRounds

__all__ = [
    "INTERVALS_MINUTES",
    "WINDOWS",
    "PolicyResult",
    "TimePoint",
    "TimeSeries",
    "check_series_options",
    "default_estimators",
    "series",
    "summary",
]

#: The aggregation intervals Personalizer's evaluations offer.
INTERVALS_MINUTES = (5, 60, 360, 720, 1440)
#: ``Rolling``: each bucket alone; ``Expanding``: everything up to the bucket's end.
WINDOWS = ("Expanding", "Rolling")
POLICY_SOURCES = ("Online", "Baseline", "Random", "Custom", "OfflineExperimentation")


def default_estimators(confidence_level: float = 0.95) -> tuple[OffPolicyEstimator, ...]:
    """SNIPS (Personalizer's estimator, reported as the value) and IPS beside it."""
    return (SNIPS(confidence_level=confidence_level), IPS(confidence_level=confidence_level))


def summary(rounds: LoggedRounds, target: TargetRounds | np.ndarray,
            estimators: Sequence[OffPolicyEstimator]) -> dict[str, Estimate]:
    """Every estimator on the whole window, by estimator name (first = the reported value).

    Parameters
    ----------
    rounds : LoggedRounds
    target : TargetRounds or ndarray of shape (n_rounds,)
        The policy's probability of each logged action.
    estimators : sequence of OffPolicyEstimator
    """
    if not estimators:
        raise ValueError("estimators must hold at least one estimator, got none")
    return {estimator.name: estimator.estimate(rounds, target) for estimator in estimators}


@dataclass(frozen=True)
class TimePoint:
    """One point of a time series: the bucket's start and the estimate there."""

    time: float
    estimate: Estimate

    def to_dict(self) -> dict[str, object]:
        """Personalizer's ``Data``: ``{"timeStamp", "expectedReward", "confidenceInterval"}``."""
        return {"timeStamp": iso_timestamp(self.time)[:19] + "Z",
                "expectedReward": self.estimate.to_dict()["value"],
                "confidenceInterval": self.estimate.to_dict()["ci"]}


@dataclass(frozen=True)
class TimeSeries:
    """A policy's estimate per bucket of ``interval_minutes``, ``Expanding`` or ``Rolling``."""

    interval_minutes: int
    window: str
    points: tuple[TimePoint, ...]

    def to_dict(self) -> dict[str, object]:
        """Personalizer's ``TimeSeries``: ``{"data": [Data, ...]}``."""
        return {"data": [point.to_dict() for point in self.points]}


def check_series_options(interval_minutes: int, window: str) -> None:
    """Refuse an interval outside :data:`INTERVALS_MINUTES` or a window outside :data:`WINDOWS`."""
    if interval_minutes not in INTERVALS_MINUTES:
        raise ValueError(f"interval_minutes must be one of {INTERVALS_MINUTES}, "
                         f"got {interval_minutes!r}")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")


def series(rounds: LoggedRounds, target: TargetRounds | np.ndarray, timestamp: np.ndarray, *,
           estimator: OffPolicyEstimator, interval_minutes: int = 60,
           window: str = "Expanding") -> TimeSeries:
    """The estimate per time bucket, buckets aligned on UTC multiples of the interval.

    Parameters
    ----------
    rounds : LoggedRounds
    target : TargetRounds or ndarray of shape (n_rounds,)
    timestamp : ndarray of shape (n_rounds,)
        Decision time of each round, Unix seconds.
    estimator : OffPolicyEstimator
        Must stream (``ci_method`` "clt" or "bernstein").
    interval_minutes : int, default=60
        One of :data:`INTERVALS_MINUTES`.
    window : {"Expanding", "Rolling"}, default="Expanding"

    Returns
    -------
    TimeSeries
        One point per bucket holding rounds, stamped with the bucket's start.
    """
    check_series_options(interval_minutes, window)
    if not isinstance(target, TargetRounds):
        target = TargetRounds(probability=target)
    timestamp = np.asarray(timestamp, dtype=np.float64)
    if timestamp.shape != (len(rounds),):
        raise ValueError(f"timestamp must have shape ({len(rounds)},), got {timestamp.shape}")
    width = 60.0 * interval_minutes
    bucket = np.floor(timestamp / width).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(bucket[order]) != 0])
    stops = np.r_[starts[1:], len(order)]
    points = []
    total = None
    for first, stop in zip(starts, stops, strict=True):
        index = order[first:stop]
        stats = estimator.statistics(rounds.take(index), target.take(index))
        total = stats if total is None or window == "Rolling" else total.merge(stats)
        points.append(TimePoint(time=float(bucket[order[first]]) * width,
                                estimate=estimator.estimate_from_statistics(total)))
    return TimeSeries(interval_minutes=interval_minutes, window=window, points=tuple(points))


@dataclass(frozen=True)
class PolicyResult:
    """One policy of an evaluation: Personalizer's ``PolicyResult`` plus banditkit's detail.

    Attributes
    ----------
    name : str
    arguments : str
        VW arguments ("" for Baseline and Random).
    policy_source : str
        ``Online``, ``Baseline``, ``Random``, ``Custom`` or ``OfflineExperimentation``.
    estimates : dict of str to Estimate
        By estimator; the first is the reported ``summary``.
    timeseries : TimeSeries
    """

    name: str
    arguments: str
    policy_source: str
    estimates: dict[str, Estimate]
    timeseries: TimeSeries

    def __post_init__(self) -> None:
        if self.policy_source not in POLICY_SOURCES:
            raise ValueError(f"policy_source must be one of {POLICY_SOURCES}, "
                             f"got {self.policy_source!r}")

    @property
    def summary(self) -> Estimate:
        """The reported estimate (the first estimator's)."""
        return next(iter(self.estimates.values()))

    def to_dict(self, *, diagnostics: bool = True) -> dict[str, object]:
        """Personalizer's ``PolicyResult``; ``diagnostics`` adds every estimate in full
        (ESS, weight quantiles) under ``"estimates"``, which Personalizer clients ignore."""
        head = self.summary.to_dict()
        out: dict[str, object] = {
            "name": self.name, "slotId": "", "arguments": self.arguments,
            "policySource": self.policy_source,
            "summary": {"expectedReward": head["value"], "confidenceInterval": head["ci"]},
            "timeseries": self.timeseries.to_dict()}
        if diagnostics:
            out["estimates"] = {name: e.to_dict() for name, e in self.estimates.items()}
        return out
