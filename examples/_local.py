"""What the HTTP examples share: a ``banditkit serve`` of their own, and JSON over HTTP.

:func:`local_server` starts the server as an operator would (``banditkit serve
--port 0``: any free loopback port), in a temporary data directory with one
key per role asked for, reads the port from the one line serve prints when it
listens, and stops it and deletes the folder afterwards. Given a PostgreSQL
URL, the keys and the store live in that database (every host on it shares
them) and only the host's journals in the folder. :func:`call`,
:func:`exchange` and :func:`upload` use only the standard library, so the
examples need nothing beyond ``pip install -e .``. Not an example itself: the
examples import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LocalServer", "call", "exchange", "joined_lines", "local_server", "upload"]

#: Loop settings for examples: rewards count for 1 s, a new model at every learner step.
FAST_LOOP = {"reward_wait_seconds": 1.0, "model_update_seconds": 0.0}


@dataclass(frozen=True)
class LocalServer:
    """A running ``banditkit serve``: its base URL, its keys by role, its data directory."""

    url: str
    keys: dict[str, str]
    data_dir: Path


def _banditkit(*args: str) -> list[str]:
    """The command line ``banditkit ARGS`` with this interpreter (any venv, activated or not)."""
    return [sys.executable, "-m", "cli", *args]


@contextlib.contextmanager
def local_server(*roles: str, settings: Mapping[str, float] = FAST_LOOP,
                 database_url: str | None = None, serve_args: Sequence[str] = ()
                 ) -> Iterator[LocalServer]:
    """``banditkit serve`` on a free loopback port in a temporary folder, stopped on exit.

    Parameters
    ----------
    *roles : str
        Roles to create one key each for (``client``, ``marketer``, ``analyst``, ``admin``).
    settings : mapping, default=FAST_LOOP
        Initial loop settings (``BANDITKIT_ENGINE_SETTINGS``).
    database_url : str, default=None
        A PostgreSQL store (``--database-url``) for the keys and the server; None keeps
        everything in SQLite in the temporary folder, whatever ``BANDITKIT_DATABASE_URL``
        says.
    serve_args : sequence of str, default=()
        More ``banditkit serve`` options, e.g. ``("--log-dir", folder)``.
    """
    store = () if database_url is None else ("--database-url", database_url)
    env = {**os.environ, "BANDITKIT_ENGINE_SETTINGS": json.dumps(dict(settings)),
           "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("BANDITKIT_DATABASE_URL", None)  # the store is the one named here
    with tempfile.TemporaryDirectory(prefix="banditkit-example-") as folder:
        data_dir = Path(folder) / "data"
        keys = {}
        for role in roles:
            # `banditkit keys create` prints the key on stdout, once.
            created = subprocess.run(
                _banditkit("keys", "create", "--role", role, "--name", "example",
                           "--data-dir", str(data_dir), *store),
                capture_output=True, text=True, env=env)
            if created.returncode != 0:
                raise RuntimeError(f"banditkit keys create failed: {created.stderr.strip()}")
            keys[role] = created.stdout.strip()
        with open(Path(folder) / "server.log", "w") as log:
            server = subprocess.Popen(
                _banditkit("serve", "--data-dir", str(data_dir), "--port", "0",
                           "--workers", "1", "--learner-interval", "0.2",
                           "--log-level", "warning", "--no-access-log", *store, *serve_args),
                stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        try:
            # "banditkit listening on http://127.0.0.1:PORT; marketer page ...; ..."
            assert server.stdout is not None
            ready = server.stdout.readline()
            if not ready.startswith("banditkit listening on http://"):
                raise RuntimeError("banditkit serve did not start: "
                                   + (Path(folder) / "server.log").read_text())
            url = ready.split()[3].rstrip(";")
            _wait_ready(url)
            yield LocalServer(url=url, keys=keys, data_dir=data_dir)
        finally:
            server.terminate()  # SIGTERM: workers finish their requests, the learner stops
            server.wait(30)


def _wait_ready(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/readyz",
                                                                  timeout=5) as answer:
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}/readyz did not answer 200 in {seconds:.0f} s")
        time.sleep(0.1)


def joined_lines(logs: Path, expected: int, seconds: float = 30.0) -> int:
    """Lines in the dsjson files under ``logs`` once ``expected`` are there (or time is up).

    The learner joins an event once its reward wait is over, at its next step.
    """
    deadline = time.monotonic() + seconds
    while True:
        found = sum(len(path.read_text().splitlines()) for path in logs.rglob("*.dsjson"))
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _send(request: urllib.request.Request) -> tuple[Any, Mapping[str, str]]:
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            body, headers = answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{request.method} {request.full_url}: {error.code} "
                           f"{error.read().decode()}") from None
    return (json.loads(body) if body else None), headers


def exchange(method: str, url: str, key: str, body: Any = None
             ) -> tuple[Any, Mapping[str, str]]:
    """Send ``body`` as JSON with ``key``; the decoded answer (None when empty) and its
    headers (``X-Banditkit-Model-Version``: the model a rank used)."""
    data = None if body is None else json.dumps(body).encode()
    return _send(urllib.request.Request(url, data=data, method=method, headers={
        "Ocp-Apim-Subscription-Key": key, "Content-Type": "application/json"}))


def call(method: str, url: str, key: str, body: Any = None) -> Any:
    """Send ``body`` as JSON with ``key``; the decoded answer (None when empty)."""
    return exchange(method, url, key, body)[0]


def upload(url: str, key: str, filename: str, content: bytes) -> Any:
    """POST ``content`` as the multipart form field ``file``; the decoded answer."""
    boundary = uuid.uuid4().hex
    data = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return _send(urllib.request.Request(url, data=data, method="POST", headers={
        "Ocp-Apim-Subscription-Key": key,
        "Content-Type": f"multipart/form-data; boundary={boundary}"}))[0]
