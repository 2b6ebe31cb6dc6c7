"""The decision loop: rank -> log -> (activate) -> reward -> join -> learn -> snapshot.

One :class:`Engine` per process. Ranking uses a read-only snapshot of the latest
published model and never waits for learning; :meth:`Engine.process_due` is the
learner step (one process runs it, e.g. a background thread of the server),
which joins due events, appends them to the dsjson log, learns them in order and
publishes a snapshot every ``model_update_seconds`` (docs/architecture.md §4).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from banditkit.dsjson import (
    EXTRA_KEY,
    JoinedLine,
    decision_head,
    decision_line,
    joined_reward,
    shortest_probability,
)
from banditkit.encoding import FeatureEncoder
from banditkit.errors import InvalidInputError, ModelOutputError
from banditkit.eventlog import EventLogWriter, iso_timestamp
from banditkit.join import join_event, joined_line
from banditkit.loop import LoopEngine
from banditkit.sampling import rank_order, sample_index, strictly_preferred
from banditkit.settings import LoopSettings
from banditkit.store import DecisionStore, PendingEvent, RewardRecord, open_store
from banditkit.types import (
    Action,
    Decision,
    Features,
    RankedAction,
    check_actions,
    check_event_id,
    check_reward,
)
from banditkit.vw import VWLearner, check_model

__all__ = ["ApprenticeMetrics", "Engine", "RankRequest"]

_log = logging.getLogger(__name__)
_APPRENTICE_KEY = "apprentice_agreement"
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
_NOTHING_EXCLUDED: frozenset[str] = frozenset()


class RankRequest(NamedTuple):
    """One decision of a batch (e.g. one title of a page).

    ``extra`` is stored with the decision under ``_banditkit`` in the log
    (title id, variant ids, surface...). ``tag`` is what reports group
    decisions by (the title id): the store indexes it. A named tuple: every
    rank call makes one, at half a frozen dataclass's cost.
    """

    context: Features
    actions: Sequence[Action]
    event_id: str | None = None
    excluded: Iterable[str] = ()
    defer_activation: bool = False
    extra: Mapping[str, Any] = _NO_EXTRA
    tag: str | None = None


@dataclass(frozen=True)
class ApprenticeMetrics:
    """How a model trained in apprentice mode would do, as Personalizer reported it.

    ``sum_of_imitated_rewards`` adds the rewards of the events where the model's
    top action was the baseline that was shown, alone: where the model gave the
    baseline more probability than each other action, so it would have chosen
    the baseline (see :func:`~banditkit.sampling.strictly_preferred`; a model
    that ties the baseline with another action, as an untrained one does, has
    not learned the baseline and does not count). When it nears
    ``sum_of_rewards``, the model reproduces the baseline's results and online
    mode can be turned on. ``last_batch`` is ``(events, rewards, imitated
    rewards)`` of the latest learner step.
    """

    n_events: int
    n_agreed: int
    sum_of_rewards: float
    sum_of_imitated_rewards: float
    started_at: str | None
    last_event_at: str | None
    last_batch: tuple[int, float, float]

    @property
    def agreement(self) -> float:
        """Share of events where the model's top action was the baseline alone."""
        return self.n_agreed / self.n_events


class Engine(LoopEngine):
    """Ranks, records rewards and learns, over one data directory.

    Build it with :meth:`open`. Thread-safe: rank, reward and activate may be
    called from many threads; :meth:`process_due` from one learner at a time.

    Parameters
    ----------
    store, log, models_dir, clock, refresh_seconds
        Those of :class:`~banditkit.loop.LoopEngine` (:meth:`open` gives it the
        store :func:`~banditkit.store.open_store` chooses).
    max_actions : int, default=256
        Largest number of actions accepted in one decision.

    Attributes
    ----------
    model_fallbacks : int
        Decisions of this process drawn uniformly because the model's
        probabilities were not finite (logged with ``modelFallback``).
    """

    def __init__(self, *, store: DecisionStore, log: EventLogWriter, models_dir: Path,
                 clock: Callable[[], float] = time.time, max_actions: int = 256,
                 refresh_seconds: float = 1.0) -> None:
        super().__init__(store=store, log=log, models_dir=models_dir, clock=clock,
                         refresh_seconds=refresh_seconds)
        self.max_actions = max_actions
        self.model_fallbacks = 0  # decisions drawn uniformly: the model's output was not finite
        self._encoder = FeatureEncoder()
        self._fallback_version = -1

    # -- hooks of the loop ----------------------------------------------------------

    def _learner_args(self, settings: LoopSettings) -> str:
        return settings.learner_args()

    def _new_learner(self, args: str, model_data: bytes | None = None) -> VWLearner:
        return VWLearner(args=args, model_data=model_data)

    def _check_model(self, args: str, data: bytes) -> None:
        check_model(data, args=args)

    @staticmethod
    def _join(events: list[PendingEvent], rewards: dict[str, list[RewardRecord]],
              settings: LoopSettings) -> list[JoinedLine]:
        return [joined_line(event, join_event(event, rewards.get(event.event_id, []), settings))
                for event in events]

    def _observe_learned(self, joined: list[JoinedLine]) -> None:
        """Count how the model would have done in apprentice mode (Personalizer's metrics)."""
        apprentice = [item.record for item in joined
                      if item.learning_mode == "apprentice" and not item.skip_learn]
        if not apprentice:
            return
        rewards = [joined_reward(r) for r in apprentice]
        imitated = [reward for r, reward in zip(apprentice, rewards, strict=True)
                    if r[EXTRA_KEY]["modelAgreesWithBaseline"]]
        totals = self.store.get_setting(_APPRENTICE_KEY) or {}
        self.store.put_setting(_APPRENTICE_KEY, {
            "n": totals.get("n", 0) + len(apprentice),
            "agree": totals.get("agree", 0) + len(imitated),
            "rewards": totals.get("rewards", 0.0) + sum(rewards),
            "imitated": totals.get("imitated", 0.0) + sum(imitated),
            "start": totals.get("start") or apprentice[0]["Timestamp"],
            "last": apprentice[-1]["Timestamp"],
            "batch": [len(apprentice), sum(rewards), sum(imitated)],
        })

    @classmethod
    def open(cls, data_dir: str | Path, *, settings: LoopSettings | None = None,
             clock: Callable[[], float] = time.time, synchronous: str = "NORMAL",
             max_actions: int = 256, database_url: str | None = None,
             log_dir: str | Path | None = None) -> Engine:
        """Open (or create) the engine of a data directory.

        Parameters
        ----------
        settings : LoopSettings, default=None
            Replace the persisted settings; None keeps them (defaults on first use).
        database_url : str, default=None
            Keep the store's tables in this PostgreSQL database
            (``postgresql://user@host:port/db``); None keeps them in SQLite in
            the data directory (:func:`~banditkit.store.open_store`).
        log_dir : path, default=None
            Where the joined log goes (``<log_dir>/logs``), for hosts whose learner
            may move among them (a folder they all reach); None: the data directory.
        """
        data_dir = Path(data_dir)
        store = open_store(data_dir, database_url=database_url, synchronous=synchronous)
        logs = Path(log_dir or data_dir) / "logs"
        engine = cls(store=store, log=EventLogWriter(root=logs),
                     models_dir=data_dir / "models", clock=clock, max_actions=max_actions)
        if settings is not None:
            engine.update_settings(settings)
        return engine

    # -- decisions -------------------------------------------------------------

    def rank(self, context: Features, actions: Sequence[Action], *, event_id: str | None = None,
             excluded: Iterable[str] = (), defer_activation: bool = False,
             extra: dict | None = None) -> Decision:
        """Choose an action, log the decision durably, and return the ranking.

        Parameters
        ----------
        context : Features
            Member and moment features (no member ids or exact timestamps).
        actions : sequence of Action
            Candidates; the first is the baseline.
        event_id : str, default=None
            Caller's id for the event; it seeds the draw. A new one is made if None.
        excluded : iterable of str
            Ids of actions that must not be shown (probability 0, ranked last).
        defer_activation : bool, default=False
            Rewards count only after :meth:`activate`.

        Raises
        ------
        InvalidInputError, DuplicateEventError
        """
        return self.rank_many([RankRequest(context, actions, event_id, excluded,
                                           defer_activation, extra or _NO_EXTRA)])[0]

    def rank_many(self, requests: Sequence[RankRequest]) -> list[Decision]:
        """Several decisions (a page), recorded in one transaction: all or none."""
        if not requests:
            raise InvalidInputError("requests must not be empty")
        self._refresh()
        settings = self._settings
        assert settings is not None
        now = self.clock()
        timestamp = iso_timestamp(now)
        decisions, pending, seen_ids = [], [], set()
        contexts: dict[int, str] = {}  # a page shares one context: encode it once
        fresh_ids = True  # every id generated here: no duplicate check
        for request in requests:
            fresh_ids = fresh_ids and request.event_id is None
            context = contexts.get(id(request.context))
            if context is None:
                context = self._encoder.encode(request.context, name="context")
                contexts[id(request.context)] = context
            decision, record, context_at = self._decide(request, context, settings, timestamp)
            if decision.event_id in seen_ids:
                raise InvalidInputError(f"event id {decision.event_id!r} appears twice")
            seen_ids.add(decision.event_id)
            decisions.append(decision)
            pending.append(PendingEvent(decision.event_id, now, bool(request.defer_activation),
                                        None, record, context_at, request.tag))
        self.store.insert_events(pending, fresh_ids=fresh_ids)
        return decisions

    def _decide(self, request: RankRequest, context: str, settings: LoopSettings,
                timestamp: str) -> tuple[Decision, str, int]:
        """One decision, its dsjson record, and where the record's features begin.

        ``context`` is validated and encoded.
        """
        actions = check_actions(request.actions, max_actions=self.max_actions,
                                validate_features=False)
        encoded = self._encoder.encode_all([a.features for a in actions],
                                           name="actions[{}].features")
        event_id = check_event_id(request.event_id)
        excluded = _check_excluded(request.excluded, actions)
        # The features are encoded once, for the learner and for the log.
        eligible, texts = actions, encoded
        if excluded:
            eligible = [a for a in actions if a.id not in excluded]
            if not eligible:
                raise InvalidInputError("every action is excluded; at least one must remain")
            texts = [text for a, text in zip(actions, encoded, strict=True)
                     if a.id not in excluded]
        with self._rank_lock:
            ranker, version = self._ranker, self._ranker_version
            assert ranker is not None
            try:
                model_pmf = ranker.predict_encoded(context, texts)
                fallback = None
            except ModelOutputError as error:
                model_pmf, fallback = self._fallback_pmf(len(texts), version, error)
            explained = None
            if settings.inference_explainability:
                explained = ranker.explain(request.context, [a.features for a in eligible])
        extra = request.extra
        if fallback is not None:
            extra = {**extra, "modelFallback": fallback}
        if excluded:
            extra = {**extra, "excludedActionIds": [a.id for a in actions if a.id in excluded]}
        if settings.learning_mode == "online":
            pmf = model_pmf
            chosen = sample_index(pmf, event_id)
        else:  # apprentice and logging-only show the baseline
            pmf = [1.0] + [0.0] * (len(eligible) - 1)
            chosen = 0
            extra = {**extra, "learningMode": settings.learning_mode,
                     "modelAgreesWithBaseline": strictly_preferred(model_pmf, 0)}
        order = rank_order(pmf, chosen)
        head = decision_head(event_id, timestamp, version, order, pmf, eligible, extra)
        line = decision_line(head, self._encoder.shared(context, texts))
        # The same short numbers the log holds (docs/dsjson.md), not float32 noise.
        ranking = [RankedAction(eligible[i].id, shortest_probability(pmf[i])) for i in order]
        if excluded:
            ranking += [RankedAction(a.id, 0.0) for a in actions if a.id in excluded]
        explanation = None
        if explained is not None:
            explanation = tuple((eligible[i].id, tuple(explained[i])) for i in order)
        decision = Decision(event_id, tuple(ranking), eligible[chosen].id, str(version),
                            explanation)
        return decision, line, len(head)

    def _fallback_pmf(self, n_actions: int, version: int, error: ModelOutputError
                      ) -> tuple[list[float], str]:
        """Uniform probabilities instead of a model's non-finite ones, counted and logged
        (once per model version); the caller holds the rank lock."""
        self.model_fallbacks += 1
        if version != self._fallback_version:
            self._fallback_version = version
            _log.error("model version %s gives non-finite probabilities (%s); decisions are "
                       "drawn uniformly until a sound model is published", version, error)
        return [1.0 / n_actions] * n_actions, "uniform: the model's probabilities were not finite"

    # -- outcomes --------------------------------------------------------------

    def reward(self, event_id: str, value: float) -> bool:
        """Record a reward for the shown action; returns True if it came too late to learn.

        Raises
        ------
        UnknownEventError
            When the event id was never ranked, on a store of one host; a store
            hosts share accepts it and waits for the decision from another host
            (:attr:`~banditkit.store.journaled.JournaledStore.accepts_unknown_events`).
        InvalidInputError
            When the value is not a finite number.
        """
        return self.store.add_reward(check_event_id(event_id), check_reward(value), self.clock())

    def activate(self, event_id: str) -> bool:
        """Mark a deferred event as shown; returns True if it came too late to count."""
        return self.store.activate(check_event_id(event_id), self.clock())

    # -- the learner -------------------------------------------------------------

    def apprentice_agreement(self) -> float | None:
        """Share of joined apprentice-mode events where the model's top action was the
        baseline alone (ties do not agree)."""
        metrics = self.apprentice_metrics()
        return None if metrics is None else metrics.agreement

    def apprentice_metrics(self) -> ApprenticeMetrics | None:
        """What apprentice mode has learned so far; None before its first joined event."""
        totals = self.store.get_setting(_APPRENTICE_KEY)
        if not totals or not totals["n"]:
            return None
        return ApprenticeMetrics(
            n_events=totals["n"], n_agreed=totals["agree"],
            sum_of_rewards=totals.get("rewards", 0.0),
            sum_of_imitated_rewards=totals.get("imitated", 0.0),
            started_at=totals.get("start"), last_event_at=totals.get("last"),
            last_batch=tuple(totals.get("batch", (0, 0.0, 0.0))))


def _check_excluded(excluded: Iterable[str], actions: Sequence[Action]) -> Set[str]:
    if type(excluded) is tuple and not excluded:  # the default: most exclude nothing
        return _NOTHING_EXCLUDED
    if isinstance(excluded, str):
        raise InvalidInputError("excluded must be a list of action ids, not a string")
    excluded = set(excluded)
    if not excluded:
        return excluded
    unknown = excluded - {a.id for a in actions}
    if unknown:
        raise InvalidInputError(f"excluded action ids are not among the actions: "
                                f"{sorted(unknown)}")
    return excluded
