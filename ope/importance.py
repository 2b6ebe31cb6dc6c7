r"""Feature importance by ablation: what each feature is worth to the policy's decisions.

For every context and action feature seen in the window (a namespace and a
feature name, all its values), the feature is removed from every event and the
policy (the online policy's VW arguments) is run again by progressive
validation (:mod:`ope.progressive`). The feature's importance is the drop in
the policy's SNIPS value, paired with the full run on the same events.

Why this and not model weights: it measures what a feature does to
*decisions*, with the evaluations' own estimator. A context feature that
crosses with no action feature shifts every action's score equally and never
changes a choice; its weights can be large, its ablation drop is about 0.
Correlated features share credit (remove one, the other compensates), which
``docs/evaluation.md`` states.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ope.estimators import SNIPS
from ope.progressive import (
    CandidateResult,
    CandidateRunner,
    Feature,
    Window,
    score_candidates,
)
from ope.validation import check_confidence_level, check_integer_at_least

__all__ = ["FeatureScore", "feature_importance", "features_of", "paired_drop"]


def features_of(window: Window) -> list[Feature]:
    """Every (namespace, feature name) of the window's contexts and actions, sorted.

    The default namespace (top-level features of ``c``) is ``""``; keys that
    start with ``_`` are VW's or banditkit's, not features.
    """
    seen: set[Feature] = set()
    for line in window.lines:
        shared = json.loads(line)["c"]
        for features in (shared, *shared["_multi"]):
            for key, value in features.items():
                if key.startswith("_"):
                    continue
                if isinstance(value, dict):
                    seen.update((key, name) for name in value)
                else:
                    seen.add(("", key))
    return sorted(seen)


def paired_drop(window: Window, full: np.ndarray, ablated: np.ndarray, *,
                confidence_level: float = 0.95) -> tuple[float, tuple[float, float]]:
    r"""SNIPS(full) - SNIPS(ablated) on the same events, with a paired delta-method interval.

    .. math:: \Delta = \hat V_f - \hat V_a,\quad
              \hat V_k = \frac{\sum_i w_{k,i} r_i}{\sum_i w_{k,i}},\quad
              \psi_i = \frac{w_{f,i} (r_i - \hat V_f)}{\bar w_f}
                     - \frac{w_{a,i} (r_i - \hat V_a)}{\bar w_a}

    and the interval :math:`\Delta \pm z \, s_\psi / \sqrt n`, :math:`s_\psi` the
    standard deviation of the influence terms :math:`\psi_i`. Pairing cancels
    the noise both runs share, so the interval is far narrower than either
    value's.

    Parameters
    ----------
    window : Window
    full, ablated : ndarray of shape (n_events,)
        Each run's probability of the logged actions.
    confidence_level : float, default=0.95
    """
    check_confidence_level(confidence_level)
    rounds = window.rounds
    snips = SNIPS(confidence_level=confidence_level)
    values = [snips.estimate_policy_value(rounds, p) for p in (full, ablated)]
    influence = np.zeros(len(window))
    for sign, probability, value in ((1.0, full, values[0]), (-1.0, ablated, values[1])):
        weight = probability / rounds.probability
        influence += sign * weight * (rounds.reward - value) / weight.mean()
    drop = values[0] - values[1]
    half = NormalDist().inv_cdf(0.5 + confidence_level / 2) * float(
        influence.std(ddof=1)) / np.sqrt(len(window))
    return float(drop), (float(drop - half), float(drop + half))


@dataclass(frozen=True)
class FeatureScore:
    """A feature's importance: Personalizer's ``FeatureScore`` plus the drop behind it.

    Attributes
    ----------
    namespace, feature_name : str
    score : float
        ``max(drop, 0) / max drop`` over the features: in [0, 1], 1 for the most
        important.
    drop : float
        SNIPS value lost without the feature.
    ci : tuple of float
        The drop's paired interval (:func:`paired_drop`).
    """

    namespace: str
    feature_name: str
    score: float
    drop: float
    ci: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        return {"namespace": self.namespace, "featureName": self.feature_name,
                "score": self.score, "drop": self.drop, "confidenceInterval": list(self.ci)}


def feature_importance(window: Window, *, args: str, workers: int = 1,
                       max_features: int = 64, full: CandidateResult | None = None,
                       confidence_level: float = 0.95,
                       pool: CandidateRunner | None = None) -> tuple[FeatureScore, ...]:
    """Ablation scores of every feature of the window, sorted by score, descending.

    Parameters
    ----------
    window : Window
    args : str
        The policy whose decisions are explained (the online policy's arguments).
    workers : int, default=1
        Processes running the ablations.
    max_features : int, default=64
        Refuse more features than this (one policy run each).
    full : CandidateResult, default=None
        The policy's run on the whole window when already made (an evaluation's
        online run); made here otherwise.
    confidence_level : float, default=0.95
    pool : CandidateRunner, default=None
        An open pool on ``window`` shared with other steps, local or on Spark
        (``workers`` is then ignored).

    Raises
    ------
    ValueError
        When the window has more than ``max_features`` features.
    """
    check_integer_at_least(max_features, 1, name="max_features")
    features = features_of(window)
    if len(features) > max_features:
        raise ValueError(f"the window has {len(features)} features, more than "
                         f"max_features={max_features}; raise it or narrow the window")
    tasks: list[tuple[str, Feature | None]] = [(args, feature) for feature in features]
    if full is None:
        tasks.insert(0, (args, None))
    runs = score_candidates(window, tasks, workers=workers, pool=pool)
    if full is None:
        full, runs = runs[0], runs[1:]
    drops = [paired_drop(window, full.probability, run.probability,
                         confidence_level=confidence_level) for run in runs]
    top = max((max(drop, 0.0) for drop, _ in drops), default=0.0)
    scores = [FeatureScore(namespace=namespace, feature_name=name,
                           score=max(drop, 0.0) / top if top > 0 else 0.0, drop=drop, ci=ci)
              for (namespace, name), (drop, ci) in zip(features, drops, strict=True)]
    return tuple(sorted(scores, key=lambda s: (-s.score, -s.drop)))
