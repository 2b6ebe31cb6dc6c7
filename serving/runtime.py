"""The engine behind the app, and the background learner thread.

Handlers reach the engine through :func:`get_engine`, never an import, so the
factory decides how many engines exist (one per app) and tests can build apps
side by side.

Config keys (``LEARNER_`` namespace)
------------------------------------
LEARNER_ENABLED : bool, default=True
    Run ``engine.process_due()`` in a background thread of this process. Turn it
    off in all but one process when several share a data directory.
LEARNER_INTERVAL_SECONDS : float, default=1.0
    Pause between learner steps.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from banditkit.engine import Engine
    from serving.metrics import Metrics

__all__ = ["BackgroundLearner", "get_engine", "get_learner"]

_logger = logging.getLogger(__name__)
ENGINE_EXTENSION = "banditkit.engine"
LEARNER_EXTENSION = "banditkit.learner"


def get_engine(app: Flask | None = None) -> Engine:
    """The app's :class:`banditkit.engine.Engine`."""
    return (app or current_app).extensions[ENGINE_EXTENSION]


def get_learner(app: Flask | None = None) -> BackgroundLearner | None:
    """The app's background learner, or None when disabled."""
    return (app or current_app).extensions.get(LEARNER_EXTENSION)


class BackgroundLearner:
    """Calls ``engine.process_due()`` every ``interval_seconds`` in a daemon thread.

    Learning is not thread-safe in Vowpal Wabbit, so the engine confines it to
    ``process_due``; this thread is its only caller in the process. A failing
    step is logged and counted, and the thread carries on.

    Parameters
    ----------
    engine : Engine
        The engine to step.
    interval_seconds : float, default=1.0
        Pause between steps.
    metrics : Metrics, default=None
        Where steps and errors are counted.
    """

    def __init__(
        self, *, engine: Engine, interval_seconds: float = 1.0, metrics: Metrics | None = None
    ) -> None:
        self.engine = engine
        self.interval_seconds = interval_seconds
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="banditkit-learner", daemon=True
        )
        self._thread.start()

    def step(self) -> int:
        """Run one learner step now; returns the number of events processed."""
        processed = self.engine.process_due()
        if self.metrics is not None:
            self.metrics.learner_step(processed)
        return processed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                _logger.exception("learner step failed")
                if self.metrics is not None:
                    self.metrics.learner_errors.inc()
            self._stop.wait(self.interval_seconds)

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
