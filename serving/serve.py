"""``banditkit serve``: the production server, gunicorn workers plus one learner process.

Process layout (docs/architecture.md §4: learning happens in one learner, ranking uses a
read-only snapshot)::

    gunicorn master  (this process: binds the socket, supervises)
      |-- worker 1..N   server.create_app() with LEARNER_ENABLED=false;
      |                 rank/reward/activate, each reloading the latest model
      |                 snapshot from the SQLite store every second
      `-- learner       Engine.process_due() every --learner-interval seconds:
                        join, append to the dsjson log, learn, publish snapshots

The master restarts the learner if it dies, and stops it after the workers on
SIGTERM/SIGINT (gunicorn's graceful shutdown: workers finish their requests).
A learner whose master disappears (SIGKILL) exits by itself within a moment,
so a restart never waits for the old learner's lock: on Linux the kernel sends
it SIGTERM when the master dies (``prctl(PR_SET_PDEATHSIG)``), which abandons
the step under way; elsewhere it notices between steps. gunicorn's workers
notice the master's death themselves, within a second, and finish their
requests first. Every acknowledged decision
and reward is already in its worker's journal (``banditkit.journal``), so nothing
acknowledged is lost when any of these processes is killed; the next learner
ingests and joins them.

Logs are JSON lines on stderr (one object per line: ``time``, ``level``,
``logger``, ``pid``, ``message``, and the fields of the app's access log).
Prometheus metrics of all workers and the learner are aggregated through
``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless set).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LIMIT_REQUEST_FIELDS",
    "LIMIT_REQUEST_FIELD_SIZE",
    "LIMIT_REQUEST_LINE",
    "JsonFormatter",
    "gunicorn_options",
    "logging_config",
    "run_learner",
    "run_server",
]

#: Longest request line in bytes (method, URL, version): longer gets 414. It
#: holds any route with a 256-character event id percent-encoded (12 bytes a
#: character at most).
LIMIT_REQUEST_LINE = 4094
#: Most header fields, and longest header field in bytes: more gets 431.
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190

_logger = logging.getLogger("banditkit.serve")
_LEARNER_RESTART_SECONDS = 2.0
_LEARNER_HEALTH_FILE = "learner.health"
#: Loggers whose messages are JSON objects, merged into the log line as they are.
_JSON_LOGGERS = frozenset({"banditkit.access"})


class JsonFormatter(logging.Formatter):
    """One JSON object per log record.

    Fields: ``time`` (UTC ISO-8601 with milliseconds), ``level``, ``logger``,
    ``pid``, ``message``; a message that is itself a JSON object (the app's
    access log) is merged in instead of quoted; ``exc`` holds a traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
        }
        message = record.getMessage()
        if (record.name in _JSON_LOGGERS and not record.exc_info
                and message.startswith("{") and message.endswith("}")):
            # These loggers write one JSON object per message (server.py's access
            # log): splice it in rather than parse and re-encode it per request.
            head = json.dumps(entry, default=str)
            return head if message == "{}" else f"{head[:-1]}, {message[1:]}"
        fields = None
        if message.startswith("{"):
            try:
                fields = json.loads(message)
            except ValueError:
                fields = None
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["message"] = message
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(level: str = "info", *, access_log: bool = True) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dict: JSON lines on stderr.

    Parameters
    ----------
    level : str, default="info"
        Level of gunicorn's and banditkit's loggers.
    access_log : bool, default=True
        Log one line per request (``banditkit.access``, written by the app).
    """
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["json"], "propagate": False,
                               "qualname": "gunicorn.error"},
            # The app writes its own access log (with the key id); gunicorn's is off.
            "gunicorn.access": {"level": "WARNING", "handlers": ["json"], "propagate": False,
                                "qualname": "gunicorn.access"},
            "banditkit.access": {"level": "INFO" if access_log else "WARNING",
                                 "handlers": ["json"], "propagate": False},
        },
    }


def gunicorn_options(*, bind: str = "127.0.0.1:8000", workers: int = 2, threads: int = 4,
                     timeout: int = 30, graceful_timeout: int = 10,
                     log_level: str = "info", access_log: bool = True) -> dict[str, Any]:
    """The gunicorn settings of ``banditkit serve`` (also used by the benchmarks).

    Parameters
    ----------
    bind : str, default="127.0.0.1:8000"
        ``HOST:PORT`` (several separated by commas) or ``unix:PATH``.
    workers : int, default=2
        Worker processes; each ranks with its own read-only model snapshot.
    threads : int, default=4
        Threads per worker (gunicorn's ``gthread`` worker, with keep-alive).
    timeout, graceful_timeout : int, default=30, 10
        Seconds before a silent worker is restarted; seconds workers get to
        finish their requests on SIGTERM.
    log_level : str, default="info"
    access_log : bool, default=True
    """
    return {
        "bind": [part.strip() for part in bind.split(",") if part.strip()],
        "workers": workers,
        # gthread, answering the requests gunicorn refuses itself in JSON.
        "worker_class": "serving._gunicorn.JsonErrorWorker",
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "threads": threads,
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "keepalive": 5,
        "loglevel": log_level,
        "logconfig_dict": logging_config(log_level, access_log=access_log),
        "accesslog": None,
        "logger_class": "serving._gunicorn.QuietAccessLogger",
        "proc_name": "banditkit",
        # Each worker builds its own app (its own SQLite connections and engine)
        # after the fork: nothing opened in the master is shared.
        "preload_app": False,
    }


class _LearnerSupervisor:
    """Starts the learner process, restarts it when it dies, stops it on shutdown."""

    def __init__(self, *, command: list[str], env: Mapping[str, str]) -> None:
        self.command = command
        self.env = dict(env)
        self._process: subprocess.Popen | None = None
        self._started_at = 0.0
        self._stopping = False
        self._reported: int | None = None

    def ensure_running(self) -> None:
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
            if time.monotonic() - self._started_at < _LEARNER_RESTART_SECONDS:
                return  # do not spin on a learner that fails at start
        self._started_at = time.monotonic()
        self._process = subprocess.Popen(self.command, env=self.env)
        _logger.info("learner process %s started", self._process.pid)

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _logger.error("learner process %s did not stop in %s s; killing it",
                          process.pid, timeout)
            process.kill()
            process.wait(10)
        _logger.info("learner process %s stopped", process.pid)


def _prepare_data_dir(data_dir: Path) -> None:
    """Create the store's schema once, before workers race to do it; fail fast."""
    from banditkit.engine import Engine

    with Engine.open(data_dir) as engine:
        engine.model_version  # noqa: B018 - reads settings and the latest snapshot


def run_server(data_dir: Path, *, learner_command: Sequence[str] | None,
               bind: str = "127.0.0.1:8000", workers: int = 2, threads: int = 4,
               learner_interval: float = 1.0, learner_nice: int = 10, timeout: int = 30,
               log_level: str = "info", access_log: bool = True,
               app_factory: str = "server:create_app") -> None:
    """Run the production server: gunicorn workers plus one learner process.

    Blocks until the server stops (SIGTERM or Ctrl-C).

    Parameters
    ----------
    data_dir : path
        Folder holding the SQLite database, images, models and logs.
    learner_command : sequence of str or None
        Command line that runs :func:`run_learner` in a process of its own, to
        which ``--data-dir``, ``--interval``, ``--parent``, ``--log-level`` and
        ``--nice`` are appended. None runs no learner process (another host runs it).
    bind : str, default="127.0.0.1:8000"
        HOST:PORT to listen on (several separated by commas), or unix:PATH.
    workers : int, default=2
        Worker processes ranking requests.
    threads : int, default=4
        Threads per worker.
    learner_interval : float, default=1.0
        Seconds between learner steps.
    learner_nice : int, default=10
        Scheduling niceness of the learner process.
    timeout : int, default=30
        Seconds before a stuck worker is restarted.
    log_level : {"debug", "info", "warning", "error"}, default="info"
    access_log : bool, default=True
        One JSON line per request.
    app_factory : str, default="server:create_app"
        WSGI app factory MODULE:FUNCTION.
    """
    data_dir = data_dir.resolve()
    if app_factory == "server:create_app":
        _prepare_data_dir(data_dir)
    # Workers inherit these: every worker ranks from the data dir's store and none
    # runs the in-app learner thread; the learner process below is the only one.
    os.environ["BANDITKIT_ENGINE_DATA_DIR"] = str(data_dir)
    os.environ["BANDITKIT_LEARNER_ENABLED"] = "false"
    # Python warnings become JSON log records too (workers inherit this at the fork).
    logging.captureWarnings(True)
    cleanup: Callable[[], None] | None = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="banditkit-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

        def cleanup() -> None:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    supervisor = None
    if learner_command is not None:
        # Workers' /readyz reads the learner process's health from this file.
        os.environ["BANDITKIT_LEARNER_HEALTH_PATH"] = str(data_dir / _LEARNER_HEALTH_FILE)
        command = [*learner_command, "--data-dir", str(data_dir),
                   "--interval", str(learner_interval), "--parent", str(os.getpid()),
                   "--log-level", log_level, "--nice", str(learner_nice)]
        supervisor = _LearnerSupervisor(command=command, env=os.environ)
    options = gunicorn_options(bind=bind, workers=workers, threads=threads, timeout=timeout,
                               log_level=log_level, access_log=access_log)
    # gunicorn needs a POSIX system: imported here so that this module (and the
    # banditkit command that calls it) imports anywhere.
    from serving._gunicorn import ServeApplication

    ServeApplication(app_factory=app_factory, options=options, supervisor=supervisor,
                     on_exit=cleanup).run()


# ------------------------------------------------------------------ the learner process


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


def run_learner(data_dir: Path, *, interval_seconds: float = 1.0,
                parent_pid: int | None = None, stop: threading.Event | None = None) -> None:
    """Step the engine's learner until ``stop`` is set, SIGTERM, or the parent is gone.

    Parameters
    ----------
    data_dir : path
        The data directory the workers serve.
    interval_seconds : float, default=1.0
        Pause between steps.
    parent_pid : int, default=None
        Exit when the parent process is no longer this pid (the master was
        killed). With ``stop=None`` on Linux the exit is immediate: the step
        under way unwinds between two Python statements, its transaction rolls
        back, and the next learner completes it as after a crash. Otherwise the
        exit happens between steps.
    stop : threading.Event, default=None
        Set it to stop; None installs SIGTERM and SIGINT handlers that set one,
        and finish the step under way unless the parent is gone.
    """
    if stop is None:
        stop = threading.Event()
        event = stop

        def on_signal(_signum: int, _frame: Any) -> None:
            event.set()
            if parent_pid is not None and os.getppid() != parent_pid:
                raise _MasterGone

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
        if parent_pid is not None:
            _signal_on_parent_death(signal.SIGTERM)
    try:
        # After the request above: a master that died before it sent nothing.
        if parent_pid is not None and os.getppid() != parent_pid:
            raise _MasterGone
        lock = _learner_lock(data_dir, stop=stop, interval_seconds=interval_seconds,
                             parent_pid=parent_pid)
        if lock is None:
            return
        try:
            _learn(data_dir, interval_seconds=interval_seconds, parent_pid=parent_pid,
                   stop=stop)
        finally:
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


def _learn(data_dir: Path, *, interval_seconds: float, parent_pid: int | None,
           stop: threading.Event) -> None:
    from prometheus_client import CollectorRegistry

    from banditkit.engine import Engine
    from banditkit.rows import RowEngine
    from serving.metrics import Metrics
    from serving.runtime import BackgroundLearner

    # Engine.process_due follows a policy changed through a worker's admin route.
    engine = Engine.open(data_dir)
    rows = RowEngine.open(data_dir)
    # In multiprocess mode (PROMETHEUS_MULTIPROC_DIR) these counters land in files
    # that every worker's /metrics aggregates.
    metrics = Metrics(registry=CollectorRegistry())
    stepper = BackgroundLearner(engine=engine, rows=rows, interval_seconds=interval_seconds,
                                metrics=metrics,
                                health_path=Path(data_dir) / _LEARNER_HEALTH_FILE)
    _logger.info(json.dumps({"message": "learner started", "data_dir": str(data_dir),
                             "policy": engine.settings.learner_args()}))
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                _logger.warning("the server master is gone; learner exiting")
                break
            done = stepper.guarded(stepper.step)
            if done is not None and any(done):
                _logger.info(json.dumps({"message": "learner step", "joined": done.joined,
                                         "pages_joined": done.pages_joined,
                                         "model_version": engine.model_version}))
            stop.wait(interval_seconds)
    finally:
        engine.close()
        rows.close()
        _logger.info("learner stopped")
