"""A Spark executor's Python worker killed mid-job: Spark retries its task and
``banditkit evaluate --spark`` still prints the in-process numbers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ope.evaluation import evaluate_log, make_estimators
from tests.conftest import write_partitioned_log

ROOT = Path(__file__).resolve().parents[2]


def parents() -> dict[int, int]:
    """Every process's parent, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1]
                                             .split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended while read
    return found


def python_workers(root: int) -> list[int]:
    """The PySpark Python workers under process ``root``: the children its
    ``pyspark.daemon`` forks, one per running task (reused between tasks)."""
    parent_of = parents()

    def under_root(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parent_of.get(pid, 0)
        return False

    daemons = set()
    for pid in parent_of:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pyspark.daemon" in command and under_root(pid):
            daemons.add(pid)
    return [pid for pid, parent in parent_of.items() if parent in daemons]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """20,000 events in 7 date partitions: 7 tasks of about a second each."""
    root = tmp_path_factory.mktemp("faults") / "logs"
    write_partitioned_log(root, n_events=20_000, days=6, seed=5)
    return root


def run_killing_a_worker(logs: Path, names: str, master: str
                         ) -> tuple[subprocess.CompletedProcess, int | None]:
    """``banditkit evaluate LOGS --spark MASTER --json`` with the first Python worker
    killed (SIGKILL) inside its first task; the finished process and the worker's pid."""
    command = [sys.executable, "-m", "cli", "evaluate", str(logs), "--estimators", names,
               "--spark", master, "--json"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = None
    try:
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and process.poll() is None:
            workers = python_workers(process.pid)
            if workers:
                time.sleep(0.3)  # inside its first task
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), killed


@pytest.mark.slow
def test_a_python_worker_killed_mid_job_is_retried_and_the_numbers_stay_exact(logs):
    names = "ips,snips,replay"
    # local[2,4]: two task threads, a task tried up to 4 times, as a cluster retries
    finished, killed = run_killing_a_worker(logs, names, "local[2,4]")
    assert killed is not None, "no Python worker ran"
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Lost task" in finished.stderr  # the task the worker ran failed, and ran again
    got = json.loads(finished.stdout)
    expected = evaluate_log([logs], estimators=make_estimators(names.split(","))).to_dict()
    assert got["n_rounds"] == expected["n_rounds"] == 20_000
    for policy, entry in expected["policies"].items():
        for name, estimate in entry["estimates"].items():
            mine = got["policies"][policy]["estimates"][name]
            assert mine["value"] == pytest.approx(estimate["value"], rel=1e-9), (policy, name)
            assert mine["ci"] == pytest.approx(estimate["ci"], rel=1e-9), (policy, name)


@pytest.mark.slow
def test_a_task_that_fails_more_often_than_spark_retries_is_named_in_one_line(logs):
    # local[2]: a task is tried once, so the killed worker fails the job
    finished, killed = run_killing_a_worker(logs, "ips", "local[2]")
    assert killed is not None, "no Python worker ran"
    assert finished.returncode == 1 and finished.stdout == ""
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the Spark job failed: Task "), finished.stderr[-2000:]
    assert "failed 1 times" in last and "Python worker exited unexpectedly" in last
    assert "Traceback" not in finished.stderr
