"""Personalizer's evaluation with policy optimization over a large window.

Writes a log of ``--n-events`` decisions made by banditkit's own online learner
(``-q ::``) in an :class:`~simulator.world.ArtworkWorld`, freezes it as a
window, then times in the same process:

* baseline: one plain candidate (the online arguments) by progressive
  validation, in this process;
* the evaluation: Online, Baseline, Random, one Custom policy and the policy
  search with the default budget, over ``--workers`` processes.

Prints one JSON line each: wall and CPU seconds, candidates tried, and the
ratios to the baseline (the evaluation's wall time in baseline runs, and the
search's CPU-seconds per candidate against the baseline's).

Usage::

    python benchmarks/bench_evaluation.py              # 100,000 events, 2 workers
    python benchmarks/bench_evaluation.py --smoke      # tiny sizes, for CI
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ope import versions, write  # noqa: E402  (the JSON lines of every OPE benchmark)

from banditkit.vw import VWLearner  # noqa: E402
from ope.personalizer import evaluate_window  # noqa: E402
from ope.progressive import freeze_window, score_candidate  # noqa: E402
from ope.search import SearchBudget  # noqa: E402
from simulator.learnerlog import write_learner_log  # noqa: E402
from simulator.world import ArtworkWorld  # noqa: E402

ONLINE = "--cb_explore_adf --epsilon 0.2 -q ::"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpu-seconds", type=float, default=240.0,
                        help="search budget (the default of SearchBudget)")
    parser.add_argument("--max-candidates", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n_events, args.max_candidates = 2_000, 4
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    library = versions()
    world = ArtworkWorld.generate(seed=args.seed)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = write_learner_log(world, VWLearner(args=ONLINE), Path(folder) / "events.dsjson",
                                 n_rounds=args.n_events, seed=args.seed + 1)
        logged = time.perf_counter() - started
        started = time.perf_counter()
        window = freeze_window([path])
        frozen = time.perf_counter() - started

    started, cpu = time.perf_counter(), time.process_time()
    plain = score_candidate(window, ONLINE)
    base_wall, base_cpu = time.perf_counter() - started, time.process_time() - cpu
    write({"name": "baseline_one_candidate", "events": len(window), "wall_s": base_wall,
          "cpu_s": base_cpu, "candidate_cpu_s": plain.cpu_seconds, "log_write_s": logged,
          "freeze_s": frozen, **library}, args.out)

    budget = SearchBudget(cpu_seconds=args.cpu_seconds, max_candidates=args.max_candidates,
                          seed=args.seed)
    started = time.perf_counter()
    result = evaluate_window(window, online_args=ONLINE,
                             custom=[("no-interactions", "--cb_explore_adf --epsilon 0.2")],
                             optimize=True, budget=budget, workers=args.workers)
    wall = time.perf_counter() - started
    search = result.search
    per_candidate = search.cpu_seconds / max(search.n_candidates, 1)
    write({"name": "evaluation_with_optimization", "events": len(window),
          "workers": args.workers, "wall_s": wall, "candidates": search.n_candidates,
          "search_cpu_s": search.cpu_seconds, "wall_in_baseline_runs": wall / base_wall,
          "candidate_cpu_vs_baseline": per_candidate / plain.cpu_seconds,
          "best": search.best.args,
          "best_snips": result.policy("Optimized").summary.value,
          "online_snips": result.policy("Online").summary.value, **library}, args.out)


if __name__ == "__main__":
    main()
