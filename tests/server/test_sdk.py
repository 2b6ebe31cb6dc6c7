"""Azure's own Personalizer SDKs, unchanged, against a banditkit server process.

Both SDKs are test-only dependencies; the server runs in a child process on a
loopback port (``live_server``). Each test checks what the SDK got back
against what the engine logged, so a response the SDK merely parsed without
error would not pass.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from banditkit.eventlog import JoinedEvent, read_events

pytest.importorskip("azure.cognitiveservices.personalizer")
pytest.importorskip("azure.ai.personalizer")

from azure.ai.personalizer import (  # noqa: E402
    PersonalizerAdministrationClient,
)
from azure.ai.personalizer import (  # noqa: E402
    PersonalizerClient as NewPersonalizerClient,
)
from azure.cognitiveservices.personalizer import PersonalizerClient  # noqa: E402
from azure.cognitiveservices.personalizer.models import (  # noqa: E402
    ErrorResponseException,
    RankableAction,
    RankRequest,
)
from azure.core.credentials import AzureKeyCredential  # noqa: E402
from azure.core.exceptions import (  # noqa: E402
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from msrest.authentication import CognitiveServicesCredentials  # noqa: E402
from msrest.exceptions import HttpOperationError  # noqa: E402

CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}, {"hour": 21, "weekend": True}]
ACTIONS = [
    {"id": "romance", "features": [{"Artwork": {"theme": "romance", "faces": 2}}]},
    {"id": "action", "features": [{"Artwork": {"theme": "action", "faces": 1}}]},
    {"id": "comedy", "features": [{"Artwork": {"theme": "comedy", "faces": 0}}]},
    {"id": "drama", "features": [{"Artwork": {"theme": "drama"}}, {"dark": True}]},
]


def wait_for_join(data_dir: Path, event_id: str, timeout: float = 20.0) -> JoinedEvent:
    """The event as the learner joined it into the dsjson log (reward wait is 1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = data_dir / "logs"
        if logs.exists():
            for event in read_events([logs]):
                if event.event_id == event_id:
                    return event
        time.sleep(0.1)
    raise AssertionError(f"event {event_id} was never joined")


def check_against_log(event: JoinedEvent, ranking: dict[str, float], reward_action_id: str,
                      excluded: set[str]) -> None:
    """What the SDK received is what the engine decided and logged."""
    assert event.action_ids[event.chosen_index] == reward_action_id
    logged = dict(zip(event.action_ids, event.pmf, strict=True))
    assert set(logged) == set(ranking) - excluded
    for action_id, probability in logged.items():
        assert ranking[action_id] == pytest.approx(probability)
    assert all(ranking[action_id] == 0.0 for action_id in excluded)
    assert sum(ranking.values()) == pytest.approx(1.0)


# --------------------------------------------------- azure-cognitiveservices-personalizer


@pytest.fixture(scope="module")
def v1_client(live_server) -> PersonalizerClient:
    return PersonalizerClient(live_server.url,
                              CognitiveServicesCredentials(live_server.keys["client"]))


@pytest.mark.slow
def test_v1_sdk_rank_activate_reward(live_server, v1_client) -> None:
    request = RankRequest(
        context_features=CONTEXT,
        actions=[RankableAction(id=a["id"], features=a["features"]) for a in ACTIONS],
        excluded_actions=["drama"],
        event_id="sdk-v1-event-1",
        defer_activation=True,
    )
    response = v1_client.rank(request)
    assert response.event_id == "sdk-v1-event-1"
    ranking = {ranked.id: ranked.probability for ranked in response.ranking}
    assert response.ranking[-1].id == "drama"
    assert response.reward_action_id in {"romance", "action", "comedy"}

    assert v1_client.events.activate(response.event_id) is None
    assert v1_client.events.reward(response.event_id, 0.8) is None

    event = wait_for_join(live_server.data_dir, response.event_id)
    check_against_log(event, ranking, response.reward_action_id, {"drama"})
    assert event.reward == pytest.approx(0.8)
    assert not event.skip_learn  # activated, so the reward counts


@pytest.mark.slow
def test_v1_sdk_without_activation_skips_learning(live_server, v1_client) -> None:
    request = RankRequest(
        context_features=CONTEXT,
        actions=[RankableAction(id=a["id"], features=a["features"]) for a in ACTIONS],
        defer_activation=True,
    )
    response = v1_client.rank(request)
    assert len(response.event_id) > 0
    event = wait_for_join(live_server.data_dir, response.event_id)
    assert event.skip_learn


def test_v1_sdk_errors(live_server, v1_client) -> None:
    request = RankRequest(actions=[RankableAction(id="a", features=[{"x": 1}])],
                          event_id="sdk-v1-dup")
    v1_client.rank(request)
    with pytest.raises(ErrorResponseException) as duplicate:
        v1_client.rank(request)
    assert duplicate.value.response.status_code == 409
    assert duplicate.value.error.error.code == "Conflict"
    assert "sdk-v1-dup" in duplicate.value.error.error.message

    with pytest.raises(HttpOperationError) as unknown:
        v1_client.events.reward("never-ranked", 1.0)
    assert unknown.value.response.status_code == 404

    stranger = PersonalizerClient(live_server.url, CognitiveServicesCredentials("bk_x_y"))
    with pytest.raises(ErrorResponseException) as unauthorized:
        stranger.rank(request)
    assert unauthorized.value.response.status_code == 401
    assert unauthorized.value.error.error.code == "Unauthorized"


# ----------------------------------------------------------------- azure-ai-personalizer


@pytest.fixture(scope="module")
def new_client(live_server) -> NewPersonalizerClient:
    return NewPersonalizerClient(live_server.url, AzureKeyCredential(live_server.keys["client"]))


@pytest.fixture(scope="module")
def admin_client(live_server) -> PersonalizerAdministrationClient:
    return PersonalizerAdministrationClient(live_server.url,
                                            AzureKeyCredential(live_server.keys["admin"]))


@pytest.mark.slow
def test_new_sdk_rank_activate_reward(live_server, new_client) -> None:
    response = new_client.rank({
        "contextFeatures": CONTEXT,
        "actions": ACTIONS,
        "excludedActions": ["romance"],
        "eventId": "sdk-new-event-1",
        "deferActivation": True,
    })
    assert response["eventId"] == "sdk-new-event-1"
    ranking = {item["id"]: item["probability"] for item in response["ranking"]}
    assert response["ranking"][0]["id"] == response["rewardActionId"]
    assert new_client.activate(response["eventId"]) is None
    assert new_client.reward(response["eventId"], {"value": 0.25}) is None

    event = wait_for_join(live_server.data_dir, response["eventId"])
    check_against_log(event, ranking, response["rewardActionId"], {"romance"})
    assert event.reward == pytest.approx(0.25)


def test_new_sdk_errors(live_server, new_client) -> None:
    request = {"actions": ACTIONS, "eventId": "sdk-new-dup"}
    new_client.rank(request)
    with pytest.raises(ResourceExistsError):
        new_client.rank(request)
    with pytest.raises(ResourceNotFoundError):
        new_client.reward("never-ranked", {"value": 1.0})
    with pytest.raises(ResourceNotFoundError):
        new_client.activate("never-ranked")
    with pytest.raises(HttpResponseError) as bad:
        new_client.reward("sdk-new-dup", {"value": "1"})
    assert bad.value.status_code == 400
    assert "value must be a number" in str(bad.value)
    stranger = NewPersonalizerClient(live_server.url, AzureKeyCredential("bk_x_y"))
    with pytest.raises(ClientAuthenticationError):
        stranger.rank(request)


def test_new_sdk_service_configuration_round_trip(live_server, admin_client) -> None:
    original = admin_client.get_service_configuration()
    assert original["rewardWaitTime"] == "PT1S"
    assert original["learningMode"] == "Online"
    changed = {**original, "explorationPercentage": 0.35, "defaultReward": -0.1,
               "rewardAggregation": "sum", "modelExportFrequency": "PT5M",
               "logRetentionDays": 14, "learningMode": "Apprentice"}
    try:
        assert admin_client.update_service_configuration(changed) == changed
        assert admin_client.get_service_configuration() == changed
    finally:
        admin_client.update_service_configuration(original)
    assert admin_client.get_service_configuration() == original


@pytest.mark.slow
def test_new_sdk_reads_the_apprentice_metrics(live_server, new_client, admin_client) -> None:
    original = admin_client.get_service_configuration()
    admin_client.update_service_configuration({**original, "learningMode": "Apprentice"})
    try:
        rewards = {"sdk-apprentice-0": 1.0, "sdk-apprentice-1": 0.0, "sdk-apprentice-2": 0.5}
        for event_id, value in rewards.items():
            response = new_client.rank({"contextFeatures": CONTEXT, "actions": ACTIONS,
                                        "eventId": event_id})
            assert response["rewardActionId"] == ACTIONS[0]["id"]  # the baseline
            new_client.reward(event_id, {"value": value})
        joined = [wait_for_join(live_server.data_dir, event_id) for event_id in rewards]
        deadline = time.monotonic() + 20
        while True:  # the learner counts apprentice events right after joining them
            metrics = admin_client.get_service_configuration().get(
                "latestApprenticeModeMetrics")
            if metrics and metrics["numberOfEvents"] >= len(rewards):
                break
            assert time.monotonic() < deadline, "no apprentice metrics"
            time.sleep(0.2)
    finally:
        admin_client.update_service_configuration(original)
    assert metrics["numberOfEvents"] == len(rewards)
    assert metrics["sumOfRewards"] == pytest.approx(sum(rewards.values()))
    imitated = sum(e.reward for e in joined if e.extra["modelAgreesWithBaseline"])
    assert metrics["sumOfImitatedRewards"] == pytest.approx(imitated)
    assert metrics["startTime"] == min(e.timestamp for e in joined)


def test_new_sdk_policy_round_trip(live_server, admin_client) -> None:
    original = admin_client.get_policy()
    assert "--cb_explore_adf" in original["arguments"]
    policy = {"name": "bagging", "arguments": "--cb_explore_adf --bag 3 -q ::"}
    try:
        assert admin_client.update_policy(policy) == policy
        assert admin_client.get_policy() == policy
        with pytest.raises(HttpResponseError) as bad:
            admin_client.update_policy({"name": "x", "arguments": "--cb_explore_adf --nope"})
        assert bad.value.status_code == 400
        assert admin_client.get_policy() == policy
    finally:
        reset = admin_client.reset_policy()
    assert reset["arguments"] == original["arguments"]


def test_new_sdk_roles(live_server) -> None:
    as_client = PersonalizerAdministrationClient(
        live_server.url, AzureKeyCredential(live_server.keys["client"]))
    with pytest.raises(HttpResponseError) as forbidden:
        as_client.update_policy({"name": "x", "arguments": "--cb_explore_adf"})
    assert forbidden.value.status_code == 403
    as_analyst = PersonalizerAdministrationClient(
        live_server.url, AzureKeyCredential(live_server.keys["analyst"]))
    assert "rewardWaitTime" in as_analyst.get_service_configuration()
