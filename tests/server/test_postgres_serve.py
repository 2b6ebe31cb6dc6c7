"""``banditkit serve --database-url``: one host running fully on PostgreSQL, for real.

gunicorn workers and the learner process share a PostgreSQL store (the
session's server, a database of the test's own) and the data directory's
journals; HTTP goes over loopback. Every acknowledged decision must be in the
joined log exactly once with its reward, also after the whole server was
killed and started again, and the workers must rank with the model the
learner published.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from banditkit.engine import Engine
from banditkit.eventlog import read_events
from banditkit.settings import LoopSettings
from tests.server.conftest import make_keys
from tests.server.test_serve import Served, kill, rank, reward, serve, wait_until

pytestmark = pytest.mark.slow  # real gunicorn servers, several seconds each


def _joined(data_dir: Path) -> list:
    logs = data_dir / "logs"
    return list(read_events([logs])) if logs.exists() else []


def _serve(data_dir: Path, log: Path, url: str) -> Served:
    return serve(data_dir, log, "--database-url", url)


def test_serve_on_postgres_joins_every_acknowledged_decision_once_and_ranks_with_its_model(
        data_dir: Path, tmp_path: Path, postgres_server) -> None:
    url = postgres_server.create_database()
    settings = LoopSettings(reward_wait_seconds=2.0, model_update_seconds=0.0,
                            exploration_percentage=0.5,
                            policy_args="--cb_explore_adf --cb_type mtr -l 0.5 -q ::")
    Engine.open(data_dir, settings=settings, database_url=url).close()
    client = make_keys(data_dir, database_url=url)["client"]  # the keys are in the database
    served = _serve(data_dir, tmp_path / "first.log", url)
    try:
        version_before = int(rank(served.url, client, "pg-first").headers[
            "X-Banditkit-Model-Version"])
        rewards: dict[str, float] = {"pg-first": 0.0}
        with ThreadPoolExecutor(4) as pool:
            decisions = list(pool.map(lambda i: rank(served.url, client, f"pg-{i}").json(),
                                      range(40)))
        for decision in decisions:
            value = 1.0 if decision["rewardActionId"] == "good" else 0.0
            reward(served.url, client, decision["eventId"], value)
            rewards[decision["eventId"]] = value
        # A repeated event id is refused at once, whichever worker gets it.
        again = requests.post(served.url + "/personalizer/v1.0/rank", json={
            "contextFeatures": [{"Member": {"country": "BR"}}], "eventId": "pg-3",
            "actions": [{"id": "a", "features": [{"A": {"x": 1}}]}]},
            headers={"Ocp-Apim-Subscription-Key": client}, timeout=10)
        assert again.status_code == 409, again.text
        # Ranked and rewarded, then the whole server is killed before the reward
        # wait ran out: these are in the journals only.
        for i in range(15):
            decision = rank(served.url, client, f"pg-killed-{i}").json()
            value = 1.0 if decision["rewardActionId"] == "good" else 0.25
            reward(served.url, client, decision["eventId"], value)
            rewards[decision["eventId"]] = value
    finally:
        os.killpg(served.process.pid, signal.SIGKILL)
        served.process.wait(10)
    assert not (data_dir / "banditkit.sqlite3").exists()  # the store is PostgreSQL's

    restarted = _serve(data_dir, tmp_path / "second.log", url)
    try:
        wait_until(lambda: len(_joined(data_dir)) >= len(rewards), seconds=60,
                   what="the learner to join every acknowledged decision")
        time.sleep(1.0)  # a learner step more: nothing may be joined twice
        events = _joined(data_dir)
        counts = Counter(event.event_id for event in events)
        assert set(counts) == set(rewards)
        assert max(counts.values()) == 1
        assert {e.event_id: e.reward for e in events} == rewards
        with Engine.open(data_dir, database_url=url) as engine:
            assert engine.store.pending_count() == 0
            assert engine.store.rejects() == []
            published = int(engine.model_version)
        assert published > version_before
        time.sleep(1.5)  # workers look for a new snapshot every second
        after = [rank(restarted.url, client, f"pg-after-{i}") for i in range(6)]
        assert all(int(r.headers["X-Banditkit-Model-Version"]) >= published for r in after)
        probabilities = {r["id"]: r["probability"] for r in after[0].json()["ranking"]}
        assert probabilities["good"] > probabilities["bad"]
    finally:
        kill(restarted)
