"""Operator routes, the OpenAPI document and the learner thread."""

from __future__ import annotations

import json
import time

from server import close_app, create_app
from serving.openapi import openapi_path
from serving.runtime import FAILING_STEPS, BackgroundLearner, get_engine, get_learner
from tests.server.conftest import auth

ACTIONS = [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}]


def test_healthz(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_its_checks(client) -> None:
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"engine": "ok", "keys": "ok"}  # learner disabled here


def test_readyz_is_503_when_the_learner_died(tmp_path) -> None:
    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "LEARNER_INTERVAL_SECONDS": 0.05})
    try:
        assert app.test_client().get("/readyz").status_code == 200
        get_learner(app).stop()
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["learner"].startswith("failed")
    finally:
        close_app(app)


def test_readyz_is_503_when_the_learner_keeps_failing(tmp_path) -> None:
    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "LEARNER_INTERVAL_SECONDS": 0.05,
                      "ENGINE_SETTINGS": {"reward_wait_seconds": 0}, "AUTH_ENABLED": False})
    try:
        (tmp_path / "logs").write_text("a file where the log's folder belongs")
        app.test_client().post("/personalizer/v1.0/rank", json={"actions": ACTIONS})
        deadline = time.monotonic() + 20
        while get_learner(app).failures_in_a_row < FAILING_STEPS:
            assert time.monotonic() < deadline, "the learner step did not fail"
            time.sleep(0.05)
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        learner = response.get_json()["checks"]["learner"]
        assert learner.startswith("failed: the learner's last") and "steps failed" in learner
        (tmp_path / "logs").unlink()  # repaired: the next step succeeds, ready again
        while get_learner(app).failures_in_a_row:
            assert time.monotonic() < deadline, "the learner did not recover"
            time.sleep(0.05)
        assert app.test_client().get("/readyz").status_code == 200
    finally:
        close_app(app)


def test_readyz_of_a_worker_reads_the_learner_process_health(tmp_path) -> None:
    health = tmp_path / "learner.health"
    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "LEARNER_ENABLED": False,
                      "LEARNER_HEALTH_PATH": str(health)})
    try:
        assert app.test_client().get("/readyz").status_code == 200  # not started yet
        learner = BackgroundLearner(engine=get_engine(app), health_path=health)
        for _ in range(FAILING_STEPS):
            learner.guarded(lambda: 1 / 0)
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert "ZeroDivisionError" in response.get_json()["checks"]["learner"]
        learner.guarded(lambda: 0)
        assert app.test_client().get("/readyz").status_code == 200
        stale = json.loads(health.read_text()) | {"at": time.time() - 3600}
        health.write_text(json.dumps(stale))
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["learner"].startswith(
            "failed: the learner wrote no step for")
    finally:
        close_app(app)


def test_metrics_count_decisions_rewards_and_latency(client, keys) -> None:
    headers = auth(keys["client"])
    for _ in range(3):
        event_id = client.post("/personalizer/v1.0/rank", headers=headers,
                               json={"actions": ACTIONS}).get_json()["eventId"]
    client.post(f"/v1/events/{event_id}/reward", headers=headers, json={"value": 1})
    client.post("/v1/events/nope/reward", headers=headers, json={"value": 1})
    response = client.get("/metrics")
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'banditkit_decisions_total{route="personalizer"} 3.0' in text
    assert 'banditkit_rewards_total{late="false",route="v1"} 1.0' in text
    assert 'banditkit_rank_seconds_count{route="personalizer"} 3.0' in text
    assert 'banditkit_rejected_requests_total{status="404"} 1.0' in text
    version = client.post("/personalizer/v1.0/rank", headers=headers,
                          json={"actions": ACTIONS}).headers["X-Banditkit-Model-Version"]
    assert f"banditkit_model_version {float(version)}" in client.get("/metrics").get_data(
        as_text=True)


def test_openapi_documents_every_route(app) -> None:
    spec = app.test_client().get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (openapi_path(rule.rule), method.lower()) in documented, rule.rule
    assert len(documented) == sum(
        len(rule.methods - {"HEAD", "OPTIONS"}) for rule in app.url_map.iter_rules())


def test_openapi_roles_match_the_routes(app) -> None:
    # x-banditkit-roles in the document is what the decorators enforce.
    spec = app.test_client().get("/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        roles = getattr(view, "banditkit_roles", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = spec["paths"][openapi_path(rule.rule)][method.lower()]
            assert operation.get("x-banditkit-roles") == (list(roles) if roles else None), (
                rule.rule, method)


def test_background_learner_steps_and_stops(tmp_path) -> None:
    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "LEARNER_INTERVAL_SECONDS": 0.02})
    learner = get_learner(app)
    deadline = time.monotonic() + 5
    while "banditkit_learner_last_run_timestamp_seconds 0.0" in _metrics(app):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    close_app(app)
    assert not learner.alive
    close_app(app)  # idempotent


def test_the_learner_stops_at_once_between_steps(tmp_path) -> None:
    # The runner waits on its stop event: a long interval does not delay a stop.
    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "LEARNER_INTERVAL_SECONDS": 60})
    learner = get_learner(app)
    time.sleep(0.2)  # the first step ran; the runner waits out its interval
    started = time.monotonic()
    close_app(app)
    assert not learner.alive
    assert time.monotonic() - started < 5


def _join_lag(app) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    (lag,) = [sample.value for family in text_string_to_metric_families(_metrics(app))
              for sample in family.samples if sample.name == "banditkit_join_lag_seconds"]
    return lag


def test_join_lag_is_the_time_since_the_learner_last_stepped(tmp_path) -> None:
    app = create_app({"ENGINE_DATA_DIR": str(tmp_path / "on"), "LEARNER_INTERVAL_SECONDS": 0.02})
    idle = create_app({"ENGINE_DATA_DIR": str(tmp_path / "off"), "LEARNER_ENABLED": False})
    try:
        deadline = time.monotonic() + 5
        while "banditkit_learner_last_run_timestamp_seconds 0.0" in _metrics(app):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # It steps every 0.02 s: a second is room for a loaded machine.
        assert 0.0 <= _join_lag(app) < 1.0
        get_learner(app).stop()
        time.sleep(0.3)
        assert _join_lag(app) >= 0.3  # a stopped learner falls behind
        # No learner at all: nothing has been joined since the app started.
        assert _join_lag(idle) >= 0.3
    finally:
        close_app(app)
        close_app(idle)


def _metrics(app) -> str:
    return app.test_client().get("/metrics").get_data(as_text=True)


def test_flask_learn_command(runner) -> None:
    result = runner.invoke(args=["learn"])
    assert result.exit_code == 0, result.output
    assert "processed 0 events" in result.output


def test_engine_options_come_from_the_engine_namespace(tmp_path) -> None:
    # ENGINE_* keys other than DATA_DIR/SETTINGS/FACTORY are Engine.open kwargs.
    from serving.runtime import get_engine

    seen = {}

    def factory(data_dir, **options):
        from banditkit.engine import Engine

        seen.update(options, data_dir=data_dir)
        return Engine.open(data_dir, **options)

    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "ENGINE_FACTORY": factory,
                      "ENGINE_MAX_ACTIONS": 3, "ENGINE_SETTINGS": {"default_reward": -1.0},
                      "LEARNER_ENABLED": False})
    try:
        assert seen["max_actions"] == 3
        assert seen["data_dir"] == tmp_path
        assert get_engine(app).max_actions == 3
        assert get_engine(app).settings.default_reward == -1.0
    finally:
        close_app(app)
