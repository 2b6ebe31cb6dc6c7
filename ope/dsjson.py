"""Off-policy evaluation over banditkit's dsjson decision log (docs/architecture.md §3).

Reads joined events with :func:`banditkit.eventlog.read_events`, chunk by
chunk, and turns each chunk into a :class:`~ope.rounds.LoggedRounds`
plus, for every policy under evaluation, a :class:`~ope.rounds.TargetRounds`
computed event by event (O(chunk) memory, whatever the log size).

Policies (:func:`make_policy` names): ``logged`` (the online policy's logged
pmf), ``baseline`` (always the first action), ``uniform``, ``model:PATH`` (a
saved banditkit/VW model whose probabilities are recomputed on each logged
context) and ``offline`` (a VW learner trained on the first part of the log,
all policies then being evaluated on the rest).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from banditkit.dsjson import JoinedEvent
from banditkit.eventlog import log_files, read_events
from ope.base import OffPolicyEstimator, check_streamable
from ope.estimators import Replay
from ope.evaluation import EvaluationReport, evaluate_stream
from ope.rounds import LoggedRounds, TargetRounds
from ope.validation import check_integer_at_least

__all__ = [
    "EventPolicy",
    "HashedRewardModel",
    "LearnerPolicy",
    "count_events",
    "evaluate_dsjson",
    "make_policy",
    "rounds_from_events",
    "targets_from_events",
]


class EventPolicy(abc.ABC):
    """A policy that gives a probability to each action of a logged event."""

    name: str

    @abc.abstractmethod
    def pmf(self, event: JoinedEvent) -> np.ndarray:
        """Probabilities over ``event.actions``, shape (n_actions,), summing to 1."""


class _Logged(EventPolicy):
    name = "logged"

    def pmf(self, event: JoinedEvent) -> np.ndarray:
        return np.asarray(event.pmf, dtype=np.float64)


class _Baseline(EventPolicy):
    name = "baseline"

    def pmf(self, event: JoinedEvent) -> np.ndarray:
        out = np.zeros(len(event.actions))
        out[0] = 1.0
        return out


class _Uniform(EventPolicy):
    name = "uniform"

    def pmf(self, event: JoinedEvent) -> np.ndarray:
        return np.full(len(event.actions), 1.0 / len(event.actions))


class LearnerPolicy(EventPolicy):
    """Any banditkit learner (``predict_one(context, actions) -> pmf``) as a policy.

    Parameters
    ----------
    learner : banditkit.learner.Learner
    name : str
    """

    def __init__(self, *, learner: Any, name: str) -> None:
        self.learner = learner
        self.name = name

    def pmf(self, event: JoinedEvent) -> np.ndarray:
        return np.asarray(self.learner.predict_one(event.context, event.actions),
                          dtype=np.float64)


def make_policy(spec: str, *, model_args: str | None = None,
                data_dir: str | Path | None = None,
                database_url: str | None = None) -> EventPolicy:
    """A policy from its command-line name.

    Parameters
    ----------
    spec : str
        ``logged``, ``baseline``, ``uniform``, ``model:PATH`` or
        ``model:latest`` (``offline`` is built by :func:`evaluate_dsjson`,
        which owns the train/test split).
    model_args : str, default=None
        VW arguments of a ``model:PATH`` file; ``None`` uses ``VWLearner``'s
        default.
    data_dir : path, default=None
        For ``model:latest``: the data directory whose store holds the latest
        published model and its VW arguments.
    database_url : str, default=None
        For ``model:latest``: the PostgreSQL store holding it instead.
    """
    simple = {"logged": _Logged, "baseline": _Baseline, "uniform": _Uniform}
    if spec in simple:
        return simple[spec]()
    if spec == "model:latest":
        from banditkit.store.factory import open_store
        from banditkit.vw import VWLearner

        database = Path(data_dir or ".") / "banditkit.sqlite3"
        if database_url is None and (data_dir is None or not database.is_file()):
            raise ValueError(f"model:latest needs a data directory with a store, "
                             f"got {database}")
        store = open_store(Path(data_dir or "."), database_url=database_url)
        try:
            snapshot = store.latest_model()
        finally:
            store.close()
        if snapshot is None:
            where = database if database_url is None else database_url.split("@")[-1]
            raise ValueError(f"no model has been published in the store of {where}")
        return LearnerPolicy(learner=VWLearner(args=snapshot.policy_args,
                                               model_data=snapshot.data),
                             name=f"model:v{snapshot.version}")
    if spec.startswith("model:"):
        from banditkit.vw import VWLearner

        path = Path(spec[len("model:"):])
        if not path.is_file():
            raise ValueError(f"model file does not exist: {path}")
        arguments = {} if model_args is None else {"args": model_args}
        return LearnerPolicy(learner=VWLearner(model_data=path.read_bytes(), **arguments),
                             name=spec)
    raise ValueError(f"policy must be logged, baseline, uniform, offline or model:PATH, "
                     f"got {spec!r}")


def rounds_from_events(events: Sequence[JoinedEvent], *, first_index: int = 0) -> LoggedRounds:
    """The logged side of a list of events (``context`` holds each event's context dict)."""
    if not events:
        raise ValueError("events must hold at least one event, got none")
    context = np.empty(len(events), dtype=object)
    context[:] = [e.context for e in events]
    return LoggedRounds(
        reward=np.array([e.reward for e in events], dtype=np.float64),
        action=np.array([e.chosen_index for e in events], dtype=np.int64),
        probability=np.array([e.probability for e in events], dtype=np.float64),
        n_actions=np.array([len(e.actions) for e in events], dtype=np.int64),
        round_id=np.array([e.event_id for e in events]),
        context=context, first_index=first_index)


def targets_from_events(events: Sequence[JoinedEvent], policies: Sequence[EventPolicy], *,
                        predictions: Sequence[np.ndarray] | None = None
                        ) -> dict[str, TargetRounds]:
    """Each policy's per-round arrays on these events.

    Parameters
    ----------
    events : sequence of JoinedEvent
    policies : sequence of EventPolicy
    predictions : sequence of ndarray, default=None
        Reward-model predictions for every action of each event (held out).
    """
    out: dict[str, TargetRounds] = {}
    for policy in policies:
        probability = np.empty(len(events))
        unsupported = np.empty(len(events))
        model_reward = np.empty(len(events)) if predictions is not None else None
        model_value = np.empty(len(events)) if predictions is not None else None
        for i, event in enumerate(events):
            pmf = policy.pmf(event)
            if pmf.shape != (len(event.actions),):
                raise ValueError(f"policy {policy.name} returned {pmf.shape} probabilities "
                                 f"for event {event.event_id} with {len(event.actions)} actions")
            probability[i] = pmf[event.chosen_index]
            unsupported[i] = pmf[np.asarray(event.pmf) <= 0].sum()
            if predictions is not None:
                q = predictions[i]
                model_reward[i] = q[event.chosen_index]  # type: ignore[index]
                model_value[i] = float(pmf @ q)  # type: ignore[index]
        out[policy.name] = TargetRounds(probability=np.clip(probability, 0.0, 1.0),
                                        model_reward=model_reward, model_value=model_value,
                                        unsupported_mass=np.clip(unsupported, 0.0, 1.0))
    return out


def _tokens(features: dict[str, dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for namespace, group in features.items():
        for key, value in group.items():
            if isinstance(value, str):
                out[f"{namespace}^{key}={value}"] = 1.0
            elif isinstance(value, (bool, int, float)):
                out[f"{namespace}^{key}"] = float(value)
    return out


@dataclass(frozen=True, kw_only=True)
class HashedRewardModel:
    """A reward model over namespaced features, cross-fitted within each chunk.

    Each (context, action) pair is encoded like VW's ``-q ::``: context
    tokens, action tokens and all their pairwise products, hashed to
    ``n_features`` columns. Predictions for a chunk's events come from models
    fitted on the chunk's other folds only (never on the event itself).

    Parameters
    ----------
    model : scikit-learn regressor or binary classifier, default=None
        ``None`` means ``Ridge(alpha=1.0, solver="lsqr")``.
    n_folds : int, default=5
    n_features : int, default=65536
        Hashing space (2**16).
    seed : int, default=0
        Seeds the fold assignment.
    """

    model: Any = None
    n_folds: int = 5
    n_features: int = 65536
    seed: int = 0

    def __post_init__(self) -> None:
        check_integer_at_least(self.n_folds, 2, name="n_folds")
        check_integer_at_least(self.n_features, 16, name="n_features")

    def _encode(self, event: JoinedEvent, action: int) -> dict[str, float]:
        context = _tokens(event.context)
        action_tokens = _tokens(event.actions[action])
        row = {**context, **action_tokens}
        for c_name, c_value in context.items():
            for a_name, a_value in action_tokens.items():
                row[f"{c_name}*{a_name}"] = c_value * a_value
        return row

    def predict(self, events: Sequence[JoinedEvent]) -> list[np.ndarray]:
        """Held-out :math:`\\hat q` for every action of each event (ragged list)."""
        n = len(events)
        predictions = [np.zeros(len(e.actions)) for e in events]
        if n < self.n_folds:
            return predictions  # too few events to cross-fit: a constant-0 model
        hasher = FeatureHasher(n_features=self.n_features, input_type="dict",
                               alternate_sign=False)
        logged = hasher.transform(self._encode(e, e.chosen_index) for e in events)
        reward = np.array([e.reward for e in events])
        folds = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        for train, test in folds.split(np.zeros(n)):
            model = Ridge(alpha=1.0, solver="lsqr") if self.model is None \
                else clone(self.model)
            classifier = is_classifier(model)
            target = reward[train].astype(int) if classifier else reward[train]
            if classifier and len(np.unique(target)) < 2:
                constant = float(target[0]) if len(target) else 0.0
                for i in test:
                    predictions[i][:] = constant
                continue
            model.fit(logged[train], target)
            pairs = [(i, a) for i in test for a in range(len(events[i].actions))]
            design = hasher.transform(self._encode(events[i], a) for i, a in pairs)
            values = model.predict_proba(design)[:, list(model.classes_).index(1)] \
                if classifier else model.predict(design)
            for (i, a), value in zip(pairs, values, strict=True):
                predictions[i][a] = value
        return predictions


def count_events(paths: Iterable[str | Path]) -> int:
    """Non-empty lines in the log files (a cheap first pass for splits and progress)."""
    total = 0
    for path in log_files(paths):
        with open(path, encoding="utf-8") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def _chunks(events: Iterator[JoinedEvent], size: int) -> Iterator[list[JoinedEvent]]:
    chunk: list[JoinedEvent] = []
    for event in events:
        chunk.append(event)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def evaluate_dsjson(
    paths: Sequence[str | Path],
    *,
    policies: Sequence[str | EventPolicy] = ("logged", "baseline", "uniform"),
    estimators: Sequence[OffPolicyEstimator],
    reward_model: HashedRewardModel | None = None,
    chunk_size: int = 50_000,
    train_fraction: float = 0.5,
    offline_args: str = "--cb_explore_adf --epsilon 0.05 -q ::",
    model_args: str | None = None,
    data_dir: str | Path | None = None,
    database_url: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvaluationReport:
    """Evaluate policies on dsjson logs, streaming chunk by chunk.

    Parameters
    ----------
    paths : sequence of path
        dsjson files or folders (searched recursively for ``*.dsjson``).
    policies : sequence of str or EventPolicy, default=("logged", "baseline", "uniform")
        Names for :func:`make_policy`, ``"offline"``, or policy objects.
    estimators : sequence of OffPolicyEstimator
        Must stream (``ci_method`` "clt" or "bernstein"). A Replay without
        ``max_weight`` gets 1 / (smallest logged propensity), from an extra
        pass over the log.
    reward_model : HashedRewardModel, default=None
        Needed by DM and the DR family.
    chunk_size : int, default=50000
        Events per chunk: memory and reward-model cross-fitting unit.
    train_fraction : float, default=0.5
        With an ``offline`` policy: share of the events (in log order) used to
        train it; every policy is then evaluated on the remaining events only.
    offline_args : str, default="--cb_explore_adf --epsilon 0.05 -q ::"
        VW arguments of the offline-trained policy.
    model_args : str, default=None
        VW arguments for ``model:PATH`` policies (``None``: VWLearner's default).
    data_dir : path, default=None
        For ``model:latest`` (the latest model published in that data directory).
    database_url : str, default=None
        For ``model:latest`` published in a PostgreSQL store instead.
    progress : callable, default=None
        Called with the number of events just read (e.g. ``tqdm.update``).

    Returns
    -------
    EvaluationReport
        ``notes`` counts skipped (never activated) events and the split.
    """
    check_integer_at_least(chunk_size, 1, name="chunk_size")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    check_streamable(estimators, purpose="stream a dsjson log")
    files = log_files(paths)
    if not files:
        raise ValueError(f"no .dsjson files found in {list(map(str, paths))}")
    specs = list(policies)
    if not specs:
        raise ValueError("policies must name at least one policy, got none")
    notes: dict[str, object] = {"skipped_not_activated": 0}
    n_train = 0
    offline = None
    if "offline" in specs:
        from banditkit.vw import VWLearner

        n_total = count_events(files)
        n_train = int(n_total * train_fraction)
        learner = VWLearner(args=offline_args)
        for index, event in enumerate(read_events(files)):
            if index >= n_train:
                break
            if not event.skip_learn:
                learner.learn_one(event.context, event.actions, chosen=event.chosen_index,
                                  reward=event.reward, probability=event.probability)
            if progress is not None:
                progress(1)
        offline = LearnerPolicy(learner=learner, name="offline")
        notes.update({"offline_train_events": n_train, "offline_args": offline_args})
    resolved = [offline if spec == "offline" else
                (spec if isinstance(spec, EventPolicy)
                 else make_policy(spec, model_args=model_args, data_dir=data_dir,
                                          database_url=database_url))
                for spec in specs]
    names = [p.name for p in resolved]  # type: ignore[union-attr]
    if len(set(names)) != len(names):
        raise ValueError(f"policies must have distinct names, got {names}")

    if any(isinstance(e, Replay) and e.max_weight is None for e in estimators):
        # Replay's bound must be fixed before streaming: 1 / (smallest logged
        # propensity) bounds every policy's weight, so no round is capped.
        smallest = min((e.probability for i, e in enumerate(read_events(files))
                        if i >= n_train and not e.skip_learn), default=1.0)
        estimators = [replace(e, max_weight=1.0 / smallest)
                      if isinstance(e, Replay) and e.max_weight is None else e
                      for e in estimators]
        notes["replay_bound"] = 1.0 / smallest

    def events() -> Iterator[JoinedEvent]:
        for index, event in enumerate(read_events(files)):
            if index < n_train:
                continue
            if progress is not None:
                progress(1)
            if event.skip_learn:
                notes["skipped_not_activated"] = int(notes["skipped_not_activated"]) + 1
                continue
            yield event

    def chunks() -> Iterator[tuple[LoggedRounds, dict[str, TargetRounds]]]:
        first = 0
        for chunk in _chunks(events(), chunk_size):
            predictions = reward_model.predict(chunk) if reward_model is not None else None
            yield (rounds_from_events(chunk, first_index=first),
                   targets_from_events(chunk, resolved, predictions=predictions))  # type: ignore[arg-type]
            first += len(chunk)

    try:
        return evaluate_stream(chunks(), estimators=estimators, notes=notes)
    except ValueError as error:
        if "at least one chunk" in str(error):
            raise ValueError("the log holds no activated events to evaluate") from None
        raise
