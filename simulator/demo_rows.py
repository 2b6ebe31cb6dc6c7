"""The row demo: simulated members get pages from the real row engine, and we score it.

A :class:`~simulator.rows_world.RowWorld` drives members through rank_rows ->
per-slot rewards -> join -> learn on a real data directory (SQLite store, CCB
dsjson log, VW snapshots). The learned page policy is then scored exactly
against a fixed editorial order and random pages (both respecting the same
page rules), slot by slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from banditkit.rows import PageRules, RowEngine, decide_page, default_slots
from banditkit.settings import LoopSettings
from banditkit.vw import VWPageLearner
from simulator.clock import SimulatedClock
from simulator.rows_world import (
    RowWorld,
    SoftmaxPage,
    UniformPage,
    editorial_slots,
    greedy_page,
)

__all__ = ["ROW_DEMO_POLICY_ARGS", "RowDemoResult", "evaluate_row_policies", "run_row_demo"]

# Member x Row carries the personalization, Slot x Row the position effects.
# SquareCB explores by the size of each row's estimated gap: on this world it
# reaches 0.76-0.79 plays/page in 1500 pages where epsilon-greedy (0.2, mtr,
# learning rates 0.01-0.5) plateaus at 0.60-0.68 (oracle 0.94).
ROW_DEMO_POLICY_ARGS = "--cb_explore_adf --squarecb -q MR -q SR"
DEMO_RULES = PageRules(no_adjacent_same_genre=True, min_distinct_genres=3,
                       distinct_genres_within=4)


@dataclass(frozen=True)
class RowDemoResult:
    """Exact per-slot take rates of each page policy.

    Attributes
    ----------
    slot_take_rates : dict of str to ndarray of shape (n_slots,)
        Policy name to the probability of a play from each slot, averaged
        exactly over member types.
    online_plays_per_page : float
        Plays per page observed while learning.
    n_pages : int
    log_dir, model_path : Path
    """

    slot_take_rates: dict[str, np.ndarray]
    online_plays_per_page: float
    n_pages: int
    log_dir: Path
    model_path: Path

    @property
    def plays_per_page(self) -> dict[str, float]:
        """Expected plays per page of each policy (the sum over slots)."""
        return {name: float(rates.sum()) for name, rates in self.slot_take_rates.items()}

    def table(self) -> str:
        """Policies as rows: plays per page, then the take rate of each slot in %."""
        n_slots = len(next(iter(self.slot_take_rates.values())))
        header = f"{'page policy':<34}{'plays/page':>11}" + "".join(
            f"{'s' + str(k + 1):>6}" for k in range(n_slots))
        lines = [header]
        for name, rates in self.slot_take_rates.items():
            lines.append(f"{name:<34}{rates.sum():>11.3f}" + "".join(
                f"{100 * rate:>6.1f}" for rate in rates))
        lines.append(f"{'observed online while learning':<34}{self.online_plays_per_page:>11.3f}")
        return "\n".join(lines)


def run_row_demo(data_dir: Path, *, n_pages: int = 6000, n_slots: int = 8, seed: int = 0,
                 epsilon: float = 0.2, rules: PageRules | None = DEMO_RULES,
                 learn_every: int = 250, n_eval_pages: int = 400,
                 progress: Callable[[int], None] | None = None) -> RowDemoResult:
    """Drive ``n_pages`` simulated homepages through a :class:`RowEngine` in ``data_dir``.

    Simulated time advances one second per page; plays are rewarded per slot
    at once; the learner joins every ``learn_every`` pages and publishes a
    snapshot.

    Parameters
    ----------
    data_dir : Path
        Where the row engine keeps its store, log and models.
    n_pages : int, default=6000
    n_slots : int, default=8
    seed : int, default=0
    epsilon : float, default=0.2
        Exploration per slot.
    rules : PageRules, default=DEMO_RULES
        No two neighbouring rows of one genre, 3 genres in the first 4 slots.
    learn_every : int, default=250
    n_eval_pages : int, default=400
        Pages sampled to score the learned policy as deployed (with exploration).
    progress : callable, default=None
        Called with the number of pages done since the last call.
    """
    rules = rules or PageRules()
    world = RowWorld.generate(seed=seed)
    clock = SimulatedClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z
    settings = LoopSettings(reward_wait_seconds=60.0, model_update_seconds=0.0,
                            exploration_percentage=epsilon, policy_args=ROW_DEMO_POLICY_ARGS)
    engine = RowEngine.open(data_dir, settings=settings, clock=clock, rules=rules)
    rng = np.random.default_rng(seed + 1)
    index = {row.id: i for i, row in enumerate(world.rows)}
    plays_total = 0.0
    reported = 0
    members = world.sample_members(n_pages, seed=seed + 2)
    with engine:
        for i, member in enumerate(members):
            decision = engine.rank_rows(world.context(int(member)), world.rows, n_slots,
                                        event_id=f"rows-demo-{seed}-{i}")
            page = [index[row_id] for row_id in decision.row_ids]
            plays = world.sample_plays(int(member), page, rng)
            rewarded = {slot.slot_id: float(p) for slot, p in zip(decision.slots, plays,
                                                                   strict=True) if p}
            if rewarded:
                engine.reward_slots(decision.event_id, rewarded)
            plays_total += plays.sum()
            clock.advance(1.0)
            if (i + 1) % learn_every == 0 or i + 1 == n_pages:
                clock.advance(settings.reward_wait_seconds + 1)
                engine.process_due(force_publish=True)
                if progress is not None:
                    progress(i + 1 - reported)
                reported = i + 1
        snapshot = engine.store.latest_model()
        assert snapshot is not None
        learner = VWPageLearner(args=snapshot.policy_args, model_data=snapshot.data)
        rates = evaluate_row_policies(world, learner, n_slots=n_slots, rules=rules,
                                      n_eval_pages=n_eval_pages, seed=seed + 3)
        return RowDemoResult(slot_take_rates=rates,
                             online_plays_per_page=plays_total / n_pages, n_pages=n_pages,
                             log_dir=Path(engine.log.root),
                             model_path=engine.latest_model_path() or Path())


def evaluate_row_policies(world: RowWorld, learner: VWPageLearner | None, *, n_slots: int,
                          rules: PageRules, n_eval_pages: int = 400,
                          seed: int = 0) -> dict[str, np.ndarray]:
    """Exact per-slot take rates of the learned, editorial and random page policies.

    Deterministic policies (learned greedy, editorial) are averaged exactly
    over every member type; stochastic ones (learned as deployed, random) over
    ``n_eval_pages`` sampled pages, each scored exactly.
    """
    slots = default_slots(n_slots)
    editorial = editorial_slots(world, n_slots)
    features = [row.features for row in world.rows]
    slot_features = [slot.features for slot in slots]

    def exact(page_of: Callable[[int], list[int]]) -> np.ndarray:
        return np.mean([world.slot_play_probability(m, page_of(m))
                        for m in range(world.n_types)], axis=0)

    def sampled(page_of: Callable[[int, str], list[int]]) -> np.ndarray:
        members = world.sample_members(n_eval_pages, seed=seed)
        return np.mean([world.slot_play_probability(int(m), page_of(int(m), f"eval-{i}"))
                        for i, m in enumerate(members)], axis=0)

    rates: dict[str, np.ndarray] = {}
    if learner is not None:
        rates["learned page order (greedy)"] = exact(
            lambda m: greedy_page(world, learner, m, n_slots, rules))
        rates["learned, as deployed (exploring)"] = sampled(
            lambda m, eid: decide_page(
                learner.open_page(world.context(m), features, slot_features), world.rows,
                slots, rules=rules, event_id=eid).chosen)
    rates["fixed editorial order"] = exact(
        lambda m: decide_page(None, world.rows, editorial, rules=rules, event_id="editorial",
                              mode="logging_only").chosen)
    rates["oracle (true attraction, greedy)"] = exact(
        lambda m: decide_page(SoftmaxPage(scores=world.attraction[m], temperature=1e-9,
                                               n_slots=n_slots),
                              world.rows, slots, rules=rules, event_id="oracle").chosen)
    rates["random pages"] = sampled(
        lambda m, eid: decide_page(UniformPage(n_actions=world.n_rows, n_slots=n_slots),
                                   world.rows, slots, rules=rules, event_id=eid).chosen)
    return rates
