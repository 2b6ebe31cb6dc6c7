"""Personalizer-compatible routes through Flask's test client: shapes, codes, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditkit.eventlog import read_events
from serving.runtime import get_engine
from tests.server.conftest import assert_short_probabilities, auth

API_VERSION = "api-version=2022-09-01-preview"
# Both families, as (path builder) pairs: v1.0 paths and api-version paths.
FAMILIES = {
    "v1.0": lambda path: f"/personalizer/v1.0{path}",
    "api-version": lambda path: f"/personalizer{path}?{API_VERSION}",
}
ACTIONS = [
    {"id": "romance", "features": [{"Artwork": {"theme": "romance", "faces": 2}}]},
    {"id": "action", "features": [{"Artwork": {"theme": "action", "faces": 1}}]},
    {"id": "comedy", "features": [{"Artwork": {"theme": "comedy"}}, {"bright": 0.8}]},
]
CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}, {"hour": 21}]


@pytest.fixture(params=sorted(FAMILIES))
def url(request):
    return FAMILIES[request.param]


def test_rank_returns_the_engine_decision(client, keys, url) -> None:
    response = client.post(url("/rank"), headers=auth(keys["client"]), json={
        "contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": "evt-1",
    })
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"eventId", "ranking", "rewardActionId"}
    assert body["eventId"] == "evt-1"
    assert [item["id"] for item in body["ranking"]][0] == body["rewardActionId"]
    assert sorted(item["id"] for item in body["ranking"]) == ["action", "comedy", "romance"]
    assert sum(item["probability"] for item in body["ranking"]) == pytest.approx(1.0)
    assert response.headers["X-Banditkit-Model-Version"]


def test_rank_is_reproducible_from_the_event_id(tmp_path, keys) -> None:
    # The event id seeds the draw (DESIGN.md §4): two servers with the same
    # (initial) model choose the same action for the same event id. Exploration
    # is uniform over 3 actions: 12 ids agreeing by chance has probability 3**-12.
    from server import close_app, create_app
    from tests.server.conftest import make_keys

    choices = []
    for name in ("one", "two"):
        data_dir = tmp_path / name
        key = make_keys(data_dir)["client"]
        app = create_app({"ENGINE_DATA_DIR": str(data_dir), "LEARNER_ENABLED": False,
                          "ENGINE_SETTINGS": {"exploration_percentage": 1.0}})
        client = app.test_client()
        choices.append([
            client.post("/personalizer/v1.0/rank", headers=auth(key), json={
                "actions": ACTIONS, "eventId": f"seed-{i}"}).get_json()["rewardActionId"]
            for i in range(12)
        ])
        close_app(app)
    assert choices[0] == choices[1]
    assert len(set(choices[0])) > 1  # uniform exploration: not always the same action


def test_excluded_actions_rank_last_with_zero(client, keys, url) -> None:
    body = client.post(url("/rank"), headers=auth(keys["client"]), json={
        "actions": ACTIONS, "excludedActions": ["romance"],
    }).get_json()
    assert body["ranking"][-1] == {"id": "romance", "probability": 0.0}
    assert body["rewardActionId"] != "romance"


def test_generated_event_ids_are_unique(client, keys, url) -> None:
    ids = {
        client.post(url("/rank"), headers=auth(keys["client"]),
                    json={"actions": ACTIONS}).get_json()["eventId"]
        for _ in range(5)
    }
    assert len(ids) == 5


@pytest.mark.slow
def test_reward_and_activate_reach_the_join(app, client, keys, url) -> None:
    headers = auth(keys["client"])
    answer = client.post(url("/rank"), headers=headers, json={
        "contextFeatures": CONTEXT, "actions": ACTIONS, "deferActivation": True,
    })
    decided = answer.get_json()
    assert_short_probabilities(answer.get_data(as_text=True),
                               [r["probability"] for r in decided["ranking"]])
    event_id = decided["eventId"]
    assert client.post(url(f"/events/{event_id}/activate"), headers=headers).status_code == 204
    response = client.post(url(f"/events/{event_id}/reward"), headers=headers,
                           json={"value": 0.75})
    assert response.status_code == 204
    assert response.data == b""
    # Join: the clock is real and the reward wait is 1 s.
    import time

    time.sleep(1.1)
    get_engine(app).process_due()
    (event,) = [e for e in read_events([app.config["ENGINE_DATA_DIR"] + "/logs"])
                if e.event_id == event_id]
    assert event.reward == pytest.approx(0.75)
    assert not event.skip_learn
    assert event.action_ids[event.chosen_index] == decided["rewardActionId"]
    logged = dict(zip(event.action_ids, event.pmf, strict=True))
    assert logged == {r["id"]: r["probability"] for r in decided["ranking"]}
    line = next(path for path in Path(app.config["ENGINE_DATA_DIR"], "logs").rglob("*.dsjson"))
    assert_short_probabilities(line.read_text(), list(event.pmf))


def test_v1_event_routes(client, keys) -> None:
    headers = auth(keys["client"])
    event_id = client.post("/personalizer/v1.0/rank", headers=headers, json={
        "actions": ACTIONS, "deferActivation": True}).get_json()["eventId"]
    assert client.post(f"/v1/events/{event_id}/activate", headers=headers).status_code == 204
    assert client.post(f"/v1/events/{event_id}/reward", headers=headers,
                       json={"value": 12.5}).status_code == 204


def test_service_configuration_round_trip(app, client, keys, url) -> None:
    admin = auth(keys["admin"])
    response = client.get(url("/configurations/service"), headers=admin)
    assert response.status_code == 200
    config = response.get_json()
    assert config["rewardWaitTime"] == "PT1S"  # FAST_SETTINGS
    assert config["learningMode"] == "Online"
    config.update(rewardWaitTime="PT15M", defaultReward=-0.5, rewardAggregation="sum",
                  explorationPercentage=0.3, modelExportFrequency="PT2M",
                  logRetentionDays=30, learningMode="Apprentice")
    response = client.put(url("/configurations/service"), headers=admin, json=config)
    assert response.status_code == 200
    assert response.get_json() == config
    settings = get_engine(app).settings
    assert (settings.reward_wait_seconds, settings.default_reward, settings.reward_aggregation,
            settings.exploration_percentage, settings.model_update_seconds,
            settings.log_retention_days, settings.learning_mode) == (
        900.0, -0.5, "sum", 0.3, 120.0, 30, "apprentice")
    assert client.get(url("/configurations/service"), headers=admin).get_json() == config


def test_log_retention_forever(client, keys) -> None:
    admin = auth(keys["admin"])
    config = client.get("/personalizer/v1.0/configurations/service", headers=admin).get_json()
    config["logRetentionDays"] = -1
    assert client.put("/personalizer/v1.0/configurations/service", headers=admin,
                      json=config).get_json()["logRetentionDays"] == -1


def test_policy_round_trip_and_reset(app, client, keys, url) -> None:
    admin = auth(keys["admin"])
    default = client.get(url("/configurations/policy"), headers=admin).get_json()
    assert "--cb_explore_adf" in default["arguments"]
    policy = {"name": "softmax", "arguments": "--cb_explore_adf --softmax --lambda 5 -q ::"}
    response = client.put(url("/configurations/policy"), headers=admin, json=policy)
    assert response.status_code == 200
    assert response.get_json() == policy
    assert get_engine(app).settings.policy_args == policy["arguments"]
    assert client.get(url("/configurations/policy"), headers=admin).get_json() == policy
    reset = client.delete(url("/configurations/policy"), headers=admin)
    assert reset.status_code == 200
    assert reset.get_json()["arguments"] == default["arguments"]


def test_invalid_policy_is_a_400_and_changes_nothing(app, client, keys) -> None:
    admin = auth(keys["admin"])
    before = get_engine(app).settings
    response = client.put("/personalizer/v1.0/configurations/policy", headers=admin,
                          json={"name": "x", "arguments": "--cb_explore_adf --no_such_flag"})
    assert response.status_code == 400
    assert "no_such_flag" in response.get_json()["error"]["message"]
    assert get_engine(app).settings == before


def test_a_policy_epsilon_must_agree_with_the_exploration_percentage(app, client, keys) -> None:
    admin = auth(keys["admin"])
    path = "/personalizer/v1.0/configurations/policy"
    before = get_engine(app).settings
    assert before.exploration_percentage == 0.2
    response = client.put(path, headers=admin,
                          json={"name": "x", "arguments": "--cb_explore_adf --epsilon=0.05"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "--epsilon=0.05" in error["message"] and "explorationPercentage" in error["message"]
    assert error["target"] == "arguments"
    assert get_engine(app).settings == before
    # The same epsilon is accepted; the percentage stays its one owner.
    response = client.put(path, headers=admin,
                          json={"name": "x", "arguments": "--cb_explore_adf --epsilon 0.2 -q ::"})
    assert response.status_code == 200
    assert response.get_json()["arguments"] == "--cb_explore_adf -q ::"
    config = client.get("/personalizer/v1.0/configurations/service", headers=admin).get_json()
    config["explorationPercentage"] = 0.1
    client.put("/personalizer/v1.0/configurations/service", headers=admin, json=config)
    assert get_engine(app).settings.learner_args() == "--cb_explore_adf -q :: --epsilon 0.1"


def test_api_version_is_required(client, keys) -> None:
    response = client.post("/personalizer/rank", headers=auth(keys["client"]),
                           json={"actions": ACTIONS})
    assert response.status_code == 400
    assert response.get_json()["error"]["target"] == "api-version"
    response = client.post("/personalizer/rank?api-version=latest",
                           headers=auth(keys["client"]), json={"actions": ACTIONS})
    assert response.status_code == 400
    assert "latest" in response.get_json()["error"]["message"]
