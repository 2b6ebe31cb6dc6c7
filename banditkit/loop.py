"""What every engine shares: settings, snapshots for ranking, and the learner step.

The single-slot :class:`~banditkit.engine.Engine` and the row
:class:`~banditkit.rows.RowEngine` differ in how they decide, join and which VW
reduction learns; the loop around them is one (docs/architecture.md §4): settings live in
the store, rankers read the latest published snapshot, and one learner joins due
events, appends them to the dsjson log, learns them in join order and publishes
a snapshot every ``model_update_seconds``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import gc
import json
import logging
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from banditkit import __version__
from banditkit.dsjson import JoinedLine
from banditkit.errors import InvalidInputError, NotFittedError
from banditkit.eventlog import EventLogWriter
from banditkit.settings import LoopSettings
from banditkit.store import DecisionStore, PendingEvent, RewardRecord, Unjoinable

__all__ = [
    "MODELS_KEPT",
    "LoopEngine",
]

#: Newest model snapshots always kept (besides each day's last, see
#: :meth:`LoopEngine._prune_models`).
MODELS_KEPT = 48

_SETTINGS_KEY = "loop_settings"
# When and how the model that ranks now began: a fresh model, a reset or an import.
_LINEAGE_KEY = "model_lineage"
_log = logging.getLogger(__name__)
# The log locks each thread holds (LoopEngine._log_locked), by lock file.
_log_locks_held = threading.local()
# What a malformed decision record raises when it is joined (JSONDecodeError is a
# ValueError).
_RECORD_ERRORS = (ValueError, KeyError, TypeError, IndexError)


class LoopEngine(abc.ABC):
    """Base of the engines: settings, snapshot refresh, learner step and publishing.

    Subclasses implement the hooks: which learner a policy builds, how due
    events are joined into dsjson lines, and (optionally) what to record about
    the lines learned.

    Parameters
    ----------
    store : DecisionStore
        Decisions, rewards, models and settings.
    log : EventLogWriter
        Where joined events are appended.
    models_dir : path
        Where each published model is also written as a VW model file.
    clock : callable, default=time.time
        Returns the current time in Unix seconds (tests pass a fake one).
    refresh_seconds : float, default=1.0
        How often ranking looks for new settings and a new snapshot.
    """

    def __init__(self, *, store: DecisionStore, log: EventLogWriter, models_dir: Path,
                 clock: Callable[[], float] = time.time, refresh_seconds: float = 1.0) -> None:
        self.store = store
        self.log = log
        self.models_dir = models_dir
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._rank_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._learn_lock = threading.Lock()
        self._ranker: Any = None
        self._ranker_version = -1
        self._refreshed_at = -np.inf
        self._model_token = b""
        self._settings: LoopSettings | None = None
        self._trainer: Any = None
        self._base_version = 0  # the snapshot the trainer grew from, or last published
        self._through_seq = 0
        self._published_at = 0.0
        self._learned_since_publish = 0

    # -- hooks -------------------------------------------------------------------

    @abc.abstractmethod
    def _learner_args(self, settings: LoopSettings) -> str:
        """The VW arguments the settings ask for."""

    @abc.abstractmethod
    def _new_learner(self, args: str, model_data: bytes | None = None) -> Any:
        """A learner with ``learn_dsjson`` and ``to_bytes`` (a snapshot when data is given)."""

    @abc.abstractmethod
    def _join(self, events: list[PendingEvent], rewards: dict[str, list[RewardRecord]],
              settings: LoopSettings) -> list[JoinedLine]:
        """One joined line per due event."""

    def _observe_learned(self, joined: list[JoinedLine]) -> None:  # noqa: B027 - optional hook
        """Called with the joined lines of each learner step, in join order."""

    def _check_model(self, args: str, data: bytes) -> None:
        """Raise :class:`~banditkit.errors.InvalidInputError` unless ``data`` is a model
        this engine can rank with under ``args``; engines that import models override it."""
        raise InvalidInputError(f"{type(self).__name__} does not import models")

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
        args = self._learner_args(settings)
        self._new_learner(args).to_bytes()  # builds the workspace: validates the arguments
        with self._learn_lock:
            previous = self._load_settings()
            self.store.put_setting(_SETTINGS_KEY, settings.to_dict())
            self._settings = settings
            if self._learner_args(previous) != args:
                self._start_trainer(self._new_learner(args),
                                    through_seq=self.store.last_join_seq(),
                                    published_at=self.clock())
                self._publish(origin="policy")
        self._refreshed_at = -np.inf

    def _load_settings(self) -> LoopSettings:
        stored = self.store.get_setting(_SETTINGS_KEY)
        return LoopSettings() if stored is None else LoopSettings.from_dict(stored)

    def _refresh(self) -> None:
        """Pick up settings and the latest snapshot, at most every ``refresh_seconds``,
        and at once when the model token changed (an import, a reset, a new policy)."""
        now = time.monotonic()
        token = self.store.model_token()
        if now - self._refreshed_at < self.refresh_seconds and token == self._model_token:
            return
        # One thread reloads; the others that saw the token change wait for it, so
        # no decision made after an import ranks with the model it replaced.
        with self._refresh_lock:
            if now - self._refreshed_at < self.refresh_seconds and token == self._model_token:
                return  # another thread reloaded meanwhile
            self._refreshed_at = now
            self._settings = self._load_settings()
            version = self.store.latest_model_version()
            if version != self._ranker_version or self._ranker is None:
                snapshot = self.store.latest_model()
                if snapshot is None:
                    ranker = self._new_learner(self._learner_args(self._settings))
                else:
                    _check_version(snapshot.banditkit_version)
                    ranker = self._new_learner(snapshot.policy_args, snapshot.data)
                with self._rank_lock:
                    self._ranker, self._ranker_version = ranker, version
            self._model_token = token

    @property
    def model_version(self) -> str:
        self._refresh()
        return str(self._ranker_version)

    # -- the learner ---------------------------------------------------------------

    def process_due(self, *, force_publish: bool = False, batch_size: int = 2000) -> int:
        """Join due events, log and learn them; publish a snapshot when its interval passed.

        Returns the number of events joined.
        """
        with self._learn_lock:
            settings = self._load_settings()
            self._settings = settings
            trainer = self._ensure_trainer(settings)
            with self._log_locked():
                self._log_unlogged()  # what a stopped learner joined but may not have logged
            self._learn_stored(trainer)  # joined before and not learned (after a restart)
            joined = 0
            while batch_joined := self._process_batch(trainer, settings, batch_size):
                joined += batch_joined
            interval_passed = (self.clock() - self._published_at
                               >= settings.model_update_seconds)
            if self._learned_since_publish and (interval_passed or force_publish):
                self._publish()
            self.store.delete_joined_before(
                self.clock() - settings.log_retention_days * 86400.0, self._through_seq)
            return joined

    def _process_batch(self, trainer: Any, settings: LoopSettings, batch_size: int) -> int:
        """Join, log and learn one batch of due events; returns how many (0: none was due).

        The garbage collector pauses for the batch (:func:`_collector_paused`), one
        batch at a time, so that a long backlog does not hold it off for long.
        """
        with _collector_paused(), self._log_locked():
            return self._join_log_learn(trainer, settings, batch_size)

    def _join_log_learn(self, trainer: Any, settings: LoopSettings, batch_size: int) -> int:
        """:meth:`_process_batch`'s work, in a call of its own: the batch is freed when
        it returns, before the collector resumes, which then has nothing to scan."""
        entry, batch = self.store.join_due(
            now=self.clock(), wait_seconds=settings.reward_wait_seconds,
            grace_seconds=settings.orphan_grace_seconds, limit=batch_size,
            join=lambda events, rewards: self._join_each(events, rewards, settings))
        if not batch:
            return 0
        self.log.append([(item.timestamp, item.line) for _, item in batch])
        self.store.mark_logged(entry)
        if batch[0][0] == self._through_seq + 1:
            self._learn(trainer, batch)
        else:  # another process joined in between (one learner is the rule)
            self._learn_stored(trainer)
        return len(batch)

    def _join_each(self, events: list[PendingEvent], rewards: dict[str, list[RewardRecord]],
                   settings: LoopSettings) -> list[JoinedLine | Unjoinable]:
        """:meth:`_join`, or when the batch fails, each event alone: a record that cannot
        be joined (a decision a faulty process wrote) is :class:`Unjoinable` and kept
        aside by the store, and the others go on."""
        try:
            return self._join(events, rewards, settings)
        except _RECORD_ERRORS:
            pass
        joined: list[JoinedLine | Unjoinable] = []
        for event in events:
            try:
                joined.extend(self._join([event], rewards, settings))
            except _RECORD_ERRORS as error:
                _log.error("event %r cannot be joined (%s: %s); kept in journal_rejects",
                           event.event_id, type(error).__name__, error)
                joined.append(Unjoinable(f"{type(error).__name__}: {error}"))
        return joined

    def _log_unlogged(self) -> None:
        """Write joined lines the log may lack; those already there are not written twice.

        A learner killed between the join's commit and the log's append left
        none, some or all of its batch at the end of the partitions, so only
        their ends are read.
        """
        entries = self.store.unlogged()
        if not entries:
            return
        ids = {line: json.loads(line)["EventId"] for e in entries for _, line in e.lines}
        candidates = set(ids.values())
        present: set[str] = set()
        for timestamp in {t for e in entries for t, _ in e.lines}:
            present |= self.log.event_ids_at_end(self.log.partition(timestamp), candidates)
        for entry in entries:
            self.log.append([(t, line) for t, line in entry.lines if ids[line] not in present])
            self.store.mark_logged(entry.id)

    def _ensure_trainer(self, settings: LoopSettings) -> Any:
        """The one learning model: the latest snapshot plus every event joined after it.

        When another process changed the policy, the learner follows: it takes the
        fresh snapshot that process published, or starts a fresh model itself.
        """
        args = self._learner_args(settings)
        if self._trainer is not None and (
                self._trainer.args != args
                or self.store.latest_model_version() != self._base_version):
            self._trainer = None  # another process published (an import): follow it
        if self._trainer is None:
            snapshot = self.store.latest_model()
            if snapshot is not None and snapshot.policy_args == args:
                _check_version(snapshot.banditkit_version)
                self._start_trainer(self._new_learner(args, snapshot.data),
                                    through_seq=snapshot.through_seq,
                                    published_at=snapshot.created_at,
                                    base_version=snapshot.version)
            elif snapshot is None:
                self._start_trainer(self._new_learner(args), through_seq=0,
                                    published_at=self.clock())
            else:  # the policy changed and nobody published its fresh model yet
                self._start_trainer(self._new_learner(args),
                                    through_seq=self.store.last_join_seq(),
                                    published_at=self.clock())
                self._publish(origin="policy")
        return self._trainer

    def _start_trainer(self, trainer: Any, *, through_seq: int, published_at: float,
                       base_version: int = 0) -> None:
        self._trainer = trainer
        self._base_version = base_version
        self._through_seq = through_seq
        self._published_at = published_at
        self._learned_since_publish = 0

    def _learn_stored(self, trainer: Any) -> None:
        """Learn every line the store joined after the trainer's last one."""
        self._learn(trainer, ((seq, JoinedLine.of_record(line, json.loads(line)))
                              for seq, line in self.store.joined_lines_after(self._through_seq)))

    def _learn(self, trainer: Any, joined: Iterable[tuple[int, JoinedLine]]) -> None:
        """Learn ``(join_seq, joined line)`` in join order, past what the trainer has."""
        learned = []
        learn = trainer.learn_dsjson
        for seq, item in joined:
            if seq <= self._through_seq:
                continue
            learned.append(item)
            if item.learning_mode != "logging_only" and learn(item.line,
                                                              skip_learn=item.skip_learn):
                self._learned_since_publish += 1
            self._through_seq = seq
        if learned:
            self._observe_learned(learned)

    def publish(self) -> int:
        """Publish the learner's current model now; returns its version, or 0 when
        another process published a model meanwhile (the learner follows it)."""
        with self._learn_lock:
            self._ensure_trainer(self._load_settings())
            return self._publish()

    def _publish(self, *, origin: str = "learner") -> int:
        """Publish the trainer's model. The learner's own snapshots are compared and
        published: refused when another process published since the trainer's base
        (an import), and then the trainer is dropped, so the next step grows from
        that model instead of overwriting it."""
        trainer = self._trainer
        assert trainer is not None
        version = self._store_model(
            trainer.to_bytes(), args=trainer.args, through_seq=self._through_seq,
            n_updates=_updates_learned(trainer), origin=origin,
            replaces=self._base_version if origin == "learner" else None)
        if not version:
            _log.info("a model was published by another process since version %s; the "
                      "learner continues from it", self._base_version)
            self._trainer = None
            return 0
        self._base_version = version
        if origin != "learner":
            self.store.put_setting(_LINEAGE_KEY, {"started_at": self.clock(), "origin": origin})
        self._published_at = self.clock()
        self._learned_since_publish = 0
        return version

    def _store_model(self, data: bytes, *, args: str, through_seq: int, n_updates: int,
                     origin: str, replaces: int | None) -> int:
        """Keep a snapshot in the store and as a file; returns its version (0: refused)."""
        version = self.store.publish_model(
            created_at=self.clock(), policy_args=args, banditkit_version=__version__,
            through_seq=through_seq, n_updates=n_updates, data=data, origin=origin,
            replaces=replaces)
        if not version:
            return 0
        self.models_dir.mkdir(parents=True, exist_ok=True)
        path = self.models_dir / f"model-v{version}.vw"
        path.write_bytes(data)
        (self.models_dir / "latest.txt").write_text(path.name + "\n")
        self._refreshed_at = -np.inf
        self._prune_models()
        return version

    # -- model administration (Personalizer's model routes) -------------------------

    def model_bytes(self) -> tuple[int, bytes]:
        """``(version, VW model bytes)`` of the model that ranks now; version 0 and a
        fresh model's bytes before the first snapshot."""
        snapshot = self.store.latest_model()
        if snapshot is None:
            return 0, self._new_learner(self._learner_args(self._load_settings())).to_bytes()
        return snapshot.version, snapshot.data

    def replace_model(self, data: bytes | None, *, origin: str) -> int:
        """Make ``data`` (None: a fresh model for the policy in force) the model that
        ranks and learns; returns its version.

        Nothing is published before the model is checked (:meth:`_check_model`),
        so a bad file leaves the current model ranking. Every process's next
        decision uses the new one (the store's :meth:`~DecisionStore.model_token`),
        and the learner continues from it with the events joined afterwards.

        Parameters
        ----------
        data : bytes or None
            A VW model saved under the policy in force.
        origin : {"import", "reset"}
            Recorded with the snapshot and as the start of the model's lineage.

        Raises
        ------
        InvalidInputError
            When ``data`` is not such a model, naming why.
        """
        with self._learn_lock:
            args = self._learner_args(self._load_settings())
            if data is None:
                data = self._new_learner(args).to_bytes()
            else:
                self._check_model(args, data)
            version = self._store_model(data, args=args, through_seq=self.store.last_join_seq(),
                                        n_updates=0, origin=origin, replaces=None)
            self.store.put_setting(_LINEAGE_KEY, {"started_at": self.clock(), "origin": origin})
            self._trainer = None  # the next learner step starts from the new snapshot
        return version

    def model_times(self) -> tuple[datetime, datetime]:
        """``(created, last modified)`` of the model that ranks now, in UTC: when its
        lineage began (a fresh model, a new policy, a reset, an import) and when
        its latest snapshot was published; both now before the first snapshot."""
        versions = self.store.model_versions()
        if not versions:
            now = self.clock()
            return _utc(now), _utc(now)
        lineage = self.store.get_setting(_LINEAGE_KEY) or {}
        started = lineage.get("started_at", versions[0][1])
        return _utc(started), _utc(versions[-1][1])

    def purge_log(self) -> tuple[int, int]:
        """Delete the joined log and every event, pending or joined; returns ``(events,
        partitions)`` deleted. Models and settings stay.

        Holds the log lock (:meth:`_log_locked`), which the learner holds while it
        joins, appends and marks a batch, so no batch is half in the log.
        """
        with self._log_locked():
            events = self.store.purge_events()
            partitions = 0
            root = Path(self.log.root)
            for folder in (root, root.with_name(f"{root.name}-rejects")):
                if folder.is_dir():
                    partitions += sum(1 for entry in folder.iterdir() if entry.is_dir())
                    shutil.rmtree(folder)
        return events, partitions

    @contextlib.contextmanager
    def _log_locked(self) -> Iterator[None]:
        """An exclusive lock on ``<log root>.lock``, across threads and processes:
        the learner holds it from joining a batch to marking it logged, a log
        purge while it deletes (flock locks per open file, so two threads of one
        process exclude each other too). Re-entrant within a thread."""
        root = Path(self.log.root)
        path = root.with_name(f"{root.name}.lock")
        held = _log_locks_held.__dict__.setdefault("paths", set())
        if path in held:  # this thread holds it already (another engine of the same log)
            yield
            return
        root.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.add(path)
            yield
        finally:
            held.discard(path)
            os.close(fd)  # releases the lock

    def _prune_models(self) -> None:
        """Keep the newest :data:`MODELS_KEPT` snapshots (rollback, comparing recent
        versions) and each day's last one within the log retention (evaluating a
        past day's model on its logs); drop the rest, rows and files."""
        settings = self._settings or self._load_settings()
        versions = self.store.model_versions()
        if len(versions) <= MODELS_KEPT:
            return
        keep = {version for version, _ in versions[-MODELS_KEPT:]}
        cutoff = self.clock() - settings.log_retention_days * 86400.0
        last_of_day = {int(at // 86400): version for version, at in versions if at >= cutoff}
        keep.update(last_of_day.values())
        dropped = [version for version, _ in versions if version not in keep]
        self.store.delete_models(dropped)
        for version in dropped:
            (self.models_dir / f"model-v{version}.vw").unlink(missing_ok=True)

    def latest_model_path(self) -> Path | None:
        version = self.store.latest_model_version()
        return self.models_dir / f"model-v{version}.vw" if version else None

    def close(self) -> None:
        self.store.close()

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (a learner batch).

    A batch builds tens of thousands of containers (journal lines, rows,
    decoded decisions, joined records) that live until it is learned, so the
    collector kept running full passes over the whole heap: about a tenth of
    the learner step (``benchmarks/bench_loop.py``). They form no cycles;
    reference counting frees them, and anything cyclic is collected after the
    block. Left disabled when it was disabled before.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _updates_learned(trainer: Any) -> int:
    """The trainer's ``n_updates_``, or 0 before its first update."""
    try:
        return trainer.n_updates_
    except NotFittedError:
        return 0


def _utc(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


def _check_version(saved_version: str) -> None:
    if saved_version != __version__:
        warnings.warn(f"model was saved by banditkit {saved_version}, this is {__version__}",
                      stacklevel=3)
