"""``banditkit serve``, and the hidden ``banditkit serve-learner`` it starts.

Shells over :func:`serving.serve.run_server` and
:func:`serving.learner_process.run_learner`; both read the app's configuration
through :mod:`serving.config`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cli._options import data_dir_option, database_url_option

__all__ = ["LEARNER_COMMAND", "serve", "serve_learner"]

#: How the server master starts its learner process: this interpreter, and the
#: installed ``cli`` package rather than a script on PATH.
LEARNER_COMMAND = (sys.executable, "-m", "cli", "serve-learner")


@click.command("serve")
@data_dir_option
@database_url_option
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the learner writes the joined dsjson logs [default: --data-dir]. "
                   "With several hosts on one --database-url, a folder all of them reach "
                   "(the learner may move to any host).")
@click.option("--bind", "-b", default=None,
              help="HOST:PORT to listen on (several separated by commas), or unix:PATH "
                   "[default: 127.0.0.1:8000].")
@click.option("--host", default=None, help="Host to listen on, with --port [default: 127.0.0.1].")
@click.option("--port", "-p", type=click.IntRange(min=0, max=65535), default=None,
              help="Port to listen on, with --host [default: 8000; 0 picks a free one].")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes ranking requests (about one per core).")
@click.option("--threads", type=click.IntRange(min=1), default=4, show_default=True,
              help="Threads per worker.")
@click.option("--learner-interval", type=click.FloatRange(min=0.01), default=1.0,
              show_default=True, help="Seconds between learner steps (join, learn, publish).")
@click.option("--learner/--no-learner", default=True, show_default=True,
              help="Run the learner process (turn it off only when another host runs it).")
@click.option("--learner-nice", type=click.IntRange(min=0, max=19), default=10,
              show_default=True,
              help="Scheduling niceness of the learner: ranking gets the cores first and "
                   "learning catches up in between (the join lag metric shows how far).")
@click.option("--timeout", type=click.IntRange(min=1), default=30, show_default=True,
              help="Seconds before a stuck worker is restarted.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One JSON line per request.")
@click.option("--app", "app_factory", default="server:create_app", hidden=True,
              help="WSGI app factory MODULE:FUNCTION (benchmarks serve a bare app this way).")
def serve(data_dir: Path, database_url: str | None, log_dir: Path | None, bind: str | None,
          host: str | None, port: int | None, workers: int, threads: int,
          learner_interval: float, learner: bool, learner_nice: int, timeout: int,
          log_level: str, access_log: bool, app_factory: str) -> None:
    """Run the production server: gunicorn workers plus one learner process.

    Every other setting of the app is read from BANDITKIT_* environment
    variables (serving/config.py; docs/server.md), checked before any worker
    starts; stop it with SIGTERM or Ctrl-C. Once listening it prints one line
    with the URLs of the API, the marketer page and /openapi.json.
    """
    from serving.config import ConfigError
    from serving.serve import BindError, run_server

    try:
        run_server(data_dir, database_url=database_url, log_dir=log_dir,
                   learner_command=LEARNER_COMMAND if learner else None,
                   bind=_bind(bind, host, port),
                   workers=workers, threads=threads, learner_interval=learner_interval,
                   learner_nice=learner_nice, timeout=timeout, log_level=log_level,
                   access_log=access_log, app_factory=app_factory)
    except ConfigError as error:
        raise click.ClickException(f"bad configuration: {error}") from None
    except BindError as error:
        raise click.ClickException(str(error)) from None


def _bind(bind: str | None, host: str | None, port: int | None) -> str:
    """gunicorn's bind from ``--bind`` or ``--host``/``--port`` (flask run's habit)."""
    if bind is not None:
        if host is not None or port is not None:
            raise click.UsageError("give either --bind or --host/--port, not both")
        return bind
    host = host or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"{host}:{8000 if port is None else port}"


@click.command("serve-learner", hidden=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Overrides ENGINE_DATA_DIR of the environment.")
@click.option("--parent", type=int, default=None)
@click.option("--log-level", default="info")
@click.option("--nice", type=int, default=0)
def serve_learner(data_dir: Path | None, parent: int | None, log_level: str,
                  nice: int) -> None:
    """The learner process that ``banditkit serve`` starts and supervises.

    Its configuration (ENGINE_DATA_DIR, ENGINE_LOG_DIR, DATABASE_URL,
    LEARNER_INTERVAL_SECONDS, LEARNER_HEALTH_PATH) is read from BANDITKIT_* environment
    variables, as the app reads it.
    """
    import logging.config

    from serving.config import ServerConfig, environ_config
    from serving.learner_process import run_learner
    from serving.serve import logging_config

    config = ServerConfig.from_mapping(environ_config())
    os.nice(nice)
    logging.config.dictConfig(logging_config(log_level))
    logging.captureWarnings(True)
    run_learner(data_dir or config.engine_data_dir, database_url=config.database_url,
                log_dir=config.engine_options.get("log_dir"),
                interval_seconds=config.learner_interval_seconds, parent_pid=parent,
                health_path=config.learner_health_path)
