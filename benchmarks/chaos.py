"""A fault campaign against ``banditkit serve``: HTTP load while its processes are killed.

What an operator runs to check that nothing acknowledged is lost or logged
twice when processes die. The campaign starts ``banditkit serve`` as an
operator would (real gunicorn on a loopback socket this process binds and
hands over, so the port survives restarts; a fresh data directory; an admin
and a client key made with ``banditkit keys create``; a short reward wait and
model update interval set through the admin route
``PUT /personalizer/v1.0/configurations/service``), then for ``--duration``
seconds:

* ``--threads`` load threads rank (``POST /personalizer/v1.0/rank``, with
  caller-chosen event ids, a quarter with ``deferActivation``), reward and
  activate (half through ``/personalizer/v1.0/events/{id}/...``, half through
  ``/v1/events/{id}/...``) over fresh loopback connections, each call bounded
  in time and each thread in count. Only answered 2xx calls count as
  acknowledged; a call that failed is not retried under the same event id.
* one thread kills, at seeded random times, each kind at least once (in a
  seeded order) and then at random: ``worker`` (one gunicorn worker),
  ``workers`` (all of them), ``learner``, ``learner_burst`` (3 to 5 learner
  kills in a row, each new learner killed 0 to 0.6 s after it appeared),
  ``learner_after_journal_removal`` (a worker is killed, its now finished
  journal files in ``banditkit-journal/`` are watched with a tight poll, and
  the learner is killed the moment one of them disappears) and ``group``
  (SIGKILL to the whole process group, then ``banditkit serve`` again on the
  same data directory). Processes are found as children of the gunicorn
  master (``/proc``); the learner by its command line
  (``python -m cli serve-learner``).

Then the load stops, the server is restarted if it is down, the campaign waits
until the learner has joined everything (past the reward wait, until the store
has nothing pending and the log stopped growing, at most ``--settle-seconds``),
stops the server with SIGTERM and checks the joined log
(``logs/dt=*/events.dsjson``) against every acknowledged call:

* ``lost``: acknowledged decisions not in the log; each is looked up in the
  store and the journals to say where it stopped (``lost_where``:
  ``store_pending`` or ``store_joined_not_logged`` when the learner did not
  finish, see ``settled``; ``journal_not_ingested``; ``nowhere``, gone for
  good, also ``lost_nowhere`` in the summary); those gone for good are
  attributed to the first kill after they were sent (``gone_by_next_kill``); a
  reward or activation of an acknowledged decision answered 404 shows in
  ``http_errors``;
* ``duplicated``: event ids of the campaign in the log more than once;
* ``rewards_lost``: acknowledged rewards, answered within the reward wait of
  their decision, missing from their line's ``o`` and
  ``_banditkit.ignoredRewards``; ``activations_lost``: acknowledged activations
  of deferred events whose line has no ``ActionTaken`` outcome;
* ``torn_lines``: lines that are not JSON (a write cut short); the events of
  such lines are recovered where a whole object follows the torn part;
* ``rejects``: the store's ``journal_rejects`` rows by reason, and the
  learner's failed steps from the server logs.

Prints JSON lines (``chaos_requests``, ``chaos_kills``, ``chaos_log``,
``chaos_rejects``, ``chaos_summary``) and exits 1 when an acknowledged
decision was lost or an event was logged twice.

    python benchmarks/chaos.py [--duration 60] [--seed 0] [--threads 4] [--workers 2]
                               [--data-dir DIR] [--smoke]

One file of about a thousand lines on purpose: it is a script an operator
copies next to a deployment and runs as it is, with nothing of it imported by
banditkit, and it reads the server only from outside (HTTP, ``/proc``, the data
directory), as the tests load it by path.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import heapq
import http.client
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KILL_KINDS = ("worker", "workers", "learner", "learner_burst",
              "learner_after_journal_removal", "group")
_KEY_HEADER = "Ocp-Apim-Subscription-Key"
_REQUEST_TIMEOUT = 10.0
_START_SECONDS = 90.0
_HEALTHY_SECONDS = 45.0
_JOURNAL_WATCH_SECONDS = 10.0
# A reward or activation answered this long before the end of its decision's
# reward wait is surely in the store when the learner joins that decision.
_WINDOW_MARGIN = 0.25
THEMES = ("comedy", "drama", "horror", "action")
COUNTRIES = ("BR", "US", "FR", "JP", "IN")
DEVICES = ("tv", "phone", "web")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of load and kills")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the kills' times, kinds and targets and the load")
    parser.add_argument("--threads", type=int, default=4, help="load threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--server-threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the server's data directory (default: a fresh temporary one, "
                             "removed at the end unless something was lost)")
    parser.add_argument("--reward-wait", type=float, default=2.0,
                        help="reward wait time in seconds (set through the admin route)")
    parser.add_argument("--model-update", type=float, default=1.0,
                        help="model export interval in seconds (set through the admin route)")
    parser.add_argument("--learner-interval", type=float, default=0.2,
                        help="seconds between learner steps (banditkit serve option)")
    parser.add_argument("--max-requests", type=int, default=200_000,
                        help="most requests per load thread")
    parser.add_argument("--settle-seconds", type=float, default=60.0,
                        help="longest wait for the learner to join everything at the end")
    parser.add_argument("--kinds", default=",".join(KILL_KINDS),
                        help=f"comma-separated kinds of kill to use, of {', '.join(KILL_KINDS)}")
    parser.add_argument("--smoke", action="store_true",
                        help="a short run for CI: 20 s, 2 load threads")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration = min(args.duration, 20.0)
        args.threads = min(args.threads, 2)
    args.kinds = tuple(kind.strip() for kind in args.kinds.split(",") if kind.strip())
    unknown = set(args.kinds) - set(KILL_KINDS)
    if unknown or not args.kinds:
        parser.error(f"--kinds must name some of {', '.join(KILL_KINDS)}, got {args.kinds}")
    if args.duration <= 0 or args.threads < 1 or args.workers < 1:
        parser.error(f"--duration, --threads and --workers must be positive, got "
                     f"{args.duration}, {args.threads}, {args.workers}")
    return args


# ---------------------------------------------------------------------- HTTP


def call(port: int, method: str, path: str, key: str, body: Any = None,
         timeout: float = _REQUEST_TIMEOUT) -> tuple[int, Any]:
    """One request on a fresh loopback connection (so any worker may accept it).

    Raises OSError or ``http.client.HTTPException`` when no answer came.
    """
    payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
    headers = {_KEY_HEADER: key, "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw.decode("utf-8", "replace")
    return response.status, data


# ---------------------------------------------------------------------- the server


class Server:
    """``banditkit serve`` in its own process group on a socket this process keeps open.

    Parameters
    ----------
    data_dir : Path
    log_dir : Path
        Where each start's JSON log goes (``serve-N.log``).
    args : argparse.Namespace
        ``workers``, ``server_threads`` and ``learner_interval``.
    """

    def __init__(self, *, data_dir: Path, log_dir: Path, args: argparse.Namespace) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.workers = args.workers
        self.server_threads = args.server_threads
        self.learner_interval = args.learner_interval
        # Bound once: every start serves it (gunicorn's fd:// bind), so the port never
        # changes and connections made while the server restarts wait in its backlog.
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port: int = self.listener.getsockname()[1]
        self.process: subprocess.Popen | None = None
        self.log_paths: list[Path] = []

    def start(self) -> None:
        """Start ``banditkit serve`` and wait until it answers and its learner runs."""
        log_path = self.log_dir / f"serve-{len(self.log_paths) + 1}.log"
        self.log_paths.append(log_path)
        fd = self.listener.fileno()
        command = [sys.executable, "-c", "from cli import main; main()", "serve",
                   "--data-dir", str(self.data_dir), "--bind", f"fd://{fd}",
                   "--workers", str(self.workers), "--threads", str(self.server_threads),
                   "--learner-interval", str(self.learner_interval),
                   "--no-access-log", "--log-level", "info"]
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log,
                                            env=_child_env(), pass_fds=(fd,),
                                            start_new_session=True)
        try:
            self.wait_healthy(_START_SECONDS)
        except BaseException:
            self.kill_group()
            raise

    def children(self) -> list[tuple[int, str]]:
        """``(pid, command line)`` of the master's live children (workers and learner)."""
        if self.process is None:
            return []
        master = self.process.pid
        pids: set[int] = set()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{master}/task"):
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/{master}/task/{task}/children").read_text()
                    pids.update(int(p) for p in text.split())
        found = []
        for pid in sorted(pids):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if state not in ("Z", "X"):
                found.append((pid, command.replace(b"\0", b" ").decode(errors="replace")))
        return found

    def learner_pid(self) -> int | None:
        for pid, command in self.children():
            if " serve-learner " in command:
                return pid
        return None

    def worker_pids(self) -> list[int]:
        return [pid for pid, command in self.children()
                if " serve-learner " not in command]

    def wait_healthy(self, seconds: float) -> bool:
        """Wait until every worker runs, the learner runs and /readyz answers 200."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"banditkit serve exited; see {self.log_paths[-1]}")
            if len(self.worker_pids()) >= self.workers and self.learner_pid() is not None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if call(self.port, "GET", "/readyz", "", timeout=5.0)[0] == 200:
                        return True
            time.sleep(0.1)
        return False

    def kill_group(self) -> list[int]:
        """SIGKILL master, workers and learner at once; reap the master. Returns the pids."""
        process = self.process
        if process is None:
            return []
        pids = [process.pid, *(pid for pid, _ in self.children())]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        return pids

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful) and wait; SIGKILL the group if it hangs. Returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                return None
        return process.returncode

    def close(self) -> None:
        """Kill whatever still runs and close the socket."""
        if self.process is not None and self.process.poll() is None:
            self.kill_group()
        self.listener.close()

    def log_entries(self) -> Iterator[dict]:
        for path in self.log_paths:
            with contextlib.suppress(OSError), open(path, errors="replace") as handle:
                for line in handle:
                    with contextlib.suppress(ValueError):
                        entry = json.loads(line)
                        if isinstance(entry, dict):
                            yield entry


def _child_env() -> dict[str, str]:
    """This environment, with this checkout first on the path, and no shared metrics dir."""
    env = {key: value for key, value in os.environ.items()
           if key != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _kill(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def create_key(data_dir: Path, role: str) -> str:
    """A key made with ``banditkit keys create`` (the key is its first line of output)."""
    finished = subprocess.run(
        [sys.executable, "-c", "from cli import main; main()", "keys", "create",
         "--role", role, "--name", f"chaos {role}", "--data-dir", str(data_dir)],
        env=_child_env(), capture_output=True, text=True, timeout=120, check=True)
    return finished.stdout.splitlines()[0].strip()


def configure(server: Server, admin_key: str, *, reward_wait: float,
              model_update: float) -> dict:
    """Set the reward wait and model export interval through the admin route."""
    from serving.durations import format_duration

    base = "/personalizer/v1.0/configurations/service"
    status, service = call(server.port, "GET", base, admin_key)
    if status != 200:
        raise RuntimeError(f"GET {base} answered {status}: {service}")
    service.update({"rewardWaitTime": format_duration(reward_wait),
                    "modelExportFrequency": format_duration(model_update)})
    status, answer = call(server.port, "PUT", base, admin_key, service)
    if status != 200:
        raise RuntimeError(f"PUT {base} answered {status}: {answer}")
    return answer


# ---------------------------------------------------------------------- load


@dataclass
class Event:
    """One acknowledged decision and what was acknowledged about it (``time.time()``)."""

    event_id: str
    sent_at: float
    acked_at: float
    deferred: bool
    activated_at: float | None = None   # when the activation was acknowledged
    rewards: list[tuple[float, float]] = field(default_factory=list)  # (value, acked at)


@dataclass
class LoadResult:
    events: list[Event] = field(default_factory=list)
    attempts: collections.Counter = field(default_factory=collections.Counter)
    acked: collections.Counter = field(default_factory=collections.Counter)
    failed: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    rank_seconds: list[float] = field(default_factory=list)


def run_load(*, index: int, port: int, key: str, prefix: str, seed: int, end: float,
             max_requests: int, reward_wait: float, result: LoadResult) -> None:
    """One load thread until ``end`` (monotonic) or ``max_requests``: rank, then reward
    and activate each acknowledged decision within the reward wait."""
    rng = np.random.default_rng([seed, index])
    later: list[tuple[float, int, str, Event, float]] = []  # (due, order, what, event, value)
    order = itertools.count()
    n = 0
    while time.monotonic() < end and n < max_requests:
        n += 1
        if later and later[0][0] <= time.monotonic():
            _, _, what, event, value = heapq.heappop(later)
            ok = _outcome(port, key, what, event, value, rng, result)
            # A failed call is retried while it would still count.
            if not ok and time.time() < event.sent_at + 0.6 * reward_wait:
                heapq.heappush(later, (time.monotonic() + 0.1, next(order), what, event, value))
            continue
        event_id = f"{prefix}-{index}-{n}"
        deferred = bool(rng.random() < 0.25)
        body = {
            "contextFeatures": [{"Member": {"country": str(rng.choice(COUNTRIES)),
                                            "device": str(rng.choice(DEVICES))}}],
            "actions": [{"id": theme, "features": [{"Artwork": {"theme": theme}}]}
                        for theme in THEMES],
            "eventId": event_id, "deferActivation": deferred,
        }
        sent_at, started = time.time(), time.perf_counter()
        status = _request(port, key, "rank", "POST", "/personalizer/v1.0/rank", body, result)
        if status is None:
            time.sleep(float(rng.uniform(0.05, 0.15)))  # the server is down or restarting
            continue
        if status != 201:
            time.sleep(0.05 if status >= 500 else 0.0)
            continue
        result.rank_seconds.append(time.perf_counter() - started)
        event = Event(event_id, sent_at, time.time(), deferred)
        result.events.append(event)
        now = time.monotonic()
        if deferred and rng.random() < 0.75:
            delay = _outcome_delay(rng, reward_wait)
            heapq.heappush(later, (now + delay, next(order), "activate", event, 0.0))
        for chance in (0.7, 0.25):
            if rng.random() < chance:
                delay = _outcome_delay(rng, reward_wait)
                value = round(float(rng.random()), 6)
                heapq.heappush(later, (now + delay, next(order), "reward", event, value))


def _outcome_delay(rng: np.random.Generator, reward_wait: float) -> float:
    """Seconds from a decision to one of its outcomes.

    Most come after the learner has ingested the decision, as members' plays
    do; some at once, so that a worker meets the decision of another worker
    before the learner ingested it (and ingests it itself).
    """
    if rng.random() < 0.05:
        return float(rng.uniform(0.0, 0.1))
    return float(rng.uniform(0.25, 0.45) * reward_wait)


def _outcome(port: int, key: str, what: str, event: Event, value: float,
             rng: np.random.Generator, result: LoadResult) -> bool:
    """Reward or activate ``event`` through one route family or the other."""
    family = "/personalizer/v1.0/events" if rng.random() < 0.5 else "/v1/events"
    path = f"{family}/{event.event_id}/{what}"
    status = _request(port, key, what, "POST", path,
                      {"value": value} if what == "reward" else None, result)
    if status is None:
        return False
    if status == 204:
        if what == "reward":
            event.rewards.append((value, time.time()))
        else:
            event.activated_at = time.time()
    return True


def _request(port: int, key: str, kind: str, method: str, path: str, body: Any,
             result: LoadResult) -> int | None:
    """The status of one call, counted; None when no answer came (not acknowledged)."""
    result.attempts[kind] += 1
    try:
        status, _ = call(port, method, path, key, body)
    except (OSError, http.client.HTTPException):
        result.failed[kind] += 1
        return None
    if 200 <= status < 300:
        result.acked[kind] += 1
    else:
        result.statuses[f"{kind} {status}"] += 1
    return status


# ---------------------------------------------------------------------- kills


@dataclass
class Kill:
    kind: str
    at: float                  # time.time() of its first signal
    pids: list[int]
    detail: str = ""


class Killer:
    """Kills the server's processes at seeded random times until ``end`` (monotonic)."""

    def __init__(self, *, server: Server, seed: int, end: float,
                 kinds: tuple[str, ...] = KILL_KINDS) -> None:
        self.server = server
        self.kinds = kinds
        self.rng = np.random.default_rng([seed, 1_000_003])
        self.end = end
        self.kills: list[Kill] = []
        self.missed: collections.Counter = collections.Counter()
        self.burst_kills = 0
        self.unhealthy = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by main; the load stops by itself
            self.error = exc

    def _run(self) -> None:
        order = list(self.rng.permutation(self.kinds))
        time.sleep(min(2.0, max(0.0, self.end - time.monotonic())))  # load first
        while time.monotonic() < self.end - 0.5:
            kind = str(order.pop(0)) if order else self._draw_kind()
            getattr(self, f"_{kind}")()
            if not self.server.wait_healthy(_HEALTHY_SECONDS):
                self.unhealthy += 1
            gap = float(self.rng.uniform(0.5, 2.5))
            time.sleep(max(0.0, min(gap, self.end - time.monotonic())))

    def _draw_kind(self) -> str:
        """A kind of kill, ``learner_after_journal_removal`` drawn as often as all others
        together: it loses data only when the learner's kill lands between its
        journal deletion and its commit, and when the worker wrote lines after the
        learner's last read, so only some of its attempts can find anything."""
        weights = np.array([max(1, len(self.kinds) - 1) if kind == "learner_after_journal_removal"
                            else 1 for kind in self.kinds], dtype=float)
        return str(self.rng.choice(self.kinds, p=weights / weights.sum()))

    def _worker(self) -> None:
        workers = self.server.worker_pids()
        if not workers:
            self.missed["worker: no worker"] += 1
            return
        pid = int(self.rng.choice(workers))
        at = time.time()
        if _kill(pid):
            self.kills.append(Kill("worker", at, [pid]))

    def _workers(self) -> None:
        workers = self.server.worker_pids()
        at = time.time()
        killed = [pid for pid in workers if _kill(pid)]
        if killed:
            self.kills.append(Kill("workers", at, killed))
        else:
            self.missed["workers: no worker"] += 1

    def _learner(self) -> None:
        pid = self._wait_learner(None)
        at = time.time()
        if _kill(pid):
            self.kills.append(Kill("learner", at, [pid]))  # type: ignore[list-item]
        else:
            self.missed["learner: no learner"] += 1

    def _learner_burst(self) -> None:
        killed: list[int] = []
        at = time.time()
        previous = None
        for _ in range(int(self.rng.integers(3, 6))):
            pid = self._wait_learner(previous)
            if pid is None:
                break
            time.sleep(float(self.rng.uniform(0.0, 0.6)))  # starting, idle or mid-step
            if _kill(pid):
                killed.append(pid)
            previous = pid
        self.burst_kills += len(killed)
        if len(killed) >= 2:
            self.kills.append(Kill("learner_burst", at, killed))
        else:
            self.missed["learner_burst: fewer than 2 learners"] += 1

    def _learner_after_journal_removal(self) -> None:
        """Kill a worker, then the learner the moment the worker's journal disappears."""
        learner = self._wait_learner(None)
        workers = self.server.worker_pids()
        if learner is None or not workers:
            self.missed["learner_after_journal_removal: no learner or worker"] += 1
            return
        folder = self.server.data_dir / "banditkit-journal"
        names = _journal_names(folder)
        writing = [pid for pid in workers if any(n.startswith(f"{pid}-") for n in names)]
        if not writing:
            self.missed["learner_after_journal_removal: no worker has a journal yet"] += 1
            return
        worker = int(self.rng.choice(writing))
        watched = [folder / name for name in names if name.startswith(f"{worker}-")]
        watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(folder), str(learner),
             str(_JOURNAL_WATCH_SECONDS), *(path.name for path in watched)],
            stdout=subprocess.PIPE, text=True)
        try:
            ready = watcher.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
            at = time.time()
            if not ready or not _kill(worker):
                self.missed["learner_after_journal_removal: watcher not ready or worker gone"] += 1
                return
            output, _ = watcher.communicate(timeout=_JOURNAL_WATCH_SECONDS + 10)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
        gone = output.strip() if watcher.returncode == 0 else None
        killed = gone is not None
        learner_now = learner
        if killed:
            self.kills.append(Kill("learner_after_journal_removal", at,
                                   [worker, learner_now],  # type: ignore[list-item]
                                   f"{gone} removed"))
        else:
            self.missed["learner_after_journal_removal: journal not removed in time"] += 1
            self.kills.append(Kill("worker", at, [worker], "journal not removed in time"))

    def _group(self) -> None:
        at = time.time()
        pids = self.server.kill_group()
        self.kills.append(Kill("group", at, pids))
        self.server.start()

    def _wait_learner(self, not_pid: int | None, seconds: float = 20.0) -> int | None:
        """The learner's pid, once there is one other than ``not_pid``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pid = self.server.learner_pid()
            if pid is not None and pid != not_pid:
                return pid
            time.sleep(0.02)
        return None


# The watch of ``learner_after_journal_removal``, in a process of its own so that
# no load thread holds it back: argv is the journal folder, the learner's pid,
# seconds to wait and the file names to watch. It blocks on inotify (IN_DELETE),
# at real-time priority where allowed (the learner commits a few milliseconds
# after it deletes a journal; on a busy machine an ordinary process wakes later),
# and SIGKILLs the learner the moment one of them is deleted; prints "ready"
# once watching, then the name; exits 1 when none went in time, 3 when the
# learner was gone.
_WATCHER = r"""
import ctypes, os, select, signal, struct, sys, time
folder, learner, seconds, names = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
try:  # woken before any other process when allowed (it blocks until then)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
except (AttributeError, OSError):
    pass
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
if fd < 0 or libc.inotify_add_watch(fd, folder.encode(), 0x200) < 0:
    sys.exit(2)
print("ready", flush=True)
poller = select.poll()
poller.register(fd, select.POLLIN)
deadline = time.monotonic() + seconds
gone = [name for name in names if not os.path.exists(os.path.join(folder, name))]
while not gone and time.monotonic() < deadline:
    if not poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
        continue
    data, i = os.read(fd, 65536), 0
    while i < len(data):
        length = struct.unpack_from("iIII", data, i)[3]
        name = data[i + 16:i + 16 + length].rstrip(b"\0").decode()
        gone += [name] if name in names else []
        i += 16 + length
if not gone:
    sys.exit(1)
try:
    os.kill(learner, signal.SIGKILL)
except ProcessLookupError:
    sys.exit(3)
print(gone[0], flush=True)
"""


def _journal_names(folder: Path) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(n for n in os.listdir(folder) if n.endswith(".journal"))
    return []


# ---------------------------------------------------------------------- the end


def _store_counts(data_dir: Path) -> tuple[int, int] | None:
    """(pending events, unlogged joins) read from the store, None if unreadable now."""
    path = data_dir / "banditkit.sqlite3"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            pending = db.execute(
                "SELECT COUNT(*) FROM events WHERE joined_at IS NULL").fetchone()[0]
            unlogged = db.execute("SELECT COUNT(*) FROM unlogged_joins").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return int(pending), int(unlogged)


def _log_size(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "logs").rglob("events.dsjson"))


def wait_settled(data_dir: Path, *, after: float, seconds: float) -> bool:
    """Wait until ``after`` (``time.time()``) and then until nothing is pending in the
    store and the log stopped growing for 2 s; False after ``seconds`` more."""
    time.sleep(max(0.0, after - time.time()))
    deadline = time.monotonic() + seconds
    size, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = _log_size(data_dir) if (data_dir / "logs").exists() else 0
        if now_size != size:
            size, stable_since = now_size, time.monotonic()
        if _store_counts(data_dir) == (0, 0) and time.monotonic() - stable_since >= 2.0:
            return True
        time.sleep(0.25)
    return False


@dataclass
class LogLine:
    outcomes: list[float]      # reward values in "o" and in "ignoredRewards"
    activated: bool            # an "ActionTaken" outcome
    deferred: bool
    skip_learn: bool


def read_log(data_dir: Path, prefix: str) -> tuple[dict[str, list[LogLine]], int, int, int]:
    """The campaign's events in the joined log: ``(by id, lines, torn lines, recovered)``.

    A line that is not JSON is torn (a write cut short); whole objects after the
    torn part (a later append on the same line) are recovered.
    """
    found: dict[str, list[LogLine]] = collections.defaultdict(list)
    n_lines = torn = recovered = 0
    for path in sorted((data_dir / "logs").rglob("events.dsjson")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for text in handle:
                if not text.strip():
                    continue
                n_lines += 1
                try:
                    records = [json.loads(text)]
                except ValueError:
                    torn += 1
                    records = _salvage(text)
                    recovered += len(records)
                for record in records:
                    event_id = record.get("EventId") if isinstance(record, dict) else None
                    if isinstance(event_id, str) and event_id.startswith(prefix + "-"):
                        found[event_id].append(_log_line(record))
    return found, n_lines, torn, recovered


def _salvage(text: str) -> list[dict]:
    decoder = json.JSONDecoder()
    records = []
    start = text.find('{"_label_cost"', 1)
    while start != -1:
        try:
            record, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find('{"_label_cost"', start + 1)
            continue
        records.append(record)
        start = text.find('{"_label_cost"', end)
    return records


def _log_line(record: dict) -> LogLine:
    outcomes = record.get("o") or []
    extra = record.get("_banditkit") or {}
    values = [float(o["v"]) for o in outcomes if isinstance(o, dict) and "v" in o]
    values += [float(o["v"]) for o in extra.get("ignoredRewards") or [] if "v" in o]
    activated = any(isinstance(o, dict) and o.get("ActionTaken") for o in outcomes)
    return LogLine(values, activated, bool(record.get("DeferredAction")),
                   bool(record.get("_skipLearn")))


def where_lost(data_dir: Path, event_ids: list[str]) -> dict[str, str]:
    """Where each lost event stopped: joined but not logged, pending, only in a
    journal file, or nowhere."""
    where: dict[str, str] = {}
    if not event_ids:
        return where
    journal_text = ""
    for name in _journal_names(data_dir / "banditkit-journal"):
        with contextlib.suppress(OSError):
            journal_text += (data_dir / "banditkit-journal" / name).read_text(errors="replace")
    stored: dict[str, Any] = {}
    with contextlib.suppress(sqlite3.Error):
        db = sqlite3.connect(f"file:{data_dir / 'banditkit.sqlite3'}?mode=ro", uri=True)
        try:
            for start in range(0, len(event_ids), 500):
                chunk = event_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                stored.update(db.execute(
                    f"SELECT event_id, joined_at FROM events WHERE event_id IN ({marks})",
                    chunk).fetchall())
        finally:
            db.close()
    for event_id in event_ids:
        if event_id in stored:
            where[event_id] = ("store_joined_not_logged" if stored[event_id] is not None
                               else "store_pending")
        elif f"d {event_id} " in journal_text:
            where[event_id] = "journal_not_ingested"
        else:
            where[event_id] = "nowhere"
    return where


def journals_left(data_dir: Path) -> dict[str, int]:
    """Journal files still there after the server stopped, and those whose last line
    was cut short (a worker killed in the middle of a write: never acknowledged)."""
    folder = data_dir / "banditkit-journal"
    names = _journal_names(folder)
    torn = 0
    for name in names:
        with contextlib.suppress(OSError), open(folder / name, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                torn += handle.read(1) != b"\n"
    return {"journal_files_left": len(names), "journal_torn_tails": torn}


def journal_rejects(data_dir: Path) -> dict[str, int]:
    """Rows of the store's ``journal_rejects`` by kind and reason."""
    counts: collections.Counter = collections.Counter()
    with contextlib.suppress(sqlite3.Error):
        db = sqlite3.connect(f"file:{data_dir / 'banditkit.sqlite3'}?mode=ro", uri=True)
        try:
            for kind, reason, n in db.execute(
                    "SELECT kind, reason, COUNT(*) FROM journal_rejects GROUP BY kind, reason"):
                reason = reason.split(" in ", 1)[0]  # "unreadable line in <file>"
                counts[f"{kind}: {reason}"] += n
        finally:
            db.close()
    return dict(sorted(counts.items()))


def check(events: list[Event], found: dict[str, list[LogLine]], *,
          reward_wait: float) -> dict[str, Any]:
    """Acknowledged calls against the joined log."""
    acked_ids = {event.event_id for event in events}
    lost = sorted(event.event_id for event in events if event.event_id not in found)
    duplicated = sorted(event_id for event_id, lines in found.items() if len(lines) > 1)
    rewards_lost = rewards_unchecked = activations_lost = deferred_wrong = 0
    rewards_of_lost = 0
    for event in events:
        lines = found.get(event.event_id)
        window_end = event.sent_at + reward_wait - _WINDOW_MARGIN
        in_window = [value for value, at in event.rewards if at < window_end]
        rewards_unchecked += len(event.rewards) - len(in_window)
        if not lines:
            rewards_of_lost += len(event.rewards)
            continue
        line = lines[0]
        have = collections.Counter(line.outcomes)
        have.subtract(collections.Counter(in_window))
        rewards_lost += sum(-n for n in have.values() if n < 0)
        if event.deferred != line.deferred:
            deferred_wrong += 1
        if (event.deferred and event.activated_at is not None
                and event.activated_at < window_end and not line.activated):
            activations_lost += 1
    return {
        "acknowledged_decisions": len(acked_ids),
        "logged_campaign_events": len(found),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "rewards_lost": rewards_lost,
        "rewards_of_lost_events": rewards_of_lost,
        "rewards_unchecked_late": rewards_unchecked,
        "activations_lost": activations_lost,
        "deferred_flag_wrong": deferred_wrong,
        "lost_sample": lost[:10],
        "duplicated_sample": duplicated[:10],
        "_lost_ids": lost,
    }


def by_next_kill(events: list[Event], lost: list[str], kills: list[Kill]) -> dict[str, int]:
    """Lost decisions counted by the first kill after they were sent (an answer read
    after a kill may have been written before it)."""
    sent_at = {event.event_id: event.sent_at for event in events}
    times = [kill.at for kill in kills]
    counts: collections.Counter = collections.Counter()
    for event_id in lost:
        index = int(np.searchsorted(times, sent_at[event_id]))
        counts[f"#{index + 1} {kills[index].kind}" if index < len(kills)
               else "after the last kill"] += 1
    return dict(counts)


def learner_failures(server: Server) -> dict[str, Any]:
    """Failed learner steps, learner exits and the last step that joined something,
    from the server's JSON logs."""
    failed: collections.Counter = collections.Counter()
    exits = 0
    last_step = None
    for entry in server.log_entries():
        message = str(entry.get("message", ""))
        if message == "learner step":
            last_step = max(last_step or "", str(entry.get("time", "")))
        elif message == "learner step failed":
            lines = str(entry.get("exc", "")).strip().splitlines()
            failed[lines[-1][:160] if lines else "?"] += 1
        elif message.startswith("learner process") and "exited" in message:
            exits += 1
    return {"learner_step_failures": sum(failed.values()),
            "learner_step_errors": dict(failed.most_common(5)), "learner_exits": exits,
            "last_learner_step": last_step}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("banditkit", "flask", "gunicorn", "vowpal-wabbit-next"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _log_readable(data_dir: Path) -> bool:
    """Whether the library's own reader reads the whole log."""
    from banditkit.eventlog import read_events

    try:
        for _ in read_events([data_dir / "logs"]):
            pass
    except Exception:
        return False
    return True


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the campaign; returns the summary (also printed as the last JSON line)."""
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="banditkit-chaos-"))
    data_dir = (args.data_dir or scratch / "data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"chaos{args.seed}-{time.time_ns():x}"
    admin_key, client_key = create_key(data_dir, "admin"), create_key(data_dir, "client")
    server = Server(data_dir=data_dir, log_dir=scratch, args=args)
    load = [LoadResult() for _ in range(args.threads)]
    started = time.monotonic()
    try:
        server.start()
        configure(server, admin_key, reward_wait=args.reward_wait,
                  model_update=args.model_update)
        end, load_started = time.monotonic() + args.duration, time.time()
        threads = [threading.Thread(target=run_load, name=f"chaos-load-{i}", kwargs={
            "index": i, "port": server.port, "key": client_key, "prefix": prefix,
            "seed": args.seed, "end": end, "max_requests": args.max_requests,
            "reward_wait": args.reward_wait, "result": load[i]}) for i in range(args.threads)]
        killer = Killer(server=server, seed=args.seed, end=end, kinds=args.kinds)
        kill_thread = threading.Thread(target=killer.run, name="chaos-kills")
        for thread in [*threads, kill_thread]:
            thread.start()
        for thread in [*threads, kill_thread]:
            thread.join()
        if server.process is None or server.process.poll() is not None:
            server.start()  # a restart that failed, or the killer stopped on an error
        events = [event for result in load for event in result.events]
        last_ack = max([event.acked_at for event in events]
                       + [event.activated_at for event in events if event.activated_at]
                       + [a for event in events for _, a in event.rewards], default=time.time())
        settled = wait_settled(data_dir, after=last_ack + args.reward_wait + 0.5,
                               seconds=args.settle_seconds)
        exit_code = server.stop()
    finally:
        server.close()

    found, n_lines, torn, recovered = read_log(data_dir, prefix)
    result = check(events, found, reward_wait=args.reward_wait)
    lost_ids = result.pop("_lost_ids")
    where = where_lost(data_dir, lost_ids)
    kills = killer.kills
    requests = {
        "name": "chaos_requests",
        "attempted": dict(sum((r.attempts for r in load), collections.Counter())),
        "acknowledged": dict(sum((r.acked for r in load), collections.Counter())),
        "failed_no_answer": dict(sum((r.failed for r in load), collections.Counter())),
        "http_errors": dict(sum((r.statuses for r in load), collections.Counter())),
        "deferred_decisions": sum(event.deferred for event in events),
        "rank_p50_ms": _percentile([s for r in load for s in r.rank_seconds], 50),
        "rank_p95_ms": _percentile([s for r in load for s in r.rank_seconds], 95),
    }
    kill_counts = collections.Counter(kill.kind for kill in kills)
    kill_report = {
        "name": "chaos_kills",
        "kills": {kind: kill_counts.get(kind, 0) for kind in KILL_KINDS},
        "learner_burst_kills": killer.burst_kills,
        "missed": dict(killer.missed),
        "not_healthy_after_kill": killer.unhealthy,
        "serve_starts": len(server.log_paths),
        "killer_error": None if killer.error is None else repr(killer.error),
        "timeline": [f"{kill.at - load_started:.1f}s {kill.kind} {kill.pids} {kill.detail}"
                     .strip() for kill in kills],
    }
    log_report = {
        "name": "chaos_log",
        **result,
        "lost_where": dict(collections.Counter(where.values())),
        "gone_by_next_kill": by_next_kill(
            events, [i for i in lost_ids if where[i] == "nowhere"], kills),
        "log_lines": n_lines, "torn_lines": torn, "events_recovered_from_torn_lines": recovered,
        "log_readable": _log_readable(data_dir),
        "settled": settled,
    }
    pending, unlogged = _store_counts(data_dir) or (None, None)
    rejects = {"name": "chaos_rejects", "journal_rejects": journal_rejects(data_dir),
               **journals_left(data_dir), **learner_failures(server),
               "store_pending_at_end": pending, "unlogged_joins_at_end": unlogged,
               "final_stop_exit_code": exit_code}
    ok = result["lost"] == 0 and result["duplicated"] == 0
    summary = {
        "name": "chaos_summary", "ok": ok, "seed": args.seed, "duration_s": args.duration,
        "threads": args.threads, "workers": args.workers, "reward_wait_s": args.reward_wait,
        "acknowledged": requests["acknowledged"], "kills": kill_report["kills"],
        "lost": result["lost"], "lost_nowhere": log_report["lost_where"].get("nowhere", 0),
        "duplicated": result["duplicated"], "settled": settled,
        "rewards_lost": result["rewards_lost"], "activations_lost": result["activations_lost"],
        "torn_lines": torn, "rejects": sum(rejects["journal_rejects"].values()),
        "learner_step_failures": rejects["learner_step_failures"],
        "wall_s": round(time.monotonic() - started, 1),
        "data_dir": str(data_dir), "load_average": round(os.getloadavg()[0], 2),
        **versions(),
    }
    if not ok:  # the server logs (and a temporary data dir) are kept to look into
        summary["server_logs"] = [str(path) for path in server.log_paths]
    for line in (requests, kill_report, log_report, rejects, summary):
        print(json.dumps(line), flush=True)
    if ok:
        shutil.rmtree(scratch, ignore_errors=True)
    summary["kill_report"] = kill_report
    summary["log_report"] = log_report
    summary["rejects_report"] = rejects
    summary["requests_report"] = requests
    return summary


def _percentile(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 2) if seconds else None


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
