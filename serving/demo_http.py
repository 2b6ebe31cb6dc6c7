"""The demo over real HTTP: a ``banditkit serve`` process and a Personalizer-route client.

``banditkit demo`` starts :class:`DemoServer` (a fresh data dir, an admin and a
client key, ``banditkit serve`` on a loopback socket this process opens and
hands over, so no port is raced for), configures the loop through the admin
routes, and drives the simulated members through :class:`HttpRanker`, which
implements :class:`simulator.demo.Ranker` with the Personalizer-compatible rank
and reward routes. Only the standard library speaks HTTP here, so the demo
needs nothing beyond the install.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from banditkit.engine import Engine
from banditkit.types import Action, Features
from banditkit.vw import VWLearner
from serving.durations import format_duration
from serving.keys import KeyStore, default_path
from serving.processes import terminate
from simulator.demo import DEMO_POLICY_ARGS, FinishedRun

__all__ = ["DemoServer", "HttpRanker", "ServerError"]

_KEY_HEADER = "Ocp-Apim-Subscription-Key"


class ServerError(RuntimeError):
    """The demo's server failed to start or answered with an error."""


class _Client:
    """JSON over one keep-alive loopback connection (reconnects when the server closes it)."""

    def __init__(self, *, port: int, key: str, timeout: float = 30.0) -> None:
        self.port = port
        self.key = key
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {_KEY_HEADER: self.key, "Content-Type": "application/json"}
        for attempt in (0, 1):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                              timeout=self.timeout)
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                response = self._connection.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException):
                # A keep-alive connection the server closed between requests.
                self.close()
                if attempt:
                    raise
                continue
            data = json.loads(raw) if raw else None
            return response.status, data, dict(response.getheaders())
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class DemoServer:
    """``banditkit serve`` in a child process on a loopback socket, for the demo.

    Parameters
    ----------
    data_dir : Path
        A data directory for the server (created; keys are added to it).
    workers : int, default=2
        gunicorn workers.
    learner_interval : float, default=0.2
        Seconds between learner steps.

    Attributes
    ----------
    port : int
    admin_key, client_key : str
        Keys created in the data directory for this demo.
    log_path : Path
        The server's JSON log (``server.log`` in the data directory).
    """

    def __init__(self, *, data_dir: Path, workers: int = 2,
                 learner_interval: float = 0.2) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.learner_interval = learner_interval
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> DemoServer:
        """Create keys, start the server, and wait until it answers /readyz."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = KeyStore(path=default_path(self.data_dir))
        self.admin_key = store.create(role="admin", name="banditkit demo")[0]
        self.client_key = store.create(role="client", name="banditkit demo")[0]
        self.log_path = self.data_dir / "server.log"
        # The socket is bound here and inherited (gunicorn's fd:// bind): the port is
        # known before the child starts and nothing else can take it in between.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        command = [sys.executable, "-c", "from cli import main; main()", "serve",
                   "--data-dir", str(self.data_dir), "--bind", f"fd://{listener.fileno()}",
                   "--workers", str(self.workers),
                   "--learner-interval", str(self.learner_interval),
                   # The simulated members keep the cores busy all along; the demo
                   # shows learning while serving, so the learner is not put behind.
                   "--learner-nice", "0",
                   "--no-access-log", "--log-level", "warning"]
        env = {key: value for key, value in os.environ.items()
               if key != "PROMETHEUS_MULTIPROC_DIR"}
        try:
            with open(self.log_path, "w") as log:
                self.process = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=log, env=env,
                    pass_fds=(listener.fileno(),), start_new_session=True)
        finally:
            listener.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()  # never leave a server behind (Ctrl-C included)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        probe = _Client(port=self.port, key="", timeout=5.0)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"banditkit serve exited with {self.process.returncode}; "
                                  f"see {self.log_path}")
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if probe.request("GET", "/readyz")[0] == 200:
                    probe.close()
                    return
            probe.close()
            time.sleep(0.1)
        raise ServerError(f"banditkit serve was not ready in {timeout:.0f} s; "
                          f"see {self.log_path}")

    def configure(self, *, epsilon: float, reward_wait_seconds: float,
                  model_update_seconds: float) -> None:
        """Set the demo's policy and loop settings through the admin routes."""
        admin = _Client(port=self.port, key=self.admin_key)
        try:
            base = "/personalizer/v1.0/configurations"
            _expect(admin.request("PUT", f"{base}/policy",
                                  {"name": "banditkit demo", "arguments": DEMO_POLICY_ARGS}),
                    200)
            status, service, _ = admin.request("GET", f"{base}/service")
            _expect((status, service, {}), 200)
            service.update({"rewardWaitTime": format_duration(reward_wait_seconds),
                            "modelExportFrequency": format_duration(model_update_seconds),
                            "explorationPercentage": epsilon})
            _expect(admin.request("PUT", f"{base}/service", service), 200)
        finally:
            admin.close()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server (graceful) and wait; SIGKILL its process group if it hangs."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        terminate(process, timeout=timeout, group=True)

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _expect(answer: tuple[int, Any, dict], status: int) -> Any:
    if answer[0] != status:
        raise ServerError(f"the server answered {answer[0]} (expected {status}): {answer[1]}")
    return answer[1]


class HttpRanker:
    """:class:`simulator.demo.Ranker` over the Personalizer-compatible routes.

    Ranks with ``POST /personalizer/v1.0/rank`` (the client sends the world's
    action features) and rewards with ``.../events/{eventId}/reward``. The
    server learns on its own in real time, so :meth:`step` does nothing;
    :meth:`finish` waits until the server's learner has joined every event and
    published a model that learned them, then reads that model from the data
    directory the demo created.

    Parameters
    ----------
    server : DemoServer
        A started server.
    finish_timeout : float, default=120.0
        Most seconds :meth:`finish` waits for the learner.
    """

    def __init__(self, *, server: DemoServer, finish_timeout: float = 120.0) -> None:
        self.server = server
        self.finish_timeout = finish_timeout
        self.model_versions: set[str] = set()
        self._client = _Client(port=server.port, key=server.client_key)

    def rank(self, context: Features, actions: Sequence[Action], *, event_id: str) -> str:
        body = {"contextFeatures": [context], "eventId": event_id,
                "actions": [{"id": a.id, "features": [a.features]} for a in actions]}
        status, decision, headers = self._client.request(
            "POST", "/personalizer/v1.0/rank", body)
        _expect((status, decision, headers), 201)
        self.model_versions.add(headers.get("X-Banditkit-Model-Version", "?"))
        return decision["rewardActionId"]

    def reward(self, event_id: str, value: float) -> None:
        _expect(self._client.request("POST", f"/personalizer/v1.0/events/{event_id}/reward",
                                     {"value": value}), 204)

    def step(self) -> None:
        """Nothing: the server's learner process joins and learns in real time."""

    def finish(self) -> FinishedRun:
        self._client.close()
        deadline = time.monotonic() + self.finish_timeout
        with Engine.open(self.server.data_dir) as engine:
            store = engine.store
            while True:
                snapshot = store.latest_model()
                if (store.pending_count() == 0 and snapshot is not None
                        and snapshot.through_seq >= store.last_join_seq()):
                    break
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"the server's learner did not learn every event within "
                        f"{self.finish_timeout:.0f} s ({store.pending_count()} pending); "
                        f"see {self.server.log_path}")
                time.sleep(0.2)
            learner = VWLearner(args=snapshot.policy_args, model_data=snapshot.data)
            return FinishedRun(learner=learner, log_dir=self.server.data_dir / "logs",
                               model_path=engine.latest_model_path() or Path())
