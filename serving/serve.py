"""``banditkit serve``: the production server, gunicorn workers plus one learner process.

This module runs gunicorn; the learner process and its supervisor are
:mod:`serving.learner_process`.

Process layout (docs/architecture.md §4: learning happens in one learner, ranking uses a
read-only snapshot)::

    gunicorn master  (this process: binds the socket, supervises)
      |-- worker 1..N   server.create_app() with LEARNER_ENABLED=false;
      |                 rank/reward/activate, each reloading the latest model
      |                 snapshot from the SQLite store every second
      `-- learner       Engine.process_due() every --learner-interval seconds:
                        join, append to the dsjson log, learn, publish snapshots

Workers and learner read their configuration from the environment the master
writes with :func:`serving.config.child_environ` (``ENGINE_DATA_DIR``,
``LEARNER_ENABLED``, ``LEARNER_INTERVAL_SECONDS``, ``LEARNER_HEALTH_PATH``),
as ``server.create_app()`` reads every key.

The master restarts the learner if it dies, and stops it after the workers on
SIGTERM/SIGINT (gunicorn's graceful shutdown: workers finish their requests).
A learner whose master disappears (SIGKILL) exits by itself within a moment.
gunicorn's workers notice the master's death themselves, within a second, and
finish their requests first. Every acknowledged decision
and reward is already in its worker's journal (``banditkit.store.journal``), so nothing
acknowledged is lost when any of these processes is killed; the next learner
ingests and joins them.

Logs are JSON lines on stderr (one object per line: ``time``, ``level``,
``logger``, ``pid``, ``message``, and the fields of the app's access log).
Prometheus metrics of all workers and the learner are aggregated through
``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless set).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from serving.config import DATABASE_URL_KEY, ServerConfig, child_environ, environ_config
from serving.learner_process import LEARNER_HEALTH_FILE, LearnerSupervisor

__all__ = [
    "BindError",
    "LIMIT_REQUEST_FIELDS",
    "LIMIT_REQUEST_FIELD_SIZE",
    "LIMIT_REQUEST_LINE",
    "JsonFormatter",
    "check_addresses_free",
    "gunicorn_options",
    "logging_config",
    "run_server",
]

#: Longest request line in bytes (method, URL, version): longer gets 414. It
#: holds any route with a 256-character event id percent-encoded (12 bytes a
#: character at most).
LIMIT_REQUEST_LINE = 4094
#: Most header fields, and longest header field in bytes: more gets 431.
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190

#: Loggers whose messages are JSON objects, merged into the log line as they are.
_JSON_LOGGERS = frozenset({"banditkit.access"})


class BindError(RuntimeError):
    """``banditkit serve`` cannot listen on an address it was given (taken, or not ours)."""


def check_addresses_free(binds: Sequence[str]) -> None:
    """Refuse at once, in one sentence, an address another process listens on.

    gunicorn would retry a taken address five times, a second apart, logging
    each attempt, before giving up; checking first gives the operator the
    answer and the fix at once. Unix sockets and inherited descriptors are
    left to gunicorn.

    Parameters
    ----------
    binds : sequence of str
        gunicorn's ``bind`` values (``HOST:PORT``, ``[V6]:PORT``, ``unix:PATH``).

    Raises
    ------
    BindError
        When binding ``HOST:PORT`` fails, naming the address and why.
    """
    from gunicorn.util import parse_address  # POSIX only, as in run_server

    for bind in binds:
        try:
            address = parse_address(bind)
        except RuntimeError as error:
            raise BindError(f"cannot listen on {bind}: {error}") from None
        if not isinstance(address, tuple):
            continue
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As gunicorn binds: a port in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise BindError(f"cannot listen on {bind}: {error.strerror}") from None
                raise BindError(
                    f"{bind} is already in use (another server listens there); "
                    "choose another address with --port or --bind") from None


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


def _prepare_data_dir(data_dir: Path, database_url: str | None) -> None:
    """Create or migrate the store's schema once, before workers race to do it; fail fast
    (a PostgreSQL server that cannot be reached stops the server here)."""
    from banditkit.engine import Engine
    from banditkit.rows import RowEngine

    with Engine.open(data_dir, database_url=database_url) as engine:
        engine.model_version  # noqa: B018 - reads settings and the latest snapshot
    if database_url is not None:
        RowEngine.open(data_dir, database_url=database_url).close()


def run_server(data_dir: Path, *, learner_command: Sequence[str] | None,
               database_url: str | None = None, log_dir: Path | None = None,
               bind: str = "127.0.0.1:8000", workers: int = 2, threads: int = 4,
               learner_interval: float = 1.0, learner_nice: int = 10, timeout: int = 30,
               log_level: str = "info", access_log: bool = True,
               app_factory: str = "server:create_app") -> None:
    """Run the production server: gunicorn workers plus one learner process.

    Blocks until the server stops (SIGTERM or Ctrl-C).

    Raises
    ------
    serving.config.ConfigError
        When a ``BANDITKIT_`` environment variable fails its check.
    BindError
        When an address of ``bind`` is taken or cannot be bound.

    Parameters
    ----------
    data_dir : path
        Folder holding the SQLite database, images, models and logs.
    learner_command : sequence of str or None
        Command line that runs :func:`serving.learner_process.run_learner` in a
        process of its own, to which ``--parent``, ``--log-level`` and ``--nice``
        are appended; it reads the rest of its configuration from the
        environment. None runs no learner process (another host runs it).
    database_url : str, default=None
        The PostgreSQL store (``DATABASE_URL``); None keeps it in SQLite in ``data_dir``.
    log_dir : path, default=None
        Where the learner writes the joined logs (``ENGINE_LOG_DIR``): with several
        hosts on one database, a folder all of them and the analysts reach, since
        the learner may move to any host. None: ``data_dir``.
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
    # gunicorn needs a POSIX system: imported here so that this module (and the
    # banditkit command that calls it) imports anywhere.
    from serving._gunicorn import ServeApplication

    options = gunicorn_options(bind=bind, workers=workers, threads=threads, timeout=timeout,
                               log_level=log_level, access_log=access_log)
    check_addresses_free(options["bind"])
    data_dir = data_dir.resolve()
    config: dict[str, Any] = {"ENGINE_DATA_DIR": data_dir,
                              "LEARNER_INTERVAL_SECONDS": learner_interval}
    if database_url is not None:
        config[DATABASE_URL_KEY] = database_url
    if log_dir is not None:
        config["ENGINE_LOG_DIR"] = log_dir.resolve()
    if learner_command is not None:
        # The learner process writes its health there; workers' /readyz reads it.
        config["LEARNER_HEALTH_PATH"] = data_dir / LEARNER_HEALTH_FILE
    # Workers inherit this process's environment at the fork: every worker ranks
    # from the data dir's store and none runs the in-app learner thread; the
    # learner process below is the only one.
    os.environ.update(child_environ({**config, "LEARNER_ENABLED": False}, environ={}))
    if app_factory == "server:create_app":
        # A bad BANDITKIT_ value stops the server here, before any worker starts.
        ServerConfig.from_mapping(environ_config())
        _prepare_data_dir(data_dir, database_url)
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
        command = [*learner_command, "--parent", str(os.getpid()),
                   "--log-level", log_level, "--nice", str(learner_nice)]
        supervisor = LearnerSupervisor(
            command=command, env=child_environ({**config, "LEARNER_ENABLED": True}))
    ServeApplication(app_factory=app_factory, options=options, supervisor=supervisor,
                     on_exit=cleanup).run()
