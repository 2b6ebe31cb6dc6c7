"""Two ``banditkit serve`` hosts on one PostgreSQL: shipping lag and learner takeover.

Two real hosts (2 workers and a learner process each, ``--learner-interval``,
separate data directories, one database, one shared ``--log-dir``) take a
client load that ranks on one host and rewards on the other (threads over
loopback, caller-chosen event ids).

* **shipping lag**: from a rank's acknowledgement to its decision's row in
  PostgreSQL (a poller reads the new rows every 10 ms), p50 and p99 per round;
  the baseline is the learner interval, the time a journal waits for its
  next shipping at most.
* **takeover**: the lease holder's whole process group is killed with SIGKILL
  under load; the time until the other host's learner holds the lease (its
  epoch is in ``learner_epoch``) and until the joined log grows again (which
  includes the 1 s reward wait of the decisions it joins first); then
  the killed host is started again for the next round. The baseline is the
  15 s goal.
* **hung holder**: the lease holder's learner process is stopped (SIGSTOP)
  while its host and connections stay up; the time until the other host's
  learner deposed it (its heartbeat is 10 s old) and holds the lease.

Figures are medians over rounds. Learner events/s on PostgreSQL against SQLite
is ``benchmarks/bench_store.py``'s.

    python benchmarks/bench_hosts.py            # 3 rounds of 8 s, 3 takeovers, 1 hang
    python benchmarks/bench_hosts.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from banditkit.engine import Engine  # noqa: E402
from banditkit.settings import LoopSettings  # noqa: E402
from tests.server.pg_hosts import (  # noqa: E402
    Load,
    lease_holder,
    new_host,
    start_host,
)
from tests.server.test_serve import kill  # noqa: E402

SETTINGS = LoopSettings(reward_wait_seconds=1.0, model_update_seconds=1.0)
TAKEOVER_GOAL_SECONDS = 15.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="shipping-lag rounds")
    parser.add_argument("--seconds", type=float, default=8.0, help="load per lag round")
    parser.add_argument("--takeovers", type=int, default=3, help="kills of the lease holder")
    parser.add_argument("--hangs", type=int, default=1,
                        help="times the lease holder's learner is stopped (SIGSTOP)")
    parser.add_argument("--learner-interval", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.seconds, args.takeovers, args.hangs = 1, 3.0, 1, 0
    return args


class _Arrivals:
    """When each decision's row appeared in PostgreSQL (polled every 10 ms)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        last = 0
        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self._stop.wait(0.01):
                rows = connection.execute("SELECT id, event_id FROM banditkit.events "
                                          "WHERE id > %s ORDER BY id", (last,)).fetchall()
                now = time.monotonic()
                for row_id, event_id in rows:
                    self.seen.setdefault(event_id, now)
                    last = max(last, row_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _holder(hosts: list, url: str):  # type: ignore[no-untyped-def]
    found = lease_holder(url)
    if found is None:
        return None, 0
    epoch, pid = found
    return next((h for h in hosts if pid in h.served.learner_pids()), None), epoch


def _log_lines(log_dir: Path) -> int:
    """Lines of the shared joined log (cheaper than parsing it)."""
    return sum(path.read_bytes().count(b"\n") for path in (log_dir / "logs").rglob("*.dsjson"))


def _wait(condition, seconds: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise SystemExit(f"timed out after {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def _lag_round(hosts: list, url: str, *, prefix: str, seconds: float, threads: int
               ) -> dict:
    """Load both hosts for ``seconds``; the lag of each acknowledged decision's row."""
    arrivals = _Arrivals(url)
    load = Load(hosts=hosts, prefix=prefix, threads=threads).start()
    time.sleep(seconds)
    load.stop()
    _wait(lambda: set(load.acknowledged) <= set(arrivals.seen), 30)
    arrivals.stop()
    lag = [arrivals.seen[e] - at for e, at in load.acknowledged_at.items()]
    return {"decisions": len(lag), "decisions_per_s": round(len(lag) / seconds, 1),
            "lag_p50_s": round(_percentile(lag, 0.5), 3),
            "lag_p99_s": round(_percentile(lag, 0.99), 3), "lag_max_s": round(max(lag), 3)}


def _takeover_round(hosts: list, url: str, log_dir: Path, *, prefix: str) -> dict:
    """Kill the lease holder's process group under load; seconds until the other host
    holds the lease and until the joined log grows."""
    holder, epoch = _holder(hosts, url)
    alive = next(h for h in hosts if h is not holder)
    load = Load(hosts=[alive], prefix=prefix, threads=2).start()
    time.sleep(1.0)
    kill(holder.served)
    killed = time.monotonic()
    before = _log_lines(log_dir)
    lease = _wait(lambda: _holder(hosts, url) == (alive, epoch + 1), 60)
    _wait(lambda: _log_lines(log_dir) > before, 60)
    joining = time.monotonic() - killed
    load.stop()
    return {"lease_s": round(lease, 2), "log_grows_s": round(joining, 2)}


def _deposed_round(hosts: list, url: str, *, prefix: str) -> dict:
    """Stop the lease holder's learner process (SIGSTOP) under load; seconds until the
    other host's learner deposed it and holds the lease. It is woken afterwards."""
    holder, epoch = _holder(hosts, url)
    alive = next(h for h in hosts if h is not holder)
    learner = lease_holder(url)[1]
    load = Load(hosts=hosts, prefix=prefix, threads=2).start()
    time.sleep(1.0)
    os.kill(learner, signal.SIGSTOP)
    try:
        deposed = _wait(lambda: _holder(hosts, url) == (alive, epoch + 1), 60)
    finally:
        os.kill(learner, signal.SIGCONT)
    load.stop()
    return {"deposed_s": round(deposed, 2)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tests.postgres_fixture import PostgresServer, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's initdb and pg_ctl are missing")
    lags: list[dict] = []
    takeovers: list[dict] = []
    hangs: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        server = PostgresServer(bin_dir=bin_dir,
                                folder=Path(tempfile.mkdtemp(prefix="banditkit-pg-")))
        server.start()
        hosts = []
        try:
            url = server.create_database()
            Engine.open(root / "a", settings=SETTINGS, database_url=url).close()
            hosts = [new_host(root, name, url) for name in ("a", "b")]
            log_dir = root / "shared-logs"
            interval = ("--learner-interval", str(args.learner_interval))
            for host in hosts:
                start_host(host, root / f"{host.name}.log", url, log_dir, *interval)
            _wait(lambda: _holder(hosts, url)[0] is not None, 30)
            for round_ in range(args.rounds):
                figures = _lag_round(hosts, url, prefix=f"lag{round_}", seconds=args.seconds,
                                     threads=args.threads)
                lags.append(figures)
                print(json.dumps({"name": "shipping", "round": round_, **figures}), flush=True)
            for round_ in range(args.takeovers):
                figures = _takeover_round(hosts, url, log_dir, prefix=f"takeover{round_}")
                takeovers.append(figures)
                print(json.dumps({"name": "takeover", "round": round_, **figures}), flush=True)
                killed = next(h for h in hosts if h.served.process.poll() is not None)
                start_host(killed, root / f"{killed.name}-{round_}.log", url, log_dir,
                           *interval)
            for round_ in range(args.hangs):
                figures = _deposed_round(hosts, url, prefix=f"hung{round_}")
                hangs.append(figures)
                print(json.dumps({"name": "hung_holder", "round": round_, **figures}),
                      flush=True)
        finally:
            for host in hosts:
                if host.served is not None:
                    kill(host.served)
            server.stop()
            shutil.rmtree(server.folder, ignore_errors=True)
    summary = {"name": "summary", "learner_interval_s": args.learner_interval,
               "threads": args.threads}
    if lags:
        for key in ("decisions_per_s", "lag_p50_s", "lag_p99_s"):
            summary[key] = statistics.median(r[key] for r in lags)
        summary["lag_p99_over_interval"] = round(summary["lag_p99_s"] / args.learner_interval, 2)
    if takeovers:
        for key in ("lease_s", "log_grows_s"):
            summary[f"takeover_{key}"] = statistics.median(r[key] for r in takeovers)
        summary["takeover_over_goal"] = round(summary["takeover_lease_s"]
                                              / TAKEOVER_GOAL_SECONDS, 3)
    if hangs:
        summary["hung_holder_deposed_s"] = statistics.median(r["deposed_s"] for r in hangs)
        summary["hung_over_goal"] = round(summary["hung_holder_deposed_s"]
                                          / TAKEOVER_GOAL_SECONDS, 3)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
