"""Progressive validation of VW policies on a frozen window of the decision log.

Personalizer's evaluations score a policy (its VW arguments) the honest way: a
learner with those arguments reads the window's joined events in log order
(the order the online learner learned them), and each event is scored by the
policy *before* it learns that event. The probability it gives the logged
action is the target probability the importance-weighted estimators of
:mod:`ope.estimators` need (docs/architecture.md §6).

A :class:`Window` is the frozen input: the joined lines of ``[start, end)`` with
per-event arrays. :func:`score_candidates` runs policies over it, in a
:class:`CandidatePool` of ``workers`` ``spawn`` children that each receive the
window once, or in any other :class:`CandidateRunner` (Spark executors:
:class:`ope.spark.SparkCandidatePool`); window, arguments and results pickle,
so a job runner can call it as is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

import numpy as np

from banditkit.errors import InvalidInputError
from banditkit.eventlog import log_files
from banditkit.vw import ProgressiveScorer
from ope.rounds import LoggedRounds
from ope.validation import check_integer_at_least

__all__ = [
    "CandidatePool",
    "CandidateResult",
    "CandidateRunner",
    "Feature",
    "Window",
    "ablated_line",
    "baseline_probability",
    "freeze_window",
    "random_probability",
    "score_candidate",
    "score_candidates",
    "task_pairs",
    "utc_seconds",
]

#: A feature: (namespace, feature name); namespace ``""`` is VW's default one.
Feature = tuple[str, str]


def _unix(value: float | datetime | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return None if value is None else float(value)
    if value.tzinfo is None:
        raise ValueError(f"start and end must be timezone-aware datetimes or Unix seconds, "
                         f"got the naive {value!r}")
    return value.timestamp()


def utc_seconds(text: str) -> float:
    """Unix seconds of an ISO-8601 time; without an offset it is UTC, as banditkit writes it."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True, eq=False)
class Window:
    """The joined events of a time window, frozen: lines and per-event arrays.

    Attributes
    ----------
    lines : tuple of str, length n_events
        Joined dsjson lines, in log order, ``_skipLearn`` events left out.
    timestamp : ndarray of shape (n_events,)
        Decision time of each event, Unix seconds.
    reward : ndarray of shape (n_events,)
        Joined reward (``-_label_cost``).
    probability : ndarray of shape (n_events,)
        Logging propensity of the logged action.
    chosen : ndarray of shape (n_events,), dtype int
        0-based index of the logged action in ``_multi``.
    n_actions : ndarray of shape (n_events,), dtype int
        Actions offered.
    start, end : float or None
        The window ``[start, end)`` asked for, Unix seconds (None: open).
    n_skipped : int
        ``_skipLearn`` events (deferred, never activated) in the window.
    """

    lines: tuple[str, ...]
    timestamp: np.ndarray
    reward: np.ndarray
    probability: np.ndarray
    chosen: np.ndarray
    n_actions: np.ndarray
    start: float | None
    end: float | None
    n_skipped: int

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def rounds(self) -> LoggedRounds:
        """The events as :class:`~ope.rounds.LoggedRounds` for the estimators."""
        return LoggedRounds(reward=self.reward, action=self.chosen,
                            probability=self.probability, n_actions=self.n_actions)


def freeze_window(paths: Iterable[str | Path], *, start: float | datetime | None = None,
                  end: float | datetime | None = None) -> Window:
    """Read the joined events whose decision time is in ``[start, end)``.

    Files are read in :func:`banditkit.eventlog.log_files` order (date
    partitions in date order, lines in join order). Only five fields of each
    line are decoded; VW parses the features itself later.

    Parameters
    ----------
    paths : iterable of path
        dsjson files or folders of date partitions.
    start, end : float or aware datetime, default=None
        Window bounds (Unix seconds); None leaves that side open.

    Raises
    ------
    InvalidInputError
        Naming file and line of a line that is not a joined event, or when the
        window holds no event to learn from.
    """
    paths = list(paths)
    start_s, end_s = _unix(start), _unix(end)
    if start_s is not None and end_s is not None and not start_s < end_s:
        raise ValueError(f"start must be before end, got start={start!r}, end={end!r}")
    lines: list[str] = []
    fields: list[tuple[float, float, float, int, int]] = []
    skipped = 0
    for path in log_files(paths):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith("\n"):
                    break  # being appended right now (as read_events does)
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    stamp = utc_seconds(record["Timestamp"])
                    if (start_s is not None and stamp < start_s) or \
                            (end_s is not None and stamp >= end_s):
                        continue
                    if record.get("_skipLearn"):
                        skipped += 1
                        continue
                    row = (stamp, -float(record["_label_cost"]),
                           float(record["_label_probability"]), int(record["_labelIndex"]),
                           len(record["c"]["_multi"]))
                except (ValueError, KeyError, TypeError) as error:
                    raise InvalidInputError(f"{path}:{number}: not a joined dsjson event: "
                                            f"{error!r}") from None
                lines.append(line.rstrip("\n"))
                fields.append(row)
    if not lines:
        raise InvalidInputError(f"no joined event to learn from in [{start!r}, {end!r}) of "
                                f"{[str(p) for p in paths]} ({skipped} never activated)")
    columns = np.array(fields, dtype=np.float64).T
    return Window(lines=tuple(lines), timestamp=columns[0], reward=columns[1],
                  probability=columns[2], chosen=columns[3].astype(np.int64),
                  n_actions=columns[4].astype(np.int64), start=start_s, end=end_s,
                  n_skipped=skipped)


# -- the fixed policies: per-event probability of the logged action ----------------------


def baseline_probability(window: Window) -> np.ndarray:
    """Personalizer's Baseline, always the first action of ``_multi``, shape (n_events,)."""
    return (window.chosen == 0).astype(np.float64)


def random_probability(window: Window) -> np.ndarray:
    """Uniform over each event's actions, shape (n_events,)."""
    return 1.0 / window.n_actions


# -- learned policies ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CandidateResult:
    """A policy's progressive run over a window.

    Attributes
    ----------
    args : str
        Its VW arguments.
    probability : ndarray of shape (n_events,)
        Its probability of each logged action, before learning that event.
    cpu_seconds : float
        CPU time of the run (in the process that ran it).
    model : bytes
        The model after the window, to apply it.
    dropped : tuple of (str, str) or None
        The (namespace, feature) removed from every event (feature importance).
    """

    args: str
    probability: np.ndarray
    cpu_seconds: float
    model: bytes
    dropped: Feature | None = None


def ablated_line(line: str, feature: Feature) -> str:
    """``line`` without one feature, in the context and in every action.

    ``feature`` is ``(namespace, name)``; the namespace ``""`` is the default
    one (top-level keys of ``c``). vw-next refuses ``--ignore``, so the feature
    is removed from the JSON.
    """
    namespace, name = feature
    record = json.loads(line)
    shared = record["c"]
    for features in (shared, *shared["_multi"]):
        group = features if namespace == "" else features.get(namespace)
        if isinstance(group, dict):
            group.pop(name, None)
    return json.dumps(record, separators=(",", ":"))


def score_candidate(window: Window, args: str, *, drop: Feature | None = None) -> CandidateResult:
    """Progressive validation of one policy over the window.

    Parameters
    ----------
    window : Window
    args : str
        VW arguments (``--cb_explore_adf`` and its exploration).
    drop : tuple of (str, str), default=None
        A feature to remove from every event first (:func:`ablated_line`).

    Raises
    ------
    InvalidInputError
        On forbidden or invalid VW arguments.
    """
    scorer = ProgressiveScorer(args=args)
    chosen, n_actions = window.chosen, window.n_actions
    out = np.empty(len(window))
    started = time.process_time()
    for i, line in enumerate(window.lines):
        if drop is not None:
            line = ablated_line(line, drop)
        out[i] = scorer.step(line, int(n_actions[i]))[chosen[i]]
    cpu = time.process_time() - started
    return CandidateResult(args=args, probability=out, cpu_seconds=cpu,
                           model=scorer.to_bytes(), dropped=drop)


def task_pairs(tasks: Sequence[str | tuple[str, Feature | None]]
               ) -> list[tuple[str, Feature | None]]:
    """``tasks`` as (arguments, feature to drop) pairs, each distinct argument string
    built by VW here, so that bad arguments fail before any task runs elsewhere.

    Raises
    ------
    InvalidInputError
        On forbidden or invalid arguments.
    """
    pairs = [(task, None) if isinstance(task, str) else (task[0], task[1]) for task in tasks]
    for args in dict.fromkeys(args for args, _ in pairs):
        ProgressiveScorer(args=args).to_bytes()
    return pairs


class CandidateRunner(Protocol):
    """What scores a window's candidates: :class:`CandidatePool` (local processes) or
    :class:`ope.spark.SparkCandidatePool` (Spark executors)."""

    window: Window

    def run(self, tasks: Sequence[str | tuple[str, Feature | None]]
            ) -> list[CandidateResult]:
        """Score ``tasks`` (VW arguments, or (arguments, feature to drop)), in their order."""
        ...


_installed: Window | None = None  # a pool child's window, sent once by the initializer


def _install(window: Window) -> None:
    global _installed
    _installed = window


def _score_installed(task: tuple[str, Feature | None]) -> CandidateResult:
    args, drop = task
    return score_candidate(_installed, args, drop=drop)  # type: ignore[arg-type]


class CandidatePool:
    """A ``spawn`` process pool for one window: each child receives the window once.

    Open it with :meth:`open` and close it (or use it as a context manager), so
    that the stages of a search and the ablations of feature importance share
    its children instead of starting new ones and sending the window again.

    Parameters
    ----------
    window : Window
    executor : ProcessPoolExecutor or None
        None runs the candidates in this process.
    """

    def __init__(self, *, window: Window, executor: ProcessPoolExecutor | None) -> None:
        self.window = window
        self.executor = executor

    @classmethod
    def open(cls, window: Window, *, workers: int) -> CandidatePool:
        """A pool of ``workers`` children (1: no children, candidates run here)."""
        check_integer_at_least(workers, 1, name="workers")
        executor = None
        if workers > 1:
            executor = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                           initializer=_install, initargs=(window,))
        return cls(window=window, executor=executor)

    def run(self, tasks: Sequence[str | tuple[str, Feature | None]]) -> list[CandidateResult]:
        """Score ``tasks`` (VW arguments, or (arguments, feature to drop)), in their order.

        Raises
        ------
        InvalidInputError
            On forbidden or invalid arguments, before any task runs.
        """
        pairs = task_pairs(tasks)
        if self.executor is None or len(pairs) <= 1:
            return [score_candidate(self.window, args, drop=drop) for args, drop in pairs]
        return list(self.executor.map(_score_installed, pairs))

    def close(self) -> None:
        """Stop the children."""
        if self.executor is not None:
            self.executor.shutdown()

    def __enter__(self) -> CandidatePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def score_candidates(window: Window, tasks: Sequence[str | tuple[str, Feature | None]], *,
                     workers: int = 1, pool: CandidateRunner | None = None
                     ) -> list[CandidateResult]:
    """Run several policies over one window, in ``workers`` processes.

    Parameters
    ----------
    window : Window
    tasks : sequence of str or (str, feature)
        VW arguments, or (arguments, feature to drop).
    workers : int, default=1
        1 runs in this process; more start a :class:`CandidatePool` for these tasks.
    pool : CandidateRunner, default=None
        An open pool on ``window`` to use instead (local or Spark; ``workers`` is
        then ignored).

    Returns
    -------
    list of CandidateResult
        In the order of ``tasks``; deterministic whatever ``workers``.
    """
    if pool is not None:
        if pool.window is not window:
            raise ValueError("pool must have been opened on this window")
        return pool.run(tasks)
    with CandidatePool.open(window, workers=min(workers, max(len(tasks), 1))) as opened:
        return opened.run(tasks)
