"""Ranking and learning on the PostgreSQL store against the SQLite store, in one run.

For each store (a fresh data directory; for PostgreSQL a fresh database)
one process ranks ``--events`` decisions (one title, 4 variants,
caller-chosen event ids) and rewards a third of them, the two stores in
alternating chunks of 250 (this shared machine's speed drifts within
seconds); then the learner moves them from the journal into the store
(``ingest``) and joins, logs and learns them (``process_due``); and what the
duplicate check of a caller-chosen event id costs the first rank after an
ingestion, when it reads the new rows (:func:`measure_rank_checks`). Each figure
is the median over rounds, and the summary gives PostgreSQL's
rate over SQLite's (docs/operations.md, "PostgreSQL deployments").

Without ``--database-url`` a throwaway PostgreSQL server is started in a
temporary folder (``initdb`` and ``pg_ctl`` from PostgreSQL's packages) and
stopped at the end; then the server's own CPU (its processes' user and
system time, from ``/proc``) is measured around the ingestion and the join
too, per journal line and per joined event. ``--features K`` gives each
variant K numeric image features, as the artwork catalogue's variants carry
(41), so that a decision is as large as a page's: the server compresses
decisions over 2 KB when it stores them.

    python benchmarks/bench_store.py                 # 5000 events x 3 rounds
    python benchmarks/bench_store.py --features 40   # decisions as large as a page's
    python benchmarks/bench_store.py --smoke         # a few hundred, for CI
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from bench_server import tree_cpu_seconds  # the PostgreSQL server's CPU, ended backends too

from banditkit import __version__
from banditkit.engine import Engine
from banditkit.settings import LoopSettings
from banditkit.types import Action


def actions(features: int) -> list[Action]:
    """Four variants, each with a theme, a warmth and ``features`` image measurements."""
    return [Action(id=f"v{i}", features={
        "Artwork": {"theme": f"t{i}", "warmth": i / 4},
        **({"Image": {f"f{k}": (7 * i + k) / 13 for k in range(features)}} if features else {})})
        for i in range(4)]

SETTINGS = LoopSettings(reward_wait_seconds=0.0, model_update_seconds=3600.0,
                        policy_args="--cb_explore_adf --epsilon 0.2 -q MA")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="decisions per store and round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements of both stores; figures are medians over rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server to use (its databases bench_store_<n> are "
                             "created); default: start a throwaway one")
    parser.add_argument("--features", type=int, default=0,
                        help="numeric image features per variant besides its theme and warmth")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds = 300, 1
    if args.events <= 0 or args.rounds <= 0 or args.features < 0:
        parser.error("--events and --rounds must be positive, --features at least 0")
    return args


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[tuple[str, Callable[[], float] | None]]:
    """The maintenance URL of the given server, or of a throwaway one, and for a throwaway
    one the CPU-seconds its processes have used so far."""
    if url is not None:
        yield url, None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.postgres_fixture import PostgresServer, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's initdb and pg_ctl are missing: install PostgreSQL or "
                         "pass --database-url")
    folder = Path(tempfile.mkdtemp(prefix="banditkit-pg-"))
    server = PostgresServer(bin_dir=bin_dir, folder=folder)
    try:
        server.start()
        postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        yield server.url(), functools.partial(tree_cpu_seconds, postmaster, exited=True)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _fresh_database(url: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


def measure(engines: dict[str, Engine], *, events: int, seed: int, variants: list[Action],
            server_cpu: Callable[[], float] | None = None, chunk: int = 250
            ) -> dict[str, dict[str, float]]:
    """Rank and reward ``events`` decisions with each engine, in alternating chunks (this
    machine's speed drifts within seconds), then ingest, then join-log-learn them;
    rates per second, per store, and with ``server_cpu`` the PostgreSQL server's
    microseconds of CPU per ingested line and per joined event."""
    contexts = [{"Member": {"country": "BR"[i % 2], "device": f"d{i % 3}"}}
                for i in range(events)]
    seconds = {name: {"rank": 0.0, "reward": 0.0} for name in engines}
    for engine in engines.values():
        engine.rank(contexts[0], variants, event_id=f"warm-{seed}")  # the first snapshot load
    for k, start in enumerate(range(0, events, chunk)):
        order = list(engines.items()) if k % 2 else list(engines.items())[::-1]
        for name, engine in order:
            started = time.perf_counter()
            for i in range(start, min(start + chunk, events)):
                engine.rank(contexts[i], variants, event_id=f"e{seed}-{i}")
            seconds[name]["rank"] += time.perf_counter() - started
        for name, engine in order:
            started = time.perf_counter()
            for i in range(start, min(start + chunk, events), 3):
                engine.reward(f"e{seed}-{i}", 1.0)
            seconds[name]["reward"] += time.perf_counter() - started
    figures = {}
    for name, engine in engines.items():
        on_server = server_cpu is not None and name == "postgres"
        cpu = [server_cpu()] if on_server else []
        started = time.perf_counter()
        ingested = engine.store.ingest()
        ingest = time.perf_counter() - started
        cpu += [server_cpu()] if on_server else []
        started = time.perf_counter()
        joined = engine.process_due()
        step = time.perf_counter() - started
        cpu += [server_cpu()] if on_server else []
        assert joined == events + 1, (name, joined, events)
        figures[name] = {"rank_per_s": events / seconds[name]["rank"],
                         "reward_per_s": len(range(0, events, 3)) / seconds[name]["reward"],
                         "ingest_lines_per_s": ingested / ingest,
                         "join_log_learn_per_s": joined / step}
        if cpu:
            figures[name].update({"server_us_per_ingested_line": (cpu[1] - cpu[0]) / ingested
                                  * 1e6,
                                  "server_us_per_joined_event": (cpu[2] - cpu[1]) / joined * 1e6})
    return figures


def measure_rank_checks(engines: dict[str, Engine], *, seed: int, ingestions: int = 10,
                        ranks_per_ingestion: int = 200) -> dict[str, dict[str, float]]:
    """What the duplicate check of a caller-chosen event id costs a rank, per store.

    A rank asks the database about its id only when its stored-id filter is stale
    (this host ingested since: one read of the new rows, by the first rank after
    each ingestion) or says "maybe" (about 0.1% of new ids). So ranks run in
    blocks of ``ranks_per_ingestion`` with an ingestion between blocks (a learner
    step), and the first rank of each block is timed apart from the others.
    """
    context = {"Member": {"country": "BR", "device": "tv"}}
    variants = actions(0)
    times = {name: {"first": [], "other": []} for name in engines}
    for block in range(ingestions):
        for name, engine in engines.items():
            for i in range(ranks_per_ingestion):
                started = time.perf_counter()
                engine.rank(context, variants, event_id=f"c{seed}-{block}-{i}")
                times[name]["first" if i == 0 else "other"].append(time.perf_counter() - started)
            engine.store.ingest()
    return {name: {"first_rank_after_ingest_ms": statistics.median(t["first"]) * 1e3,
                   "other_rank_ms": statistics.median(t["other"]) * 1e3}
            for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, list[dict]] = {"sqlite": [], "postgres": []}
    variants = actions(args.features)
    with _server(args.database_url) as (server, server_cpu), \
            tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            url = _fresh_database(server, f"bench_store_{round_}")
            engines = {store: Engine.open(Path(scratch) / f"{store}-{round_}", settings=SETTINGS,
                                          database_url=None if store == "sqlite" else url)
                       for store in results}
            figures = measure(engines, events=args.events, seed=args.seed + round_,
                              variants=variants, server_cpu=server_cpu)
            checks = measure_rank_checks(engines, seed=args.seed + round_)
            for store in engines:
                figures[store].update(checks[store])
            for store, engine in engines.items():
                engine.close()
                results[store].append(figures[store])
                print(json.dumps({"name": "store", "store": store, "round": round_,
                                  "events": args.events, **_rounded(figures[store])}),
                      flush=True)
    medians = {store: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
               for store, rounds in results.items()}
    server = {key: medians["postgres"].pop(key) for key in list(medians["postgres"])
              if key.startswith("server_")}
    print(json.dumps({
        "name": "summary", "events": args.events, "rounds": args.rounds,
        **{f"{store}_{key}": value for store, figures in medians.items()
           for key, value in _rounded(figures).items()},
        **{f"ratio_{key}": round(medians["postgres"][key] / medians["sqlite"][key], 3)
           for key in medians["sqlite"]},
        **{f"postgres_{key}": round(value, 1) for key, value in server.items()},
        "features_per_variant": 2 + args.features,
        "postgres_rank_check_ms": round(medians["postgres"]["first_rank_after_ingest_ms"]
                                        - medians["postgres"]["other_rank_ms"], 3),
        "banditkit": __version__, "psycopg": psycopg.__version__,
        "python": platform.python_version()}), flush=True)
    return 0


def _rounded(figures: dict) -> dict:
    return {key: round(value, 3 if key.endswith("_ms") else 1) for key, value in figures.items()}


if __name__ == "__main__":
    sys.exit(main())
