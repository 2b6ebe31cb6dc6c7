"""Estimator quality across seeds: bias, RMSE, interval coverage and width.

For each ground truth (an ArtworkWorld with a personalized logging policy, and
scikit-learn's digits turned into a bandit), each target policy and each
estimator, this repeats the log ``--reps`` times with different seeds and
prints one JSON line with the bias, RMSE, 95 % interval coverage and mean
interval width against the exact value. DM and the DR family use a
cross-fitted ridge reward model fitted anew on every log.

Usage::

    python benchmarks/bench_ope_quality.py            # 200 repetitions
    python benchmarks/bench_ope_quality.py --smoke    # 10 repetitions, for CI
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ope.estimators import all_estimators  # noqa: E402
from ope.reward_model import CrossFitRewardModel  # noqa: E402
from simulator.supervised import digits_bandit  # noqa: E402
from simulator.world import ArtworkWorld  # noqa: E402
from simulator.worldlog import (  # noqa: E402
    epsilon_greedy,
    sample_log,
    taste_policy,
    world_features,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--n-rounds", type=int, default=2000, help="rounds per world log")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.smoke:
        args.reps, args.n_rounds = 10, 500
    return args


def summarise(truth: float, results: list) -> dict[str, float]:
    values = np.array([r.value for r in results], dtype=float)
    low = np.array([r.ci[0] for r in results])
    high = np.array([r.ci[1] for r in results])
    finite = np.isfinite(values)
    return {
        "truth": truth,
        "bias": float(np.mean(values[finite]) - truth),
        "rmse": float(np.sqrt(np.mean((values[finite] - truth) ** 2))),
        "coverage": float(np.mean((low <= truth) & (truth <= high))),
        "mean_ci_width": float(np.mean(high[finite] - low[finite])),
        "undefined_share": float(1 - finite.mean()),
    }


def world_rows(args: argparse.Namespace) -> list[dict]:
    world = ArtworkWorld.generate(seed=args.seed, n_members=500, n_titles=30)
    logging = taste_policy(world, sharpness=4.0, epsilon=0.2)
    targets = {"oracle_eps0.2": epsilon_greedy(world.oracle_policy(), epsilon=0.2),
               "best_single_variant": world.best_single_variant_policy(),
               "uniform": world.uniform_policy()}
    results: dict[tuple[str, str], list] = {}
    for rep in range(args.reps):
        log = sample_log(world, logging, n_rounds=args.n_rounds, seed=args.seed + 1000 + rep)
        q = CrossFitRewardModel(n_folds=2, seed=rep).predict(
            log.rounds, world_features(world, log.requests))
        for name, policy in targets.items():
            target = log.target(policy, model_predictions=q)
            for estimator in all_estimators():
                results.setdefault((name, estimator.name), []).append(
                    estimator.estimate(log.rounds, target))
    return [{"world": "artwork", "target": name, "estimator": estimator,
             **summarise(world.policy_value(targets[name]), rows)}
            for (name, estimator), rows in results.items()]


def digits_rows(args: argparse.Namespace) -> list[dict]:
    results: dict[tuple[str, str], list] = {}
    truths: dict[str, list[float]] = {}
    for rep in range(args.reps):
        bandit, targets = digits_bandit(seed=args.seed + rep)
        q = CrossFitRewardModel(n_folds=2, seed=rep).predict(bandit.rounds, bandit.features)
        for name in ("greedy", "softmax", "uniform"):
            truth = bandit.true_value(targets[name])
            target = bandit.target(targets[name], model_predictions=q)
            for estimator in all_estimators():
                result = estimator.estimate(bandit.rounds, target)
                # each repetition has its own truth (its own logged examples):
                # centre the estimate on it
                results.setdefault((name, estimator.name), []).append((result, truth))
            truths.setdefault(name, []).append(truth)
    rows = []
    for (name, estimator), pairs in results.items():
        values = np.array([r.value - t for r, t in pairs])
        covered = [r.ci[0] <= t <= r.ci[1] for r, t in pairs]
        finite = np.isfinite(values)
        rows.append({"world": "digits", "target": name, "estimator": estimator,
                     "truth": float(np.mean(truths[name])),
                     "bias": float(values[finite].mean()),
                     "rmse": float(np.sqrt((values[finite] ** 2).mean())),
                     "coverage": float(np.mean(covered)),
                     "mean_ci_width": float(np.mean([r.ci[1] - r.ci[0] for r, _ in pairs])),
                     "undefined_share": float(1 - finite.mean())})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    rows = []
    for row in [*world_rows(args), *digits_rows(args)]:
        record = {"bench": "ope_quality", "reps": args.reps, "smoke": args.smoke, **row}
        line = json.dumps(record)
        print(line, flush=True)
        if args.out is not None:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        rows.append(record)
    return rows


if __name__ == "__main__":
    main()
