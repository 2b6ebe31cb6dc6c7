"""``banditkit serve`` for real: gunicorn with 2 workers and the learner process on loopback.

The server is started as an operator would (the ``banditkit serve`` command in
its own process group), logs JSON to a file, and is stopped with SIGTERM, or
killed with SIGKILL to check that no acknowledged decision or reward is lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from banditkit.engine import Engine
from banditkit.eventlog import read_events
from banditkit.settings import LoopSettings

# Real gunicorn servers, each a few seconds: in the full run, not in `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}]
ACTIONS = [
    {"id": "bad", "features": [{"Artwork": {"theme": "horror"}}]},
    {"id": "good", "features": [{"Artwork": {"theme": "comedy"}}]},
]
RANK = "/personalizer/v1.0/rank"
START_SECONDS = 60


@dataclass
class Served:
    """A ``banditkit serve`` process group and where it listens and logs."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def log(self, *, strict: bool = False) -> list[dict]:
        """The JSON log lines so far (a line still being written is skipped unless strict)."""
        entries = []
        for line in self.log_path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                if strict:
                    raise AssertionError(f"not a JSON log line: {line!r}") from None
        return entries

    def pids(self, path: str) -> set[int]:
        """Pids of the processes whose access log shows a request to ``path``."""
        return {entry["pid"] for entry in self.log()
                if entry.get("logger") == "banditkit.access" and entry.get("path") == path}

    def learner_pids(self) -> list[int]:
        return [int(entry["message"].split()[2]) for entry in self.log()
                if str(entry.get("message", "")).startswith("learner process")
                and entry["message"].endswith("started")]


def serve(data_dir: Path, log_path: Path, *args: str,
          listen: tuple[str, ...] = ("--bind", "127.0.0.1:0")) -> Served:
    """Start ``banditkit serve`` on a free loopback port; return once /readyz answers 200."""
    command = _serve_command(data_dir, *listen, "--workers", "2", "--learner-interval", "0.2",
                             *args)
    env = {**os.environ, "BANDITKIT_AUTH_CACHE_SECONDS": "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out_path = log_path.with_suffix(".out")
    with open(log_path, "w") as log, open(out_path, "w") as out:
        # Its own process group, so that the test can kill master, workers and
        # learner at once, by the group's id.
        process = subprocess.Popen(command, stdout=out, stderr=log, env=env,
                                   start_new_session=True)
    served = Served(process=process, url="", log_path=log_path)
    try:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            # The one plain line on stdout names the port gunicorn picked (:0).
            served.url = ready_url(out_path.read_text())
            if served.url and _all_workers_answer(served, workers=2):
                return served
            time.sleep(0.1)
        raise AssertionError(f"banditkit serve did not become ready:\n{log_path.read_text()}")
    except BaseException:
        kill(served)  # never leave a server behind, whatever went wrong
        raise


def ready_url(stdout: str) -> str:
    """The API's URL from serve's ready line, or "" before it is printed."""
    for line in stdout.splitlines():
        if line.startswith("banditkit listening on http://"):
            return line.split()[3].rstrip(";,")
    return ""


def _all_workers_answer(served: Served, *, workers: int) -> bool:
    """Whether every worker has answered /readyz (fresh connections reach any worker)."""
    def probe(_: int) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.get(served.url + "/readyz", timeout=10)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(probe, range(8)))
    return len(served.pids("/readyz")) >= workers


def kill(served: Served) -> None:
    """SIGKILL the whole process group and reap the master."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(served.process.pid, signal.SIGKILL)
    served.process.wait(10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it is dead.
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def wait_until(condition, *, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def joined(data_dir: Path, prefix: str) -> list:
    logs = data_dir / "logs"
    if not logs.exists():
        return []
    return [e for e in read_events([logs]) if e.event_id.startswith(prefix)]


def rank(url: str, key: str, event_id: str) -> requests.Response:
    # No session: a fresh connection per request lets either worker accept it.
    response = requests.post(url + RANK, json={
        "contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": event_id},
        headers={"Ocp-Apim-Subscription-Key": key}, timeout=10)
    assert response.status_code == 201, response.text
    return response


def reward(url: str, key: str, event_id: str, value: float) -> None:
    response = requests.post(f"{url}/personalizer/v1.0/events/{event_id}/reward",
                             json={"value": value},
                             headers={"Ocp-Apim-Subscription-Key": key}, timeout=10)
    assert response.status_code == 204, response.text


@pytest.fixture
def started(data_dir: Path, tmp_path: Path) -> Iterator[list[Served]]:
    """Servers started by a test; any still running at its end are killed."""
    servers: list[Served] = []
    yield servers
    for served in servers:
        if served.process.poll() is None:
            kill(served)


def configure(data_dir: Path, *, reward_wait_seconds: float) -> None:
    """Loop settings as an operator would persist them before starting the server."""
    settings = LoopSettings(reward_wait_seconds=reward_wait_seconds, model_update_seconds=0.0,
                            exploration_percentage=0.5,
                            policy_args="--cb_explore_adf --cb_type mtr -l 0.5 -q ::")
    Engine.open(data_dir, settings=settings).close()


def test_two_workers_learn_from_one_learner_and_rank_with_the_new_model(
        data_dir: Path, keys: dict[str, str], tmp_path: Path, started: list[Served]) -> None:
    configure(data_dir, reward_wait_seconds=1.0)
    served = serve(data_dir, tmp_path / "serve.log")
    started.append(served)
    client = keys["client"]
    assert len(served.learner_pids()) == 1

    before = rank(served.url, client, "serve-before")
    version_before = int(before.headers["X-Banditkit-Model-Version"])
    n_events = 60
    with ThreadPoolExecutor(4) as pool:
        decisions = list(pool.map(lambda i: rank(served.url, client, f"serve-{i}").json(),
                                  range(n_events)))
    shown_good = 0
    for decision in decisions:
        value = 1.0 if decision["rewardActionId"] == "good" else 0.0
        shown_good += int(value)
        reward(served.url, client, decision["eventId"], value)
    assert 0 < shown_good < n_events  # half the traffic explores: both were shown
    assert len(served.pids(RANK)) == 2, "both workers should have ranked"

    # One learner joins after the 1 s reward wait, learns and publishes; each
    # worker reloads the latest snapshot within a second.
    wait_until(lambda: len(joined(data_dir, "serve-")) == n_events + 1, seconds=30,
               what="the learner to join every event")
    assert sum(e.reward for e in joined(data_dir, "serve-")) == shown_good
    # Row pages go through the same learner process.
    rows = [{"id": f"row{i}", "features": {"Row": {"kind": f"k{i}"}}} for i in range(4)]
    page = requests.post(f"{served.url}/v1/rows/rank", json={
        "context": {"Member": {"country": "BR"}}, "rows": rows, "slots": 2,
        "eventId": "serve-page"}, headers={"Ocp-Apim-Subscription-Key": client}, timeout=10)
    assert page.status_code == 201, page.text
    page_reward = requests.post(f"{served.url}/v1/rows/events/serve-page/reward",
                                json={"rewards": [{"slotId": "1", "value": 1.0}]},
                                headers={"Ocp-Apim-Subscription-Key": client}, timeout=10)
    assert page_reward.status_code == 204, page_reward.text

    def page_joined() -> bool:
        files = list((data_dir / "rows" / "logs").rglob("*.dsjson"))
        return any('"serve-page"' in f.read_text() for f in files)

    wait_until(page_joined, seconds=30, what="the learner to join the row page")
    with Engine.open(data_dir) as engine:
        published = int(engine.model_version)
    assert published > version_before
    time.sleep(1.5)
    after = [rank(served.url, client, f"serve-after-{i}") for i in range(10)]
    assert all(int(r.headers["X-Banditkit-Model-Version"]) >= published for r in after)
    probabilities = {r["id"]: r["probability"] for r in after[0].json()["ranking"]}
    assert probabilities["good"] > probabilities["bad"]

    # A policy changed through a worker's admin route is the one the learner
    # process trains and publishes from then on (it runs in another process).
    new_policy = "--cb_explore_adf --cb_type ips -q :: -l 0.1"
    response = requests.put(f"{served.url}/personalizer/v1.0/configurations/policy",
                            json={"name": "ips", "arguments": new_policy},
                            headers={"Ocp-Apim-Subscription-Key": keys["admin"]}, timeout=10)
    assert response.status_code == 200, response.text
    with Engine.open(data_dir) as engine:
        wanted = engine.settings.learner_args()
    assert "--cb_type ips" in wanted
    time.sleep(1.5)  # workers and the learner re-read settings every second
    for i in range(5):
        decision = rank(served.url, client, f"serve-ips-{i}").json()
        reward(served.url, client, decision["eventId"], 1.0)
    wait_until(lambda: len(joined(data_dir, "serve-ips-")) == 5, seconds=30,
               what="the learner to join the events after the policy change")

    def latest_policy() -> tuple[str, bool]:
        """The latest snapshot's policy, and whether it learned every joined event."""
        with Engine.open(data_dir) as engine:
            snapshot = engine.store.latest_model()
            assert snapshot is not None
            return snapshot.policy_args, snapshot.through_seq >= engine.store.last_join_seq()

    wait_until(lambda: latest_policy()[1], seconds=30, what="a model that learned them")
    assert latest_policy()[0] == wanted

    # SIGTERM: the workers finish, the learner stops, the master exits 0.
    learner_pid = served.learner_pids()[0]
    worker_pids = served.pids(RANK)
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0
    assert not any(alive(pid) for pid in {learner_pid, *worker_pids})
    # Every line on stderr was a JSON object (structured logs), from each component.
    log = served.log(strict=True)
    assert {"gunicorn.error", "banditkit.access", "banditkit.serve"} <= {
        entry["logger"] for entry in log}
    assert any(entry.get("message") == f"learner process {learner_pid} stopped"
               for entry in log)


def test_sigkill_loses_no_acknowledged_decision_or_reward(
        data_dir: Path, keys: dict[str, str], tmp_path: Path, started: list[Served]) -> None:
    # A reward wait longer than the test's first phase: when the server is
    # killed, its decisions and rewards exist only in the store.
    configure(data_dir, reward_wait_seconds=10.0)
    served = serve(data_dir, tmp_path / "first.log")
    started.append(served)
    client = keys["client"]
    n_events = 40
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda i: rank(served.url, client, f"kill-{i}").json()["eventId"],
                            range(n_events)))
    rewarded = {event_id: float(1 + index % 3) for index, event_id in enumerate(ids)
                if index % 2 == 0}
    for event_id, value in rewarded.items():
        reward(served.url, client, event_id, value)
    pids = served.pids(RANK) | set(served.learner_pids())
    kill(served)  # master, workers and learner, at once, with no chance to clean up
    wait_until(lambda: not any(alive(pid) for pid in pids), seconds=10,
               what="every server process to die")
    assert joined(data_dir, "kill-") == [], "killed before the reward wait: nothing joined"

    configure(data_dir, reward_wait_seconds=0.5)  # the restarted learner joins at once
    restarted = serve(data_dir, tmp_path / "second.log")
    started.append(restarted)
    wait_until(lambda: len(joined(data_dir, "kill-")) == n_events, seconds=30,
               what="the restarted learner to join the events")
    events = {e.event_id: e for e in joined(data_dir, "kill-")}
    assert sorted(events) == sorted(ids)
    for event_id in ids:
        assert events[event_id].reward == rewarded.get(event_id, 0.0)
    restarted.process.send_signal(signal.SIGTERM)
    assert restarted.process.wait(30) == 0


def test_a_killed_master_leaves_no_learner_or_worker_behind(
        data_dir: Path, keys: dict[str, str], tmp_path: Path, started: list[Served]) -> None:
    # A long learner interval: a learner that looked for its master only
    # between steps would outlive it by up to 30 s.
    served = serve(data_dir, tmp_path / "serve.log", "--learner-interval", "30")
    started.append(served)
    wait_until(lambda: any(entry.get("message") == "learner started" for entry in served.log()),
               seconds=30, what="the learner to start")
    (learner,) = served.learner_pids()
    workers = served.pids("/readyz")
    assert len(workers) == 2 and alive(learner)
    os.kill(served.process.pid, signal.SIGKILL)  # the master alone
    served.process.wait(10)
    try:
        # The kernel signals the learner at the master's death: measured
        # 0.1-0.2 s; 3 s leaves room for a loaded machine, far below 30 s.
        wait_until(lambda: not alive(learner), seconds=3, what="the learner to exit")
        assert any(entry.get("pid") == learner
                   and entry.get("message") == "the server master is gone; learner exiting"
                   for entry in served.log())
        # gunicorn's workers look for their master every second, then finish
        # their requests: measured 1.6-2.4 s.
        wait_until(lambda: not any(alive(pid) for pid in workers), seconds=10,
                   what="the workers to exit")
    finally:
        kill(served)  # the group outlives its master: whatever is left of it


def _metric(served: Served, name: str) -> list[float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(served.url + "/metrics", timeout=10).text
    return [sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name]


def test_join_lag_follows_the_learner_process(
        data_dir: Path, keys: dict[str, str], tmp_path: Path, started: list[Served]) -> None:
    served = serve(data_dir, tmp_path / "serve.log")  # the learner steps every 0.2 s
    started.append(served)
    wait_until(lambda: _metric(served, "banditkit_learner_last_run_timestamp_seconds")
               != [0.0], seconds=30, what="the learner's first step")
    # One series: the learner's last step, not one per worker.
    assert len(_metric(served, "banditkit_learner_last_run_timestamp_seconds")) == 1
    # 0.2 s between steps; 1.5 s of margin for a loaded machine.
    (lag,) = _metric(served, "banditkit_join_lag_seconds")
    assert 0.0 <= lag < 1.5
    (learner,) = served.learner_pids()
    os.kill(learner, signal.SIGSTOP)  # a learner that makes no progress
    try:
        time.sleep(2.0)
        (lag,) = _metric(served, "banditkit_join_lag_seconds")
        assert lag >= 2.0
    finally:
        os.kill(learner, signal.SIGCONT)
    wait_until(lambda: _metric(served, "banditkit_join_lag_seconds")[0] < 1.5, seconds=10,
               what="the learner to catch up")
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0


def test_one_learner_per_data_dir(data_dir: Path) -> None:
    """A second learner on the same store waits until the first one is gone."""
    import fcntl
    import threading

    from serving.learner_process import _learner_lock, run_learner

    first_stop = threading.Event()
    first = threading.Thread(target=run_learner, args=(data_dir,),
                             kwargs={"interval_seconds": 0.05, "stop": first_stop})
    first.start()

    def held() -> bool:
        if not (data_dir / "learner.lock").exists():
            return False
        with open(data_dir / "learner.lock") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False

    try:
        wait_until(held, seconds=10, what="the first learner to take the lock")
        acquired: list = []
        second_stop = threading.Event()
        second = threading.Thread(target=lambda: acquired.append(_learner_lock(
            data_dir, stop=second_stop, interval_seconds=0.05, parent_pid=None)))
        second.start()
        time.sleep(0.5)
        assert acquired == [], "the second learner must wait while the first runs"
        first_stop.set()
        first.join(10)
        second.join(10)
        assert acquired and acquired[0] is not None, "it takes over once the first stops"
        acquired[0].close()
    finally:
        first_stop.set()
        first.join(10)


def test_serve_refuses_a_bad_setting_before_any_worker_starts(tmp_path: Path) -> None:
    env = {**os.environ, "BANDITKIT_RANK_MAX_ACTIONS": "0"}
    finished = subprocess.run(
        _serve_command(tmp_path / "data", "--bind", "127.0.0.1:0"), env=env,
        capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert "RANK_MAX_ACTIONS" in finished.stderr and "greater than 0" in finished.stderr
    assert "Booting worker" not in finished.stderr


def test_the_learner_process_reads_its_configuration_from_the_environment(
        tmp_path: Path) -> None:
    from serving.config import child_environ

    data_dir, health = tmp_path / "data", tmp_path / "learner.health"
    env = child_environ({"ENGINE_DATA_DIR": data_dir, "LEARNER_INTERVAL_SECONDS": 0.05,
                         "LEARNER_HEALTH_PATH": health})
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve-learner"], env=env,
                               stderr=subprocess.DEVNULL)
    try:
        wait_until(health.exists, seconds=30, what="the learner's first health write")
        assert json.loads(health.read_text())["interval_seconds"] == 0.05
        assert (data_dir / "learner.lock").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def _raw_request(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is; return the status, headers and body of the answer."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def test_requests_gunicorn_refuses_get_the_json_error_shape(
        data_dir: Path, keys: dict[str, str], tmp_path: Path, started: list[Served]) -> None:
    from serving.serve import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE

    served = serve(data_dir, tmp_path / "serve.log")
    started.append(served)
    long_path = "/v1/events/" + "e" * LIMIT_REQUEST_LINE + "/activate"
    cases = [
        (b"POST " + long_path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "UriTooLong"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
         + b"a" * (LIMIT_REQUEST_FIELD_SIZE + 10) + b"\r\n\r\n",
         431, "RequestHeaderFieldsTooLarge"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
         + b"".join(b"X-%d: 1\r\n" % i for i in range(LIMIT_REQUEST_FIELDS + 1)) + b"\r\n",
         431, "RequestHeaderFieldsTooLarge"),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "BadRequest"),
    ]
    for request, status, code in cases:
        answered, headers, body = _raw_request(served.url, request)
        assert answered == status, body
        assert headers["content-type"] == "application/json"
        assert int(headers["content-length"]) == len(body)
        error = json.loads(body)["error"]
        assert error["code"] == code
        assert error["message"]
    # The server still answers after refusing those.
    assert requests.get(served.url + "/healthz", timeout=10).status_code == 200


def test_event_ids_round_trip_through_gunicorn_url_paths(
        data_dir: Path, keys: dict[str, str], tmp_path: Path, started: list[Served]) -> None:
    from urllib.parse import quote

    served = serve(data_dir, tmp_path / "serve.log")
    started.append(served)
    headers = {"Ocp-Apim-Subscription-Key": keys["client"]}
    for event_id in ["é€😀-1", "a%2Fb", "a?b#c", "a\\b", "...", "x" * 256]:
        ranked = requests.post(served.url + RANK, headers=headers, timeout=10,
                               json={"actions": ACTIONS, "eventId": event_id})
        assert ranked.status_code == 201, ranked.text
        url = f"{served.url}/personalizer/v1.0/events/{quote(event_id, safe='')}"
        assert requests.post(url + "/reward", json={"value": 1.0}, headers=headers,
                             timeout=10).status_code == 204, event_id
    refused = requests.post(served.url + RANK, headers=headers, timeout=10,
                            json={"actions": ACTIONS, "eventId": "a/b"})
    assert refused.status_code == 400
    assert refused.json()["error"]["target"] == "eventId"
    assert "'/'" in refused.json()["error"]["message"]


def _serve_command(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from cli import main; main()", "serve",
            "--data-dir", str(data_dir), *args]


def test_host_and_port_serve_a_landing_page_announced_in_one_line(tmp_path: Path) -> None:
    served = serve(tmp_path / "data", tmp_path / "serve.log",
                   listen=("--host", "127.0.0.1", "--port", "0"))
    try:
        lines = (tmp_path / "serve.out").read_text().splitlines()
        base = served.url
        assert lines == [f"banditkit listening on {base}; marketer page {base}/marketer; "
                         f"OpenAPI {base}/openapi.json; Ctrl-C stops it"]
        landing = requests.get(base + "/", timeout=10)
        assert landing.status_code == 200
        assert landing.headers["Content-Type"].startswith("text/html")
        for link in ('href="/marketer"', 'href="/openapi.json"', "docs/server.md"):
            assert link in landing.text
        assert requests.get(base + "/marketer", timeout=10).status_code == 200
        spec = requests.get(base + "/openapi.json", timeout=10).json()
        assert "text/html" in spec["paths"]["/"]["get"]["responses"]["200"]["content"]
    finally:
        kill(served)


def test_a_taken_port_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(_serve_command(tmp_path / "data", "--port", str(port)),
                                  capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [
        f"Error: 127.0.0.1:{port} is already in use (another server listens there); "
        "choose another address with --port or --bind"]
    assert finished.stdout == ""


def test_bind_and_port_together_are_refused(tmp_path: Path) -> None:
    finished = subprocess.run(
        _serve_command(tmp_path / "data", "--bind", "127.0.0.1:0", "--port", "8000"),
        capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert "give either --bind or --host/--port, not both" in finished.stderr
