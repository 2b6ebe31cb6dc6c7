"""Per-variant artwork performance from the decision log: impressions, takes, take rate.

Reads the decisions that :meth:`banditkit.engine.Engine.rank_many` recorded for
artwork (``_banditkit.title`` names the title, ``a[0]`` the variant shown) as
:meth:`banditkit.store.Store.events_since` yields them, and counts per variant
and per UTC day:

* **impressions**: decisions that showed the variant. A deferred decision that
  the join found never activated (``_skipLearn``) was not shown and is not
  counted; one still waiting for its join is counted (its activation is not
  known yet).
* **joined**: impressions whose reward window has closed (the join happened);
  only they have a known outcome.
* **takes**: joined impressions with a reward above ``take_threshold`` that
  actually arrived (the default reward never counts as a take).
* **take rate**: takes / joined, with a Wilson score interval.
* **share**: the variant's impressions over the title's impressions; the
  **recent share** is the same over the window's last hours (24 by default),
  which shows where the policy sends traffic now rather than on average.

This is descriptive reporting of what each variant earned *under the logging
policy*; to estimate what a different policy would earn, use off-policy
evaluation (``ope``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist

from banditkit.dsjson import EXTRA_KEY, joined_reward
from banditkit.errors import InvalidInputError

__all__ = [
    "DailyPerformance",
    "TitlePerformance",
    "VariantPerformance",
    "title_performance",
    "wilson_bounds",
    "wilson_interval",
]


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95
                    ) -> tuple[float, float]:
    r"""Wilson score interval of a binomial proportion.

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n}
              + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}

    with :math:`\hat p = k/n` the observed proportion, :math:`n` the trials and
    :math:`z` the standard normal quantile of :math:`(1 + \text{confidence})/2`.

    Parameters
    ----------
    successes : int
        :math:`k`, between 0 and ``trials``.
    trials : int
        :math:`n`, at least 0.
    confidence : float, default=0.95
        In (0, 1).

    Returns
    -------
    (low, high) : tuple of float
        Within [0, 1]; ``(0.0, 1.0)`` when ``trials`` is 0.

    References
    ----------
    E. B. Wilson. "Probable inference, the law of succession, and statistical
    inference." JASA 22(158), 1927.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 0:
        raise InvalidInputError(f"trials must be an int >= 0, got {trials!r}")
    if isinstance(successes, bool) or not isinstance(successes, int) or not (
            0 <= successes <= trials):
        raise InvalidInputError(f"successes must be an int in [0, trials={trials}], "
                                f"got {successes!r}")
    return wilson_bounds(successes / trials if trials else 0.0, trials,
                         confidence=confidence)


def wilson_bounds(proportion: float, size: float, *, confidence: float = 0.95
                  ) -> tuple[float, float]:
    r"""The Wilson score interval of :func:`wilson_interval` around an estimated
    proportion with a real-valued sample size.

    Weighted estimates (a propensity-weighted take rate) have no integer trial
    count; their effective sample size stands in for :math:`n`, with
    :math:`\hat p` the estimate.

    Parameters
    ----------
    proportion : float
        :math:`\hat p`, in [0, 1].
    size : float
        :math:`n`, at least 0 (an effective sample size may be fractional).
    confidence : float, default=0.95
        In (0, 1).

    Returns
    -------
    (low, high) : tuple of float
        Within [0, 1]; ``(0.0, 1.0)`` when ``size`` is 0.
    """
    if not isinstance(proportion, int | float) or not 0.0 <= proportion <= 1.0:
        raise InvalidInputError(f"proportion must be in [0, 1], got {proportion!r}")
    if not isinstance(size, int | float) or not math.isfinite(size) or size < 0:
        raise InvalidInputError(f"size must be a finite number >= 0, got {size!r}")
    if not isinstance(confidence, int | float) or not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence!r}")
    if size == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = float(proportion)
    denominator = 1.0 + z * z / size
    centre = (p + z * z / (2.0 * size)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / size + z * z / (4.0 * size * size)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class _Counts:
    impressions: int = 0
    joined: int = 0
    takes: int = 0
    reward_sum: float = 0.0
    recent: int = 0


@dataclass(frozen=True)
class DailyPerformance:
    """One variant (or the whole title) on one UTC day.

    Attributes
    ----------
    day : str
        ``YYYY-MM-DD`` (UTC) of the decisions.
    impressions, joined, takes : int
    share : float or None
        Impressions over the title's impressions that day; None without any.
    take_rate : float or None
        Takes over joined impressions; None when none joined.
    take_rate_low, take_rate_high : float
        Wilson interval of the take rate ([0, 1] when none joined).
    """

    day: str
    impressions: int
    joined: int
    takes: int
    share: float | None
    take_rate: float | None
    take_rate_low: float
    take_rate_high: float


@dataclass(frozen=True)
class VariantPerformance:
    """One variant over the whole window.

    Attributes
    ----------
    variant_id : str
    impressions, joined, takes : int
    share : float or None
    take_rate : float or None
    take_rate_low, take_rate_high : float
        Wilson interval at the report's confidence.
    mean_reward : float or None
        Mean joined reward (default rewards included); None when none joined.
    daily : list of DailyPerformance
        One entry per day of the window, oldest first (zeros included).
    recent_impressions : int
        Impressions after the report's ``recent_since``.
    recent_share : float or None
        Those over the title's recent impressions; None without any.
    """

    variant_id: str
    impressions: int
    joined: int
    takes: int
    share: float | None
    take_rate: float | None
    take_rate_low: float
    take_rate_high: float
    mean_reward: float | None
    daily: list[DailyPerformance]
    recent_impressions: int = 0
    recent_share: float | None = None


@dataclass(frozen=True)
class TitlePerformance:
    """Every variant of one title over a window.

    Attributes
    ----------
    title_id : str
    since, until : float
        The window, Unix seconds (decisions with ``since < created_at <= until``).
    days : list of str
        The UTC days of the window, oldest first.
    confidence : float
    impressions, joined, takes : int
        Totals of the title.
    recent_since : float
        Start of the recent part of the window, Unix seconds.
    recent_impressions : int
        The title's impressions after ``recent_since``.
    variants : list of VariantPerformance
        The requested variants first (in the order given), then any other
        variant found in the log (e.g. deleted since).
    """

    title_id: str
    since: float
    until: float
    days: list[str]
    confidence: float
    impressions: int
    joined: int
    takes: int
    variants: list[VariantPerformance]
    recent_since: float = 0.0
    recent_impressions: int = 0


def _day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def _days(since: float, until: float) -> list[str]:
    first = datetime.fromtimestamp(since, tz=UTC).date()
    last = datetime.fromtimestamp(until, tz=UTC).date()
    return [first.fromordinal(o).isoformat() for o in range(first.toordinal(),
                                                             last.toordinal() + 1)]


def _rate(counts: _Counts, confidence: float) -> tuple[float | None, float, float]:
    low, high = wilson_interval(counts.takes, counts.joined, confidence=confidence)
    rate = counts.takes / counts.joined if counts.joined else None
    return rate, low, high


def title_performance(
    events: Iterable[tuple[str, float, str, str | None]],
    *,
    title_id: str,
    since: float,
    until: float,
    variant_ids: Sequence[str] = (),
    confidence: float = 0.95,
    take_threshold: float = 0.0,
    recent_since: float | None = None,
) -> TitlePerformance:
    """Count impressions and takes of a title's variants, in total and per UTC day.

    Parameters
    ----------
    events : iterable of (event_id, created_at, decision, joined_line or None)
        What :meth:`banditkit.store.Store.events_since` yields; events of other
        titles and non-artwork decisions are skipped.
    title_id : str
        The title (``_banditkit.title`` of its decisions).
    since, until : float
        Window in Unix seconds: ``since < created_at <= until``.
    variant_ids : sequence of str, default=()
        Variants to report even without traffic (the title's current ones).
    confidence : float, default=0.95
        Of the Wilson intervals.
    take_threshold : float, default=0.0
        A joined reward strictly above this is a take.
    recent_since : float, default=None
        Impressions after this (Unix seconds) are also counted as recent; None
        is the window's last 24 hours (the whole window when it is shorter).

    Returns
    -------
    TitlePerformance
    """
    if not isinstance(since, int | float) or not isinstance(until, int | float) or not (
            math.isfinite(since) and math.isfinite(until) and since < until):
        raise InvalidInputError(f"need finite since < until, got since={since!r}, "
                                f"until={until!r}")
    wilson_interval(0, 0, confidence=confidence)  # validates confidence
    if recent_since is None:
        recent_since = until - 86400.0
    if not isinstance(recent_since, int | float) or not math.isfinite(recent_since):
        raise InvalidInputError(f"recent_since must be a finite number, got {recent_since!r}")
    recent_since = max(float(recent_since), float(since))
    n_recent = 0
    days = _days(since, until)
    marker = f'"title":{json.dumps(title_id)}'
    totals: dict[str, _Counts] = {v: _Counts() for v in variant_ids}
    daily: dict[tuple[str, str], _Counts] = {}
    day_totals: dict[str, int] = {}
    for _, created_at, decision, joined in events:
        if not since < created_at <= until or marker not in decision:
            continue
        record = json.loads(joined if joined is not None else decision)
        extra = record.get(EXTRA_KEY) or {}
        if extra.get("title") != title_id:
            continue
        if record.get("_skipLearn"):
            continue  # deferred and never activated: not shown
        variant_id = extra["actionIds"][record["a"][0] - 1]
        day = _day(created_at)
        if created_at > recent_since:
            totals.setdefault(variant_id, _Counts()).recent += 1
            n_recent += 1
        for counts in (totals.setdefault(variant_id, _Counts()),
                       daily.setdefault((variant_id, day), _Counts())):
            counts.impressions += 1
            if joined is not None:
                reward = joined_reward(record)
                counts.joined += 1
                counts.reward_sum += reward
                if not extra.get("defaultReward") and reward > take_threshold:
                    counts.takes += 1
        day_totals[day] = day_totals.get(day, 0) + 1
    n_impressions = sum(day_totals.values())
    variants = []
    for variant_id, counts in totals.items():
        rate, low, high = _rate(counts, confidence)
        per_day = []
        for day in days:
            day_counts = daily.get((variant_id, day), _Counts())
            day_rate, day_low, day_high = _rate(day_counts, confidence)
            per_day.append(DailyPerformance(
                day=day, impressions=day_counts.impressions, joined=day_counts.joined,
                takes=day_counts.takes,
                share=(day_counts.impressions / day_totals[day]) if day_totals.get(day) else None,
                take_rate=day_rate, take_rate_low=day_low, take_rate_high=day_high))
        variants.append(VariantPerformance(
            variant_id=variant_id, impressions=counts.impressions, joined=counts.joined,
            takes=counts.takes,
            share=counts.impressions / n_impressions if n_impressions else None,
            take_rate=rate, take_rate_low=low, take_rate_high=high,
            mean_reward=counts.reward_sum / counts.joined if counts.joined else None,
            daily=per_day, recent_impressions=counts.recent,
            recent_share=counts.recent / n_recent if n_recent else None))
    return TitlePerformance(
        title_id=title_id, since=float(since), until=float(until), days=days,
        confidence=float(confidence), impressions=n_impressions,
        joined=sum(c.joined for c in totals.values()),
        takes=sum(c.takes for c in totals.values()), variants=variants,
        recent_since=recent_since, recent_impressions=n_recent)
