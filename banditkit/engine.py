"""The decision loop: rank -> log -> (activate) -> reward -> join -> learn -> snapshot.

One :class:`Engine` per process. Ranking uses a read-only snapshot of the latest
published model and never waits for learning; :meth:`Engine.process_due` is the
learner step (one process runs it, e.g. a background thread of the server),
which joins due events, appends them to the dsjson log, learns them in order and
publishes a snapshot every ``model_update_seconds`` (DESIGN.md §4).
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from banditkit import __version__
from banditkit.errors import InvalidInputError
from banditkit.eventlog import EventLogWriter, dsjson_context, iso_timestamp
from banditkit.join import join_event, joined_line
from banditkit.sampling import new_event_id, rank_order, sample_index
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, RewardRecord, Store
from banditkit.types import (
    FLOAT32_MAX,
    Action,
    Decision,
    Features,
    RankedAction,
    check_actions,
    check_features,
)
from banditkit.vw import VWLearner

__all__ = ["Engine", "RankRequest"]

MAX_EVENT_ID_LENGTH = 256
_SETTINGS_KEY = "loop_settings"
_APPRENTICE_KEY = "apprentice_agreement"


@dataclass(frozen=True)
class RankRequest:
    """One decision of a batch (e.g. one title of a page).

    ``extra`` is stored with the decision under ``_banditkit`` in the log
    (title id, variant ids, surface...).
    """

    context: Features
    actions: Sequence[Action]
    event_id: str | None = None
    excluded: Iterable[str] = ()
    defer_activation: bool = False
    extra: dict = field(default_factory=dict)


class Engine:
    """Ranks, records rewards and learns, over one data directory.

    Build it with :meth:`open`. Thread-safe: rank, reward and activate may be
    called from many threads; :meth:`process_due` from one learner at a time.

    Parameters
    ----------
    store : Store
        Decisions, rewards, models and settings.
    log : EventLogWriter
        Where joined events are appended.
    models_dir : path
        Where each published model is also written as a VW model file.
    clock : callable, default=time.time
        Returns the current time in Unix seconds (tests pass a fake one).
    max_actions : int, default=256
        Largest number of actions accepted in one decision.
    """

    def __init__(self, *, store: Store, log: EventLogWriter, models_dir: Path,
                 clock: Callable[[], float] = time.time, max_actions: int = 256,
                 refresh_seconds: float = 1.0) -> None:
        self.store = store
        self.log = log
        self.models_dir = models_dir
        self.clock = clock
        self.max_actions = max_actions
        self.refresh_seconds = refresh_seconds
        self._rank_lock = threading.Lock()
        self._learn_lock = threading.Lock()
        self._ranker: VWLearner | None = None
        self._ranker_version = -1
        self._refreshed_at = -np.inf
        self._settings: LoopSettings | None = None
        self._trainer: VWLearner | None = None
        self._through_seq = 0
        self._published_at = 0.0
        self._learned_since_publish = 0
        self._journal_checked = False

    @classmethod
    def open(cls, data_dir: str | Path, *, settings: LoopSettings | None = None,
             clock: Callable[[], float] = time.time, synchronous: str = "NORMAL",
             max_actions: int = 256) -> Engine:
        """Open (or create) the engine of a data directory.

        Parameters
        ----------
        settings : LoopSettings, default=None
            Replace the persisted settings; None keeps them (defaults on first use).
        """
        data_dir = Path(data_dir)
        store = Store(path=data_dir / "banditkit.sqlite3", synchronous=synchronous)
        engine = cls(store=store, log=EventLogWriter(root=data_dir / "logs"),
                     models_dir=data_dir / "models", clock=clock, max_actions=max_actions)
        if settings is not None:
            engine.update_settings(settings)
        return engine

    # -- settings and snapshots ----------------------------------------------------

    @property
    def settings(self) -> LoopSettings:
        self._refresh()
        assert self._settings is not None
        return self._settings

    def update_settings(self, settings: LoopSettings) -> None:
        """Persist new settings; a new policy starts a fresh model, as Personalizer did."""
        if not isinstance(settings, LoopSettings):
            raise InvalidInputError(
                f"settings must be LoopSettings, got {type(settings).__name__}")
        VWLearner(args=settings.learner_args()).predict_one({}, [{}])  # validates the args
        with self._learn_lock:
            previous = self._load_settings()
            self.store.put_setting(_SETTINGS_KEY, settings.to_dict())
            self._settings = settings
            if previous.learner_args() != settings.learner_args():
                self._start_trainer(VWLearner(args=settings.learner_args()),
                                    through_seq=self.store.last_join_seq(),
                                    published_at=self.clock())
                self._publish()
        self._refreshed_at = -np.inf

    def _load_settings(self) -> LoopSettings:
        stored = self.store.get_setting(_SETTINGS_KEY)
        return LoopSettings() if stored is None else LoopSettings.from_dict(stored)

    def _refresh(self) -> None:
        """Pick up settings and the latest snapshot, at most every ``refresh_seconds``."""
        now = time.monotonic()
        if now - self._refreshed_at < self.refresh_seconds:
            return
        self._refreshed_at = now
        self._settings = self._load_settings()
        version = self.store.latest_model_version()
        if version != self._ranker_version or self._ranker is None:
            snapshot = self.store.latest_model()
            if snapshot is None:
                ranker = VWLearner(args=self._settings.learner_args())
            else:
                _check_version(snapshot.banditkit_version)
                ranker = VWLearner(args=snapshot.policy_args, model_data=snapshot.data)
            with self._rank_lock:
                self._ranker, self._ranker_version = ranker, version

    @property
    def model_version(self) -> str:
        self._refresh()
        return str(self._ranker_version)

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
        request = RankRequest(context=context, actions=actions, event_id=event_id,
                              excluded=excluded, defer_activation=defer_activation,
                              extra=extra or {})
        return self.rank_many([request])[0]

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
        checked_contexts: set[int] = set()  # a page shares one context: check it once
        for request in requests:
            if id(request.context) not in checked_contexts:
                check_features(request.context, name="context")
                checked_contexts.add(id(request.context))
            decision, record = self._decide(request, settings, timestamp)
            if decision.event_id in seen_ids:
                raise InvalidInputError(f"event id {decision.event_id!r} appears twice")
            seen_ids.add(decision.event_id)
            decisions.append(decision)
            pending.append(PendingEvent(event_id=decision.event_id, created_at=now,
                                        deferred=bool(request.defer_activation),
                                        activated_at=None,
                                        decision=record))
        self.store.insert_events(pending)
        return decisions

    def _decide(self, request: RankRequest, settings: LoopSettings,
                timestamp: str) -> tuple[Decision, str]:
        """One decision and its dsjson record (context validated by the caller)."""
        actions = check_actions(request.actions, max_actions=self.max_actions)
        event_id = _check_event_id(request.event_id)
        excluded = _check_excluded(request.excluded, actions)
        eligible = [a for a in actions if a.id not in excluded]
        if not eligible:
            raise InvalidInputError("every action is excluded; at least one must remain")
        # The features are encoded once, for the learner and for the log.
        shared = _compact_json(dsjson_context(request.context, [a.features for a in eligible]))
        with self._rank_lock:
            ranker, version = self._ranker, self._ranker_version
            assert ranker is not None
            model_pmf = ranker.predict_dsjson('{"c":' + shared + "}", n_actions=len(eligible))
        extra = {"actionIds": [a.id for a in eligible], **request.extra}
        if excluded:
            extra["excludedActionIds"] = [a.id for a in actions if a.id in excluded]
        if settings.learning_mode == "online":
            pmf = model_pmf
            chosen = sample_index(pmf, event_id)
        else:  # apprentice and logging-only show the baseline
            pmf = np.zeros(len(eligible))
            pmf[0] = 1.0
            chosen = 0
            extra["learningMode"] = settings.learning_mode
            extra["modelAgreesWithBaseline"] = bool(np.argmax(model_pmf) == 0)
        order = rank_order(pmf, chosen)
        record = {
            "EventId": event_id,
            "Timestamp": timestamp,
            "Version": "1",
            "VWState": {"m": str(version)},
            "a": [i + 1 for i in order],
            "p": [float(pmf[i]) for i in order],
            "_banditkit": extra,
        }
        encoded = _compact_json(record)[:-1] + ',"c":' + shared + "}"
        ranking = tuple(RankedAction(eligible[i].id, float(pmf[i])) for i in order) + tuple(
            RankedAction(a.id, 0.0) for a in actions if a.id in excluded)
        decision = Decision(event_id=event_id, ranking=ranking,
                            reward_action_id=eligible[chosen].id, model_version=str(version))
        return decision, encoded

    # -- outcomes --------------------------------------------------------------

    def reward(self, event_id: str, value: float) -> bool:
        """Record a reward for the shown action; returns True if it came too late to learn.

        Raises
        ------
        UnknownEventError
            When the event id was never ranked.
        InvalidInputError
            When the value is not a finite number.
        """
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not abs(value) <= FLOAT32_MAX):
            raise InvalidInputError(
                f"reward value must be a finite number within ±3.4e38, got {value!r}")
        return self.store.add_reward(_check_event_id(event_id), float(value), self.clock())

    def activate(self, event_id: str) -> bool:
        """Mark a deferred event as shown; returns True if it came too late to count."""
        return self.store.activate(_check_event_id(event_id), self.clock())

    # -- the learner -------------------------------------------------------------

    def process_due(self, *, force_publish: bool = False, batch_size: int = 2000) -> int:
        """Join due events, log and learn them; publish a snapshot when its interval passed.

        Returns the number of events joined.
        """
        with self._learn_lock:
            settings = self._load_settings()
            self._settings = settings
            trainer = self._ensure_trainer(settings)
            self._flush_journal()
            joined = 0
            while True:
                ids = self.store.join_due(
                    now=self.clock(), wait_seconds=settings.reward_wait_seconds,
                    limit=batch_size, join=lambda events, rewards: self._join(
                        events, rewards, settings))
                if not ids:
                    break
                joined += len(ids)
                self._flush_journal()
            self._learn_joined(trainer, settings)
            interval_passed = (self.clock() - self._published_at
                               >= settings.model_update_seconds)
            if self._learned_since_publish and (interval_passed or force_publish):
                self._publish()
            self.store.delete_joined_before(
                self.clock() - settings.log_retention_days * 86400.0, self._through_seq)
            return joined

    @staticmethod
    def _join(events: list[PendingEvent], rewards: dict[str, list[RewardRecord]],
              settings: LoopSettings) -> list[tuple[str, str]]:
        return [joined_line(event, join_event(event, rewards.get(event.event_id, []), settings))
                for event in events]

    def _flush_journal(self) -> None:
        """Write journaled lines to the log; after a crash, only those not yet there."""
        for entry in self.store.journal():
            lines = entry.lines
            if not self._journal_checked:  # first flush of this process: maybe after a crash
                present: set[str] = set()
                for timestamp in {t for t, _ in lines}:
                    present |= self.log.event_ids_in(self.log.partition(timestamp))
                lines = [(t, line) for t, line in lines
                         if json.loads(line)["EventId"] not in present]
            self.log.append(lines)
            self.store.clear_journal(entry.id)
        self._journal_checked = True

    def _ensure_trainer(self, settings: LoopSettings) -> VWLearner:
        """The one learning model: the latest snapshot plus every event joined after it.

        When another process changed the policy, the learner follows: it takes the
        fresh snapshot that process published, or starts a fresh model itself.
        """
        args = settings.learner_args()
        if self._trainer is not None and self._trainer.args != args:
            self._trainer = None
        if self._trainer is None:
            snapshot = self.store.latest_model()
            if snapshot is not None and snapshot.policy_args == args:
                _check_version(snapshot.banditkit_version)
                self._start_trainer(VWLearner(args=args, model_data=snapshot.data),
                                    through_seq=snapshot.through_seq,
                                    published_at=snapshot.created_at)
            elif snapshot is None:
                self._start_trainer(VWLearner(args=args), through_seq=0,
                                    published_at=self.clock())
            else:  # the policy changed and nobody published its fresh model yet
                self._start_trainer(VWLearner(args=args),
                                    through_seq=self.store.last_join_seq(),
                                    published_at=self.clock())
                self._publish()
        assert self._trainer is not None
        return self._trainer

    def _start_trainer(self, trainer: VWLearner, *, through_seq: int,
                       published_at: float) -> None:
        self._trainer = trainer
        self._through_seq = through_seq
        self._published_at = published_at
        self._learned_since_publish = 0

    def _learn_joined(self, trainer: VWLearner, settings: LoopSettings) -> None:
        agreement = self.store.get_setting(_APPRENTICE_KEY) or {"n": 0, "agree": 0}
        for seq, line in list(self.store.joined_lines_after(self._through_seq)):
            record = json.loads(line)
            extra = record.get("_banditkit", {})
            if extra.get("learningMode") == "apprentice" and not record.get("_skipLearn"):
                agreement["n"] += 1
                agreement["agree"] += int(extra["modelAgreesWithBaseline"])
            if extra.get("learningMode") != "logging_only" and trainer.learn_dsjson(line):
                self._learned_since_publish += 1
            self._through_seq = seq
        self.store.put_setting(_APPRENTICE_KEY, agreement)

    def publish(self) -> int:
        """Publish the learner's current model now; returns its version."""
        with self._learn_lock:
            self._ensure_trainer(self._load_settings())
            return self._publish()

    def _publish(self) -> int:
        trainer = self._trainer
        assert trainer is not None
        data = trainer.to_bytes()
        version = self.store.publish_model(
            created_at=self.clock(), policy_args=trainer.args, banditkit_version=__version__,
            through_seq=self._through_seq,
            n_updates=trainer.__dict__.get("_n_updates", 0), data=data)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        path = self.models_dir / f"model-v{version}.vw"
        path.write_bytes(data)
        (self.models_dir / "latest.txt").write_text(path.name + "\n")
        self._published_at = self.clock()
        self._learned_since_publish = 0
        self._refreshed_at = -np.inf
        return version

    def latest_model_path(self) -> Path | None:
        version = self.store.latest_model_version()
        return self.models_dir / f"model-v{version}.vw" if version else None

    def apprentice_agreement(self) -> float | None:
        """Share of joined apprentice-mode events where the model's top action was the baseline."""
        agreement = self.store.get_setting(_APPRENTICE_KEY)
        if not agreement or not agreement["n"]:
            return None
        return agreement["agree"] / agreement["n"]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _check_event_id(event_id: str | None) -> str:
    if event_id is None:
        return new_event_id()
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_EVENT_ID_LENGTH:
        raise InvalidInputError(
            f"event id must be a non-empty string of at most {MAX_EVENT_ID_LENGTH} characters, "
            f"got {event_id!r}")
    return event_id


def _check_excluded(excluded: Iterable[str], actions: Sequence[Action]) -> set[str]:
    if isinstance(excluded, str):
        raise InvalidInputError("excluded must be a list of action ids, not a string")
    excluded = set(excluded)
    unknown = excluded - {a.id for a in actions}
    if unknown:
        raise InvalidInputError(f"excluded action ids are not among the actions: "
                                f"{sorted(unknown)}")
    return excluded


def _check_version(saved_version: str) -> None:
    if saved_version != __version__:
        warnings.warn(f"model was saved by banditkit {saved_version}, this is {__version__}",
                      stacklevel=3)
