"""Prometheus metrics of the decision loop, served at ``/metrics``.

Each app owns its own :class:`prometheus_client.CollectorRegistry`, so that
several apps in one process (tests) do not collide. When
``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn with several workers), ``/metrics``
aggregates every worker's files through ``MultiProcessCollector`` instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from flask import Flask, current_app
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from banditkit.store import DecisionStore

__all__ = ["Metrics", "get_metrics", "init_app"]

_EXTENSION = "banditkit.metrics"
# Rank latency buckets in seconds: the targets are in milliseconds (docs/architecture.md §8).
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The loop's counters, histograms and gauges, in one registry.

    Parameters
    ----------
    registry : CollectorRegistry
        Where the metrics are registered.
    """

    def __init__(self, *, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rank_seconds = Histogram(
            "banditkit_rank_seconds",
            "Time spent in the engine's rank call, per request.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.decisions = Counter(
            "banditkit_decisions", "Decisions made (rank calls that succeeded).",
            ["route"], registry=registry,
        )
        self.rewards = Counter(
            "banditkit_rewards",
            "Rewards accepted; late=true when the event was already joined (not learned).",
            ["route", "late"],
            registry=registry,
        )
        self.model_fallbacks = Counter(
            "banditkit_model_fallbacks",
            "Decisions drawn uniformly because the model's probabilities were not finite.",
            registry=registry,
        )
        self.activations = Counter(
            "banditkit_activations", "Activations accepted.", ["route"], registry=registry
        )
        self.rejected = Counter(
            "banditkit_rejected_requests",
            "Requests answered with a 4xx status.",
            ["status"],
            registry=registry,
        )
        # A number, not a label per version: a label set removed in one worker
        # would stay in the multiprocess files, and numbers can be compared.
        self.model_version = Gauge(
            "banditkit_model_version",
            "Version of the model that made the latest decision (the highest over "
            "live workers).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.learner_events = Counter(
            "banditkit_learner_events",
            "Events the learner joined and learned from.",
            registry=registry,
        )
        self.learner_errors = Counter(
            "banditkit_learner_errors", "Learner steps that raised.", registry=registry
        )
        # The latest over every process: the workers never set it, and a
        # learner that was restarted stepped before its successor.
        self.learner_last_run = Gauge(
            "banditkit_learner_last_run_timestamp_seconds",
            "Unix time of the learner's last completed step (0 before the first).",
            registry=registry,
            multiprocess_mode="max",
        )
        self.created_at = time.time()
        registry.register(_JoinLag(lambda: self._last_run, since=self.created_at))
        self._route_children: dict[str, tuple] = {}
        self._last_version: str | None = None
        self._fallbacks_seen = 0
        self._last_run: float | None = None

    def ranked(self, route: str, seconds: float, *, decisions: int = 1,
               model_version: str | None = None, fallbacks: int | None = None) -> None:
        """Record a rank call of ``route``: its engine time, its decisions, the model version,
        and the engine's count of uniform fallbacks so far (``Engine.model_fallbacks``).

        Each route's labelled children are looked up once (``labels`` validates
        its arguments and takes a lock on every call).
        """
        children = self._route_children.get(route)
        if children is None:
            children = (self.rank_seconds.labels(route=route), self.decisions.labels(route=route))
            self._route_children[route] = children
        children[0].observe(seconds)
        children[1].inc(decisions)
        if model_version is not None:
            self.saw_model_version(model_version)
        if fallbacks is not None and fallbacks != self._fallbacks_seen:
            self.model_fallbacks.inc(fallbacks - self._fallbacks_seen)
            self._fallbacks_seen = fallbacks

    def saw_model_version(self, version: str) -> None:
        """Record the model version of a decision (cheap when unchanged)."""
        if version != self._last_version:
            self.model_version.set(int(version))
            self._last_version = version

    def learner_step(self, processed: int) -> None:
        """Record one completed learner step that processed ``processed`` events."""
        self.learner_events.inc(processed)
        self._last_run = time.time()
        self.learner_last_run.set(self._last_run)


_JOIN_LAG = "banditkit_join_lag_seconds"
_JOIN_LAG_HELP = (
    "Seconds since the learner last completed a step, or, before its first, since this "
    "process started: how far joining and learning may fall behind the reward wait time.")


class _JoinLag:
    """``banditkit_join_lag_seconds``, computed when ``/metrics`` is read.

    A completed learner step joined every event due when it began, so the
    time since the last one bounds how long a due event may have waited; it
    grows while the learner is stuck in a long step, stalled or dead.

    Parameters
    ----------
    last_run : callable
        Returns the Unix time of the last completed step, or None before one.
    since : float
        Unix time this process started, the bound before the first step.
    """

    def __init__(self, last_run: Callable[[], float | None], *, since: float) -> None:
        self.last_run = last_run
        self.since = since

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(_JOIN_LAG, _JOIN_LAG_HELP,
                                value=max(0.0, time.time() - (self.last_run() or self.since)))


class _WithJoinLag:
    """Every process's metrics (``PROMETHEUS_MULTIPROC_DIR``), and the learner's join lag.

    The learner process records its last completed step; the worker answering
    ``/metrics`` turns the latest one into the lag as it reads the files.
    """

    def __init__(self, collector: Collector, *, since: float) -> None:
        self.collector = collector
        self.since = since

    def collect(self) -> Iterator[Metric]:
        last_run = 0.0
        for family in self.collector.collect():
            if family.name == "banditkit_learner_last_run_timestamp_seconds":
                last_run = max((sample.value for sample in family.samples), default=0.0)
            yield family
        yield from _JoinLag(lambda: last_run, since=self.since).collect()


class _UnmatchedOutcomes:
    """``banditkit_outcomes_awaiting_decision`` and ``banditkit_orphaned_outcomes``,
    read from the stores when ``/metrics`` is read: on a store hosts share they
    count every host's outcomes, whichever host answers (0 on SQLite, which
    refuses an unknown event id).

    Parameters
    ----------
    stores : callable
        Returns the stores to count (the single-slot engine's and the row engine's).
    """

    def __init__(self, stores: Callable[[], list[DecisionStore]]) -> None:
        self.stores = stores

    def collect(self) -> Iterator[Metric]:
        counts = [store.unmatched_counts() for store in self.stores()]
        yield GaugeMetricFamily(
            "banditkit_outcomes_awaiting_decision",
            "Rewards and activations accepted for an event id whose decision has not "
            "reached the store yet (ranked on another host, not shipped yet).",
            value=sum(waiting for waiting, _ in counts))
        yield GaugeMetricFamily(
            "banditkit_orphaned_outcomes",
            "Rewards and activations whose decision did not reach the store within the "
            "reward wait and the orphan grace, kept aside with their reason.",
            value=sum(orphaned for _, orphaned in counts))


def init_app(app: Flask) -> None:
    """Create the app's metrics and count 4xx responses."""
    metrics = Metrics(registry=CollectorRegistry())
    app.extensions[_EXTENSION] = metrics

    @app.after_request
    def _count_rejections(response):  # type: ignore[no-untyped-def]
        if 400 <= response.status_code < 500:
            metrics.rejected.labels(status=str(response.status_code)).inc()
        return response


def get_metrics(app: Flask | None = None) -> Metrics:
    """The app's :class:`Metrics`."""
    return (app or current_app).extensions[_EXTENSION]


def exposition_registry(app: Flask | None = None) -> CollectorRegistry:
    """The registry ``/metrics`` serialises: the app's, or all workers' in multiprocess mode,
    and the stores' unmatched outcomes."""
    from serving.rows import get_row_engine
    from serving.runtime import get_engine

    metrics = get_metrics(app)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry.register(_WithJoinLag(multiprocess.MultiProcessCollector(None),
                                       since=metrics.created_at))
    else:
        registry.register(metrics.registry)
    registry.register(_UnmatchedOutcomes(
        lambda: [get_engine(app).store, get_row_engine(app).store]))
    return registry
