"""``banditkit evaluate`` in process vs ``--spark local[N]``: whole-process time and memory.

On a generated joined dsjson log in 30 date partitions (``dt=YYYY-MM-DD/``,
written by banditkit's own log writer) of each size given, this runs the
command a user runs, ``python -m cli evaluate LOGS --json``, once in process
and once with ``--spark local[N]``, each as its own process, and measures

* wall time of the whole process (interpreter, imports, JVM start included);
* peak memory, sampled from ``/proc`` every 0.1 s: the Python driver's own
  high-water mark (``VmHWM``), the JVM's, and the largest sum over the process
  tree (driver, JVM, Python workers);
* CPU-seconds of the whole tree (user + system, every process's last
  reading), since on a shared machine wall time says as much about the
  neighbours as about the engine;
* events/s per core (N cores for Spark, one in process) and events per
  CPU-second, over the whole process and at the margin between the smallest
  and largest size (start-up left out).

It compares the estimates both engines print (the largest relative
difference, and the largest in standard errors: reward-model estimates differ
within the ridge solver's tolerance, ``docs/evaluation.md``), and prints one JSON
line per run, then a summary line projecting 1,000,000,000 events on a
32-core cluster from Spark's marginal events per CPU-second (each core busy).

Usage::

    python benchmarks/bench_spark.py                    # 10k and 30k events
    python benchmarks/bench_spark.py --sizes 1000000,10000000
    python benchmarks/bench_spark.py --smoke            # tiny, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_ope import write  # noqa: E402  (the JSON lines of every OPE benchmark)

DAYS = 30


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,30000",
                        help="comma-separated event counts (two or more show the margin)")
    parser.add_argument("--cores", type=int, default=2, help="N of --spark local[N]")
    parser.add_argument("--estimators", default="ips,snips",
                        help="--estimators of evaluate (dr adds the reward model)")
    parser.add_argument("--cluster-cores", type=int, default=32)
    parser.add_argument("--project-events", type=float, default=1e9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where logs are generated [default: a temporary folder]")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes = "2000,4000"
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    return args


def generate(root: Path, n_events: int, seed: int) -> None:
    """A simulated joined log of ``n_events`` over 30 days, streamed to its partitions."""
    from banditkit.eventlog import EventLogWriter
    from simulator.world import ArtworkWorld
    from simulator.worldlog import sample_log, taste_policy, write_world_log

    world = ArtworkWorld.generate(seed=seed, n_members=2000, n_titles=40)
    log = sample_log(world, taste_policy(world, sharpness=4.0, epsilon=0.2),
                     n_rounds=n_events, seed=seed + 1)
    flat = write_world_log(log, root.with_name(root.name + "-flat.dsjson"),
                           seconds_between=DAYS * 86_400 / n_events)
    writer = EventLogWriter(root=root, fsync=False)
    with open(flat, encoding="utf-8") as handle:
        batch: list[tuple[str, str]] = []
        for line in handle:
            batch.append((json.loads(line)["Timestamp"], line.rstrip("\n")))
            if len(batch) == 50_000:
                writer.append(batch)
                batch = []
        writer.append(batch)
    flat.unlink()


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(parent, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _kb(text: str | None) -> int:
    return int(text.split()[0]) if text else 0


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(command: list[str]) -> dict[str, object]:
    """Wall time, CPU-seconds and peak memory (MB) of a command and its process tree."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env, text=True)
    driver = jvm = tree = 0
    cpu: dict[int, float] = {}
    while process.poll() is None:
        total = 0
        for pid in _tree(process.pid):
            cpu[pid] = max(cpu.get(pid, 0.0), _cpu_seconds(pid))
            status = _status(pid)
            rss = _kb(status.get("VmRSS"))
            total += rss
            if pid == process.pid:
                driver = max(driver, _kb(status.get("VmHWM")))
            elif status.get("Name", "").strip() == "java":
                jvm = max(jvm, _kb(status.get("VmHWM")))
        tree = max(tree, total)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with {process.returncode}")
    return {"seconds": wall, "cpu_seconds": sum(cpu.values()), "driver_peak_mb": driver / 1024,
            "jvm_peak_mb": jvm / 1024, "tree_peak_mb": tree / 1024, "report": json.loads(output)}


def versions() -> dict[str, str]:
    import pyspark

    return {"python": platform.python_version(), "pyspark": pyspark.__version__}


def _differences(a: dict, b: dict) -> dict[str, float]:
    """Largest relative difference of the values, and largest in standard errors."""
    relative = standard = 0.0
    for policy, entry in a["policies"].items():
        for name, estimate in entry["estimates"].items():
            other = b["policies"][policy]["estimates"][name]
            gap = abs(estimate["value"] - other["value"])
            relative = max(relative, gap / max(abs(estimate["value"]), 1e-300))
            if estimate["std_error"]:
                standard = max(standard, gap / estimate["std_error"])
    return {"max_relative_difference": relative, "max_difference_in_std_errors": standard}


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-spark-"))
    base = [sys.executable, "-m", "cli", "evaluate", "--json", "--estimators", args.estimators]
    records: list[dict] = []
    try:
        for n_events in args.sizes:
            logs = workdir / f"logs-{n_events}"
            if not logs.exists():
                generate(logs, n_events, args.seed)
            size_mb = sum(p.stat().st_size for p in logs.rglob("*.dsjson")) / 2**20
            local = run([*base, str(logs)])
            spark = run([*base, str(logs), "--spark", f"local[{args.cores}]"])
            differences = _differences(local.pop("report"), spark.pop("report"))
            for engine, result, cores in (("in-process", local, 1),
                                          ("spark", spark, args.cores)):
                record = {"name": "evaluate", "engine": engine, "events": n_events,
                          "partitions": DAYS, "log_mb": round(size_mb, 1), "cores": cores,
                          "estimators": args.estimators, **result,
                          "events_per_s_per_core": n_events / result["seconds"] / cores,
                          "events_per_cpu_second": n_events / result["cpu_seconds"],
                          **differences, **versions()}
                write(record, args.out)
                records.append(record)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(args.sizes) >= 2:
        summary: dict[str, object] = {"name": "summary"}
        for engine in ("in-process", "spark"):
            small, large = [r for r in records if r["engine"] == engine][::len(args.sizes) - 1]
            extra = large["events"] - small["events"]
            summary[engine] = {
                "marginal_events_per_s_per_core": extra / (large["seconds"] - small["seconds"])
                / large["cores"],
                "marginal_events_per_cpu_second": extra / (large["cpu_seconds"]
                                                           - small["cpu_seconds"]),
                "driver_peak_mb": [r["driver_peak_mb"] for r in records
                                   if r["engine"] == engine]}
        rate = summary["spark"]["marginal_events_per_cpu_second"]  # type: ignore[index]
        summary["projection"] = {
            "events": args.project_events, "cores": args.cluster_cores,
            "hours": args.project_events / (rate * args.cluster_cores) / 3600}
        write(summary, args.out)
        records.append(summary)
    return records


if __name__ == "__main__":
    main()
