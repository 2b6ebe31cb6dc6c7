"""Two ``banditkit serve`` hosts on one PostgreSQL database, for real.

Each host has its own data directory (journals, claims, API keys); Azure's
Personalizer SDK ranks on one host and activates and rewards on the other, at
once, while the decision is most likely still in its host's journal. The
learner lease holder's joined log must hold every acknowledged decision exactly
once with its reward, and a reward for an id never ranked anywhere must become
an orphan after the reward wait and the grace, counted by every host's
``/metrics``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from banditkit.engine import Engine
from banditkit.eventlog import read_events
from banditkit.settings import LoopSettings
from tests.server.conftest import make_keys
from tests.server.pg_hosts import gauge
from tests.server.test_serve import kill, serve, wait_until

pytest.importorskip("azure.ai.personalizer")

from azure.ai.personalizer import PersonalizerClient  # noqa: E402
from azure.core.credentials import AzureKeyCredential  # noqa: E402

pytestmark = pytest.mark.slow  # two real gunicorn servers and PostgreSQL

CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}, {"hour": 21}]
ACTIONS = [{"id": theme, "features": [{"Artwork": {"theme": theme}}]}
           for theme in ("romance", "action", "comedy")]
SETTINGS = LoopSettings(reward_wait_seconds=3.0, orphan_grace_seconds=2.0,
                        model_update_seconds=0.0)


def _joined(data_dir: Path) -> list:
    logs = data_dir / "logs"
    return list(read_events([logs])) if logs.exists() else []


def test_any_host_accepts_any_reward_and_the_lease_holder_joins_each_once(
        tmp_path: Path, postgres_server) -> None:
    url = postgres_server.create_database()
    dirs = {name: tmp_path / name for name in ("a", "b")}
    Engine.open(dirs["a"], settings=SETTINGS, database_url=url).close()
    hosts = {}
    try:
        for name, data_dir in dirs.items():
            hosts[name] = serve(data_dir, tmp_path / f"{name}.log", "--database-url", url)
        key = AzureKeyCredential(make_keys(dirs["a"], database_url=url)["client"])
        clients = {name: PersonalizerClient(hosts[name].url, key) for name in hosts}
        rewards: dict[str, float] = {}
        for ranker, rewarder in (("a", "b"), ("b", "a")):
            for i in range(15):
                event_id = f"{ranker}-to-{rewarder}-{i}"
                deferred = i % 3 == 0
                answer = clients[ranker].rank({"contextFeatures": CONTEXT, "actions": ACTIONS,
                                               "eventId": event_id,
                                               "deferActivation": deferred})
                assert answer["eventId"] == event_id
                if deferred:  # activated on the other host too, else no reward counts
                    clients[rewarder].activate(event_id)
                value = (i % 4) / 4
                clients[rewarder].reward(event_id, {"value": value})
                rewards[event_id] = value
        clients["a"].reward("never-ranked-anywhere", {"value": 1.0})  # 204 all the same

        wait_until(lambda: sum(len(_joined(d)) for d in dirs.values()) >= len(rewards),
                   seconds=60, what="the lease holder to join every decision")
        wait_until(lambda: gauge(hosts["b"].url, "banditkit_orphaned_outcomes") == 1.0,
                   seconds=30, what="the unknown reward to become an orphan")
        events = [event for d in dirs.values() for event in _joined(d)]
        # One host holds the lease: its log has them all; each is there once.
        assert [name for name, d in dirs.items() if _joined(d)] in (["a"], ["b"])
        counts = Counter(event.event_id for event in events)
        assert set(counts) == set(rewards) and max(counts.values()) == 1
        assert {event.event_id: event.reward for event in events} == rewards
        for served in hosts.values():  # the shared store's counts, whichever host answers
            assert gauge(served.url, "banditkit_orphaned_outcomes") == 1.0
            assert gauge(served.url, "banditkit_outcomes_awaiting_decision") == 0.0
        with Engine.open(tmp_path / "inspect", database_url=url) as engine:
            (orphan,) = engine.store.orphans()
            assert (orphan["event_id"], orphan["kind"]) == ("never-ranked-anywhere", "r")
            assert "orphan grace (2 s)" in orphan["reason"]
            assert engine.store.rejects() == [] and engine.store.pending_count() == 0
    finally:
        for served in hosts.values():
            kill(served)
