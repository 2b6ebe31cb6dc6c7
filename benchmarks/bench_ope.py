"""Off-policy evaluation at scale: banditkit vs a straightforward obp-style implementation.

On one synthetic log (default 1,000,000 rounds, 10 actions) this times IPS,
SNIPS and DR *with intervals* two ways, in the same process:

* banditkit: ``ope.estimators`` on per-round arrays (``TargetRounds``),
  CLT / delta-method intervals from mergeable moments; O(n_rounds) memory;
* baseline: the Open Bandit Pipeline way, dense ``(n_rounds, n_actions, 1)``
  action distributions and reward-model arrays, and a Python-loop bootstrap
  of 100 resamples for the interval.

It checks that both give the same point estimate, and prints one JSON line per
estimator with median/p95 seconds, peak traced memory (tracemalloc) and the
speed-up. A second set of lines times banditkit's own vectorized bootstrap.

Usage::

    python benchmarks/bench_ope.py             # 1M rounds
    python benchmarks/bench_ope.py --smoke     # tiny sizes, for CI
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ope.estimators import DR, IPS, SNIPS  # noqa: E402
from ope.rounds import LoggedRounds, TargetRounds  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-rounds", type=int, default=1_000_000)
    parser.add_argument("--n-actions", type=int, default=10)
    parser.add_argument("--n-bootstrap", type=int, default=100,
                        help="baseline bootstrap resamples (obp's default is 100)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs after a warm-up (x5 for banditkit's CLT path)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n_rounds, args.repeats, args.n_bootstrap = 5_000, 1, 20
    return args


def make_data(n: int, k: int, seed: int) -> dict[str, np.ndarray]:
    """Dense logging/target distributions, reward model and logged outcomes."""
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.ones(k), size=n) * 0.7 + 0.3 / k
    target = rng.dirichlet(np.full(k, 0.3), size=n)
    q = rng.uniform(0.0, 0.3, size=(n, k))
    cumulative = np.cumsum(logging, axis=1)
    action = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), k - 1)
    rows = np.arange(n)
    reward = (rng.random(n) < q[rows, action] + 0.05).astype(np.float64)
    return {"action": action, "reward": reward, "pscore": logging[rows, action],
            "action_dist": target[:, :, None], "q": q[:, :, None], "logging": logging}


# -- the baseline: how obp computes it -----------------------------------------


def _obp_interval(round_rewards: np.ndarray, n_bootstrap: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_bootstrap):
        index = rng.choice(len(round_rewards), size=len(round_rewards), replace=True)
        samples.append(round_rewards[index].mean())
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def baseline(name: str, data: dict[str, np.ndarray], n_bootstrap: int, seed: int) -> tuple:
    n = len(data["reward"])
    rows = np.arange(n)
    iw = data["action_dist"][rows, data["action"], 0] / data["pscore"]
    if name == "ips":
        round_rewards = data["reward"] * iw
    elif name == "snips":
        round_rewards = data["reward"] * iw / iw.mean()
    else:
        q_hat = data["q"][rows, :, 0]
        pi_e = data["action_dist"][rows, :, 0]
        estimated = np.average(q_hat, weights=pi_e, axis=1)
        q_factual = data["q"][rows, data["action"], 0]
        round_rewards = estimated + iw * (data["reward"] - q_factual)
    return float(round_rewards.mean()), _obp_interval(round_rewards, n_bootstrap, seed)


# -- measurement ---------------------------------------------------------------


def measure(call: Callable[[], object], repeats: int) -> tuple[list[float], int, object]:
    result = call()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    tracemalloc.reset_peak()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, result


def summarise(seconds: list[float]) -> dict[str, float]:
    return {"median_s": float(np.median(seconds)), "p95_s": float(np.quantile(seconds, 0.95))}


def versions() -> dict[str, str]:
    import sklearn
    return {"python": platform.python_version(), "numpy": np.__version__,
            "sklearn": sklearn.__version__}


def write(record: dict, out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    data = make_data(args.n_rounds, args.n_actions, args.seed)
    rounds = LoggedRounds(reward=data["reward"], action=data["action"],
                          probability=data["pscore"], n_actions=args.n_actions)
    compress = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        target = TargetRounds.from_dense(rounds, data["action_dist"][:, :, 0],
                                         model_predictions=data["q"][:, :, 0],
                                         logging_dist=data["logging"])
        compress.append(time.perf_counter() - start)
    compress_s = float(np.median(compress))
    records = []
    for estimator in (IPS(), SNIPS(), DR()):
        # banditkit's run is short, so it gets more repeats: its median then
        # resists scheduling noise on a shared machine as well as the baseline's.
        ours_s, ours_peak, ours = measure(lambda e=estimator: e.estimate(rounds, target),
                                          args.repeats * 5)
        base_s, base_peak, (base_value, base_ci) = measure(
            lambda e=estimator: baseline(e.name, data, args.n_bootstrap, args.seed),
            args.repeats)
        boot = type(estimator)(ci_method="bootstrap", n_bootstrap=args.n_bootstrap,
                               seed=args.seed)
        boot_s, boot_peak, _ = measure(lambda b=boot: b.estimate(rounds, target), args.repeats)
        record = {
            "bench": "ope", "estimator": estimator.name, "n_rounds": args.n_rounds,
            "n_actions": args.n_actions, "smoke": args.smoke,
            "banditkit": {**summarise(ours_s), "peak_mb": ours_peak / 2**20,
                          "value": ours.value, "ci": list(ours.ci), "ci_method": "clt",
                          "ess": ours.diagnostics.effective_sample_size},
            "banditkit_bootstrap": {**summarise(boot_s), "peak_mb": boot_peak / 2**20,
                                    "n_bootstrap": args.n_bootstrap},
            "baseline": {**summarise(base_s), "peak_mb": base_peak / 2**20,
                         "value": base_value, "ci": list(base_ci),
                         "ci_method": f"python-loop bootstrap x{args.n_bootstrap}"},
            "speedup": float(np.median(base_s) / np.median(ours_s)),
            # counting banditkit's one-off compression of the dense inputs
            # (TargetRounds.from_dense), which the log reader never needs
            "speedup_including_from_dense": float(np.median(base_s)
                                                  / (np.median(ours_s) + compress_s)),
            "speedup_bootstrap_vs_bootstrap": float(np.median(base_s) / np.median(boot_s)),
            "memory_ratio": float(base_peak / max(ours_peak, 1)),
            "equal_point_estimate": bool(np.isclose(ours.value, base_value, rtol=1e-9,
                                                    atol=0)),
            "compress_dense_s": compress_s, **versions(),
        }
        write(record, args.out)
        records.append(record)
    if not all(r["equal_point_estimate"] for r in records):
        raise SystemExit("point estimates differ from the baseline")
    return records


if __name__ == "__main__":
    main()
