"""Who likes which variant: each variant's take rate per audience segment, propensity-weighted.

A segment is the members sharing one value of a context feature (``Member.country``
= ``BR``); numeric features (a taste score) are split at their median into two
segments. For each segment :math:`s` and variant :math:`v` the take rate members
of :math:`s` would give were :math:`v` always shown to them is estimated from the
joined decisions with the self-normalised inverse-propensity estimator

.. math:: \\hat V_{s,v} = \\frac{\\sum_{i \\in s} w_i r_i}{\\sum_{i \\in s} w_i},
          \\qquad w_i = \\frac{\\mathbb 1[a_i = v]}{p_i}

with :math:`a_i` the variant shown in decision :math:`i`, :math:`p_i` the logging
probability of showing it and :math:`r_i` 1 for a take, else 0. Weighting by
:math:`1/p_i` undoes the policy's preferences within the segment: a variant the
policy showed mostly to members who take a lot (on a television, say) does not
look better than it is. The interval is Wilson's around :math:`\\hat V_{s,v}` with
the effective sample size :math:`n_e = (\\sum w_i)^2 / \\sum w_i^2` in place of
:math:`n`, which equals the impressions when the weights are equal and shrinks as
they spread. Beside it stands the raw take rate (takes over impressions), which
mixes the members' preferences with the policy's choices.

This module computes the estimator itself, since ``catalogue`` does not import
``ope`` (``docs/architecture.md §2``).

References
----------
A. Swaminathan and T. Joachims. "The Self-Normalized Estimator for Counterfactual
Learning." NeurIPS, 2015.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from banditkit.dsjson import parse_event
from banditkit.errors import InvalidInputError
from banditkit.eventlog import iso_timestamp
from catalogue.performance import wilson_bounds

__all__ = [
    "SegmentInsight",
    "TitleInsights",
    "UnknownFeatureError",
    "VariantInsight",
    "title_insights",
]


class UnknownFeatureError(InvalidInputError):
    """A feature that no decision of the title carries.

    Attributes
    ----------
    feature : str
        The feature asked for.
    available : list of str
        The features the title's decisions carry, sorted.
    """

    def __init__(self, feature: str, available: Sequence[str]) -> None:
        self.feature = feature
        self.available = list(available)
        known = ", ".join(repr(f) for f in self.available) or "none (no joined decisions yet)"
        super().__init__(f"unknown feature {feature!r}; the title's decisions carry: {known}")


@dataclass(frozen=True)
class VariantInsight:
    """One variant within one segment.

    Attributes
    ----------
    variant_id : str
    impressions, takes : int
        Joined decisions of the segment that showed the variant, and their takes.
    raw_take_rate : float or None
        Takes / impressions (what the policy's choices gave); None without impressions.
    take_rate : float or None
        :math:`\\hat V_{s,v}`, the propensity-weighted take rate; None without impressions.
    take_rate_low, take_rate_high : float
        Wilson interval on the effective sample size ([0, 1] without impressions).
    effective_size : float
        :math:`n_e = (\\sum w)^2 / \\sum w^2`, 0 without impressions.
    """

    variant_id: str
    impressions: int
    takes: int
    raw_take_rate: float | None
    take_rate: float | None
    take_rate_low: float
    take_rate_high: float
    effective_size: float


@dataclass(frozen=True)
class SegmentInsight:
    """The members with one value of the feature.

    Attributes
    ----------
    segment : str
        The value (``"BR"``), or ``"<= m"`` / ``"> m"`` around the median of a
        numeric feature.
    decisions : int
        Joined decisions of the segment.
    variants : list of VariantInsight
        In the report's variant order.
    """

    segment: str
    decisions: int
    variants: list[VariantInsight]


@dataclass(frozen=True)
class TitleInsights:
    """A title's variants broken down by one context feature.

    Attributes
    ----------
    title_id : str
    feature : str or None
        ``Namespace.name``; None lists the features only.
    features : list of str
        Every context feature the title's joined decisions carry, sorted.
    since : float
        Start of the window, Unix seconds.
    confidence : float
    decisions : int
        Joined decisions of the title in the window (activated ones).
    segments : list of SegmentInsight
        Sorted by value (empty without a feature).
    """

    title_id: str
    feature: str | None
    features: list[str]
    since: float
    confidence: float
    decisions: int
    segments: list[SegmentInsight]


@dataclass
class _Cell:
    impressions: int = 0
    takes: int = 0
    weight: float = 0.0
    weight_squared: float = 0.0
    weighted_takes: float = 0.0


def _feature_values(context: dict) -> dict[str, str | float]:
    values: dict[str, str | float] = {}
    for namespace, features in context.items():
        for name, value in features.items():
            key = f"{namespace}.{name}" if namespace else name
            if isinstance(value, bool):
                values[key] = "true" if value else "false"
            elif isinstance(value, int | float):
                values[key] = value
            else:
                values[key] = str(value)
    return values


def _insight(variant_id: str, cell: _Cell, confidence: float) -> VariantInsight:
    if not cell.impressions:
        return VariantInsight(variant_id=variant_id, impressions=0, takes=0,
                              raw_take_rate=None, take_rate=None, take_rate_low=0.0,
                              take_rate_high=1.0, effective_size=0.0)
    rate = min(1.0, cell.weighted_takes / cell.weight)
    size = cell.weight * cell.weight / cell.weight_squared
    low, high = wilson_bounds(rate, size, confidence=confidence)
    return VariantInsight(variant_id=variant_id, impressions=cell.impressions, takes=cell.takes,
                          raw_take_rate=cell.takes / cell.impressions, take_rate=rate,
                          take_rate_low=low, take_rate_high=high, effective_size=size)


def title_insights(
    lines: Iterable[str],
    *,
    title_id: str,
    feature: str | None,
    since: float,
    variant_ids: Sequence[str] = (),
    confidence: float = 0.95,
    take_threshold: float = 0.0,
) -> TitleInsights:
    """Each variant's propensity-weighted take rate per segment of one context feature.

    Parameters
    ----------
    lines : iterable of str
        Joined dsjson lines with their features (the joined lines
        :meth:`banditkit.store.DecisionStore.events_since` yields ``with_features``);
        lines of other titles and other decisions are skipped.
    title_id : str
        The title (``_banditkit.title`` of its decisions).
    feature : str or None
        ``Namespace.name`` of a context feature; None lists the features only.
    since : float
        Unix seconds: decisions stamped earlier are left out.
    variant_ids : sequence of str, default=()
        Variants to report in every segment even without impressions, first.
    confidence : float, default=0.95
        Of the intervals.
    take_threshold : float, default=0.0
        A joined reward strictly above this is a take (the default reward never is).

    Returns
    -------
    TitleInsights

    Raises
    ------
    UnknownFeatureError
        When ``feature`` is not among the features of the title's decisions.
    """
    wilson_bounds(0.0, 0, confidence=confidence)  # validates confidence
    if not isinstance(since, int | float) or not math.isfinite(since):
        raise InvalidInputError(f"since must be a finite number, got {since!r}")
    start = iso_timestamp(float(since))
    marker = f'"title":{json.dumps(title_id)}'
    features: set[str] = set()
    rounds: list[tuple[str | float | None, str, float, bool]] = []
    for line in lines:
        if marker not in line:
            continue
        event = parse_event(json.loads(line))
        if event.extra.get("title") != title_id or event.skip_learn or event.timestamp < start:
            continue
        values = _feature_values(event.context)
        features.update(values)
        take = not event.extra.get("defaultReward") and event.reward > take_threshold
        rounds.append((values.get(feature) if feature else None,
                       event.action_ids[event.chosen_index], event.probability, take))
    available = sorted(features)
    if feature is not None and feature not in features:
        raise UnknownFeatureError(feature, available)
    segments: list[SegmentInsight] = []
    if feature is not None:
        segments = _segments(rounds, variant_ids, confidence)
    return TitleInsights(title_id=title_id, feature=feature, features=available,
                         since=float(since), confidence=float(confidence), decisions=len(rounds),
                         segments=segments)


def _segments(rounds: list[tuple[str | float | None, str, float, bool]],
              variant_ids: Sequence[str], confidence: float) -> list[SegmentInsight]:
    numbers = [v for v, *_ in rounds if isinstance(v, int | float)]
    median = statistics.median(numbers) if numbers else 0.0
    order = list(dict.fromkeys([*variant_ids, *(variant for _, variant, _, _ in rounds)]))
    cells: dict[str, dict[str, _Cell]] = {}
    counts: dict[str, int] = {}
    for value, variant, probability, take in rounds:
        if value is None:
            continue  # a decision without the feature belongs to no segment
        segment = (f"<= {median:g}" if value <= median else f"> {median:g}") if isinstance(
            value, int | float) else str(value)
        counts[segment] = counts.get(segment, 0) + 1
        cell = cells.setdefault(segment, {}).setdefault(variant, _Cell())
        weight = 1.0 / probability
        cell.impressions += 1
        cell.takes += take
        cell.weight += weight
        cell.weight_squared += weight * weight
        cell.weighted_takes += weight * take
    return [SegmentInsight(segment=segment, decisions=counts[segment],
                           variants=[_insight(v, cells[segment].get(v, _Cell()), confidence)
                                     for v in order])
            for segment in sorted(cells)]
