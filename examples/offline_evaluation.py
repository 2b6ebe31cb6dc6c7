"""Offline evaluation: what would other policies have earned, from the decision log alone?

Run it with ``python examples/offline_evaluation.py``.

A simulated world with known truth (members, titles, artwork variants and the
exact chance each member plays each variant) writes a dsjson decision log as
banditkit's learner would; ``banditkit evaluate`` then estimates the value of
the logged policy, uniform random and the baseline (always the first variant)
with confidence intervals, and writes the HTML report. The true values are
printed beside the estimates.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from simulator.world import ArtworkWorld
from simulator.worldlog import epsilon_greedy, sample_log, taste_policy, write_world_log

with tempfile.TemporaryDirectory(prefix="banditkit-example-") as folder:
    logs = Path(folder) / "logs"

    # The world and a log drawn from an exploring policy (70% follow taste, 30% uniform).
    world = ArtworkWorld.generate(seed=0, n_members=300)
    logging_policy = epsilon_greedy(taste_policy(world), epsilon=0.3)
    log = sample_log(world, logging_policy, n_rounds=4000, seed=1)
    write_world_log(log, logs / "dt=2026-01-01" / "events.dsjson")

    baseline = np.zeros_like(logging_policy)
    baseline[..., 0] = 1.0
    truth = {"logged": world.policy_value(logging_policy),
             "uniform": world.policy_value(world.uniform_policy()),
             "baseline": world.policy_value(baseline)}

    # The command a data scientist runs (`banditkit evaluate ...`), here with this Python.
    report_dir = Path(folder) / "report"
    command = [sys.executable, "-m", "cli", "evaluate", str(logs), "--policy", "logged",
               "--policy", "uniform", "--policy", "baseline", "--json",
               "--report", str(report_dir)]
    result = json.loads(subprocess.run(command, check=True, capture_output=True,
                                       text=True).stdout)

    print(f"{result['n_rounds']} logged rounds; take rate per policy (DR estimate, 95% CI):")
    for name, evaluated in result["policies"].items():
        dr = evaluated["estimates"]["dr"]
        low, high = dr["ci"]
        print(f"  {name:9s} {dr['value']:.3f} [{low:.3f}, {high:.3f}]   true {truth[name]:.3f}")
    pages = sorted(path.name for path in report_dir.iterdir())
    print(f"HTML report written: {', '.join(pages)}")
