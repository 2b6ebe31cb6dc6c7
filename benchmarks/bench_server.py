"""Rank under ``banditkit serve`` vs a bare Flask JSON endpoint under the same gunicorn.

Both apps run through ``banditkit serve`` with the same options (workers,
threads, JSON logs; the bare app through the hidden ``--app`` option, without
the learner), side by side, each on a free loopback port, and the same
closed-loop load generator drives them in turn, each banditkit target right
after its bare twin, for ``--rounds`` rounds (each ratio is the median of its
rounds, so a burst of other work on the machine skews one round, not the
result): ``wrk`` when it is installed (Debian's
``wrk``; a Lua script posts the body and counts 4xx/5xx answers as errors),
else Python processes with keep-alive ``http.client`` connections. Every run
is bounded in time (``--seconds``; wrk runs exactly that long) and, with the
Python generator, in count too (``--requests``).

Targets (docs/architecture.md §8):

* ``personalizer_rank``: ``POST /personalizer/v1.0/rank``, one member context and
  one title's 8 artwork variants sent by the client, each with the features
  ``artwork.analyze`` produces (41 features in 7 namespaces, plus genres).
  Compared with ``bare_8``: a Flask route that parses the same body and answers
  the same shape. Goal: ratio of requests/s >= 0.6.
* ``artwork_rank_40``: ``POST /v1/artwork/rank`` for a page of 40 titles of 8
  variants each from the catalogue (the client sends the context and title
  ids). Compared with ``bare_40``, which parses the same body and answers 40
  results. Goal: p99 < 25 ms on 2 cores, measured with ``--page-concurrency``
  requests in flight (default 2, one per worker).
* ``personalizer_rank_ids``: ``personalizer_rank`` with a caller-chosen
  ``eventId`` in every request (unique: a random prefix per client and a
  counter), so every decision claims its id across the workers before it is
  journaled (``banditkit.store.event_ids.EventClaims``). ``ratio_rps_ids`` and
  ``ratio_cpu_ids`` compare it with ``personalizer_rank``: the duplicate
  check's cost.

With ``--compare-stores`` the same gunicorn options serve two banditkit apps
instead, one on SQLite and one with ``--database-url`` on a PostgreSQL server
the benchmark starts itself (``tests/postgres_fixture.py``; the keys and the
catalogue are made in each store), and ``personalizer_rank``,
``personalizer_rank_ids`` and ``artwork_rank_40`` run against both, the
SQLite run and the PostgreSQL run of a target back to back, in turns (the
order swaps every round). The PostgreSQL targets also report ``db_cpu_ms``,
the database server's CPU per request. After each run the benchmark waits
until the server and the database are idle (``drain_seconds``: the learner
ships, ingests and joins a page load's decisions for seconds after it) and
counts that CPU too, so no run pays for the one before it. Goal: PostgreSQL's requests/s >= 0.9x
SQLite's (``ratio_rps_*``, medians over rounds of the rounds' ratios).

Each target also reports ``server_cpu_ms``: CPU time (user + system) of the
server's processes (master, workers, learner) per request, read from /proc.
On a shared machine requests/s and latency depend on what else runs; CPU per
request does not, so the summary gives both ratios (``ratio_rps_*`` and
``ratio_cpu_*`` = bare CPU / banditkit CPU) and the 1-minute load average.

Prints one JSON line per target, then a summary line with the ratios and goals.

    python benchmarks/bench_server.py [--requests 4000] [--seconds 20] [--smoke]
    python benchmarks/bench_server.py --compare-stores [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import io
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE_APP = '''
import json
import logging
import time

from flask import Flask, g, request

# The same one-line JSON access log as banditkit's app writes (gunicorn's own is
# off under banditkit serve), so that --access-log/--no-access-log means the
# same for both sides of a ratio.
_access_log = logging.getLogger("banditkit.access")


def create_app():
    app = Flask(__name__)

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _log(response):
        if _access_log.isEnabledFor(logging.INFO):
            _access_log.info(json.dumps({
                "method": request.method, "path": request.path,
                "status": response.status_code,
                "ms": round((time.perf_counter() - g.started) * 1000, 3), "key_id": None}))
        return response

    @app.get("/readyz")
    def readyz():
        return {"status": "ready"}, 200

    @app.post("/bare")
    def bare():
        body = request.get_json()
        actions = body["actions"]
        return {"eventId": "e", "rewardActionId": actions[0]["id"],
                "ranking": [{"id": a["id"], "probability": 1 / len(actions)}
                            for a in actions]}, 201

    @app.post("/bare/page")
    def bare_page():
        body = request.get_json()
        return {"modelVersion": "0", "results": [
            {"titleId": t, "variantId": "v", "imageUrl": "/i.jpg", "eventId": "e",
             "probability": 0.5} for t in body["titles"]]}, 201

    return app
'''

WRK_SCRIPT = '''
wrk.method = "POST"
wrk.body = io.open(os.getenv("BENCH_BODY")):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Ocp-Apim-Subscription-Key"] = os.getenv("BENCH_KEY")
-- A body with the placeholder gets a fresh event id per request: a prefix per
-- thread (the run's start and the thread's number) and a counter.
local placeholder = "__EVENT_ID__"
local made, counter, prefix = 0, 0, ""
function setup(thread)
  made = made + 1
  thread:set("tid", made)
end
function init(args)
  prefix = string.format("%d-%d-", os.time(), tid or 0)
end
function request()
  if not string.find(wrk.body, placeholder, 1, true) then
    return wrk.format()
  end
  counter = counter + 1
  local body = string.gsub(wrk.body, placeholder, prefix .. counter)
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f, '
    .. '"max_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, errors, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
'''

# Replaced by a fresh event id in every request (both load generators).
EVENT_ID_PLACEHOLDER = b"__EVENT_ID__"
THEMES = ("romance", "action", "comedy", "horror", "drama", "family", "scifi", "crime")
HUES = ("red", "orange", "yellow", "green", "blue", "purple", "grey")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000,
                        help="most requests per target with the Python load generator")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds per target (after a warm-up of at most 3 s)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="connections in flight for the 1-title targets")
    parser.add_argument("--page-concurrency", type=int, default=2,
                        help="connections in flight for the 40-title targets")
    parser.add_argument("--page-size", type=int, default=40, help="titles per page")
    parser.add_argument("--variants", type=int, default=8, help="artwork variants per title")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator (auto: wrk when installed)")
    parser.add_argument("--small-features", action="store_true",
                        help="3 features per variant in the 1-title body (as bench_server_"
                             "personalizer.py) instead of artwork.analyze's 41")
    parser.add_argument("--no-access-log", action="store_true",
                        help="serve without the per-request JSON access log")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over the targets (each ratio is the median of its "
                             "rounds); --seconds is per target and round")
    parser.add_argument("--compare-stores", action="store_true",
                        help="banditkit on SQLite vs on PostgreSQL (started here) instead of "
                             "banditkit vs a bare Flask app")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run for CI: 2 s and 500 requests per target, 4 titles")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.seconds = min(args.requests, 500), min(args.seconds, 2.0)
        args.rounds = 1
        args.page_size = min(args.page_size, 4)
    if args.load == "auto":
        args.load = "wrk" if shutil.which("wrk") else "python"
    return args


# ---------------------------------------------------------------------- workload


def artwork_features(rng: np.random.Generator, theme: str) -> dict[str, dict]:
    """Features shaped like ``artwork.analyze``'s output (41 in 7 namespaces)."""
    def unit(n: int) -> list[float]:
        return [round(float(x), 4) for x in rng.random(n)]

    color, layout, face = unit(8), unit(8), unit(5)
    return {
        "Img": {"width": 0.4, "height": 0.6, "aspect": 0.6667, "orientation": "portrait",
                "aspect_class": "2:3"},
        "Color": dict(zip(("brightness", "contrast", "colorfulness", "saturation", "warmth",
                           "black_clip", "white_clip", "dominant_share"), color, strict=True))
        | {"dominant_hue": str(rng.choice(HUES))},
        "Quality": {"sharpness": unit(1)[0], "noise": unit(1)[0], "blurry": "no"},
        "Layout": dict(zip(("center_x", "center_y", "spread", "thirds", "symmetry_lr",
                            "symmetry_tb", "edge_density", "negative_space"), layout,
                           strict=True)),
        "Face": dict(zip(("count", "largest_share", "largest_height", "largest_x", "largest_y"),
                         face, strict=True))
        | {"count_bucket": "1", "closeup": str(rng.choice(["yes", "no"])),
           "smile": "none"},
        "People": {"count": unit(1)[0], "count_bucket": "1", "largest_share": unit(1)[0]},
        "Text": {"share": unit(1)[0], "lines": unit(1)[0], "present": "yes", "position": "top",
                 "smallest_height": unit(1)[0], "theme": theme},
    }


def member_context(rng: np.random.Generator) -> dict[str, dict]:
    taste = rng.dirichlet(np.full(len(THEMES), 0.4))
    return {"Member": {"country": str(rng.choice(["BR", "US", "FR", "IN", "JP"])),
                       "device": str(rng.choice(["tv", "mobile", "web"])),
                       "hour_bucket": str(rng.choice(["morning", "day", "evening", "night"]))},
            "Taste": {THEMES[k]: round(float(s), 3) for k, s in enumerate(taste) if s > 0.01}}


def personalizer_body(rng: np.random.Generator, n_variants: int, *,
                      small: bool = False) -> dict:
    """A rank body; ``small`` gives each variant 3 features instead of the artwork ones."""
    genres = {str(g): 1.0 for g in rng.choice(THEMES, size=2, replace=False)}
    if small:
        return {
            "contextFeatures": [{"Member": {"country": "BR", "device": "tv", "hour": 21}}],
            "actions": [{"id": f"v{i}", "features": [{"Artwork": {
                "theme": THEMES[i % len(THEMES)], "brightness": float(rng.random()),
                "faces": int(rng.integers(4))}}]} for i in range(n_variants)],
        }
    return {
        "contextFeatures": [member_context(rng)],
        "actions": [{"id": f"v{i}", "features": [
            {**artwork_features(rng, THEMES[i % len(THEMES)]), "Genre": genres}]}
            for i in range(n_variants)],
    }


def tiny_png(index: int) -> bytes:
    """A distinct small PNG per variant (images are stored by content hash)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 6), (index % 256, index // 256 % 256, 7)).save(buffer, "PNG")
    return buffer.getvalue()


def build_catalogue(data_dir: Path, *, n_titles: int, n_variants: int,
                    rng: np.random.Generator, database_url: str | None = None) -> list[str]:
    """``n_titles`` titles of ``n_variants`` variants each; returns the title ids."""
    from catalogue import Catalogue

    catalogue = Catalogue.open(data_dir, database_url=database_url)
    titles = []
    try:
        for t in range(n_titles):
            title_id = f"title-{t:03d}"
            genres = [str(g) for g in rng.choice(THEMES, size=2, replace=False)]
            catalogue.create_title(title_id, name=f"Title {t}", genres=genres)
            for v in range(n_variants):
                catalogue.add_variant(title_id, data=tiny_png(t * n_variants + v),
                                      media_type="image/png",
                                      features=artwork_features(rng, THEMES[v % len(THEMES)]),
                                      filename=f"poster-{v}.png")
            titles.append(title_id)
    finally:
        catalogue.close()
    return titles


# ---------------------------------------------------------------------- servers


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, Callable[[], float]]]:
    """A throwaway PostgreSQL server's fresh database: its URL and a reader of the
    server's CPU seconds so far (the postmaster and its backends, live and exited)."""
    from tests.postgres_fixture import PostgresServer, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        raise SystemExit("--compare-stores needs PostgreSQL's initdb and pg_ctl")
    server = PostgresServer(bin_dir=bin_dir,
                            folder=Path(tempfile.mkdtemp(prefix="banditkit-pg-")))
    server.start()
    try:
        pid_file = server.folder / "data" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        yield server.create_database(), lambda: tree_cpu_seconds(postmaster, exited=True)
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def tree_cpu_seconds(pid: int, *, exited: bool = False) -> float:
    """CPU time (user + system) used so far by ``pid`` and its live children; with
    ``exited``, also by the children it has waited for (PostgreSQL's ended backends)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ticks = 0
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            if exited and each == pid:
                ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class Served:
    """One ``banditkit serve`` process group on loopback."""

    def __init__(self, *, data_dir: Path, log_path: Path, args: argparse.Namespace,
                 app: str | None = None, pythonpath: Path | None = None,
                 database_url: str | None = None) -> None:
        command = [sys.executable, "-c", "from cli import main; main()", "serve",
                   "--data-dir", str(data_dir), "--bind", "127.0.0.1:0",
                   "--workers", str(args.workers), "--threads", str(args.threads),
                   "--log-level", "warning"]
        if database_url is not None:
            command += ["--database-url", database_url]
        if not args.no_access_log:
            command.append("--access-log")
        else:
            command.append("--no-access-log")
        if app is not None:
            command += ["--app", app, "--no-learner"]
        env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # The store is the one asked for here, never one of the caller's environment.
        env.pop("BANDITKIT_DATABASE_URL", None)
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), str(ROOT),
                                                 env.get("PYTHONPATH", "")])
        self.log_path = log_path
        with open(log_path, "w") as log:
            # Warnings-level logs only for the startup line below: a "Listening at"
            # record is info, so the port comes from a probe of the log instead.
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log,
                                            env=env, start_new_session=True)
        try:
            self.port = self._wait_for_port()
            self._wait_ready()
        except BaseException:
            self.stop()  # never leave a server behind
            raise

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            ports = _listening_ports(self.process.pid)
            if ports:
                return ports[0]
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not listen within 60 s")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server was not ready within 60 s")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the master, workers and learner."""
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _listening_ports(pid: int) -> list[int]:
    """Loopback TCP ports in LISTEN state owned by ``pid`` (from /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = []
    with contextlib.suppress(OSError), open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.append(int(fields[1].split(":")[1], 16))
    return ports


# ---------------------------------------------------------------------- load


def run_wrk(url: str, body_path: Path, key: str, *, n_requests: int, seconds: float,
            connections: int) -> dict:
    threads = max(1, min(2, connections))
    script = body_path.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_BODY": str(body_path), "BENCH_KEY": key}
    finished = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s",
         "--timeout", "10s", "-s", str(script), url],
        env=env, capture_output=True, text=True, timeout=seconds + 60)
    if finished.returncode:
        raise RuntimeError(f"wrk exited with {finished.returncode} against {url}: "
                           f"{finished.stderr.strip() or finished.stdout.strip()}")
    output = finished.stdout
    line = next(x for x in output.splitlines() if x.startswith("{"))
    result = json.loads(line)
    result["rps"] = result["requests"] / result["seconds"]
    return result


def _python_client(task: tuple) -> tuple[list[float], int]:
    host, port, path, body, key, n_requests, deadline = task
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": key}
    latencies, errors = [], 0
    prefix, parts = os.urandom(6).hex(), body.split(EVENT_ID_PLACEHOLDER)
    for i in range(n_requests):
        if time.monotonic() > deadline:
            break
        sent = body if len(parts) == 1 else f"{prefix}-{i}".encode().join(parts)
        started = time.perf_counter()
        connection.request("POST", path, body=sent, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status != 201
    connection.close()
    return latencies, errors


def run_python(url: str, body_path: Path, key: str, *, n_requests: int, seconds: float,
               connections: int) -> dict:
    parsed = http.client.urlsplit(url)
    body = body_path.read_bytes()
    per_client = math.ceil(n_requests / connections)
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    tasks = [(parsed.hostname, parsed.port, parsed.path, body, key, per_client, deadline)
             ] * connections
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        outcomes = pool.map(_python_client, tasks)
    elapsed = time.perf_counter() - started
    latencies = np.concatenate([np.array(o[0]) for o in outcomes]) * 1000
    return {"requests": int(latencies.size), "seconds": elapsed,
            "errors": int(sum(o[1] for o in outcomes)),
            "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "max_ms": float(latencies.max()),
            "rps": latencies.size / elapsed}


def wait_until_idle(cpu_seconds: Callable[[], float], *, idle_cpu: float = 0.03,
                    limit: float = 60.0) -> float:
    """Wait until ``cpu_seconds``'s processes use under ``idle_cpu`` s of CPU in each of
    two seconds running (the learner has shipped, ingested and joined what a load left
    behind, which can take longer than the load); returns the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - started < limit:
        before = cpu_seconds()
        time.sleep(1.0)
        quiet = quiet + 1 if cpu_seconds() - before < idle_cpu else 0
    return time.monotonic() - started


def measure(args: argparse.Namespace, served: Served, url: str, body_path: Path, key: str, *,
            connections: int, warm_up: bool = True,
            database_cpu: Callable[[], float] | None = None, drain: bool = False) -> dict:
    """One target's run; ``database_cpu`` reads the database server's CPU seconds. With
    ``drain``, the CPU counted runs until the server (and database) is idle again, so it
    includes the learner's work on the load, and the next run starts on an idle server."""
    load = run_wrk if args.load == "wrk" else run_python

    def all_cpu() -> float:
        return served.cpu_seconds() + (database_cpu() if database_cpu is not None else 0.0)

    if warm_up:
        load(url, body_path, key, n_requests=min(300, args.requests),
             seconds=min(args.seconds, 3.0), connections=connections)
    if drain:
        wait_until_idle(all_cpu)
    cpu_before = served.cpu_seconds()
    database_before = database_cpu() if database_cpu is not None else 0.0
    result = load(url, body_path, key, n_requests=args.requests, seconds=args.seconds,
                  connections=connections)
    if drain:
        result["drain_seconds"] = wait_until_idle(all_cpu)
    # Server CPU per request: unlike requests/s, it does not depend on what else
    # runs on the machine (a shared 2-core box is rarely idle).
    result["server_cpu_ms"] = (served.cpu_seconds() - cpu_before) * 1000 / max(
        1, result["requests"])
    if database_cpu is not None:
        result["db_cpu_ms"] = (database_cpu() - database_before) * 1000 / max(
            1, result["requests"])
    return {key_: round(value, 3) if isinstance(value, float) else value
            for key_, value in result.items()}


def _combine(rounds: list[dict]) -> dict:
    """One target's rounds: total throughput, median latency and CPU, all errors."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    return {"requests": requests, "seconds": round(seconds, 3),
            "errors": sum(r["errors"] for r in rounds),
            "rps": round(requests / seconds, 3),
            **{field: round(statistics.median(r[field] for r in rounds), 3)
               for field in ("p50_ms", "p99_ms", "max_ms", "server_cpu_ms", "db_cpu_ms",
                             "drain_seconds")
               if field in rounds[0]},
            "rps_per_round": [round(r["rps"], 1) for r in rounds]}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("flask", "werkzeug", "gunicorn", "vowpal-wabbit-next"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


# ---------------------------------------------------------------------- main


# The targets --compare-stores runs on each store, and the stores in their first order.
STORE_TARGETS = ("personalizer_rank", "personalizer_rank_ids", "artwork_rank_40")
STORES = ("sqlite", "postgres")
STORE_GOAL_RATIO = 0.9


def make_key(data_dir: Path, *, database_url: str | None = None) -> str:
    """A client key in the key store a server of ``data_dir`` (and ``database_url``) reads."""
    from serving.keys import KeyStore

    store = KeyStore.open(data_dir, database_url=database_url)
    try:
        return store.create(role="client", name="bench")[0]
    finally:
        store.close()


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the summary (also printed as the last JSON line)."""
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)

    common = {"load": args.load, "workers": args.workers, "threads": args.threads,
              "features_per_variant": 3 if args.small_features else 41,
              "access_log": not args.no_access_log, "cores": os.cpu_count(), **versions()}
    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        scratch_path = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="bench-server-")))
        (scratch_path / "bench_bare_app.py").write_text(BARE_APP)
        data_dir = scratch_path / "data"
        catalogue_rng = copy.deepcopy(rng)  # the same catalogue in every store
        key = make_key(data_dir)
        titles = build_catalogue(data_dir, n_titles=args.page_size, n_variants=args.variants,
                                 rng=rng)
        one = scratch_path / "one.json"
        one_body = personalizer_body(rng, args.variants, small=args.small_features)
        one.write_text(json.dumps(one_body))
        with_ids = scratch_path / "one_with_ids.json"
        with_ids.write_text(json.dumps(
            {**one_body, "eventId": EVENT_ID_PLACEHOLDER.decode()}))
        page = scratch_path / "page.json"
        page.write_text(json.dumps({"context": member_context(rng), "titles": titles}))

        routes = {
            "personalizer_rank": ("/personalizer/v1.0/rank", one, args.concurrency),
            "personalizer_rank_ids": ("/personalizer/v1.0/rank", with_ids, args.concurrency),
            "artwork_rank_40": ("/v1/artwork/rank", page, args.page_concurrency),
        }
        # Servers by name: Served's options, the key to send, the database's CPU reader.
        servers_wanted: dict[str, tuple[dict, str, Callable[[], float] | None]] = {}
        if args.compare_stores:
            database_url, database_cpu = stack.enter_context(postgres_database())
            postgres_dir = scratch_path / "data-postgres"
            postgres_key = make_key(postgres_dir, database_url=database_url)
            build_catalogue(postgres_dir, n_titles=args.page_size, n_variants=args.variants,
                            rng=catalogue_rng, database_url=database_url)
            servers_wanted["sqlite"] = ({"data_dir": data_dir}, key, None)
            servers_wanted["postgres"] = ({"data_dir": postgres_dir,
                                           "database_url": database_url},
                                          postgres_key, database_cpu)
            # Each target on both stores back to back; a round swaps each pair's order.
            plan = [(f"{target}_{store}", store, *routes[target])
                    for target in STORE_TARGETS for store in STORES]
        else:
            servers_wanted["bare"] = ({"data_dir": scratch_path / "bare",
                                       "app": "bench_bare_app:create_app"}, key, None)
            servers_wanted["banditkit"] = ({"data_dir": data_dir}, key, None)
            # Each banditkit target right after its bare twin, in several rounds, with
            # both servers up: load from other work hits both sides of a ratio alike.
            plan = [
                ("bare_8", "bare", "/bare", one, args.concurrency),
                ("personalizer_rank", "banditkit", *routes["personalizer_rank"]),
                ("personalizer_rank_ids", "banditkit", *routes["personalizer_rank_ids"]),
                ("bare_40", "bare", "/bare/page", page, args.page_concurrency),
                ("artwork_rank_40", "banditkit", *routes["artwork_rank_40"]),
            ]
        servers: dict[str, Served] = {}
        rounds: dict[str, list[dict]] = {name: [] for name, *_ in plan}
        try:
            for server, (options, _key, _cpu) in servers_wanted.items():
                servers[server] = Served(log_path=scratch_path / f"{server}.log", args=args,
                                         pythonpath=scratch_path, **options)
            for round_index in range(args.rounds):
                swap = args.compare_stores and round_index % 2 == 1
                for index in range(len(plan)):
                    name, server, route, body, connections = plan[index ^ 1 if swap else index]
                    served = servers[server]
                    _options, server_key, database_cpu = servers_wanted[server]
                    url = f"http://127.0.0.1:{served.port}{route}"
                    rounds[name].append(measure(args, served, url, body, server_key,
                                                connections=connections,
                                                warm_up=round_index == 0,
                                                database_cpu=database_cpu,
                                                drain=args.compare_stores))
        finally:
            for served in servers.values():
                served.stop()
        for name, server, route, body, connections in plan:
            results[name] = _combine(rounds[name])
            line = {"name": name, "route": route, "concurrency": connections,
                    "titles": args.page_size if body is page else 1,
                    "variants": args.variants, **results[name], **common}
            if args.compare_stores:
                line["store"] = server
            print(json.dumps(line), flush=True)

    def ratio(ours: str, bare: str, field: str, inverse: bool = False) -> float:
        """Median over rounds of the ratio of twin measurements."""
        pairs = zip(rounds[ours], rounds[bare], strict=True)
        values = [(b[field] / o[field]) if inverse else (o[field] / b[field]) for o, b in pairs]
        return round(statistics.median(values), 3)

    if args.compare_stores:
        summary = {"name": "summary", "rounds": args.rounds, **store_ratios(rounds),
                   "goal_ratio": STORE_GOAL_RATIO,
                   "errors": sum(r["errors"] for r in results.values()),
                   "load_average": round(os.getloadavg()[0], 2), **common}
        print(json.dumps(summary), flush=True)
        return summary
    summary = {
        "name": "summary",
        "rounds": args.rounds,
        "ratio_rps_rank_8": ratio("personalizer_rank", "bare_8", "rps"),
        "goal_ratio": 0.6,
        "ratio_rps_page": ratio("artwork_rank_40", "bare_40", "rps"),
        "ratio_cpu_rank_8": ratio("personalizer_rank", "bare_8", "server_cpu_ms", inverse=True),
        "ratio_cpu_page": ratio("artwork_rank_40", "bare_40", "server_cpu_ms", inverse=True),
        "ratio_rps_ids": ratio("personalizer_rank_ids", "personalizer_rank", "rps"),
        "ratio_cpu_ids": ratio("personalizer_rank_ids", "personalizer_rank", "server_cpu_ms",
                               inverse=True),
        "page_titles": args.page_size,
        "page_p99_ms": results["artwork_rank_40"]["p99_ms"],
        "goal_page_p99_ms": 25.0,
        "errors": sum(r["errors"] for r in results.values()),
        "load_average": round(os.getloadavg()[0], 2),
        **common,
    }
    print(json.dumps(summary), flush=True)
    return summary


def store_ratios(rounds: dict[str, list[dict]]) -> dict:
    """Per target: each store's median requests/s, p50 and p99 over rounds, and the
    medians of the rounds' PostgreSQL/SQLite ratios of requests/s and of CPU per
    request (SQLite's server CPU over PostgreSQL's server plus database CPU)."""
    figures: dict[str, float] = {}
    for target in STORE_TARGETS:
        sqlite, postgres = rounds[f"{target}_sqlite"], rounds[f"{target}_postgres"]
        for store, measured in (("sqlite", sqlite), ("postgres", postgres)):
            for field in ("rps", "p50_ms", "p99_ms"):
                figures[f"{target}_{store}_{field}"] = round(
                    statistics.median(r[field] for r in measured), 3)
        pairs = list(zip(sqlite, postgres, strict=True))
        figures[f"ratio_rps_{target}"] = round(statistics.median(
            p["rps"] / s["rps"] for s, p in pairs), 3)
        figures[f"ratio_cpu_{target}"] = round(statistics.median(
            s["server_cpu_ms"] / (p["server_cpu_ms"] + p["db_cpu_ms"]) for s, p in pairs), 3)
    return figures


if __name__ == "__main__":
    main()
