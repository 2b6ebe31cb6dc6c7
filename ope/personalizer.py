"""Personalizer's evaluation of a window: Online, Baseline, Random, Custom and Optimized.

:func:`evaluate_window` is the whole evaluation job over a frozen
:class:`~ope.progressive.Window`: the fixed policies from the log itself,
each Custom policy by progressive validation, optionally a policy search
(:mod:`ope.search`) and feature importance (:mod:`ope.importance`). Its
result turns into Personalizer's ``EvaluationResult`` JSON
(:meth:`WindowEvaluation.to_dict`) and into an
:class:`~ope.evaluation.EvaluationReport` for the HTML report.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from banditkit.dsjson import EXTRA_KEY, JoinedPage, parse_page
from banditkit.errors import InvalidInputError
from banditkit.eventlog import iso_timestamp, log_files
from ope.base import OffPolicyEstimator
from ope.estimators import SNIPS
from ope.importance import FeatureScore, feature_importance
from ope.progressive import (
    CandidatePool,
    CandidateResult,
    CandidateRunner,
    Window,
    baseline_probability,
    random_probability,
    utc_seconds,
)
from ope.rounds import LoggedRounds
from ope.search import (
    DEFAULT_BUDGET,
    DEFAULT_SPACE,
    SearchBudget,
    SearchResult,
    SearchSpace,
    search,
    split_exploration,
)
from ope.timeseries import (
    PolicyResult,
    TimeSeries,
    check_series_options,
    default_estimators,
    series,
    summary,
)

if TYPE_CHECKING:
    from ope.evaluation import EvaluationReport

__all__ = ["OPTIMIZED", "RESERVED_NAMES", "EvaluationRounds", "PageWindow", "SlotsEvaluation",
           "WindowEvaluation", "evaluate_slots", "evaluate_window", "freeze_page_window"]

#: Name of the search's result (``policySource: OfflineExperimentation``).
OPTIMIZED = "Optimized"
#: Names a Custom policy may not take (any letter case).
RESERVED_NAMES = ("Online", "Baseline", "Random", OPTIMIZED)


def _time(value: float | None) -> str | None:
    return None if value is None else iso_timestamp(value)[:19] + "Z"


@dataclass(frozen=True, eq=False)
class WindowEvaluation:
    """An evaluation's results.

    Attributes
    ----------
    window : Window
        The events evaluated.
    interval_minutes : int
    policies : tuple of PolicyResult
        Online, Baseline, Random, each Custom, then Optimized when searched.
    optimal_policy : str or None
        ``"Optimized"`` when a search ran.
    search : SearchResult or None
    feature_scores : tuple of FeatureScore or None
    models : dict of str to bytes
        The model each learned policy (Custom, Optimized) ends the window with.
    targets : dict of str to ndarray of shape (n_events,)
        Each policy's probability of the logged actions, by name.
    """

    window: Window
    interval_minutes: int
    policies: tuple[PolicyResult, ...]
    optimal_policy: str | None
    search: SearchResult | None
    feature_scores: tuple[FeatureScore, ...] | None
    models: dict[str, bytes]
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    def rounds(self) -> EvaluationRounds:
        """What the time series are made of, to keep and redraw them at another interval."""
        window = self.window
        return EvaluationRounds(timestamp=window.timestamp, reward=window.reward,
                                probability=window.probability, chosen=window.chosen,
                                n_actions=window.n_actions, targets=dict(self.targets))

    def policy(self, name: str) -> PolicyResult:
        """The result named ``name`` (any letter case)."""
        for result in self.policies:
            if result.name.lower() == name.lower():
                return result
        raise KeyError(f"no policy named {name!r}; have {[p.name for p in self.policies]}")

    def to_dict(self) -> dict[str, object]:
        """Personalizer's ``EvaluationResult`` (``startTime``, ``endTime``,
        ``intervalInMinutes``, ``value``) with ``optimalPolicy``, and banditkit's
        detail: events, the search trace and feature scores when made."""
        stamps = self.window.timestamp
        out: dict[str, object] = {
            "startTime": _time(self.window.start if self.window.start is not None
                               else float(stamps.min())),
            "endTime": _time(self.window.end if self.window.end is not None
                             else float(stamps.max())),
            "intervalInMinutes": self.interval_minutes,
            "value": [policy.to_dict() for policy in self.policies],
            "nEvents": len(self.window), "skippedNotActivated": self.window.n_skipped}
        if self.optimal_policy is not None:
            out["optimalPolicy"] = self.optimal_policy
        if self.search is not None:
            out["search"] = self.search.to_dict()
        if self.feature_scores is not None:
            out["featureScores"] = [score.to_dict() for score in self.feature_scores]
        return out

    def to_report(self) -> EvaluationReport:
        """The estimates as an :class:`~ope.evaluation.EvaluationReport` (HTML report)."""
        from ope.evaluation import EvaluationReport

        return EvaluationReport(n_rounds=len(self.window),
                                estimates={p.name: p.estimates for p in self.policies},
                                notes={"skipped_not_activated": self.window.n_skipped})


@dataclass(frozen=True, eq=False)
class EvaluationRounds:
    """An evaluation's events and each policy's probability of the logged actions.

    Kept with a finished evaluation, so that its time series can be drawn at
    any interval, window and time range later without running a policy again.

    Attributes
    ----------
    timestamp, reward, probability : ndarray of shape (n_events,)
        Decision time (Unix seconds), joined reward, logging propensity.
    chosen, n_actions : ndarray of shape (n_events,), dtype int
    targets : dict of str to ndarray of shape (n_events,)
        By policy name.
    """

    timestamp: np.ndarray
    reward: np.ndarray
    probability: np.ndarray
    chosen: np.ndarray
    n_actions: np.ndarray
    targets: dict[str, np.ndarray]

    def to_bytes(self) -> bytes:
        """The arrays as a compressed ``.npz`` file."""
        buffer = io.BytesIO()
        names = list(self.targets)
        np.savez_compressed(
            buffer, timestamp=self.timestamp, reward=self.reward,
            probability=self.probability, chosen=self.chosen, n_actions=self.n_actions,
            names=np.array(json.dumps(names)),
            targets=np.array([self.targets[name] for name in names]).reshape(
                len(names), len(self.timestamp)))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EvaluationRounds:
        """Read what :meth:`to_bytes` wrote."""
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            names = json.loads(str(arrays["names"]))
            return cls(timestamp=arrays["timestamp"], reward=arrays["reward"],
                       probability=arrays["probability"], chosen=arrays["chosen"],
                       n_actions=arrays["n_actions"],
                       targets=dict(zip(names, arrays["targets"], strict=True)))

    def series(self, name: str, *, interval_minutes: int, window: str = "Expanding",
               start: float | None = None, end: float | None = None,
               confidence_level: float = 0.95) -> TimeSeries:
        """Policy ``name``'s SNIPS estimate per time bucket, over the events of ``[start, end]``.

        Parameters
        ----------
        name : str
        interval_minutes : int
            One of :data:`ope.timeseries.INTERVALS_MINUTES`.
        window : {"Expanding", "Rolling"}, default="Expanding"
            Expanding accumulates from the first event of the range.
        start, end : float, default=None
            Unix seconds, both inclusive; None leaves that side open.
        confidence_level : float, default=0.95
        """
        keep = np.ones(len(self.timestamp), dtype=bool)
        if start is not None:
            keep &= self.timestamp >= start
        if end is not None:
            keep &= self.timestamp <= end
        index = np.flatnonzero(keep)
        if not len(index):
            return TimeSeries(interval_minutes=interval_minutes, window=window, points=())
        rounds = LoggedRounds(reward=self.reward[index], action=self.chosen[index],
                              probability=self.probability[index],
                              n_actions=self.n_actions[index])
        return series(rounds, self.targets[name][index], self.timestamp[index],
                      estimator=SNIPS(confidence_level=confidence_level),
                      interval_minutes=interval_minutes, window=window)


def _check_custom(custom: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = [tuple(pair) for pair in custom]
    names = [name for name, _ in pairs]
    reserved = [n for n in names if n.lower() in {r.lower() for r in RESERVED_NAMES}]
    if reserved:
        raise ValueError(f"custom policy names must differ from {', '.join(RESERVED_NAMES)}; "
                         f"got {reserved}")
    if len({n.lower() for n in names}) != len(names):
        raise ValueError(f"custom policy names must be unique, got {names}")
    if any(not name.strip() for name in names):
        raise ValueError(f"custom policy names must not be blank, got {names}")
    return pairs  # type: ignore[return-value]


def evaluate_window(window: Window, *, online_args: str,
                    custom: Sequence[tuple[str, str]] = (), optimize: bool = False,
                    importance: bool = False, interval_minutes: int = 60,
                    window_kind: str = "Expanding",
                    estimators: Sequence[OffPolicyEstimator] | None = None,
                    space: SearchSpace = DEFAULT_SPACE, budget: SearchBudget = DEFAULT_BUDGET,
                    workers: int = 1, max_features: int = 64,
                    pool: CandidateRunner | None = None) -> WindowEvaluation:
    """Evaluate the online policy, Baseline, Random, Custom policies and, optionally, a search.

    Parameters
    ----------
    window : Window
    online_args : str
        The live policy's VW arguments: its exploration is the search's, its
        progressive run seeds the search and explains feature importance.
    custom : sequence of (str, str), default=()
        (name, VW arguments) of each Custom policy.
    optimize : bool, default=False
        Search learning arguments (:func:`ope.search.search`).
    importance : bool, default=False
        Feature importance by ablation of the online arguments.
    interval_minutes : int, default=60
        Time series bucket (5, 60, 360, 720 or 1440).
    window_kind : {"Expanding", "Rolling"}, default="Expanding"
    estimators : sequence of OffPolicyEstimator, default=None
        None: SNIPS (the reported value) and IPS.
    space : SearchSpace, default=SearchSpace()
    budget : SearchBudget, default=SearchBudget()
    workers : int, default=1
        Processes running learned policies.
    max_features : int, default=64
        Feature importance refuses windows with more features.
    pool : CandidateRunner, default=None
        An open pool on ``window`` that runs the learned policies (Spark
        executors: :class:`ope.spark.SparkCandidatePool`); ``workers`` is then
        ignored.

    Raises
    ------
    ValueError
        On reserved or repeated Custom names, an unknown interval or window,
        or an estimator that needs a reward model or every round in memory.
    banditkit.errors.InvalidInputError
        On forbidden or invalid VW arguments (before any policy runs).
    """
    custom = _check_custom(custom)
    check_series_options(interval_minutes, window_kind)
    estimators = tuple(estimators) if estimators is not None else default_estimators()
    unfit = [e.name for e in estimators if e.needs_model or e.ci_method == "bootstrap"]
    if unfit:
        raise ValueError(f"estimators must need no reward model and stream (ci_method 'clt' "
                         f"or 'bernstein') for an evaluation's time series; got {unfit}")
    if pool is not None and pool.window is not window:
        raise ValueError("pool must have been opened on this window")
    with nullcontext(pool) if pool is not None else \
            CandidatePool.open(window, workers=workers) as opened:
        return _evaluate(window, opened, online_args=online_args, custom=custom,
                         optimize=optimize, importance=importance,
                         interval_minutes=interval_minutes, window_kind=window_kind,
                         estimators=estimators, space=space, budget=budget,
                         max_features=max_features)


def _evaluate(window: Window, pool: CandidateRunner, *, online_args: str,
              custom: list[tuple[str, str]], optimize: bool, importance: bool,
              interval_minutes: int, window_kind: str,
              estimators: tuple[OffPolicyEstimator, ...], space: SearchSpace,
              budget: SearchBudget, max_features: int) -> WindowEvaluation:
    rounds = window.rounds
    learned = [args for _, args in custom]
    if optimize or importance:
        learned.append(online_args)
    runs = pool.run(learned)
    online_run = runs[-1] if optimize or importance else None

    targets: dict[str, np.ndarray] = {}

    def result(name: str, arguments: str, source: str,
               probability: np.ndarray) -> PolicyResult:
        targets[name] = probability
        return PolicyResult(
            name=name, arguments=arguments, policy_source=source,
            estimates=summary(rounds, probability, estimators),
            timeseries=series(rounds, probability, window.timestamp, estimator=estimators[0],
                              interval_minutes=interval_minutes, window=window_kind))

    results = [result("Online", online_args, "Online", rounds.probability),
               result("Baseline", "", "Baseline", baseline_probability(window)),
               result("Random", "", "Random", random_probability(window))]
    models: dict[str, bytes] = {}
    for (name, args), run in zip(custom, runs[:len(custom)], strict=True):
        results.append(result(name, args, "Custom", run.probability))
        models[name] = run.model
    found = None
    if optimize:
        exploration, _, other = split_exploration(online_args)
        seeds: list[CandidateResult] = [online_run, *runs[:len(custom)]]  # type: ignore[list-item]
        found = search(window, exploration=exploration, seeds=seeds, space=space,
                       budget=budget, other=other, pool=pool)
        results.append(result(OPTIMIZED, found.best.args, "OfflineExperimentation",
                              found.best.probability))
        models[OPTIMIZED] = found.best.model
    scores = None
    if importance:
        scores = feature_importance(window, args=online_args, max_features=max_features,
                                    full=online_run, pool=pool)
    return WindowEvaluation(window=window, interval_minutes=interval_minutes,
                            policies=tuple(results),
                            optimal_policy=OPTIMIZED if optimize else None, search=found,
                            feature_scores=scores, models=models, targets=targets)


# -- multi-slot logs: one result per policy and slot -------------------------------------


@dataclass(frozen=True, eq=False)
class PageWindow:
    """The joined pages (multi-slot decisions) of a time window, frozen.

    Attributes
    ----------
    pages : tuple of JoinedPage, length n_pages
        In log order, ``_skipLearn`` pages left out.
    timestamp : ndarray of shape (n_pages,)
        Decision time of each page, Unix seconds.
    baselines : tuple of tuple of int, length n_pages
        Each slot's baseline row: the slot's ``baselineAction`` when the log
        names it and the rules allowed it, else its first allowed row (the row
        the page shows without personalization, ``banditkit.rows.decide``).
    start, end : float or None
        The window ``[start, end)`` asked for, Unix seconds (None: open).
    n_skipped : int
        Pages never activated in the window.
    """

    pages: tuple[JoinedPage, ...]
    timestamp: np.ndarray
    baselines: tuple[tuple[int, ...], ...]
    start: float | None
    end: float | None
    n_skipped: int

    def __len__(self) -> int:
        return len(self.pages)

    def slot_ids(self) -> list[str]:
        """Every slot id of the window, in the order slots first appear."""
        return list(dict.fromkeys(s for page in self.pages for s in page.slot_ids))


def _baselines(page: JoinedPage, record: dict) -> tuple[int, ...]:
    named = record.get(EXTRA_KEY, {}).get("baselineRowIds") or [None] * len(page.chosen)
    index = {row_id: i for i, row_id in enumerate(page.row_ids)}
    return tuple(index[name] if name in index and index[name] in allowed else allowed[0]
                 for name, allowed in zip(named, page.eligible, strict=True))


def freeze_page_window(paths: Iterable[str | Path], *, start: float | None = None,
                       end: float | None = None) -> PageWindow:
    """Read the joined pages of the row engine's log decided in ``[start, end)``.

    Parameters
    ----------
    paths : iterable of path
        CCB dsjson files or folders of date partitions (``rows/logs``).
    start, end : float, default=None
        Unix seconds; None leaves that side open.

    Raises
    ------
    InvalidInputError
        Naming file and line of a line that is not a joined page, or when the
        window holds no page.
    """
    paths = list(paths)
    pages: list[JoinedPage] = []
    stamps: list[float] = []
    baselines: list[tuple[int, ...]] = []
    skipped = 0
    for path in log_files(paths):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith("\n"):
                    break  # being appended right now
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    stamp = utc_seconds(record["Timestamp"])
                    if (start is not None and stamp < start) or \
                            (end is not None and stamp >= end):
                        continue
                    page = parse_page(record)
                    if page.skip_learn:
                        skipped += 1
                        continue
                    baselines.append(_baselines(page, record))
                except (ValueError, KeyError, TypeError, IndexError) as error:
                    raise InvalidInputError(f"{path}:{number}: not a joined CCB page: "
                                            f"{error!r}") from None
                pages.append(page)
                stamps.append(stamp)
    if not pages:
        raise InvalidInputError(f"no joined page in [{start!r}, {end!r}) of "
                                f"{[str(p) for p in paths]} ({skipped} never activated)")
    return PageWindow(pages=tuple(pages), timestamp=np.array(stamps), baselines=tuple(baselines),
                      start=start, end=end, n_skipped=skipped)


def _slot_rounds(window: PageWindow, slot_id: str) -> EvaluationRounds:
    r"""One slot's events and each fixed policy's probability of the logged rows.

    Slot ``k``'s reward depends on the rows above it, so a policy's weight is
    that of the whole prefix: :math:`w = \prod_{j \le k} \pi_j / \mu_j` with
    :math:`\pi_j, \mu_j` the probabilities of slot ``j``'s logged row given the
    rows above. The Online weights are then 1 and SNIPS is the slot's plain log
    average. ``slot_id`` ``""`` is the whole page: the reward is the sum of its
    slots' rewards, the prefix the whole page.
    """
    rows: list[tuple[float, float, int, int, float, float, float]] = []
    for page, stamp, baseline in zip(window.pages, window.timestamp, window.baselines,
                                     strict=True):
        if slot_id:
            if slot_id not in page.slot_ids:
                continue
            k = page.slot_ids.index(slot_id)
            reward = page.reward[k]
        else:
            k = len(page.chosen) - 1
            reward = float(sum(page.reward))
        prefix = range(k + 1)
        rows.append((
            float(stamp), reward, page.chosen[k], len(page.rows),
            float(np.prod([page.probability[j] for j in prefix])),
            float(np.prod([1.0 / len(page.eligible[j]) for j in prefix])),
            float(all(page.chosen[j] == baseline[j] for j in prefix))))
    stamp, reward, chosen, n_rows, logged, uniform, first = np.array(rows, dtype=np.float64).T
    return EvaluationRounds(timestamp=stamp, reward=reward, probability=logged,
                            chosen=chosen.astype(np.int64), n_actions=n_rows.astype(np.int64),
                            targets={"Online": logged, "Baseline": first, "Random": uniform})


@dataclass(frozen=True, eq=False)
class SlotsEvaluation:
    """A multi-slot evaluation: Online, Baseline and Random over the whole page (slot id
    ``""``) and in each slot.

    Attributes
    ----------
    window : PageWindow
    interval_minutes : int
    policies : tuple of (str, PolicyResult)
        (slot id, result): the page's first, then each slot's.
    slot_rounds : dict of str to EvaluationRounds
        By slot id, to draw the time series again.
    """

    window: PageWindow
    interval_minutes: int
    policies: tuple[tuple[str, PolicyResult], ...]
    slot_rounds: dict[str, EvaluationRounds]

    def to_dict(self) -> dict[str, object]:
        """Personalizer's ``EvaluationResult``, one ``PolicyResult`` per policy and slot."""
        stamps = self.window.timestamp
        start = self.window.start if self.window.start is not None else float(stamps.min())
        end = self.window.end if self.window.end is not None else float(stamps.max())
        return {"startTime": _time(start), "endTime": _time(end),
                "intervalInMinutes": self.interval_minutes,
                "value": [{**result.to_dict(), "slotId": slot}
                          for slot, result in self.policies],
                "nEvents": len(self.window), "skippedNotActivated": self.window.n_skipped,
                "multiSlot": True}


def evaluate_slots(window: PageWindow, *, online_args: str, interval_minutes: int = 60,
                   window_kind: str = "Expanding",
                   estimators: Sequence[OffPolicyEstimator] | None = None) -> SlotsEvaluation:
    """Evaluate Online, Baseline and Random on a multi-slot window, per page and per slot.

    Parameters
    ----------
    window : PageWindow
    online_args : str
        The live page policy's VW arguments (reported with Online).
    interval_minutes : int, default=60
    window_kind : {"Expanding", "Rolling"}, default="Expanding"
    estimators : sequence of OffPolicyEstimator, default=None
        None: SNIPS (the reported value) and IPS.
    """
    check_series_options(interval_minutes, window_kind)
    estimators = tuple(estimators) if estimators is not None else default_estimators()
    policies: list[tuple[str, PolicyResult]] = []
    slot_rounds: dict[str, EvaluationRounds] = {}
    for slot in ["", *window.slot_ids()]:
        rounds = slot_rounds[slot] = _slot_rounds(window, slot)
        logged = LoggedRounds(reward=rounds.reward, action=rounds.chosen,
                              probability=rounds.probability, n_actions=rounds.n_actions)
        for name, arguments in (("Online", online_args), ("Baseline", ""), ("Random", "")):
            target = rounds.targets[name]
            policies.append((slot, PolicyResult(
                name=name, arguments=arguments, policy_source=name,
                estimates=summary(logged, target, estimators),
                timeseries=series(logged, target, rounds.timestamp, estimator=estimators[0],
                                  interval_minutes=interval_minutes, window=window_kind))))
    return SlotsEvaluation(window=window, interval_minutes=interval_minutes,
                           policies=tuple(policies), slot_rounds=slot_rounds)
