"""Fixtures of the server tests: apps on a temporary data dir, keys, a live server.

``app``/``client`` use Flask's test client (unit tests); ``live_server`` runs
``server.create_app()`` in a separate process behind werkzeug's threaded
server on a free loopback port, configured only through ``BANDITKIT_*``
environment variables, as an operator would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from server import close_app, create_app
from serving.keys import KeyStore

ROOT = Path(__file__).resolve().parents[2]
# Fast loop for tests: rewards count for 1 s, snapshots publish at every step.
FAST_SETTINGS = {"reward_wait_seconds": 1.0, "model_update_seconds": 0.0}


def make_keys(data_dir: Path, *, database_url: str | None = None) -> dict[str, str]:
    """One key per role, created in ``data_dir``'s key store (with ``database_url``, in
    the one every host sharing that database reads)."""
    store = KeyStore.open(data_dir, database_url=database_url)
    try:
        return {role: store.create(role=role, name=f"test {role}")[0]
                for role in ("client", "marketer", "analyst", "admin")}
    finally:
        store.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def keys(data_dir: Path) -> dict[str, str]:
    return make_keys(data_dir)


def build_app(data_dir: Path):
    """The app unit tests use: fast settings, no learner thread, small limits."""
    return create_app({
        "TESTING": True,
        "ENGINE_DATA_DIR": str(data_dir),
        "ENGINE_SETTINGS": FAST_SETTINGS,
        "LEARNER_ENABLED": False,
        "RANK_MAX_ACTIONS": 10,
        "SERVER_MAX_BODY_BYTES": 64 * 1024,
    })


@pytest.fixture
def app(data_dir: Path, keys: dict[str, str]):
    app = build_app(data_dir)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def auth(key: str) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": key}


def assert_short_probabilities(text: str, probabilities: Sequence[float] = ()) -> None:
    """Probabilities are written as float32's shortest decimals and sum to 1 as float32s.

    Float32 noise printed as float64 has 16 or 17 significant digits
    (``0.06000000238418579``); a float32's shortest decimal has at most 9.
    ``text`` holds them all; ``probabilities``, if given, are one distribution.
    """
    assert re.search(r"[0-9]\.[0-9]{10,}", text) is None, text
    for probability in probabilities:
        assert len(repr(probability).lstrip("0.").replace(".", "")) <= 9, probability
    # Each value is within half a float32 ulp of the learner's: n of them, n ulps at most.
    if probabilities:
        assert abs(sum(probabilities) - 1.0) <= len(probabilities) * np.finfo(np.float32).eps


@dataclass
class LiveServer:
    """A banditkit server process on loopback."""

    url: str
    data_dir: Path
    keys: dict[str, str]
    process: subprocess.Popen


_RUNNER = """
from werkzeug.serving import make_server
from server import create_app
server = make_server("127.0.0.1", 0, create_app(), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def start_server(data_dir: Path, **env: str) -> LiveServer:
    """Start ``create_app()`` in a child process; returns once it answers /readyz."""
    keys = make_keys(data_dir)
    environment = {
        **os.environ,
        "BANDITKIT_ENGINE_DATA_DIR": str(data_dir),
        "BANDITKIT_ENGINE_SETTINGS": json.dumps(FAST_SETTINGS),
        "BANDITKIT_LEARNER_INTERVAL_SECONDS": "0.2",
        "BANDITKIT_AUTH_CACHE_SECONDS": "0",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **env,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    # The server's log (tracebacks of any 500) lands beside its data dir.
    with open(data_dir.parent / "server.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUNNER], cwd=ROOT, env=environment,
            stdout=subprocess.PIPE, stderr=log, text=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip():
        process.kill()
        raise RuntimeError("the server process did not start")
    url = f"http://127.0.0.1:{int(line)}"
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("the server process never became ready")
    return LiveServer(url=url, data_dir=data_dir, keys=keys, process=process)


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live") / "data")
    yield server
    stop_server(server)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Clients in these tests talk to 127.0.0.1 only, never through a proxy.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
