"""Every script in examples/ runs as a user runs it, and prints what it promises.

Each example starts what it needs (a ``banditkit serve`` on a free loopback
port, a temporary data directory) and cleans up; these tests run them in a
fresh process and read their output. Figures that depend on the draw are
checked against ranges the example's own simulation guarantees.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def start_example(name: str, env: Mapping[str, str | None] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """Run ``examples/NAME`` from the repository's root, with ``env`` over the
    environment (None removes a variable); the finished process."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for variable, value in (env or {}).items():
        if value is None:
            environ.pop(variable, None)
        else:
            environ[variable] = value
    return subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                          text=True, env=environ, timeout=300, cwd=EXAMPLES.parent)


def run_example(name: str, env: Mapping[str, str | None] | None = None) -> str:
    """Run ``examples/NAME`` as :func:`start_example` does; its stdout (it must exit 0)."""
    finished = start_example(name, env)
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text``, which must match."""
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in:\n{text}"
    return match.group(1)


def assert_printed(text: str, *lines: str) -> None:
    """Each of ``lines`` is in ``text`` (all missing ones named at once)."""
    missing = [line for line in lines if line not in text]
    assert not missing, f"{missing} not in:\n{text}"


def test_every_example_is_tested() -> None:
    tested = {name[len("test_"):] + ".py" for name in globals() if name.startswith("test_")}
    scripts = {path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")}
    assert scripts <= tested, scripts - tested


@pytest.mark.slow
def test_python_engine() -> None:
    out = run_example("python_engine.py")
    first = float(found(r"first 250 rounds: ([0-9.]+)", out))
    last = float(found(r"last 250 rounds: +([0-9.]+)", out))
    # Uniform play earns 1/3; the learned policy (10% exploration) earns about 0.93.
    assert first < 0.5 < 0.8 < last
    assert_printed(out, "a drama lover most likely sees: drama-poster",
                   "decision log: 3000 joined events in logs/")


@pytest.mark.slow
def test_azure_personalizer_migration() -> None:
    pytest.importorskip("azure.ai.personalizer")
    out = run_example("azure_personalizer_migration.py")
    assert_printed(out, "reward wait: PT1S exploration: 0.2",
                   "policy: softmax | --cb_explore_adf --softmax --lambda 10 -q MA",
                   "20 ranks, activations and rewards accepted",
                   "events joined into the decision log: 20")
    ranking = found(r"ranking: (\[.*\])", out)
    probabilities = [float(p) for p in re.findall(r"'[a-z-]+', ([0-9.e-]+)\)", ranking)]
    assert len(probabilities) == 3 and sum(probabilities) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_artwork_catalogue() -> None:
    out = run_example("artwork_catalogue.py")
    # title-0 was on every page: 5 impressions, split between its two posters.
    assert_printed(out, "catalogue: 40 titles, 80 poster variants",
                   "ranked 200 title slots on 5 pages", "title-0 performance: 5 impressions")
    assert float(found(r"title-0 dark: brightness ([0-9.]+)", out)) < 0.4
    found(r"page 1, title-0: show the (bright|dark) poster \(probability 0\.5\) "
          r"from /v1/artwork/images/[0-9a-f]{64}\.jpg", out)
    shown = [int(n) for n in re.findall(r"(?:bright|dark) poster: (\d+) impressions", out)]
    assert len(shown) == 2 and sum(shown) == 5


@pytest.mark.slow
def test_homepage_rows() -> None:
    out = run_example("homepage_rows.py")
    assert_printed(out, "50 pages ranked", "pages joined into rows/logs: 50")
    slots = re.findall(r"slot (\d): ([a-z-]+) \(p=([0-9.e-]+)\)", out)
    assert [slot for slot, _, _ in slots] == ["1", "2", "3", "4"]
    assert len({row for _, row, _ in slots}) == 4
    page = float(found(r"probability of the whole page: ([0-9.e-]+)", out))
    assert page == pytest.approx(math.prod(float(p) for *_, p in slots), rel=1e-5)


@pytest.mark.slow
def test_offline_evaluation() -> None:
    out = run_example("offline_evaluation.py")
    assert "4000 logged rounds" in out
    rows = re.findall(r"(logged|uniform|baseline) +([0-9.]+) \[([0-9.]+), ([0-9.]+)\] +"
                      r"true ([0-9.]+)", out)
    assert [name for name, *_ in rows] == ["logged", "uniform", "baseline"]
    for _, value, low, high, true in rows:
        # 4000 rounds: each interval is about +-0.015 (+-0.03 for the baseline); a
        # true value further than 0.05 from the estimate would be an estimator bug.
        assert float(low) <= float(value) <= float(high)
        assert abs(float(value) - float(true)) < 0.05
    assert "HTML report written: estimates.png, index.html, weights.png" in out


@pytest.mark.slow
def test_spark_evaluation() -> None:
    out = run_example("spark_evaluation.py")
    assert "7000 logged rounds in 7 date partitions" in out
    rows = re.findall(r"(logged|uniform|baseline) +(ips|snips) +([0-9.]+) +([0-9.]+) +([0-9.]+)",
                      out)
    assert len(rows) == 6
    for _, _, here, there, _ in rows:
        assert here == there  # the same statistics, merged on the driver
    assert_printed(out, "log table: 7000 events in log-table/")
    daily = re.findall(r"2026-01-0\d: 1000 decisions, take rate ([0-9.]+)", out)
    assert len(daily) == 7
    # The logged policy's IPS is the plain mean reward: the mean of seven equal days.
    logged_ips = float(next(here for name, est, here, *_ in rows
                            if (name, est) == ("logged", "ips")))
    assert sum(float(rate) for rate in daily) / 7 == pytest.approx(logged_ips, abs=5e-4)


@pytest.mark.slow
def test_postgres_hosts(postgres_server) -> None:
    out = run_example("postgres_hosts.py",
                      {"BANDITKIT_DATABASE_URL": postgres_server.create_database()})
    assert_printed(out, "40 decisions: 20 ranked on A and rewarded on B, 20 the reverse",
                   # every decision of either host joined once, into the one shared log
                   "shared log: 40 joined decisions, 40 distinct event ids",
                   "poster uploaded on host A, ranked on host B: the same variant, "
                   "its image served by B byte for byte")
    # One learner joined them all (the lease holder); the other host's joined none.
    joined = dict(re.findall(r"host ([AB]) (\d+)",
                             found(r"each host's learner \(/metrics\): (.*)", out)))
    holder = found(r"learner lease held by: host ([AB])\n", out)
    assert joined == {holder: "40", ("B" if holder == "A" else "A"): "0"}
    before = int(found(r"model version before learning: (\d+)", out))
    on_a = found(r"host A ranks with (\d+)", out)
    assert found(r"host B with (\d+)", out) == on_a and int(on_a) > before


def test_postgres_hosts_without_a_database_says_how_to_get_one() -> None:
    finished = start_example("postgres_hosts.py", {"BANDITKIT_DATABASE_URL": None})
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr and finished.stdout == ""
    assert_printed(finished.stderr, "set BANDITKIT_DATABASE_URL",
                   "postgresql://USER@HOST:PORT/DATABASE", "apt install postgresql", "createdb")
