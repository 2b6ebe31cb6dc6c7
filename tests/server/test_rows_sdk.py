"""Azure's ``azure-ai-personalizer`` SDK, unchanged, on the multi-slot routes of a live server.

The server runs in a child process on a loopback port (``live_server``); each
test checks what the SDK got back against the CCB line the engine joined, so a
response the SDK merely parsed would not pass.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import vowpal_wabbit_next as vw

pytest.importorskip("azure.ai.personalizer")

from azure.ai.personalizer import PersonalizerClient  # noqa: E402
from azure.core.credentials import AzureKeyCredential  # noqa: E402
from azure.core.exceptions import (  # noqa: E402
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}, {"hour": 21}]
ACTIONS = [{"id": a, "features": [{"Article": {"topic": a, "words": 300 + 10 * i}}]}
           for i, a in enumerate(("news", "sports", "food", "tech", "travel"))]
SLOTS = [{"id": "main", "baselineAction": "news", "features": [{"Slot": {"size": "large"}}]},
         {"id": "side", "baselineAction": "sports", "excludedActions": ["food"]},
         {"id": "footer", "baselineAction": "tech"}]


def wait_for_page(data_dir: Path, event_id: str, timeout: float = 20.0) -> dict:
    """The page as the row learner joined it into the CCB log (reward wait is 1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted((data_dir / "rows" / "logs").rglob("*.dsjson")):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["EventId"] == event_id:
                    return record
        time.sleep(0.1)
    raise AssertionError(f"page {event_id} was never joined")


@pytest.fixture(scope="module")
def client(live_server) -> PersonalizerClient:
    return PersonalizerClient(live_server.url, AzureKeyCredential(live_server.keys["client"]))


@pytest.mark.slow
def test_sdk_multislot_rank_activate_reward(live_server, client) -> None:
    response = client.rank_multi_slot({
        "contextFeatures": CONTEXT, "actions": ACTIONS, "slots": SLOTS,
        "eventId": "sdk-multislot-1", "deferActivation": True})
    assert response["eventId"] == "sdk-multislot-1"
    chosen = {slot["id"]: slot["rewardActionId"] for slot in response["slots"]}
    assert list(chosen) == ["main", "side", "footer"]
    assert len(set(chosen.values())) == 3 and chosen["side"] != "food"
    assert client.activate_multi_slot(response["eventId"]) is None
    assert client.reward_multi_slot(response["eventId"], {"reward": [
        {"slotId": "main", "value": 1.0}, {"slotId": "footer", "value": 0.5}]}) is None

    line = wait_for_page(live_server.data_dir, response["eventId"])
    ids = line["_banditkit"]["rowIds"]
    assert {o["_id"]: ids[o["_a"][0]] for o in line["_outcomes"]} == chosen
    assert [o["_label_cost"] for o in line["_outcomes"]] == [-1.0, 0.0, -0.5]
    for outcome, slot in zip(line["_outcomes"], line["c"]["_slots"], strict=True):
        assert 0.0 < outcome["_p"][0] <= 1.0
        assert sum(outcome["_p"]) == pytest.approx(1.0)
        assert sorted(outcome["_a"]) == sorted(slot["_inc"])
    assert ids.index("food") not in line["c"]["_slots"][1]["_inc"]
    assert "_skipLearn" not in line
    workspace = vw.Workspace(["--ccb_explore_adf", "--quiet"])
    workspace.learn_one(vw.DSJsonFormatParser(workspace).parse_json(json.dumps(line)))


@pytest.mark.slow
def test_sdk_multislot_without_activation_skips_learning(live_server, client) -> None:
    response = client.rank_multi_slot({"contextFeatures": CONTEXT, "actions": ACTIONS,
                                       "slots": SLOTS[:2], "deferActivation": True})
    assert len(response["eventId"]) > 0
    line = wait_for_page(live_server.data_dir, response["eventId"])
    assert line["_skipLearn"] is True


def test_sdk_multislot_errors(live_server, client) -> None:
    request = {"actions": ACTIONS, "slots": SLOTS[:1], "eventId": "sdk-multislot-dup"}
    client.rank_multi_slot(request)
    with pytest.raises(ResourceExistsError):
        client.rank_multi_slot(request)
    with pytest.raises(ResourceNotFoundError):
        client.reward_multi_slot("never-ranked", {"reward": [{"slotId": "main", "value": 1}]})
    with pytest.raises(ResourceNotFoundError):
        client.activate_multi_slot("never-ranked")
    with pytest.raises(HttpResponseError) as bad:
        client.reward_multi_slot("sdk-multislot-dup",
                                 {"reward": [{"slotId": "nope", "value": 1}]})
    assert bad.value.status_code == 400 and "not a slot" in str(bad.value)
    with pytest.raises(HttpResponseError) as no_baseline:
        client.rank_multi_slot({"actions": ACTIONS, "slots": [{"id": "x"}]})
    assert no_baseline.value.status_code == 400


@pytest.mark.slow
def test_v1_family_and_learning_over_http(live_server) -> None:
    import requests

    headers = {"Ocp-Apim-Subscription-Key": live_server.keys["client"]}
    url = f"{live_server.url}/personalizer/v1.0/multislot"
    models = live_server.data_dir / "rows" / "models"
    before = len(list(models.glob("model-v*.vw"))) if models.exists() else 0
    for i in range(20):
        response = requests.post(f"{url}/rank", headers=headers, timeout=10, json={
            "contextFeatures": CONTEXT, "actions": ACTIONS, "slots": SLOTS,
            "eventId": f"v1-multislot-{i}"})
        assert response.status_code == 201, response.text
        top = response.json()["slots"][0]["rewardActionId"]
        reward = requests.post(f"{url}/events/v1-multislot-{i}/reward", headers=headers,
                               timeout=10, json={"reward": [
                                   {"slotId": "main", "value": float(top == "travel")}]})
        assert reward.status_code == 204
    wait_for_page(live_server.data_dir, "v1-multislot-19")
    deadline = time.monotonic() + 20
    while len(list(models.glob("model-v*.vw"))) <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(models.glob("model-v*.vw"))) > before  # the row learner published
