"""The learner process of ``banditkit serve``: run, supervised, stopped.

``banditkit serve`` runs learning in one process beside its gunicorn workers
(docs/architecture.md §4). The master starts it through a
:class:`LearnerSupervisor`, which restarts it when it dies and stops it after
the workers. The process (``banditkit serve-learner``) reads its configuration
from the environment the master wrote (:func:`serving.config.child_environ`)
and calls :func:`run_learner`, which steps the engines with the same
:class:`serving.runtime.BackgroundLearner` that runs as a thread in an app.

A learner whose master disappears (SIGKILL) exits by itself within a moment,
so a restart never waits for the old learner's lock: on Linux the kernel sends
it SIGTERM when the master dies (``prctl(PR_SET_PDEATHSIG)``), which abandons
the step under way; elsewhere a watcher notices within an interval and stops
it between steps.

Beside the learner, the process runs the job runner of Personalizer's
evaluations (:mod:`serving.jobs`, ``JOBS_`` config keys): a job left running
by a stopped learner is queued again when the next one starts.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from banditkit.eventlog import EventLogWriter
from serving.processes import terminate

if TYPE_CHECKING:
    from banditkit.loop import LoopEngine
    from banditkit.store.journaled import Fence

__all__ = ["LEARNER_HEALTH_FILE", "LearnerSupervisor", "fence_loop", "run_learner",
           "wait_for_learner_lease"]

#: The learner process's health file in the data dir (``LEARNER_HEALTH_PATH``).
LEARNER_HEALTH_FILE = "learner.health"
_RESTART_SECONDS = 2.0
# A lease holder without a heartbeat this long is deposed (LearnerLease): as long as
# the lease connection's keepalives take to declare a silent host dead.
_STALE_SECONDS = 10.0
# The serve command's logger: operators' log pipelines follow it.
_logger = logging.getLogger("banditkit.serve")


class LearnerSupervisor:
    """Starts the learner process, restarts it when it dies, stops it on shutdown.

    gunicorn's master calls :meth:`ensure_running` from its main loop (at least
    once a second), so no thread of the master watches the learner.

    Parameters
    ----------
    command : sequence of str
        The learner process's command line.
    env : mapping
        Its environment (:func:`serving.config.child_environ`).
    """

    def __init__(self, *, command: Sequence[str], env: Mapping[str, str]) -> None:
        self.command = list(command)
        self.env = dict(env)
        self._process: subprocess.Popen | None = None
        self._started_at = 0.0
        self._stopping = False
        self._reported: int | None = None

    def ensure_running(self) -> None:
        """Start the process unless it runs, is stopping, or failed under 2 s ago."""
        if self._stopping:
            return
        process = self._process
        if process is not None and process.poll() is None:
            return
        if process is not None:
            if self._reported != process.pid:
                # gunicorn's arbiter reaps every child, so the status may read 0.
                _logger.error("learner process %s exited (status %s); restarting it",
                              process.pid, process.returncode)
                self._reported = process.pid
            if time.monotonic() - self._started_at < _RESTART_SECONDS:
                return  # do not spin on a learner that fails at start
        self._started_at = time.monotonic()
        self._process = subprocess.Popen(self.command, env=self.env)
        _logger.info("learner process %s started", self._process.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process (it finishes its step) and wait; kill it after ``timeout`` s."""
        self._stopping = True
        process = self._process
        if process is None or process.poll() is not None:
            return
        if not terminate(process, timeout=timeout):
            _logger.error("learner process %s did not stop in %s s; killed it",
                          process.pid, timeout)
        _logger.info("learner process %s stopped", process.pid)


class _MasterGone(BaseException):
    """Raised in the learner process by the signal of its master's death.

    A BaseException, as KeyboardInterrupt is, so that the ``except Exception``
    around a learner step does not take it for a failed step.
    """


def _signal_on_parent_death(signum: int) -> bool:
    """Have Linux send ``signum`` to this process when its parent exits.

    The kernel delivers it however the parent died (SIGKILL, a crash, the OOM
    killer) and whatever this process is doing, with no polling. It is tied to
    the thread that started this process: the master starts the learner from
    its main loop. Returns False where ``prctl`` is missing (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(pr_set_pdeathsig, signum, 0, 0, 0) == 0


def _stop_on_signals(stop: threading.Event, parent_pid: int | None) -> bool:
    """SIGTERM and SIGINT set ``stop``; returns whether the kernel signals the parent's death.

    The step under way finishes, unless the parent is gone: then it unwinds
    (:class:`_MasterGone`) between two Python statements, its transaction
    rolls back, and the next learner completes it as after a crash.
    """

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()
        if parent_pid is not None and os.getppid() != parent_pid:
            raise _MasterGone

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    return parent_pid is not None and _signal_on_parent_death(signal.SIGTERM)


def _watch_parent(parent_pid: int, stop: threading.Event, interval_seconds: float) -> None:
    """Set ``stop`` once this process's parent is no longer ``parent_pid``.

    For where the kernel does not signal a parent's death: a daemon thread
    looks every ``interval_seconds``, so the learner stops between steps.
    """

    def watch() -> None:
        while not stop.wait(interval_seconds):
            if os.getppid() != parent_pid:
                _logger.warning("the server master is gone; learner exiting")
                stop.set()

    threading.Thread(target=watch, name="banditkit-parent-watch", daemon=True).start()


def run_learner(data_dir: Path, *, database_url: str | None = None,
                log_dir: Path | str | None = None, interval_seconds: float = 1.0,
                parent_pid: int | None = None, stop: threading.Event | None = None,
                health_path: Path | None = None) -> None:
    """Step the engine's learner until ``stop`` is set, SIGTERM, or the parent is gone.

    Holds ``learner.lock`` in ``data_dir`` while it runs: one learner per store;
    with ``database_url`` also the store's learner lease, one learner across hosts.

    Parameters
    ----------
    data_dir : path
        The data directory the workers serve.
    database_url : str, default=None
        The PostgreSQL store the workers serve; None: SQLite in ``data_dir``.
    log_dir : path, default=None
        Where the joined logs go (:meth:`banditkit.engine.Engine.open`); None:
        ``data_dir``.
    interval_seconds : float, default=1.0
        Pause between steps.
    parent_pid : int, default=None
        Exit when the parent process is no longer this pid (the master was
        killed). With ``stop=None`` on Linux the exit is immediate; otherwise
        it happens between steps.
    stop : threading.Event, default=None
        Set it to stop; None installs SIGTERM and SIGINT handlers that set one,
        and finish the step under way unless the parent is gone.
    health_path : path, default=None
        Where the learner's health is written after every step, for the
        workers' ``/readyz`` (``LEARNER_HEALTH_PATH``); None writes none.
    """
    signalled = False
    if stop is None:
        stop = threading.Event()
        signalled = _stop_on_signals(stop, parent_pid)
    try:
        # After the request above: a master that died before it sent nothing.
        if parent_pid is not None and os.getppid() != parent_pid:
            raise _MasterGone
        if parent_pid is not None and not signalled:
            _watch_parent(parent_pid, stop, interval_seconds)
        lock = _learner_lock(data_dir, stop=stop, interval_seconds=interval_seconds,
                             parent_pid=parent_pid)
        if lock is None:
            return
        lease = None
        if database_url is not None:
            lease = wait_for_learner_lease(data_dir, database_url, stop=stop,
                                           interval_seconds=interval_seconds)
            if lease is None:
                lock.close()
                return
        try:
            _learn(data_dir, database_url=database_url, log_dir=log_dir,
                   interval_seconds=interval_seconds, stop=stop, health_path=health_path,
                   lease=lease)
        finally:
            if lease is not None:
                lease.release()
            lock.close()  # releases the lock
    except _MasterGone:
        _logger.warning("the server master is gone; learner exiting")


def _learner_lock(data_dir: Path, *, stop: threading.Event, interval_seconds: float,
                  parent_pid: int | None) -> Any:
    """Hold ``learner.lock`` in the data dir: one learner per store, even across servers.

    Waits while another learner holds it (a server started twice, or the
    learner of a killed server that has not noticed yet); the kernel releases a
    lock whose holder died. Returns the open lock file, or None when asked to
    stop first.
    """
    import fcntl

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    handle = open(Path(data_dir) / "learner.lock", "a+")  # noqa: SIM115 - held until exit
    waiting = False
    while not stop.is_set():
        if parent_pid is not None and os.getppid() != parent_pid:
            break
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if not waiting:
                _logger.warning("another learner holds %s; waiting for it",
                                Path(data_dir) / "learner.lock")
                waiting = True
            stop.wait(interval_seconds)
    handle.close()
    return None


def wait_for_learner_lease(data_dir: Path, database_url: str, *, stop: threading.Event,
                           interval_seconds: float) -> Any:
    """The PostgreSQL store's learner lease: one learner across every host.

    While another host's learner holds it, this process asks for it every
    ``interval_seconds`` and ships its host's journals into the store (the lease
    holder joins them) in a thread of their own: a shipment waits for the
    store's write lock, which a hung holder may keep, and only asking for the
    lease deposes that holder and ends its sessions. Once it holds the lease, a
    daemon thread checks it every ``interval_seconds`` (the holder's heartbeat)
    and stops this learner when it was lost (the supervisor restarts the
    process, which waits for the lease again). While the database cannot be
    reached it keeps trying. Returns the lease, or None when asked to stop first.
    """
    import psycopg

    from banditkit.store.postgres import LearnerLease

    # Heartbeats come every interval (the watcher below); five missed depose it.
    lease = LearnerLease(url=database_url,
                         stale_seconds=max(_STALE_SECONDS, 5 * interval_seconds))
    shipping = _ShippingThread(data_dir, database_url, interval_seconds=interval_seconds)
    unreachable = False
    try:
        while not stop.is_set():
            try:
                if lease.acquire():
                    break
                if shipping.ident is None:  # not started yet
                    _logger.warning("another host's learner holds the store's learner lease; "
                                    "waiting for it and shipping this host's journals")
                    shipping.start()
                unreachable = False
            except psycopg.OperationalError as error:
                lease.release()
                if not unreachable:  # once per outage
                    _logger.warning("the database cannot be reached (%s); trying the lease "
                                    "again every %s s", str(error).strip()[:200],
                                    interval_seconds)
                unreachable = True
            stop.wait(interval_seconds)
        else:
            lease.release()
            return None
    finally:
        # the shipment under way ends first: the learner ingests the journals next
        shipping.finish(wait=not stop.is_set())

    def watch() -> None:
        while not stop.wait(interval_seconds):
            if not lease.held():
                _logger.warning("the learner lease was lost (the database stopped "
                                "answering, or another learner deposed this one); "
                                "learner exiting")
                stop.set()

    threading.Thread(target=watch, name="banditkit-lease-watch", daemon=True).start()
    return lease


class _FencedLog(EventLogWriter):
    """The loop's log writer, appending only while its learner's lease is current.

    The learner holds the log lock (``<log root>.lock``, in the folder every host
    reaches) from joining a batch to marking it logged; a new lease holder takes
    that lock before it writes what the previous holder joined but did not log.
    This check before each append means a deposed learner that still finished
    a join appends nothing once the new holder's epoch is in force: the new
    holder writes those lines, once.
    """

    def __init__(self, log: EventLogWriter, check: Callable[[], None]) -> None:
        super().__init__(root=log.root, fsync=log.fsync, rejects_dir=log.rejects_dir)
        self.check = check

    def append(self, lines: Iterable[tuple[str, str]]) -> list[Path]:
        self.check()
        return super().append(lines)


def fence_loop(loop: LoopEngine, fence: Fence) -> None:
    """Make ``loop``'s joins, model snapshots and log appends check a lease's ``fence``
    (:meth:`banditkit.store.postgres.LearnerLease.fence`)."""
    loop.store.fence = fence
    loop.log = _FencedLog(loop.log, loop.store.check_fence)


class _Shipper:
    """Moves this host's journals (both engines') into the shared store, for a
    learner on another host to join."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        from banditkit.engine import Engine
        from banditkit.rows import RowEngine

        self.engines = (Engine.open(data_dir, database_url=database_url),
                        RowEngine.open(data_dir, database_url=database_url))

    def ship(self) -> None:
        """Ingest both engines' journals; a failure is logged and tried again next time.

        Raises
        ------
        psycopg.OperationalError
            When the database cannot be reached: :class:`_ShippingThread` opens a
            new shipper, whose pool connects at once, instead of waiting out this
            pool's reconnection backoff (up to 8 s between tries) once it is back.
        """
        import psycopg

        for engine in self.engines:
            try:
                engine.store.ingest()
            except psycopg.OperationalError:
                raise
            except Exception:  # noqa: BLE001 - the database may be back at the next try
                _logger.exception("shipping the journal failed; trying again")

    def close(self) -> None:
        for engine in self.engines:
            engine.close()


class _ShippingThread(threading.Thread):
    """Ships this host's journals every ``interval_seconds`` until :meth:`finish`;
    after a lost database it opens a new :class:`_Shipper`."""

    def __init__(self, data_dir: Path, database_url: str, *,
                 interval_seconds: float) -> None:
        super().__init__(name="banditkit-shipping", daemon=True)
        self.data_dir, self.database_url = data_dir, database_url
        self.interval_seconds = interval_seconds
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        shipper: _Shipper | None = None
        try:
            while not self.done.is_set():
                try:
                    if shipper is None:
                        shipper = _Shipper(self.data_dir, self.database_url)
                    shipper.ship()
                except psycopg.OperationalError:  # the lease loop reports the outage
                    if shipper is not None:
                        shipper.close()
                        shipper = None
                except Exception:  # noqa: BLE001 - the next interval tries again
                    _logger.exception("shipping this host's journals failed; trying again")
                self.done.wait(self.interval_seconds)
        finally:
            if shipper is not None:
                shipper.close()

    def finish(self, *, wait: bool) -> None:
        """Stop after the shipment under way; ``wait`` for it (a daemon thread left
        waiting on the database ends with the process)."""
        self.done.set()
        if wait and self.is_alive():
            self.join()


def _learn(data_dir: Path, *, database_url: str | None, log_dir: Path | str | None,
           interval_seconds: float, stop: threading.Event, health_path: Path | None,
           lease: Any) -> None:
    from prometheus_client import CollectorRegistry

    from banditkit.engine import Engine
    from banditkit.rows import RowEngine
    from banditkit.store.factory import open_job_store
    from serving.config import ServerConfig, environ_config
    from serving.jobs import JobLimits, JobRunner
    from serving.metrics import Metrics
    from serving.runtime import BackgroundLearner

    # Engine.process_due follows a policy changed through a worker's admin route.
    engine = Engine.open(data_dir, database_url=database_url, log_dir=log_dir)
    rows = RowEngine.open(data_dir, database_url=database_url, log_dir=log_dir)
    if lease is not None:
        fence = lease.fence()
        for loop in (engine, rows):
            fence_loop(loop, fence)
    # In multiprocess mode (PROMETHEUS_MULTIPROC_DIR) these counters land in files
    # that every worker's /metrics aggregates.
    metrics = Metrics(registry=CollectorRegistry())
    learner = BackgroundLearner(engine=engine, rows=rows, interval_seconds=interval_seconds,
                                metrics=metrics, health_path=health_path)
    # Personalizer's evaluation jobs run here, the one process per data dir.
    config = ServerConfig.from_mapping(environ_config())
    jobs = open_job_store(data_dir, database_url=database_url)
    runner = None
    if config.jobs_enabled:
        runner = JobRunner(jobs=jobs, engine=engine, limits=JobLimits.from_config(config),
                           rows=rows)
        runner.start()
    _logger.info(json.dumps({"message": "learner started", "data_dir": str(data_dir),
                             "log_dir": str(engine.log.root),
                             "epoch": None if lease is None else lease.epoch,
                             "policy": engine.settings.learner_args(),
                             "jobs": config.jobs_enabled}))
    try:
        learner.run(stop)
    finally:
        if runner is not None:
            runner.stop(timeout=1.0)
        engine.close()
        rows.close()
        jobs.close()
        _logger.info("learner stopped")
