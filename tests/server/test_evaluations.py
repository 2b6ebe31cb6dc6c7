"""Personalizer's evaluation and feature-importance jobs through HTTP, run by the job runner.

One app over a data directory whose joined log was written by banditkit's own
online learner in a world with known truth (``ArtworkWorld``); the job runner
is driven a job at a time (``run_once``) in the test's process, as the learner
process drives it in ``banditkit serve`` (tests/server/test_evaluations_sdk.py).
The tests that wait for a job's run are slow ones; the checks of requests are not.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import pytest

from banditkit.engine import Engine
from banditkit.store.jobs import SQLiteJobStore
from banditkit.vw import VWLearner
from server import close_app, create_app
from serving.jobs import JobLimits, JobRunner
from simulator.learnerlog import write_learner_log
from simulator.world import ArtworkWorld
from tests.server.conftest import FAST_SETTINGS, auth, make_keys

ONLINE = "--cb_explore_adf --epsilon 0.2 -q ::"
NO_INTERACTIONS = "--cb_explore_adf --epsilon 0.2"
N_EVENTS = 6000
# 6000 decisions one second apart from 2023-11-14T22:13:20Z
START, END = "2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z"
V = "?api-version=2022-09-01-preview"
EVALUATIONS = "/personalizer/evaluations"
FEATURES = "/personalizer/featureImportances"
# Small search and one process: a job of this module takes about a second.
LIMITS = JobLimits(workers=1, search_max_candidates=3, search_samples=1)


@pytest.fixture(scope="module")
def world():
    return ArtworkWorld.generate(seed=0, n_members=500, n_titles=20, n_variants=4)


def _served(world, data_dir, n_events):
    """The app, its keys and a job runner over a data dir holding the learner's log."""
    write_learner_log(world, VWLearner(args=ONLINE),
                      data_dir / "logs" / "dt=2023-11-14" / "events.dsjson",
                      n_rounds=n_events, seed=1, seconds_between=1.0)
    keys = make_keys(data_dir)
    app = create_app({"TESTING": True, "ENGINE_DATA_DIR": str(data_dir),
                      "ENGINE_SETTINGS": {**FAST_SETTINGS, "exploration_percentage": 0.2},
                      "LEARNER_ENABLED": False})
    engine = Engine.open(data_dir)
    runner = JobRunner(jobs=SQLiteJobStore.open(data_dir / "banditkit.sqlite3"),
                       engine=engine, limits=LIMITS)
    yield app.test_client(), keys, runner
    runner.jobs.close()
    engine.close()
    close_app(app)


@pytest.fixture(scope="module")
def served(world, tmp_path_factory):
    """Over the whole log: what the jobs' results are checked on."""
    yield from _served(world, tmp_path_factory.mktemp("evaluations") / "data", N_EVENTS)


@pytest.fixture(scope="module")
def requests_only(world, tmp_path_factory):
    """Over 300 events: enough for the checks of requests, which run no job."""
    yield from _served(world, tmp_path_factory.mktemp("requests") / "data", 300)


def _put(client, path, key, body):
    return client.put(f"{path}{V}", json=body, headers=auth(key))


def _evaluation(client, key, job_id, **body):
    body = {"name": job_id, "startTime": START, "endTime": END, **body}
    return _put(client, f"{EVALUATIONS}/{job_id}", key, body)


@pytest.fixture(scope="module")
def evaluated(served):
    """One evaluation with a Custom policy and optimization, run to its end."""
    client, keys, runner = served
    response = _evaluation(client, keys["analyst"], "main",
                           policies=[{"name": "no-interactions",
                                      "arguments": NO_INTERACTIONS}],
                           enablePolicyOptimization=True)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "NotSubmitted"
    job = runner.run_once()
    assert job.status == "Succeeded", job.message
    return client.get(f"{EVALUATIONS}/main{V}&startTime={START}&endTime={END}",
                      headers=auth(keys["analyst"])).json


def _policy(evaluation, name):
    return next(p for p in evaluation["content"]["value"] if p["name"] == name)


@pytest.mark.slow  # shares the evaluation run by the job runner (about 5 s)
def test_online_is_the_plain_log_average_within_its_interval(evaluated, served):
    client, keys, runner = served
    online = _policy(evaluated, "Online")
    rewards = np.array([e.reward for e in _events(runner)])
    # the online policy's importance weights are all 1: SNIPS is the mean reward
    assert online["summary"]["expectedReward"] == pytest.approx(rewards.mean(), rel=1e-12)
    low, high = online["summary"]["confidenceInterval"]
    assert low < rewards.mean() < high and online["policySource"] == "Online"


def _events(runner):
    from banditkit.eventlog import read_events

    return list(read_events([runner.engine.log.root]))


@pytest.mark.slow  # shares the evaluation run by the job runner (about 5 s)
def test_random_and_baseline_hold_their_exact_values(evaluated, world):
    baseline = np.zeros(world.take_probability.shape)
    baseline[..., 0] = 1.0  # the first action of _multi is variant 0
    # seeded 95 % intervals, standard errors about 0.007 and 0.016 on 6000
    # events, far above the estimators' O(1/n) bias
    for name, policy in (("Random", world.uniform_policy()), ("Baseline", baseline)):
        low, high = _policy(evaluated, name)["summary"]["confidenceInterval"]
        assert low < world.policy_value(policy) < high, name


@pytest.mark.slow  # shares the evaluation run by the job runner (about 5 s)
def test_the_result_has_personalizers_shape(evaluated):
    assert evaluated["status"] == "Succeeded" and evaluated["evaluationType"] == "Manual"
    assert evaluated["optimalPolicy"] == "Optimized"
    sources = [p["policySource"] for p in evaluated["content"]["value"]]
    assert sources == ["Online", "Baseline", "Random", "Custom", "OfflineExperimentation"]
    optimized = _policy(evaluated, "Optimized")
    assert optimized["summary"]["expectedReward"] >= _policy(
        evaluated, "no-interactions")["summary"]["expectedReward"]
    assert "--epsilon 0.2" in optimized["arguments"]
    content = evaluated["content"]
    assert content["intervalInMinutes"] == 5
    points = _policy(evaluated, "Online")["timeseries"]["data"]
    assert set(points[0]) == {"timeStamp", "expectedReward", "confidenceInterval"}
    # the last Expanding point is the summary
    for policy in content["value"]:
        assert policy["timeseries"]["data"][-1]["expectedReward"] == pytest.approx(
            policy["summary"]["expectedReward"], rel=1e-9)


@pytest.mark.slow  # shares the evaluation run by the job runner (about 5 s)
def test_the_time_series_follows_the_query(evaluated, served):
    client, keys, _ = served
    rolling = client.get(f"{EVALUATIONS}/main{V}&startTime=2023-11-14T23:00:00Z"
                         f"&endTime={END}&intervalInMinutes=60&window=Rolling",
                         headers=auth(keys["analyst"])).json
    (point,) = _policy(rolling, "Online")["timeseries"]["data"]
    assert point["timeStamp"] == "2023-11-14T23:00:00Z"
    # the summary stays the whole evaluation's
    assert _policy(rolling, "Online")["summary"] == _policy(evaluated, "Online")["summary"]
    bad = client.get(f"{EVALUATIONS}/main{V}&intervalInMinutes=7",
                     headers=auth(keys["analyst"]))
    assert bad.status_code == 400 and "intervalInMinutes" in bad.json["error"]["message"]


@pytest.mark.slow  # shares the evaluation run by the job runner (about 5 s)
def test_the_full_report_has_every_diagnostic(evaluated, served):
    client, keys, _ = served
    report = client.get("/v1/evaluations/main", headers=auth(keys["analyst"])).json
    online = next(p for p in report["result"]["value"] if p["name"] == "Online")
    assert online["estimates"]["snips"]["ess"] == pytest.approx(N_EVENTS)
    assert "weight_quantiles" in online["estimates"]["snips"]
    assert report["result"]["search"]["trace"] and report["result"]["nEvents"] == N_EVENTS
    assert report["request"]["policies"][0]["name"] == "no-interactions"


def test_create_is_idempotent_and_a_changed_body_conflicts(requests_only):
    client, keys, _ = requests_only
    body = {"policies": [{"name": "a", "arguments": NO_INTERACTIONS}]}
    first = _evaluation(client, keys["analyst"], "retry", **body)
    again = _evaluation(client, keys["analyst"], "retry", **body)
    assert first.status_code == again.status_code == 200
    assert first.json["creationTime"] == again.json["creationTime"]
    other = _evaluation(client, keys["analyst"], "retry", enablePolicyOptimization=True)
    assert other.status_code == 409
    assert other.json["error"]["code"] == other.headers["x-ms-error-code"] == \
        "EvaluationAlreadyExists"
    deleted = client.delete(f"{EVALUATIONS}/retry{V}", headers=auth(keys["analyst"]))
    assert deleted.status_code == 204
    gone = client.get(f"{EVALUATIONS}/retry{V}", headers=auth(keys["analyst"]))
    assert gone.status_code == 404 and gone.json["error"]["code"] == "EvaluationNotFound"


@pytest.mark.parametrize(("body", "status", "code", "where"), [
    ({"startTime": "2024-01-01T00:00:00Z", "endTime": "2024-01-02T00:00:00Z"}, 404,
     "NoLogsExistInDateRange", "2024-01-01"),
    ({"startTime": END, "endTime": START}, 404, "NoLogsExistInDateRange", "the range is empty"),
    ({"policies": [{"name": "x", "arguments": "--cb_explore_adf -f /tmp/m"}]}, 400,
     "InvalidPolicyContract", "may not use '-f'"),
    ({"policies": [{"name": "x", "arguments": "--epsilon 0.1"}]}, 400,
     "InvalidPolicyContract", "--cb_explore_adf"),
    ({"policies": [{"name": "online", "arguments": NO_INTERACTIONS}]}, 400,
     "InvalidPolicyContract", "must differ from Online"),
    ({"policies": [{"name": "x", "arguments": NO_INTERACTIONS},
                   {"name": "X", "arguments": ONLINE}]}, 400,
     "DuplicateCustomPolicyNames", "'X' is repeated"),
    ({"startTime": "yesterday"}, 400, "InvalidEvaluationContract", "RFC 3339"),
])
def test_bad_requests_name_the_problem(requests_only, body, status, code, where):
    client, keys, _ = requests_only
    response = _evaluation(client, keys["analyst"], "bad", **body)
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code
    assert where in response.json["error"]["message"]


def test_lists_page_with_absolute_next_links(requests_only):
    client, keys, _ = requests_only
    for name in ("page-1", "page-2", "page-3"):
        assert _evaluation(client, keys["analyst"], name).status_code == 200
    url = f"{EVALUATIONS}{V}&maxpagesize=2"
    seen = []
    while url:
        page = client.get(url, headers=auth(keys["analyst"])).json
        assert len(page["value"]) <= 2
        seen += [item["id"] for item in page["value"]]
        url = page.get("nextLink")
        if url:
            parts = urlsplit(url)
            assert parts.scheme == "http" and "api-version=2022-09-01-preview" in parts.query
            url = f"{parts.path}?{parts.query}"
    assert {"page-1", "page-2", "page-3"} <= set(seen) and len(seen) == len(set(seen))
    top = client.get(f"{EVALUATIONS}{V}&top=1&skip=1", headers=auth(keys["analyst"])).json
    assert len(top["value"]) == 1 and "nextLink" not in top
    manual = client.get(f"{EVALUATIONS}{V}&filter=evaluationType eq 'Auto'",
                        headers=auth(keys["analyst"])).json
    assert manual["value"] == []
    bad = client.get(f"{EVALUATIONS}{V}&filter=name eq 'x'", headers=auth(keys["analyst"]))
    assert bad.status_code == 400 and bad.json["error"]["target"] == "filter"


def test_roles_guard_the_routes(requests_only):
    client, keys, _ = requests_only
    assert _evaluation(client, keys["client"], "by-client").status_code == 403
    apply = client.post(f"/personalizer/configurations/applyFromEvaluation{V}",
                        json={"evaluationId": "main", "policyName": "Optimized"},
                        headers=auth(keys["analyst"]))
    assert apply.status_code == 403


@pytest.mark.slow  # shares the evaluation run by the job runner (about 5 s)
def test_apply_makes_the_policy_and_its_model_live(evaluated, served):
    client, keys, _ = served
    path = f"/personalizer/configurations/applyFromEvaluation{V}"

    def apply(evaluation_id, name):
        return client.post(path, json={"evaluationId": evaluation_id, "policyName": name},
                           headers=auth(keys["admin"]))

    assert apply("main", "baseline").json["error"]["code"] == "LearningSettingsNotFound"
    assert apply("nothing", "Optimized").json["error"]["code"] == "EvaluationNotFound"
    assert _evaluation(client, keys["analyst"], "queued").status_code == 200
    refused = apply("queued", "Online")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "OperationNotAllowed"
    assert apply("main", "online").status_code == 204  # the live policy already
    response = apply("main", "optimized")
    assert response.status_code == 204, response.json
    policy = client.get(f"/personalizer/configurations/policy{V}",
                        headers=auth(keys["admin"])).json
    arguments = _policy(evaluated, "Optimized")["arguments"]
    assert policy["name"] == "Optimized"
    assert policy["arguments"] == arguments.replace(" --epsilon 0.2", "")
    # the evaluation's model ranks now (its exploration is the live one)
    assert served[2].engine.store.latest_model().origin == "apply"


@pytest.mark.slow  # one VW run per feature over 6000 events: about 20 s in one process
def test_feature_importance_ranks_the_driving_feature_first(served):
    client, keys, runner = served
    body = {"name": "fi", "startTime": START, "endTime": END}
    assert _put(client, f"{FEATURES}/fi", keys["analyst"], body).status_code == 200
    while (job := runner.run_once()).job_id != "fi":  # evaluations queued by other tests
        assert job.status == "Succeeded", job.message
    assert job.kind == "featureImportance" and job.status == "Succeeded", job.message
    result = client.get(f"{FEATURES}/fi{V}", headers=auth(keys["analyst"])).json
    scores = result["featureScores"]
    assert scores[0] == {"namespace": "Artwork", "featureName": "theme", "score": 1.0}
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    report = client.get("/v1/featureImportances/fi", headers=auth(keys["analyst"])).json
    assert report["result"]["featureScores"][0]["confidenceInterval"][0] > 0
    listed = client.get(f"{FEATURES}{V}", headers=auth(keys["analyst"])).json["value"]
    assert [item["id"] for item in listed] == ["fi"]
    assert client.delete(f"{FEATURES}/fi{V}", headers=auth(keys["analyst"])).status_code == 204
    gone = client.get(f"{FEATURES}/fi{V}", headers=auth(keys["analyst"]))
    assert gone.json["error"]["code"] == "FeatureImportanceNotFound"


def _drain(runner, job_id):
    """Run queued jobs until ``job_id`` has run; its job."""
    while (job := runner.run_once()).job_id != job_id:
        assert job.status == "Succeeded", job.message
    return job


@pytest.mark.slow  # an auto-optimization's search: about 2 to 4 s
def test_auto_optimization_is_configured_and_keeps_an_online_policy_it_cannot_beat(served):
    client, keys, runner = served
    path = f"/personalizer/configurations/service{V}"
    configuration = client.get(path, headers=auth(keys["admin"])).json
    assert configuration["isAutoOptimizationEnabled"] is False
    too_often = client.put(path, headers=auth(keys["admin"]), json={
        **configuration, "isAutoOptimizationEnabled": True, "autoOptimizationFrequency": "PT5M"})
    assert too_often.status_code == 400 and "at least PT1H" in too_often.json["error"]["message"]
    answer = client.put(path, headers=auth(keys["admin"]), json={
        **configuration, "isAutoOptimizationEnabled": True, "autoOptimizationFrequency": "P1D",
        "autoOptimizationStartDate": START})
    assert answer.status_code == 200, answer.json
    assert answer.json["isAutoOptimizationEnabled"] is True
    assert answer.json["autoOptimizationFrequency"] == "P1D"
    assert answer.json["autoOptimizationStartDate"] == START

    end_of_log = 1.7e9 + N_EVENTS
    assert runner.schedule(now=1.6e9) is None  # before the start date
    job = runner.schedule(now=end_of_log)
    assert job.job_type == "Auto" and job.request["enablePolicyOptimization"]
    assert runner.schedule(now=end_of_log + 3600) is None  # the next one is a day later
    policy_before = client.get(f"/personalizer/configurations/policy{V}",
                               headers=auth(keys["admin"])).json
    done = _drain(runner, job.job_id)
    evaluation = client.get(f"{EVALUATIONS}/{job.job_id}{V}", headers=auth(keys["admin"])).json
    # the log was written by a -q :: learner, which the small search cannot beat
    # beyond both intervals: the optimum's lower bound is under the online upper one
    online, best = _policy(evaluation, "Online"), _policy(evaluation, "Optimized")
    assert best["summary"]["confidenceInterval"][0] <= online["summary"][
        "confidenceInterval"][1]
    assert done.status == "OnlinePolicyRetained", done.message
    assert evaluation["status"] == "OnlinePolicyRetained"
    assert evaluation["evaluationType"] == "Auto"
    assert client.get(f"/personalizer/configurations/policy{V}",
                      headers=auth(keys["admin"])).json == policy_before
    autos = client.get(f"{EVALUATIONS}{V}&filter=evaluationType eq 'Auto'",
                       headers=auth(keys["analyst"])).json["value"]
    assert [a["id"] for a in autos] == [job.job_id]


@pytest.mark.slow  # a second world, its log and a search: about 5 s
def test_auto_optimization_applies_an_optimum_that_beats_the_online_policy(world, tmp_path):
    from ope.personalizer import OPTIMIZED
    from serving.jobs import AutoOptimization
    from simulator.worldlog import sample_log, write_world_log

    # logged by a policy showing each title's worst variant 70 % of the time (true
    # value 0.072): even the uniform policy (0.129) beats it beyond both intervals
    worst = world.take_probability.argmin(axis=-1)[..., None]
    logging = np.full(world.take_probability.shape, 0.1)
    np.put_along_axis(logging, worst, 0.7, axis=-1)
    log = sample_log(world, logging, n_rounds=N_EVENTS, seed=1)
    write_world_log(log, tmp_path / "logs" / "dt=2023-11-14" / "events.dsjson")
    engine = Engine.open(tmp_path, settings=Engine.open(tmp_path).settings.replace(
        exploration_percentage=0.2, policy_args=ONLINE))
    jobs = SQLiteJobStore.open(tmp_path / "banditkit.sqlite3")
    runner = JobRunner(jobs=jobs, engine=engine, limits=LIMITS)
    AutoOptimization(enabled=True, frequency_seconds=86400.0).write(engine.store)
    job = runner.schedule(now=1.7e9 + N_EVENTS)
    done = runner.run_once()
    assert done.job_id == job.job_id and done.status == "OptimalPolicyApplied", done.message
    best = next(p for p in done.result["value"] if p["name"] == OPTIMIZED)
    online = next(p for p in done.result["value"] if p["name"] == "Online")
    assert best["summary"]["confidenceInterval"][0] > online["summary"]["confidenceInterval"][1]
    assert engine.settings.policy_args == best["arguments"].replace(" --epsilon 0.2", "")
    assert engine.store.latest_model().origin == "apply"
    jobs.close()
    engine.close()


def test_a_queued_job_runs_to_its_result_or_fails_with_the_reason(requests_only):
    client, keys, runner = requests_only
    assert _evaluation(client, keys["analyst"], "quick").status_code == 200
    done = _drain(runner, "quick")
    assert done.status == "Succeeded" and done.attempts == 1, done.message
    evaluation = client.get(f"{EVALUATIONS}/quick{V}", headers=auth(keys["analyst"])).json
    assert [p["name"] for p in evaluation["content"]["value"]] == ["Online", "Baseline", "Random"]
    rewards = [e.reward for e in _events(runner)]
    assert _policy(evaluation, "Online")["summary"]["expectedReward"] == pytest.approx(
        sum(rewards) / len(rewards), rel=1e-12)
    # a job that cannot run as asked is a 200 whose status and description say why
    narrow = JobRunner(jobs=runner.jobs, engine=runner.engine,
                       limits=JobLimits(workers=1, max_features=1))
    body = {"name": "too many", "startTime": START, "endTime": END}
    assert _put(client, f"{FEATURES}/many", keys["analyst"], body).status_code == 200
    assert narrow.run_once().status == "Failed"
    failed = client.get(f"{FEATURES}/many{V}", headers=auth(keys["analyst"]))
    assert failed.status_code == 200 and failed.json["status"] == "Failed"
    assert "more than max_features=1" in failed.json["description"]
    assert "featureScores" not in failed.json
