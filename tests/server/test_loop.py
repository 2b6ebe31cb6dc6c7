"""The whole loop through real HTTP: rank -> reward -> join -> learn -> the next rank uses it."""

from __future__ import annotations

import time

import pytest
import requests

from banditkit.eventlog import read_events
from tests.server.conftest import start_server, stop_server

API = "api-version=2022-09-01-preview"
CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}]
ACTIONS = [
    {"id": "bad", "features": [{"Artwork": {"theme": "horror"}}]},
    {"id": "good", "features": [{"Artwork": {"theme": "comedy"}}]},
]
N_EVENTS = 40


@pytest.fixture(scope="module")
def loop_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("loop") / "data")
    yield server
    stop_server(server)


@pytest.mark.slow
def test_rewards_change_the_next_decision(loop_server) -> None:
    session = requests.Session()
    admin = {"Ocp-Apim-Subscription-Key": loop_server.keys["admin"]}
    client = {"Ocp-Apim-Subscription-Key": loop_server.keys["client"]}
    url = loop_server.url

    policy = {"name": "fast", "arguments": "--cb_explore_adf --cb_type mtr -l 0.5 -q ::"}
    assert session.put(f"{url}/personalizer/configurations/policy?{API}", json=policy,
                       headers=admin).status_code == 200
    config = session.get(f"{url}/personalizer/configurations/service?{API}",
                         headers=admin).json()
    # Half the traffic explores, so "good" is shown often enough to be learned
    # (P(never shown in 40 events) <= 0.75**40 < 1e-5; event ids seed the draws).
    config["explorationPercentage"] = 0.5
    assert session.put(f"{url}/personalizer/configurations/service?{API}", json=config,
                       headers=admin).status_code == 200
    time.sleep(1.1)  # servers re-read settings and snapshots every second

    def rank(event_id: str) -> tuple[dict, str]:
        response = session.post(f"{url}/personalizer/rank?{API}", headers=client, json={
            "contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": event_id})
        assert response.status_code == 201, response.text
        return response.json(), response.headers["X-Banditkit-Model-Version"]

    before, version_before = rank("loop-before")
    probabilities = {r["id"]: r["probability"] for r in before["ranking"]}
    assert probabilities == pytest.approx({"bad": 0.5, "good": 0.5})  # untrained: a tie

    shown_good = 0
    for index in range(N_EVENTS):
        decision, _ = rank(f"loop-{index}")
        reward = 1.0 if decision["rewardActionId"] == "good" else 0.0
        shown_good += int(reward)
        assert session.post(f"{url}/v1/events/{decision['eventId']}/reward", headers=client,
                            json={"value": reward}).status_code == 204
    assert shown_good > 0

    # The learner joins after the 1 s reward wait, logs, learns and publishes in
    # one step (every 0.2 s here); servers pick a new snapshot up within 1 s.
    def joined() -> list:
        logs = loop_server.data_dir / "logs"
        return [e for e in read_events([logs]) if e.event_id.startswith("loop-")] if (
            logs.exists()) else []

    deadline = time.monotonic() + 30
    while len(joined()) < N_EVENTS + 1:
        assert time.monotonic() < deadline, f"only {len(joined())} events joined"
        time.sleep(0.2)
    assert sum(e.reward for e in joined()) == shown_good
    time.sleep(1.5)

    after, version_after = rank("loop-after")
    assert int(version_after) > int(version_before)
    probabilities = {r["id"]: r["probability"] for r in after["ranking"]}
    assert probabilities == pytest.approx({"bad": 0.25, "good": 0.75})
