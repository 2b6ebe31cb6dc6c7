"""gunicorn's side of ``banditkit serve``: the application, its arbiter and logger.

Kept apart from :mod:`serving.serve` because gunicorn imports ``fcntl`` (POSIX
only): ``serving.serve`` imports this module only when the server starts.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.gthread import ThreadWorker

from serving.errors import error_json

if TYPE_CHECKING:
    from serving.learner_process import LearnerSupervisor

__all__ = [
    "JsonErrorWorker",
    "QuietAccessLogger",
    "ServeApplication",
    "ready_message",
    "write_json_error",
]


def ready_message(urls: Sequence[str]) -> str:
    """The one plain line ``banditkit serve`` prints once it listens.

    Parameters
    ----------
    urls : sequence of str
        The listeners as gunicorn names them (``http://127.0.0.1:8000``, ``unix:/path``).
    """
    web = [url for url in urls if url.startswith("http")]
    pages = f"; marketer page {web[0]}/marketer; OpenAPI {web[0]}/openapi.json" if web else ""
    return f"banditkit listening on {', '.join(urls)}{pages}; Ctrl-C stops it"


class QuietAccessLogger(glogging.Logger):
    """gunicorn's logger without its access log: the app writes its own (with key ids).

    gunicorn builds its access-log atoms for every request whenever a logging
    config is given, even when nothing would be written; this skips that work.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` in the service's JSON error shape.

    gunicorn answers requests it refuses before the app sees them (a request
    line past ``limit_request_line``: 414; headers past their limits: 431;
    a malformed request: 400) with this function; its own writes HTML.
    """
    message = f"{reason}: {mesg}" if mesg else reason
    body = json.dumps(error_json(status_int, message)).encode("utf-8")
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker whose own error answers are JSON, as the app's are.

    gunicorn offers no hook for the responses it writes itself, so the worker
    process replaces ``gunicorn.util.write_error`` (only the worker's
    ``handle_error`` calls it) with :func:`write_json_error` when it starts.
    """

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()


class _Arbiter(Arbiter):
    # The master loop wakes at least every second and calls manage_workers: the
    # learner is supervised there, with no thread in the master.
    def manage_workers(self) -> None:
        super().manage_workers()
        supervisor = getattr(self.app, "supervisor", None)
        if supervisor is not None:
            supervisor.ensure_running()


class ServeApplication(BaseApplication):
    """gunicorn running ``app_factory()`` in each worker, with an optional learner.

    Parameters
    ----------
    app_factory : str
        ``"module:function"``; each worker calls it with no arguments after the fork.
    options : mapping
        gunicorn settings (:func:`serving.serve.gunicorn_options`).
    supervisor : LearnerSupervisor, default=None
        The learner process to run beside the workers; None runs none.
    on_exit : callable, default=None
        Called in the master after the workers and the learner stopped.
    """

    def __init__(self, *, app_factory: str, options: Mapping[str, Any],
                 supervisor: LearnerSupervisor | None = None,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.app_factory = app_factory
        self.options = dict(options)
        self.supervisor = supervisor
        self.on_exit_callback = on_exit
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 24's control socket sits at one path per user: two
            # servers would fight over it, and banditkit does not use it.
            self.cfg.set("control_socket_disable", True)
        supervisor, callback = self.supervisor, self.on_exit_callback

        def on_exit(_server: Any) -> None:
            if supervisor is not None:
                supervisor.stop()
            if callback is not None:
                callback()

        def child_exit(_server: Any, worker: Any) -> None:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(worker.pid)

        def when_ready(server: Any) -> None:
            click.echo(ready_message([str(listener) for listener in server.LISTENERS]))

        self.cfg.set("when_ready", when_ready)
        self.cfg.set("on_exit", on_exit)
        self.cfg.set("child_exit", child_exit)

    def load(self) -> Callable[..., Any]:
        import importlib

        module_name, _, function = self.app_factory.partition(":")
        return getattr(importlib.import_module(module_name), function)()

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
