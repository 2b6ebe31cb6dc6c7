"""The demo: simulated members go through the real decision loop and we score what it learned.

A world with known truth (:class:`~simulator.world.ArtworkWorld`) drives members
through rank -> reward -> join -> learn, through a :class:`Ranker`: either
:class:`EngineRanker`, an :class:`~banditkit.engine.Engine` in this process on
a real data directory (SQLite store, dsjson log, VW snapshots) with a simulated
clock, or any other implementation of the protocol (``banditkit demo`` uses
one that talks to a real ``banditkit serve`` over HTTP; the simulator itself
never uses the server, docs/architecture.md §2). The learned policy is then scored
exactly against uniform random, the best single variant per title, and the
oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from banditkit.engine import Engine
from banditkit.settings import LoopSettings
from banditkit.types import Action, Features
from banditkit.vw import VWLearner
from simulator.clock import SimulatedClock
from simulator.releases import ReleaseWorld, TaggingComparison, compare_tagging
from simulator.world import ArtworkWorld

__all__ = ["DEMO_POLICY_ARGS", "DemoResult", "EngineRanker", "FinishedRun", "Ranker",
           "drive", "evaluate_learner", "run_demo"]

# Member x Artwork and Taste x Artwork interactions carry the personalization.
DEMO_POLICY_ARGS = "--cb_explore_adf --cb_type mtr -q MA -q TA -q GA -l 0.05 --power_t 0"


@dataclass(frozen=True)
class FinishedRun:
    """What a ranker leaves when the members are done.

    Attributes
    ----------
    learner : VWLearner
        The latest published model, having learned every event of the run.
    log_dir : Path
        Where the joined dsjson log was written.
    model_path : Path
        The latest model file.
    """

    learner: VWLearner
    log_dir: Path
    model_path: Path


class Ranker(Protocol):
    """The decision loop as the demo's members see it.

    ``rank`` decides and logs one impression, ``reward`` reports a take,
    ``step`` is called every few hundred impressions (learn what is due, if the
    implementation learns on request), and ``finish`` waits until every reward
    so far is learned and returns the final model.
    """

    def rank(self, context: Features, actions: Sequence[Action], *, event_id: str) -> str:
        """Decide for one impression; returns the chosen action's id."""
        ...

    def reward(self, event_id: str, value: float) -> None:
        """Report the reward of a decided event."""
        ...

    def step(self) -> None:
        """Let the loop learn what is due (called every ``step`` impressions)."""
        ...

    def finish(self) -> FinishedRun:
        """Learn every reward reported so far; return the final model and its paths."""
        ...


def demo_settings(*, epsilon: float = 0.2, reward_wait_seconds: float = 60.0,
                  model_update_seconds: float = 0.0) -> LoopSettings:
    """The demo's loop settings: epsilon-greedy over :data:`DEMO_POLICY_ARGS`."""
    return LoopSettings(reward_wait_seconds=reward_wait_seconds,
                        model_update_seconds=model_update_seconds,
                        exploration_percentage=epsilon, policy_args=DEMO_POLICY_ARGS)


class EngineRanker:
    """An in-process :class:`~banditkit.engine.Engine` on a simulated clock.

    Simulated time advances one second per impression; rewards arrive at once,
    and each :meth:`step` moves the clock past the reward wait and runs the
    learner, which joins, learns and publishes a snapshot.

    Build it with :meth:`open`.

    Parameters
    ----------
    engine : Engine
        The engine, on ``clock``, with ``settings``.
    clock : SimulatedClock
        The engine's clock, which this ranker advances.
    settings : LoopSettings
        The engine's settings (their reward wait sets how far a step advances).
    data_dir : Path
        Where the engine keeps its store, log and models.
    """

    def __init__(self, *, engine: Engine, clock: SimulatedClock, settings: LoopSettings,
                 data_dir: Path) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self.data_dir = data_dir

    @classmethod
    def open(cls, data_dir: Path, *, epsilon: float = 0.2) -> EngineRanker:
        """The ranker of a fresh engine in ``data_dir`` exploring at rate ``epsilon``."""
        clock = SimulatedClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z
        settings = demo_settings(epsilon=epsilon)
        engine = Engine.open(data_dir, settings=settings, clock=clock)
        return cls(engine=engine, clock=clock, settings=settings, data_dir=data_dir)

    def rank(self, context: Features, actions: Sequence[Action], *, event_id: str) -> str:
        decision = self._engine.rank(context, actions, event_id=event_id)
        self._clock.advance(1.0)
        return decision.reward_action_id

    def reward(self, event_id: str, value: float) -> None:
        self._engine.reward(event_id, value)

    def step(self) -> None:
        engine = self._engine
        self._clock.advance(self._settings.reward_wait_seconds + 1)
        engine.process_due(force_publish=True)

    def finish(self) -> FinishedRun:
        engine = self._engine
        self.step()
        snapshot = engine.store.latest_model()
        assert snapshot is not None
        learner = VWLearner(args=snapshot.policy_args, model_data=snapshot.data)
        return FinishedRun(learner=learner, log_dir=Path(self.data_dir) / "logs",
                           model_path=engine.latest_model_path() or Path())

    def close(self) -> None:
        self._engine.close()


@dataclass(frozen=True)
class DemoResult:
    """Exact take rates of each policy on the same evaluation impressions.

    Attributes
    ----------
    take_rates : dict of str to float
        Policy name to its exact expected take rate.
    online_take_rate : float
        Take rate observed while learning (exploration and early mistakes included).
    n_events : int
    log_dir, model_path : Path
    tagging : TaggingComparison or None
        New titles with and without theme tags (:func:`~simulator.releases.compare_tagging`).
    """

    take_rates: dict[str, float]
    online_take_rate: float
    n_events: int
    log_dir: Path
    model_path: Path
    tagging: TaggingComparison | None = None

    def table(self) -> str:
        oracle = self.take_rates["oracle"]
        lines = [f"{'policy':<54}{'take rate':>10}{'of oracle':>11}"]
        for name, rate in self.take_rates.items():
            lines.append(f"{name:<54}{rate:>10.4f}{rate / oracle:>10.1%}")
        lines.append(f"{'observed online while learning':<54}{self.online_take_rate:>10.4f}"
                     f"{self.online_take_rate / oracle:>10.1%}")
        if self.tagging is not None:
            lines.append(self.tagging.line())
        return "\n".join(lines)


def drive(world: ArtworkWorld, ranker: Ranker, *, n_events: int, seed: int = 0,
          step: int = 500, progress: Callable[[int], None] | None = None) -> float:
    """Send ``n_events`` simulated impressions through ``ranker``; returns the online take rate.

    Parameters
    ----------
    world : ArtworkWorld
    ranker : Ranker
    n_events : int
        Impressions; event ids are ``demo-{seed}-{i}``.
    seed : int, default=0
        Seeds the members' draws and takes.
    step : int, default=500
        Impressions between calls of ``ranker.step()``.
    progress : callable, default=None
        Called with the number of impressions done since its last call.
    """
    actions = [[Action(id=world.variant_id(t, v), features=f)
                for v, f in enumerate(world.action_features(t))] for t in range(world.n_titles)]
    rng = np.random.default_rng(seed + 1)
    takes = 0.0
    reported = 0
    requests = world.sample_requests(n_events, seed=seed + 2)
    for i, (member, title) in enumerate(requests):
        event_id = f"demo-{seed}-{i}"
        chosen = ranker.rank(world.context(member), actions[title], event_id=event_id)
        variant = int(chosen.rsplit("art", 1)[1])
        take = world.sample_take(member, title, variant, rng)
        if take:
            ranker.reward(event_id, take)
        takes += take
        if (i + 1) % step == 0 or i + 1 == n_events:
            ranker.step()
            if progress is not None:
                progress(i + 1 - reported)
            reported = i + 1
    return takes / n_events


def run_demo(data_dir: Path | None = None, *, n_events: int = 40_000, seed: int = 0,
             epsilon: float = 0.2, n_eval: int = 4000,
             progress: Callable[[int], None] | None = None,
             ranker: Ranker | None = None, compare_tags: bool = True) -> DemoResult:
    """Drive ``n_events`` simulated impressions through a ranker and score what it learned.

    Parameters
    ----------
    data_dir : Path, default=None
        Data directory of the in-process :class:`EngineRanker` used when
        ``ranker`` is None.
    n_events : int, default=40_000
    seed : int, default=0
        Seeds the world, the members and the evaluation impressions.
    epsilon : float, default=0.2
        Exploration rate of the in-process ranker (another ranker has its own).
    n_eval : int, default=4000
        Fresh impressions on which every policy's exact take rate is computed.
    progress : callable, default=None
        Called with the number of impressions done since its last call.
    ranker : Ranker, default=None
        Where decisions are made; None makes an :class:`EngineRanker` in ``data_dir``.
    compare_tags : bool, default=True
        Also run :func:`~simulator.releases.compare_tagging` in this process
        (titles that come and go, learners with and without theme tags; a few
        seconds), reported in :meth:`DemoResult.table`.
    """
    world = ArtworkWorld.generate(seed=seed)
    owned = None
    if ranker is None:
        if data_dir is None:
            raise ValueError("run_demo needs a data_dir or a ranker, got neither")
        ranker = owned = EngineRanker.open(Path(data_dir), epsilon=epsilon)
    try:
        online = drive(world, ranker, n_events=n_events, seed=seed, progress=progress)
        finished = ranker.finish()
    finally:
        if owned is not None:
            owned.close()
    take_rates = evaluate_learner(world, finished.learner, n_eval=n_eval, seed=seed + 3)
    tagging = compare_tagging(ReleaseWorld.generate(seed=seed), seed=seed) if compare_tags \
        else None
    return DemoResult(take_rates=take_rates, online_take_rate=online, n_events=n_events,
                      log_dir=finished.log_dir, model_path=finished.model_path, tagging=tagging)


def evaluate_learner(world: ArtworkWorld, learner: VWLearner, *, n_eval: int,
                     seed: int) -> dict[str, float]:
    """Exact take rates on ``n_eval`` fresh impressions for the learner and the references."""
    requests = world.sample_requests(n_eval, seed=seed)
    deployed = np.array([learner.predict_one(world.context(m), world.action_features(t))
                         for m, t in requests])
    greedy = np.eye(world.n_variants)[deployed.argmax(axis=1)]
    pick = (requests[:, 0], requests[:, 1])
    policies = {
        "uniform random": world.uniform_policy()[pick],
        "best single variant per title (no personalization)":
            world.best_single_variant_policy()[pick],
        "learned, as deployed (with exploration)": deployed,
        "learned, greedy": greedy,
        "oracle": world.oracle_policy()[pick],
    }
    return {name: float(world.expected_take(requests, p).mean()) for name, p in policies.items()}
