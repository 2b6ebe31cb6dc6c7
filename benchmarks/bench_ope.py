"""Off-policy evaluation at scale: banditkit vs a straightforward obp-style implementation.

On one synthetic log (default 1,000,000 rounds, 10 actions) this times IPS,
SNIPS and DR *with intervals* two ways, in the same process:

* banditkit: ``ope.estimators`` on per-round arrays (``TargetRounds``),
  CLT / delta-method intervals from mergeable moments; O(n_rounds) memory;
* baseline: the Open Bandit Pipeline way, as ``OffPolicyEvaluation.
  summarize_off_policy_estimates`` runs it with its defaults: dense
  ``(n_rounds, n_actions, 1)`` action distributions and reward-model arrays,
  obp's input checks, the point estimate, then the round rewards again and a
  Python-loop bootstrap of 100 resamples drawn by a ``RandomState`` for the
  interval.

It checks that both give the same point estimate, and prints one JSON line per
estimator with median/p95 seconds, peak traced memory (tracemalloc) and the
speed-up. A second set of lines times banditkit's own vectorized bootstrap.

``--whole-process`` times what a user waits for instead, start-up included:
the same log written as a CSV of per-round columns, then, over ``--rounds``
rounds in alternating order, two processes on it:

* ``python -m cli evaluate LOG.csv ... --json`` (the ``banditkit`` command),
  and the same without ``--json`` (its text table needs pandas);
* an obp-style process: it imports what ``import obp`` imports (OBP_IMPORTS,
  those installed; the record names the others, seaborn and torch on the
  development machine, so this baseline still starts faster than obp), reads
  the CSV with pandas, builds obp's dense ``(n_rounds, n_actions, 1)`` inputs
  and runs the baseline above for IPS, SNIPS and DR with obp's default
  bootstrap (100 resamples);
* the same obp-style process with only the imports of obp's estimators
  (OBP_LEAN_IMPORTS: pandas, SciPy, scikit-learn, no plotting), so that the
  ratio is reported with and without the plotting and learning imports.

It prints one JSON line with each command's median and best wall seconds
and median CPU seconds, the ratios (against both obp-style processes), the
obp imports missing here, the obp-style process's phases,
banditkit's import times, the CPU seconds of its reading and estimates alone
(in this process) and whether both give the same point estimates.

Usage::

    python benchmarks/bench_ope.py                       # 1M rounds, in process
    python benchmarks/bench_ope.py --whole-process       # 1M rounds, as processes
    python benchmarks/bench_ope.py --smoke [--whole-process]   # tiny sizes, for CI
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: What ``import obp`` loads besides numpy: obp/__init__.py imports obp.dataset (pandas,
#: scipy.stats, sklearn.preprocessing), obp.ope (its estimators and regression model:
#: scikit-learn; meta.py: matplotlib.pyplot and seaborn), obp.policy (scipy.special,
#: sklearn.linear_model, torch, tqdm, mypy_extensions) and obp.utils (torch).
OBP_IMPORTS = ("pandas", "scipy.stats", "scipy.special", "sklearn.base",
               "sklearn.linear_model", "sklearn.model_selection", "sklearn.preprocessing",
               "sklearn.utils", "matplotlib.pyplot", "seaborn", "torch", "torch.nn",
               "torch.optim", "tqdm", "mypy_extensions")
#: Only what obp's estimators and regression model import, no plotting or learning.
OBP_LEAN_IMPORTS = ("pandas", "scipy.stats", "sklearn.base", "sklearn.model_selection",
                    "sklearn.utils")
#: The per-round columns of the whole-process CSV, as ``banditkit evaluate`` names them.
TABLE_OPTIONS = ("--action-col", "action", "--target-prob-col", "target_prob",
                 "--model-reward-col", "model_reward", "--model-value-col", "model_value")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-rounds", type=int, default=1_000_000)
    parser.add_argument("--n-actions", type=int, default=10)
    parser.add_argument("--n-bootstrap", type=int, default=100,
                        help="baseline bootstrap resamples (obp's default is 100)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs after a warm-up (x5 for banditkit's CLT path)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--whole-process", action="store_true",
                        help="time `banditkit evaluate` and an obp-style process on a CSV")
    parser.add_argument("--rounds", type=int, default=7,
                        help="--whole-process: timed runs of each command after a warm-up")
    parser.add_argument("--obp-process", type=Path, default=None, metavar="CSV",
                        help=argparse.SUPPRESS)  # the obp-style child of --whole-process
    parser.add_argument("--obp-lean", action="store_true",
                        help=argparse.SUPPRESS)  # that child with OBP_LEAN_IMPORTS
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n_rounds, args.repeats, args.n_bootstrap, args.rounds = 5_000, 1, 20, 2
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


def _obp_checks(name: str, data: dict[str, np.ndarray]) -> None:
    """What obp's ``check_ope_inputs`` verifies each time an estimator runs."""
    action_dist, action = data["action_dist"], data["action"]
    if not np.allclose(action_dist.sum(axis=1), 1):
        raise ValueError("action_dist must be a probability distribution")
    if name == "dr" and data["q"].shape != action_dist.shape:
        raise ValueError("the reward model's shape must be action_dist's")
    if not (np.issubdtype(action.dtype, np.integer) and action.min() >= 0
            and action.max() < action_dist.shape[1]):
        raise ValueError("actions must be integers in [0, n_actions)")
    if np.any(data["pscore"] <= 0):
        raise ValueError("pscore must be positive")


def _obp_round_rewards(name: str, data: dict[str, np.ndarray]) -> np.ndarray:
    """obp's per-round rewards of IPW, SNIPW and DR, indexed by position as obp does."""
    n = len(data["reward"])
    rows, position, action = np.arange(n), np.zeros(n, dtype=int), data["action"]
    iw = data["action_dist"][rows, action, position] / data["pscore"]
    if name == "snips":
        return data["reward"] * iw / iw.mean()
    iw = np.minimum(iw, np.inf)  # obp's default clipping, lambda_ = inf
    if name == "ips":
        return data["reward"] * iw
    q = data["q"]
    estimated = np.average(q[rows, :, position], weights=data["action_dist"][rows, :, position],
                           axis=1)
    return estimated + iw * (data["reward"] - q[rows, action, position])


def _obp_interval(round_rewards: np.ndarray, n_bootstrap: int, seed: int) -> tuple:
    """obp's bootstrap: ``check_random_state`` gives a legacy ``RandomState``."""
    random = np.random.RandomState(seed)
    samples = [np.mean(random.choice(round_rewards, size=round_rewards.shape[0]))
               for _ in range(n_bootstrap)]
    return float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def baseline(name: str, data: dict[str, np.ndarray], n_bootstrap: int, seed: int) -> tuple:
    """A point estimate and its interval as obp's ``summarize_off_policy_estimates`` gets
    them: ``estimate_policy_value``, then ``estimate_interval``, each checking its inputs
    and computing the round rewards."""
    _obp_checks(name, data)
    value = float(_obp_round_rewards(name, data).mean())
    _obp_checks(name, data)
    return value, _obp_interval(_obp_round_rewards(name, data), n_bootstrap, seed)


def dense_inputs(table: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """obp's inputs from the per-round table, in the layout :func:`baseline` takes.

    obp's estimators take the target's and the reward model's whole
    ``(n_rounds, n_actions, 1)`` arrays. The logged action keeps its target
    probability and q̂; the other actions share the rest of the probability
    evenly, with the q̂ that makes ``Σ_a π(a) q̂(a)`` the table's v̂.
    """
    action, probability = table["action"], table["target_prob"]
    rows = np.arange(len(action))
    rest = 1.0 - probability
    action_dist = np.repeat((rest / (k - 1))[:, None], k, axis=1)
    action_dist[rows, action] = probability
    other = np.divide(table["model_value"] - probability * table["model_reward"], rest,
                      out=np.zeros(len(rest)), where=rest > 0)
    q = np.repeat(other[:, None], k, axis=1)
    q[rows, action] = table["model_reward"]
    return {"action": action, "reward": table["reward"], "pscore": table["propensity"],
            "action_dist": action_dist[:, :, None], "q": q[:, :, None]}


def obp_process(path: Path, *, n_actions: int, n_bootstrap: int, seed: int,
                lean: bool = False) -> dict:
    """The obp-style process of ``--whole-process``, with the seconds of each phase and
    the obp imports not installed here."""
    clock = [time.perf_counter()]
    missing = []
    for module in OBP_LEAN_IMPORTS if lean else OBP_IMPORTS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(module)
    import pandas as pd

    clock.append(time.perf_counter())
    frame = pd.read_csv(path)
    clock.append(time.perf_counter())
    data = dense_inputs({column: frame[column].to_numpy() for column in frame.columns},
                        n_actions)
    clock.append(time.perf_counter())
    estimates = {name: baseline(name, data, n_bootstrap, seed) for name in ("ips", "snips", "dr")}
    # summarize_off_policy_estimates returns its two tables as DataFrames
    values = pd.DataFrame({name: value for name, (value, _) in estimates.items()},
                          index=["value"]).T
    intervals = pd.DataFrame({name: {"low": ci[0], "high": ci[1]}
                              for name, (_, ci) in estimates.items()}).T
    clock.append(time.perf_counter())
    phases = dict(zip(("import_s", "read_s", "dense_s", "estimate_s"), np.diff(clock).tolist(),
                      strict=True))
    return {"estimates": {name: {"value": float(values.loc[name, "value"]),
                                 "ci": intervals.loc[name, ["low", "high"]].tolist()}
                          for name in estimates}, "phases": phases,
            "missing_imports": missing}


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


def in_process(args: argparse.Namespace) -> list[dict]:
    """The estimators alone, banditkit's against the baseline, in this process."""
    from ope.estimators import DR, IPS, SNIPS
    from ope.rounds import LoggedRounds, TargetRounds

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


def write_table(path: Path, data: dict[str, np.ndarray]) -> None:
    """The log as the per-round CSV that ``banditkit evaluate`` reads with TABLE_OPTIONS."""
    import pyarrow as pa
    import pyarrow.csv as pv

    rows = np.arange(len(data["reward"]))
    action_dist, q = data["action_dist"][:, :, 0], data["q"][:, :, 0]
    pv.write_csv(pa.table({
        "action": data["action"], "reward": data["reward"], "propensity": data["pscore"],
        "target_prob": action_dist[rows, data["action"]],
        "model_reward": q[rows, data["action"]],
        "model_value": np.average(q, weights=action_dist, axis=1)}), path)


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    finished = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if finished.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr}")
    return finished


#: Modules whose first import ``--whole-process`` reports (cumulative ms, from
#: ``python -X importtime``); those absent were not imported.
WATCHED_IMPORTS = ("click", "serving.config", "flask", "pydantic", "banditkit.store", "numpy",
                   "ope.evaluation", "pyarrow", "pyarrow.csv", "pyarrow.compute", "pandas",
                   "scipy", "sklearn", "matplotlib", "vowpal_wabbit_next", "tqdm")


def import_times(command: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    """Median cumulative import milliseconds of the WATCHED_IMPORTS ``command`` loads."""
    found: dict[str, list[float]] = {}
    for _ in range(runs):
        stderr = run([command[0], "-X", "importtime", *command[1:]], env).stderr
        for line in stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                _, cumulative, name = line.split("|")
                if name.strip() in WATCHED_IMPORTS:
                    found.setdefault(name.strip(), []).append(int(cumulative) / 1000)
    return {name: round(float(np.median(ms)), 1) for name, ms in found.items()}


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's finished children (less sensitive to
    a shared machine's load than wall time; pyarrow's threads add theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def in_process_work(path: Path, runs: int) -> dict[str, float]:
    """Median CPU seconds of reading the CSV and of the estimates, in this process: the
    rest of the command's CPU time is start-up."""
    from ope.evaluation import evaluate, make_estimators, read_table

    read, estimate = [], []
    for _ in range(runs):
        start = time.process_time()
        log = read_table([path], reward_col="reward", propensity_col="propensity",
                         action_col="action", target_prob_cols=["target_prob"],
                         model_reward_col="model_reward", model_value_col="model_value")
        middle = time.process_time()
        evaluate(log.rounds, log.targets,
                 estimators=make_estimators(["ips", "snips", "dr"])).to_dict()
        read.append(middle - start)
        estimate.append(time.process_time() - middle)
    return {"read_table": float(np.median(read)), "evaluate": float(np.median(estimate))}


def whole_process(args: argparse.Namespace) -> dict:
    """``banditkit evaluate`` and the obp-style process on one CSV, start-up included."""
    data = make_data(args.n_rounds, args.n_actions, args.seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.csv"
        write_table(path, data)
        del data
        evaluate = [sys.executable, "-m", "cli", "evaluate", str(path), *TABLE_OPTIONS]
        obp = [sys.executable, str(Path(__file__).resolve()), "--obp-process", str(path),
               "--n-actions", str(args.n_actions), "--n-bootstrap", str(args.n_bootstrap),
               "--seed", str(args.seed)]
        commands = {
            "banditkit": [*evaluate, "--json"],
            "banditkit_text": evaluate,
            "obp_style": obp,
            "obp_style_lean": [*obp, "--obp-lean"],
            "interpreter": [sys.executable, "-c", "pass"],
        }
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        stdout: dict[str, str] = {}
        # Round 0 warms the page cache and the bytecode; the order alternates so
        # that the load of a shared machine drifts over every command alike.
        for round_ in range(args.rounds + 1):
            for name in (commands if round_ % 2 else reversed(commands)):
                cpu_start, start = children_cpu_seconds(), time.perf_counter()
                stdout[name] = run(commands[name], env).stdout
                if round_:
                    seconds[name].append(time.perf_counter() - start)
                    cpu[name].append(children_cpu_seconds() - cpu_start)
        imports = import_times(commands["banditkit"], env, runs=3)
        work = in_process_work(path, runs=3)
    ours = json.loads(stdout["banditkit"])["estimates"]
    obp = json.loads(stdout["obp_style"])
    lean = json.loads(stdout["obp_style_lean"])
    equal = all(np.isclose(ours[name]["value"], other["estimates"][name]["value"], rtol=1e-9,
                           atol=0) for name in ("ips", "snips", "dr") for other in (obp, lean))
    timings = {name: {**summarise(s), "best_s": min(s), "cpu_median_s": float(np.median(cpu[name]))}
               for name, s in seconds.items()}
    obp_s, lean_s = timings["obp_style"], timings["obp_style_lean"]
    import pyarrow

    record = {
        "bench": "ope_whole_process", "n_rounds": args.n_rounds, "n_actions": args.n_actions,
        "n_bootstrap": args.n_bootstrap, "rounds": args.rounds, "smoke": args.smoke,
        "command": "python -m cli evaluate LOG.csv " + " ".join(TABLE_OPTIONS) + " --json",
        **timings,
        "speedup_median": obp_s["median_s"] / timings["banditkit"]["median_s"],
        "speedup_best": obp_s["best_s"] / timings["banditkit"]["best_s"],
        "speedup_text_median": obp_s["median_s"] / timings["banditkit_text"]["median_s"],
        "speedup_cpu_median": obp_s["cpu_median_s"] / timings["banditkit"]["cpu_median_s"],
        "speedup_lean_median": lean_s["median_s"] / timings["banditkit"]["median_s"],
        "speedup_lean_best": lean_s["best_s"] / timings["banditkit"]["best_s"],
        "speedup_lean_cpu_median": lean_s["cpu_median_s"] / timings["banditkit"]["cpu_median_s"],
        "obp_imports_missing": obp["missing_imports"],
        "obp_style_phases_s": obp["phases"], "obp_style_lean_phases_s": lean["phases"],
        "banditkit_imports_ms": imports,
        "banditkit_in_process_cpu_s": work,
        "equal_point_estimates": bool(equal), "pyarrow": pyarrow.__version__, **versions(),
    }
    write(record, args.out)
    if not equal:
        raise SystemExit("point estimates differ between banditkit and the obp-style process")
    return record


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.obp_process is not None:
        print(json.dumps(obp_process(args.obp_process, n_actions=args.n_actions,
                                     n_bootstrap=args.n_bootstrap, seed=args.seed,
                                     lean=args.obp_lean)))
        return []
    if args.whole_process:
        return [whole_process(args)]
    return in_process(args)


if __name__ == "__main__":
    main()
