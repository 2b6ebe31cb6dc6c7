"""Azure's ``PersonalizerAdministrationClient``, unchanged, on evaluations, feature
importances and apply, against ``banditkit serve`` (two workers and the learner
process, which runs the jobs); and a job that survives the server being killed
under it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from banditkit.store.jobs import SQLiteJobStore
from banditkit.vw import VWLearner
from simulator.learnerlog import write_learner_log
from simulator.world import ArtworkWorld
from tests.server.conftest import make_keys
from tests.server.test_serve import configure, joined, kill, rank, reward, serve, wait_until

pytest.importorskip("azure.ai.personalizer")

from azure.ai.personalizer import PersonalizerAdministrationClient, PersonalizerClient  # noqa: E402
from azure.core.credentials import AzureKeyCredential  # noqa: E402
from azure.core.exceptions import (  # noqa: E402
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

# Real banditkit serve processes running real jobs: a minute or two.
pytestmark = pytest.mark.slow

# A search of five candidates: the test's evaluation takes seconds.
JOB_ENV = {"BANDITKIT_JOBS_SEARCH_MAX_CANDIDATES": "4", "BANDITKIT_JOBS_SEARCH_SAMPLES": "1",
           "BANDITKIT_JOBS_POLL_SECONDS": "0.2"}
N_EVENTS = 60
# A simulated day of 6000 events (2023-11-14) beside what the test ranks today.
SIMULATED = ("2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module; the data dir, keys and the serve log path with it."""
    root = tmp_path_factory.mktemp("evaluations-sdk")
    data_dir = root / "data"
    configure(data_dir, reward_wait_seconds=1.0)
    world = ArtworkWorld.generate(seed=0, n_members=500, n_titles=20, n_variants=4)
    write_learner_log(world, VWLearner(args="--cb_explore_adf --epsilon 0.2 -q ::"),
                      data_dir / "logs" / "dt=2023-11-14" / "events.dsjson",
                      n_rounds=6000, seed=1)
    keys = make_keys(data_dir)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in JOB_ENV.items():
            patch.setenv(name, value)
        served = [serve(data_dir, root / "serve.log")]
        yield served, data_dir, keys, root
        for each in served:
            if each.process.poll() is None:
                kill(each)


def _client(url: str, key: str) -> PersonalizerAdministrationClient:
    return PersonalizerAdministrationClient(url, AzureKeyCredential(key))


def _finished(get, *, seconds: float = 120) -> dict:
    """Poll ``get()`` until the job's status is Succeeded or Failed, as the SDK's samples do."""
    deadline = time.monotonic() + seconds
    while True:
        job = get()
        if job["status"] in ("Succeeded", "Failed"):
            return job
        assert time.monotonic() < deadline, f"the job is still {job['status']}"
        time.sleep(0.3)


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_evaluations_feature_importances_and_apply_through_the_sdk(server) -> None:
    (served, *_), data_dir, keys, _ = server
    admin = _client(served.url, keys["admin"])
    analyst = _client(served.url, keys["analyst"])
    for i in range(N_EVENTS):
        decision = rank(served.url, keys["client"], f"sdk-{i}").json()
        reward(served.url, keys["client"], f"sdk-{i}",
               1.0 if decision["rewardActionId"] == "good" else 0.0)
    wait_until(lambda: len(joined(data_dir, "sdk-")) == N_EVENTS, seconds=60,
               what="the events to be joined")
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    body = {"name": "first", "startTime": _utc(start), "endTime": _utc(end),
            "enablePolicyOptimization": True,
            "policies": [{"name": "taste", "arguments": "--cb_explore_adf --epsilon 0.5 -q MA"}]}

    analyst.create_evaluation("ev-1", body)
    analyst.create_evaluation("ev-1", body)  # a retried PUT: the same job
    with pytest.raises(ResourceExistsError) as exists:
        analyst.create_evaluation("ev-1", {**body, "enablePolicyOptimization": False})
    assert exists.value.error.code == "EvaluationAlreadyExists"
    evaluation = _finished(lambda: analyst.get_evaluation("ev-1", start_time=start,
                                                          end_time=end))
    assert evaluation["status"] == "Succeeded", evaluation["description"]
    results = {p["name"]: p for p in evaluation["content"]["value"]}
    assert [p["policySource"] for p in results.values()] == [
        "Online", "Baseline", "Random", "Custom", "OfflineExperimentation"]
    assert evaluation["optimalPolicy"] == "Optimized"
    online = results["Online"]["summary"]
    rewards = [e.reward for e in joined(data_dir, "sdk-")]
    assert online["expectedReward"] == pytest.approx(sum(rewards) / len(rewards))
    low, high = online["confidenceInterval"]
    assert low <= online["expectedReward"] <= high
    assert results["Online"]["timeseries"]["data"]

    with pytest.raises(ResourceNotFoundError) as empty:
        analyst.create_evaluation("ev-none", {**body, "startTime": "2020-01-01T00:00:00Z",
                                              "endTime": "2020-01-02T00:00:00Z"})
    assert empty.value.error.code == "NoLogsExistInDateRange"
    analyst.create_evaluation("ev-2", {**body, "name": "second", "policies": [],
                                       "enablePolicyOptimization": False})
    # pages of one: the SDK follows the absolute nextLink
    listed = list(analyst.list_evaluations(params={"maxpagesize": 1}))
    assert [e["id"] for e in listed] == ["ev-1", "ev-2"]
    assert [e["id"] for e in analyst.list_evaluations(top=1, skip=1)] == ["ev-2"]

    with pytest.raises(HttpResponseError) as forbidden:
        analyst.apply_from_evaluation({"evaluationId": "ev-1", "policyName": "Optimized"})
    assert forbidden.value.status_code == 403
    admin.apply_from_evaluation({"evaluationId": "ev-1", "policyName": "Optimized"})
    policy = admin.get_policy()
    assert policy["name"] == "Optimized"
    assert policy["arguments"] == results["Optimized"]["arguments"].replace(
        " --epsilon 0.5", "")
    with pytest.raises(ResourceNotFoundError) as unknown:
        admin.apply_from_evaluation({"evaluationId": "ev-1", "policyName": "nothing"})
    assert unknown.value.error.code == "LearningSettingsNotFound"
    # the applied policy ranks: decisions go on under it
    assert rank(served.url, keys["client"], "after-apply").status_code == 201

    analyst.delete_evaluation("ev-1")
    with pytest.raises(ResourceNotFoundError) as gone:
        analyst.get_evaluation("ev-1", start_time=start, end_time=end)
    assert gone.value.error.code == "EvaluationNotFound"

    analyst.create_feature_importance("fi-1", {"name": "features", "startTime": _utc(start),
                                               "endTime": _utc(end)})
    importance = _finished(lambda: analyst.get_feature_importance("fi-1"))
    assert importance["status"] == "Succeeded", importance["description"]
    scores = importance["featureScores"]
    assert {(s["namespace"], s["featureName"]) for s in scores} == {
        ("Member", "country"), ("Member", "device"), ("Artwork", "theme")}
    assert max(s["score"] for s in scores) == 1.0
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    assert [f["id"] for f in analyst.list_feature_importances()] == ["fi-1"]
    analyst.delete_feature_importance("fi-1")
    with pytest.raises(ResourceNotFoundError) as gone:
        analyst.get_feature_importance("fi-1")
    assert gone.value.error.code == "FeatureImportanceNotFound"


def _joined_pages(data_dir: Path) -> list[dict]:
    logs = data_dir / "rows" / "logs"
    return [json.loads(line) for path in sorted(logs.rglob("*.dsjson"))
            for line in path.read_text().splitlines()] if logs.exists() else []


def test_a_multi_slot_evaluation_through_the_sdk_reports_each_slot(server) -> None:
    (served, *_), data_dir, keys, _ = server
    client = PersonalizerClient(served.url, AzureKeyCredential(keys["client"]))
    analyst = _client(served.url, keys["analyst"])
    actions = [{"id": name, "features": [{"Artwork": {"theme": name}}]}
               for name in ("comedy", "drama", "news")]
    slots = [{"id": "hero", "baselineAction": "comedy"},
             {"id": "side", "baselineAction": "drama"}]
    for i in range(N_EVENTS):
        page = client.rank_multi_slot({"contextFeatures": [{"Member": {"country": "BR"}}],
                                       "actions": actions, "slots": slots,
                                       "eventId": f"page-{i}"})
        shown = {slot["id"]: slot["rewardActionId"] for slot in page["slots"]}
        client.reward_multi_slot(f"page-{i}", {"reward": [
            {"slotId": "hero", "value": 1.0 if shown["hero"] == "news" else 0.0},
            {"slotId": "side", "value": 0.5}]})
    wait_until(lambda: len(_joined_pages(data_dir)) == N_EVENTS, seconds=60,
               what="the pages to be joined")
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    # today's single-slot log holds events too: multiSlot chooses the pages
    analyst.create_evaluation("ev-pages", {"name": "pages", "startTime": _utc(start),
                                           "endTime": _utc(end), "multiSlot": True})
    evaluation = _finished(lambda: analyst.get_evaluation("ev-pages", start_time=start,
                                                          end_time=end))
    assert evaluation["status"] == "Succeeded", evaluation["description"]
    results = {(p["slotId"], p["name"]): p for p in evaluation["content"]["value"]}
    assert set(results) == {(slot, name) for slot in ("", "hero", "side")
                            for name in ("Online", "Baseline", "Random")}
    lines = _joined_pages(data_dir)
    for k, slot in enumerate(("hero", "side")):
        mean = sum(-line["_outcomes"][k]["_label_cost"] for line in lines) / len(lines)
        online = results[slot, "Online"]["summary"]
        assert online["expectedReward"] == pytest.approx(mean)
        assert results[slot, "Online"]["timeseries"]["data"]
    assert results["side", "Random"]["summary"]["expectedReward"] == pytest.approx(0.5)
    analyst.delete_evaluation("ev-pages")


def _status(data_dir: Path, job_id: str) -> str:
    jobs = SQLiteJobStore.open(data_dir / "banditkit.sqlite3")
    try:
        return jobs.get("featureImportance", job_id).status
    finally:
        jobs.close()


def test_a_job_running_when_the_server_is_killed_runs_again_after_the_restart(server) -> None:
    served_list, data_dir, keys, root = server
    analyst = _client(served_list[0].url, keys["analyst"])
    # one policy run per feature over 6000 events: seconds, long enough to kill it
    analyst.create_feature_importance("fi-killed", {"name": "killed", "startTime": SIMULATED[0],
                                                    "endTime": SIMULATED[1]})
    wait_until(lambda: _status(data_dir, "fi-killed") == "Running", seconds=60,
               what="the job to start")
    time.sleep(1.0)
    kill(served_list[0])
    assert _status(data_dir, "fi-killed") == "Running"  # nobody finished it

    restarted = serve(data_dir, root / "serve-again.log")
    served_list.append(restarted)
    analyst = _client(restarted.url, keys["analyst"])
    job = _finished(lambda: analyst.get_feature_importance("fi-killed"), seconds=180)
    assert job["status"] == "Succeeded", job["description"]
    assert job["featureScores"][0]["score"] == 1.0
    report = requests.get(f"{restarted.url}/v1/featureImportances/fi-killed",
                          headers={"Ocp-Apim-Subscription-Key": keys["analyst"]},
                          timeout=10).json()
    assert report["attempts"] == 2
    recovered = [e for e in restarted.log() if e.get("message") == "job recovered"]
    assert recovered and recovered[0]["id"] == "fi-killed"
    assert "during attempt 1" in recovered[0]["reason"]
