"""Pages ranked per second: 20 slots from 60 candidate rows, vs the single-slot rank.

Measured in one run on the same machine:

- ``rows_rank_page``: :meth:`banditkit.rows.RowEngine.rank_rows` for a page of
  20 slots from 60 candidates (15 genres x 4 rows), page rules on (pinned row
  in slot 1, no two neighbouring rows of one genre, 5 genres in the first 6
  slots): validation, rules, 20 VW CCB slot predictions, seeded sampling,
  durable SQLite insert. Median, p95, p99 latency and pages/s.
- ``rows_rank_page_no_rules``: the same without rules (the cost of the rules).
- ``rows_decide_only``: the page decision without storage (learner + rules).
- ``single_slot_rank``: :meth:`banditkit.engine.Engine.rank` of one title's 8
  artwork variants, the reference; ``ratio`` is page latency over single-slot
  latency (medians).
- ``rows_learning``: :meth:`RowEngine.process_due` (join, CCB log, learning).

Prints JSON lines.

    python benchmarks/bench_rows.py [--pages 2000] [--slots 20] [--rows 60] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import vowpal_wabbit_next as vw

from banditkit import __version__
from banditkit.engine import Engine
from banditkit.rows import PageRules, Row, RowEngine, decide_page, default_slots
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWPageLearner
from simulator.demo import DEMO_POLICY_ARGS
from simulator.demo_rows import ROW_DEMO_POLICY_ARGS
from simulator.world import ArtworkWorld


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pages = 40
    return args


def make_rows(n_rows: int, seed: int) -> list[Row]:
    """``n_rows`` rows over ``n_rows // 4`` genres; the last is 'continue watching'."""
    rng = np.random.default_rng(seed)
    kinds = ("genre", "because_you_watched", "trending_in", "new_in")
    rows = []
    for i in range(n_rows - 1):
        genre = f"g{i // 4}"
        rows.append(Row(id=f"row{i}", genre=genre, features={"Row": {
            "genre": genre, "kind": kinds[i % 4], "freshness": round(float(rng.uniform()), 3),
            "titles": int(rng.integers(10, 60))}}))
    rows.append(Row(id="continue-watching", features={"Row": {"kind": "continue"}}))
    return rows


def make_contexts(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"Member": {"favourite": f"g{rng.integers(15)}", "second": f"g{rng.integers(15)}",
                        "device": str(rng.choice(["tv", "mobile", "web"])),
                        "hour": int(rng.integers(24))}} for _ in range(n)]


def time_each(function: Callable[[int], object], n: int) -> np.ndarray:
    seconds = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        function(i)
        seconds[i] = time.perf_counter() - start
    return seconds


def summarise(seconds: np.ndarray) -> dict[str, float]:
    return {"per_s": len(seconds) / seconds.sum(),
            "p50_ms": 1e3 * float(np.median(seconds)),
            "p95_ms": 1e3 * float(np.quantile(seconds, 0.95)),
            "p99_ms": 1e3 * float(np.quantile(seconds, 0.99))}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = make_rows(args.rows, args.seed)
    rules = PageRules(pinned={"continue-watching": 1}, no_adjacent_same_genre=True,
                      min_distinct_genres=5, distinct_genres_within=6)
    contexts = make_contexts(2 * args.pages + 100, args.seed + 1)
    rng = np.random.default_rng(args.seed + 2)
    world = ArtworkWorld.generate(seed=args.seed)
    requests = world.sample_requests(args.pages, seed=args.seed + 3)
    actions = [[Action(id=world.variant_id(t, v), features=f)
                for v, f in enumerate(world.action_features(t))] for _, t in requests]
    single_contexts = [world.context(m) for m, _ in requests]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        now = [1_767_225_600.0]
        clock = lambda: now[0]  # noqa: E731
        row_settings = LoopSettings(reward_wait_seconds=0, model_update_seconds=1e9,
                                    policy_args=ROW_DEMO_POLICY_ARGS)
        engine = RowEngine.open(Path(folder) / "rows", settings=row_settings, clock=clock,
                                rules=rules)
        for i in range(20):  # warm-up
            engine.rank_rows(contexts[-1 - i], rows, args.slots, event_id=f"warm-{i}")

        def rank_page(i: int, *, prefix: str, page_rules: PageRules | None = None) -> None:
            decision = engine.rank_rows(contexts[i], rows, args.slots, rules=page_rules,
                                        event_id=f"{prefix}-{i}")
            slot = int(rng.integers(args.slots))
            if rng.random() < 0.5:
                engine.reward_slot(decision.event_id, decision.slots[slot].slot_id, 1.0)

        first = time_each(lambda i: rank_page(i, prefix="a"), args.pages)
        now[0] += 1
        start = time.perf_counter()
        learned = engine.process_due(force_publish=True)
        learn_s = time.perf_counter() - start
        learned_pages = time_each(lambda i: rank_page(args.pages + i, prefix="b"), args.pages)
        no_rules = time_each(
            lambda i: rank_page(args.pages + i, prefix="c", page_rules=PageRules()), args.pages)
        snapshot = engine.store.latest_model()
        learner = VWPageLearner(args=snapshot.policy_args, model_data=snapshot.data)
        slots = default_slots(args.slots)
        decide = time_each(lambda i: decide_page(
            learner.open_page(contexts[i], [r.features for r in rows],
                              [s.features for s in slots]),
            rows, slots, rules=rules, event_id=f"d-{i}"), args.pages)
        engine.close()

        single = Engine.open(Path(folder) / "single", clock=clock, settings=LoopSettings(
            reward_wait_seconds=0, model_update_seconds=1e9, policy_args=DEMO_POLICY_ARGS))
        for i in range(20):
            single.rank(single_contexts[i], actions[i], event_id=f"warm-{i}")
        one = time_each(lambda i: single.rank(single_contexts[i], actions[i],
                                              event_id=f"s-{i}"), args.pages)
        single.close()

    common = {"pages": args.pages, "slots": args.slots, "candidates": args.rows,
              "banditkit": __version__, "vowpal_wabbit_next": vw.VW_VERSION,
              "python": platform.python_version()}
    single_summary = summarise(one)
    page_summary = summarise(learned_pages)
    results = [
        {"name": "rows_rank_page", **page_summary,
         "ratio_to_single_slot_p50": page_summary["p50_ms"] / single_summary["p50_ms"],
         "untrained_model_p50_ms": summarise(first)["p50_ms"]},
        {"name": "rows_rank_page_no_rules", **summarise(no_rules)},
        {"name": "rows_decide_only", **summarise(decide)},
        {"name": "single_slot_rank", "actions": world.n_variants, **single_summary},
        {"name": "rows_learning", "pages": learned,
         "per_s": learned / learn_s if learn_s > 0 else float("inf")},
    ]
    for result in results:
        print(json.dumps({**result, **common}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
