"""The demo: simulated members go through the real decision loop and we score what it learned.

A world with known truth (:class:`~simulator.world.ArtworkWorld`) drives members
through rank -> reward -> join -> learn on a real data directory (SQLite store,
dsjson log, VW snapshots). The learned policy is then scored exactly against
uniform random, the best single variant per title, and the oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from banditkit.engine import Engine
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWLearner
from simulator.world import ArtworkWorld

__all__ = ["DEMO_POLICY_ARGS", "DemoResult", "evaluate_learner", "run_demo"]

# Member x Artwork and Taste x Artwork interactions carry the personalization.
DEMO_POLICY_ARGS = "--cb_explore_adf --cb_type mtr -q MA -q TA -q GA -l 0.05 --power_t 0"


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
    """

    take_rates: dict[str, float]
    online_take_rate: float
    n_events: int
    log_dir: Path
    model_path: Path

    def table(self) -> str:
        oracle = self.take_rates["oracle"]
        lines = [f"{'policy':<54}{'take rate':>10}{'of oracle':>11}"]
        for name, rate in self.take_rates.items():
            lines.append(f"{name:<54}{rate:>10.4f}{rate / oracle:>10.1%}")
        lines.append(f"{'observed online while learning':<54}{self.online_take_rate:>10.4f}"
                     f"{self.online_take_rate / oracle:>10.1%}")
        return "\n".join(lines)


def run_demo(data_dir: Path, *, n_events: int = 40_000, seed: int = 0,
             epsilon: float = 0.2, n_eval: int = 4000,
             progress: Callable[[int], None] | None = None) -> DemoResult:
    """Drive ``n_events`` simulated impressions through an :class:`Engine` in ``data_dir``.

    Simulated time advances one second per impression; rewards arrive at once and
    the learner joins every 500 impressions, publishing a snapshot each time.
    """
    world = ArtworkWorld.generate(seed=seed)
    clock = _SimulatedClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z
    settings = LoopSettings(reward_wait_seconds=60.0, model_update_seconds=0.0,
                            exploration_percentage=epsilon, policy_args=DEMO_POLICY_ARGS)
    engine = Engine.open(data_dir, settings=settings, clock=clock)
    actions = [[Action(id=world.variant_id(t, v), features=f)
                for v, f in enumerate(world.action_features(t))] for t in range(world.n_titles)]
    rng = np.random.default_rng(seed + 1)
    takes = 0.0
    step, reported = 500, 0
    requests = world.sample_requests(n_events, seed=seed + 2)
    with engine:
        for i, (member, title) in enumerate(requests):
            decision = engine.rank(world.context(member), actions[title],
                                   event_id=f"demo-{seed}-{i}", extra={"title": int(title)})
            variant = int(decision.reward_action_id.rsplit("art", 1)[1])
            take = world.sample_take(member, title, variant, rng)
            if take:
                engine.reward(decision.event_id, take)
            takes += take
            clock.advance(1.0)
            if (i + 1) % step == 0 or i + 1 == n_events:
                clock.advance(settings.reward_wait_seconds + 1)
                engine.process_due(force_publish=True)
                if progress is not None:
                    progress(i + 1 - reported)
                reported = i + 1
        snapshot = engine.store.latest_model()
        assert snapshot is not None
        learner = VWLearner(args=snapshot.policy_args, model_data=snapshot.data)
        take_rates = evaluate_learner(world, learner, n_eval=n_eval, seed=seed + 3)
        return DemoResult(take_rates=take_rates, online_take_rate=takes / n_events,
                          n_events=n_events, log_dir=Path(data_dir) / "logs",
                          model_path=engine.latest_model_path() or Path())


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


class _SimulatedClock:
    def __init__(self, *, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
