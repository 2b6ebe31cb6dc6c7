"""The engine behind the app, and the learner runner.

Handlers reach the engine through :func:`get_engine`, never an import, so the
factory decides how many engines exist (one per app) and tests can build apps
side by side.

:class:`BackgroundLearner` is the one learner runner: a thread of the app
(``LEARNER_ENABLED``, every ``LEARNER_`` key in :mod:`serving.config`), or
the loop of the learner process of ``banditkit serve``
(:mod:`serving.learner_process`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from flask import Flask, current_app

from banditkit.store.journaled import LeaseLostError

if TYPE_CHECKING:
    from banditkit.engine import Engine
    from banditkit.rows import RowEngine
    from serving.metrics import Metrics

__all__ = ["BackgroundLearner", "LearnerStep", "get_engine", "get_learner", "learner_health"]

_T = TypeVar("_T")
#: Steps failing in a row before readiness reports the learner as failing: one
#: failure may be a passing lock timeout, three in a row are not.
FAILING_STEPS = 3

_logger = logging.getLogger(__name__)
ENGINE_EXTENSION = "banditkit.engine"
LEARNER_EXTENSION = "banditkit.learner"


def get_engine(app: Flask | None = None) -> Engine:
    """The app's :class:`banditkit.engine.Engine`."""
    return (app or current_app).extensions[ENGINE_EXTENSION]


def get_learner(app: Flask | None = None) -> BackgroundLearner | None:
    """The app's background learner, or None when disabled."""
    return (app or current_app).extensions.get(LEARNER_EXTENSION)


class LearnerStep(NamedTuple):
    """What one learner step did: events joined and row pages joined."""

    joined: int
    pages_joined: int


class BackgroundLearner:
    """Steps the engines' learners: in a daemon thread of the app (:meth:`start`), or
    in the learner process of ``banditkit serve`` (:meth:`run`, called by
    :func:`serving.learner_process.run_learner`).

    Learning is not thread-safe in Vowpal Wabbit, so the engines confine it to
    ``process_due``; this runner is its only caller. A step joins and learns the
    single-slot engine's due events, then the row engine's pages (adopting the
    main loop's settings first, unless told not to). A failing step is logged,
    counted and kept for readiness, and the runner carries on.

    Parameters
    ----------
    engine : Engine
        The single-slot engine to step.
    rows : RowEngine, default=None
        The row engine to step after it.
    follow : bool, default=True
        The row engine adopts ``engine``'s settings (all but the policy) each step.
    interval_seconds : float, default=1.0
        Pause between steps.
    metrics : Metrics, default=None
        Where steps and errors are counted.
    health_path : path, default=None
        A file rewritten after every step with the learner's health, for the
        readiness of processes that do not run it (:func:`learner_health`).

    Attributes
    ----------
    failures_in_a_row : int
        Steps that raised since the last one that succeeded.
    last_error : str or None
        The latest failed step's error.
    """

    def __init__(
        self, *, engine: Engine, rows: RowEngine | None = None, follow: bool = True,
        interval_seconds: float = 1.0, metrics: Metrics | None = None,
        health_path: Path | None = None,
    ) -> None:
        self.engine = engine
        self.rows = rows
        self.follow = follow
        self.interval_seconds = interval_seconds
        self.metrics = metrics
        self.health_path = health_path
        self.failures_in_a_row = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="banditkit-learner", daemon=True
        )
        self._thread.start()

    def step(self) -> LearnerStep:
        """Run one learner step now: join, log and learn what is due in both loops."""
        joined = self.engine.process_due()
        pages = 0
        if self.rows is not None:
            if self.follow:
                self.rows.follow(self.engine.settings)
            pages = self.rows.process_due()
        if self.metrics is not None:
            self.metrics.learner_step(joined)
        return LearnerStep(joined, pages)

    def guarded(self, step: Callable[[], _T]) -> _T | None:
        """Run ``step``; a failure is logged, counted and kept for readiness, not raised.

        Returns what ``step`` returned, or None when it raised.
        """
        try:
            result = step()
        except LeaseLostError:
            raise  # not a failed step: this learner must stop (run)
        except Exception as error:
            _logger.exception("learner step failed")
            if self.metrics is not None:
                self.metrics.learner_errors.inc()
            self.failures_in_a_row += 1
            self.last_error = f"{type(error).__name__}: {error}"
            result = None
        else:
            self.failures_in_a_row = 0
        if self.health_path is not None:
            _write_health(self.health_path, {
                "at": time.time(), "pid": os.getpid(), "interval_seconds": self.interval_seconds,
                "failures_in_a_row": self.failures_in_a_row, "last_error": self.last_error})
        return result

    def health(self) -> str:
        """``"ok"``, or ``"failed: ..."`` naming why readiness should fail."""
        if not self.alive:
            return "failed: learner thread is not running"
        return _failing(self.failures_in_a_row, self.last_error) or "ok"

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set: a guarded step, then ``stop.wait(interval_seconds)``.

        Waiting on the event, not sleeping, makes a stop take effect at once
        between steps. A step that joined anything is logged. A learner whose
        lease passed to another (:class:`~banditkit.store.journaled.LeaseLostError`)
        sets ``stop`` and returns.
        """
        while not stop.is_set():
            try:
                done = self.guarded(self.step)
            except LeaseLostError as error:
                _logger.warning("%s; learner stopping", error)
                stop.set()
                return
            if done is not None and any(done) and _logger.isEnabledFor(logging.INFO):
                _logger.info(json.dumps({"message": "learner step", "joined": done.joined,
                                         "pages_joined": done.pages_joined,
                                         "model_version": self.engine.model_version}))
            stop.wait(self.interval_seconds)

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def learner_health(path: Path) -> str:
    """The health of the learner process writing ``path``: ``"ok"`` or ``"failed: ..."``.

    Failed when its latest steps failed in a row, or when it wrote nothing for
    the longer of a minute and 30 of its intervals (it is stuck or gone, and
    its supervisor did not bring it back). No file yet: a learner starting.
    """
    try:
        health = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return "ok"
    except ValueError:
        return f"failed: unreadable learner health file {path}"
    silent = time.time() - float(health["at"])
    if silent > max(60.0, 30 * float(health["interval_seconds"])):
        return f"failed: the learner wrote no step for {silent:.0f} s"
    return _failing(int(health["failures_in_a_row"]), health.get("last_error")) or "ok"


def _failing(failures_in_a_row: int, last_error: str | None) -> str | None:
    if failures_in_a_row < FAILING_STEPS:
        return None
    return f"failed: the learner's last {failures_in_a_row} steps failed: {last_error}"


def _write_health(path: Path, health: dict) -> None:
    """Replace ``path`` atomically, so a reader never sees half of it."""
    partial = Path(path).with_name(f".{Path(path).name}.{os.getpid()}")
    partial.write_text(json.dumps(health))
    os.replace(partial, path)
