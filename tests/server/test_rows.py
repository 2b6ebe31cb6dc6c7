"""Row ordering over HTTP (Flask test client): /v1/rows and the multi-slot routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from banditkit.rows import PageRules, Row, page_violations
from serving.rows import get_row_engine
from tests.server.conftest import assert_short_probabilities, auth

ROWS = [{"id": f"row{i}", "features": {"Row": {"genre": "ab"[i % 2], "kind": f"k{i}"}},
         "genre": "ab"[i % 2]} for i in range(6)]
RULES = {"pinned": {"row5": 1}, "noAdjacentSameGenre": True, "minDistinctGenres": 2,
         "distinctGenresWithin": 2}
V = "api-version=2022-09-01-preview"


def _joined(data_dir: Path) -> dict[str, dict]:
    files = sorted((data_dir / "rows" / "logs").rglob("*.dsjson"))
    lines = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    return {line["EventId"]: line for line in lines}


def test_rank_reward_join(client, keys, app, data_dir):
    response = client.post("/v1/rows/rank", headers=auth(keys["client"]), json={
        "context": {"Member": {"country": "BR"}}, "rows": ROWS, "slots": 4, "rules": RULES,
        "excludedRows": ["row0"], "eventId": "page-1"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["eventId"] == "page-1"
    assert [slot["id"] for slot in body["slots"]] == ["1", "2", "3", "4"]
    assert body["slots"][0]["rowId"] == "row5" and body["slots"][0]["probability"] == 1.0
    page = [slot["rowId"] for slot in body["slots"]]
    rows = [Row(id=r["id"], features=r["features"], genre=r["genre"]) for r in ROWS]
    rules = PageRules(pinned={"row5": 1}, no_adjacent_same_genre=True, min_distinct_genres=2,
                      distinct_genres_within=2)
    assert page_violations(rows, page, rules, excluded=["row0"]) == []
    assert body["pageProbability"] == pytest.approx(
        body["slots"][1]["probability"] * body["slots"][2]["probability"]
        * body["slots"][3]["probability"])
    reward = client.post("/v1/rows/events/page-1/reward", headers=auth(keys["client"]),
                         json={"rewards": [{"slotId": "2", "value": 1.0}], "pageReward": 3})
    assert reward.status_code == 204
    get_row_engine(app).clock = lambda: 4e9  # past the 1 s reward wait
    assert get_row_engine(app).process_due() == 1
    line = _joined(data_dir)["page-1"]
    assert [o["_label_cost"] for o in line["_outcomes"]] == [0.0, -1.0, 0.0, 0.0]
    assert line["_banditkit"]["pageReward"] == 3.0
    assert [o["_p"][0] for o in line["_outcomes"]] == [s["probability"] for s in body["slots"]]
    for outcome in line["_outcomes"]:
        assert_short_probabilities(json.dumps(outcome["_p"]), outcome["_p"])
    assert_short_probabilities(response.get_data(as_text=True))


def test_explicit_slots_and_activation(client, keys):
    response = client.post("/v1/rows/rank", headers=auth(keys["client"]), json={
        "rows": ROWS, "eventId": "deferred", "deferActivation": True,
        "slots": [{"id": "hero", "features": {"Slot": {"size": "big"}},
                   "excludedRows": ["row1", "row2"]}, {"id": "second"}]})
    assert response.status_code == 201, response.json
    assert response.json["slots"][0]["rowId"] not in ("row1", "row2")
    assert response.json["slots"][0]["eligibleRows"] == 4
    assert client.post("/v1/rows/events/deferred/activate",
                       headers=auth(keys["client"])).status_code == 204


@pytest.mark.parametrize(("body", "message"), [
    ({"rows": ROWS}, "slots is required"),
    ({"rows": ROWS, "slots": 0}, "slots must be between 1 and"),
    ({"rows": ROWS, "slots": 7}, "7 slots but only 6"),
    ({"rows": [], "slots": 1}, "rows must hold between 1 and"),
    ({"rows": ROWS, "slots": 2, "rules": {"pinned": {"row1": 0}}}, "rules.pinned.row1"),
    ({"rows": ROWS, "slots": 2, "rules": {"bogus": 1}}, "unknown fields"),
    ({"rows": ROWS, "slots": 3, "rules": {"minDistinctGenres": 3}}, "no page of 3 slots"),
    ({"rows": ROWS, "slots": 2, "excludedRows": ["ghost"]}, "not among the candidates"),
    ({"rows": [{"id": "a", "features": {"R": {"x": [1]}}}], "slots": 1}, "must be a string"),
    ({"rows": ROWS, "slots": 2, "extra": 1}, "Unknown fields"),
])
def test_bad_rank_requests_get_400_naming_the_problem(client, keys, body, message):
    response = client.post("/v1/rows/rank", headers=auth(keys["client"]), json=body)
    assert response.status_code == 400
    assert message in response.json["error"]["message"]


def test_an_integral_number_of_slots_is_an_integer_as_the_schema_says(client, keys):
    """JSON Schema (what /openapi.json states) calls 2.0 an integer; 2.5 is refused."""
    response = client.post("/v1/rows/rank", headers=auth(keys["client"]),
                           json={"rows": ROWS, "slots": 2.0})
    assert response.status_code == 201, response.json
    assert len(response.json["slots"]) == 2
    response = client.post("/v1/rows/rank", headers=auth(keys["client"]),
                           json={"rows": ROWS, "slots": 2.5})
    assert response.status_code == 400
    assert "slots must be an integer, got 2.5" in response.json["error"]["message"]


def test_rewards_errors(client, keys):
    client.post("/v1/rows/rank", headers=auth(keys["client"]),
                json={"rows": ROWS, "slots": 2, "eventId": "e"})
    bad = [({}, 400, "rewards"), ({"rewards": [{"slotId": "9", "value": 1}]}, 400, "not a slot"),
           ({"rewards": [{"slotId": "1"}]}, 400, "needs slotId and value")]
    for body, status, message in bad:
        response = client.post("/v1/rows/events/e/reward", headers=auth(keys["client"]),
                               json=body)
        assert response.status_code == status and message in response.json["error"]["message"]
    unknown = client.post("/v1/rows/events/nope/reward", headers=auth(keys["client"]),
                          json={"pageReward": 1})
    assert unknown.status_code == 404
    again = client.post("/v1/rows/rank", headers=auth(keys["client"]),
                        json={"rows": ROWS, "slots": 2, "eventId": "e"})
    assert again.status_code == 409


def test_routes_need_a_client_key(client):
    assert client.post("/v1/rows/rank", json={"rows": ROWS, "slots": 1}).status_code == 401
    assert client.post(f"/personalizer/multislot/rank?{V}", json={}).status_code == 401


MULTISLOT = {
    "contextFeatures": [{"Member": {"country": "BR"}}, {"hour": 21}],
    "actions": [{"id": a, "features": [{"Article": {"topic": a}}]}
                for a in ("news", "sports", "food", "tech")],
    "slots": [{"id": "main", "baselineAction": "news", "features": [{"size": "large"}]},
              {"id": "side", "baselineAction": "sports", "excludedActions": ["food"]}],
}


@pytest.mark.parametrize("prefix", ["/personalizer/v1.0/multislot", "/personalizer/multislot"])
def test_multislot_both_families(client, keys, prefix):
    query = f"?{V}" if "v1.0" not in prefix else ""
    response = client.post(f"{prefix}/rank{query}", headers=auth(keys["client"]),
                           json={**MULTISLOT, "eventId": f"ms-{len(prefix)}"})
    assert response.status_code == 201, response.json
    slots = response.json["slots"]
    assert [s["id"] for s in slots] == ["main", "side"]
    assert slots[1]["rewardActionId"] != "food"
    assert slots[0]["rewardActionId"] != slots[1]["rewardActionId"]
    event = response.json["eventId"]
    reward = client.post(f"{prefix}/events/{event}/reward{query}", headers=auth(keys["client"]),
                         json={"reward": [{"slotId": "main", "value": 1}]})
    assert reward.status_code == 204
    activate = client.post(f"{prefix}/events/{event}/activate{query}",
                           headers=auth(keys["client"]))
    assert activate.status_code == 204


@pytest.mark.parametrize(("change", "message"), [
    ({"slots": [{"id": "main"}]}, "baselineAction is required"),
    ({"slots": [{"id": "main", "baselineAction": "ghost"}]}, "is not an action id"),
    ({"slots": [{"id": "a", "baselineAction": "news"}, {"id": "b", "baselineAction": "news"}]},
     "baseline of another slot"),
    ({"slots": [{"id": "a", "baselineAction": "news", "excludedActions": ["news"]}]},
     "among its excludedActions"),
    ({"slots": [{"id": "a", "baselineAction": "news"}] * 5}, "slots must hold between 1 and 4"),
])
def test_bad_multislot_requests(client, keys, change, message):
    response = client.post(f"/personalizer/multislot/rank?{V}", headers=auth(keys["client"]),
                           json={**MULTISLOT, **change})
    assert response.status_code == 400
    assert message in response.json["error"]["message"]
    missing = client.post("/personalizer/multislot/rank", headers=auth(keys["client"]),
                          json=MULTISLOT)
    assert missing.status_code == 400 and "api-version" in missing.json["error"]["message"]


def test_openapi_documents_the_row_routes(client):
    paths = client.get("/openapi.json").json["paths"]
    for path in ("/v1/rows/rank", "/v1/rows/events/{eventId}/reward",
                 "/personalizer/v1.0/multislot/rank",
                 "/personalizer/multislot/events/{eventId}/activate"):
        assert path in paths


def test_row_loop_follows_the_service_configuration_but_not_the_policy(client, keys, app):
    from serving.runtime import get_engine

    admin = auth(keys["admin"])
    config = client.get("/personalizer/v1.0/configurations/service", headers=admin).json
    changed = {**config, "rewardWaitTime": "PT7S", "explorationPercentage": 0.33}
    assert client.put("/personalizer/v1.0/configurations/service", headers=admin,
                      json=changed).status_code == 200
    policy = {"name": "artwork", "arguments": "--cb_explore_adf -q MA --epsilon 0.33"}
    assert client.put("/personalizer/v1.0/configurations/policy", headers=admin,
                      json=policy).status_code == 200
    rows = get_row_engine(app)
    rows.follow(get_engine(app).settings)
    rows.process_due()
    settings = rows.settings
    assert settings.reward_wait_seconds == 7.0 and settings.exploration_percentage == 0.33
    assert "-q MA" not in settings.policy_args
