"""The analyst's routes on real engine data: list, export and evaluate the decision log.

Events are made the way a client makes them (rank -> reward over HTTP, then the
learner step), on an engine whose clock the test sets, so that they land in
known date partitions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main as banditkit_cli
from server import close_app, create_app
from serving.runtime import get_engine
from tests.server.conftest import FAST_SETTINGS, auth

CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}]
ACTIONS = [
    {"id": "bad", "features": [{"Artwork": {"theme": "horror"}}]},
    {"id": "good", "features": [{"Artwork": {"theme": "comedy"}}]},
    {"id": "meh", "features": [{"Artwork": {"theme": "drama"}}]},
]
# Events per day; 2024-03-03 has none (a gap inside a range).
DAYS = {"2024-03-01": 12, "2024-03-02": 8, "2024-03-04": 5}
ROUTES = [("get", "/v1/logs", None),
          ("get", "/v1/logs/export?from=2024-03-01&to=2024-03-04", None),
          ("post", "/v1/evaluations", {"from": "2024-03-01", "to": "2024-03-04"})]


class Clock:
    """A settable engine clock (Unix seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _noon(day: str) -> float:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC).timestamp()


@pytest.fixture
def app(data_dir: Path, keys: dict[str, str]):
    # conftest's build_app, plus a settable clock and small export blocks.
    clock = Clock()
    app = create_app({
        "TESTING": True,
        "ENGINE_DATA_DIR": str(data_dir),
        "ENGINE_SETTINGS": FAST_SETTINGS,
        "ENGINE_CLOCK": clock,
        "LEARNER_ENABLED": False,
        "RANK_MAX_ACTIONS": 10,
        "SERVER_MAX_BODY_BYTES": 64 * 1024,
        "ANALYST_EXPORT_CHUNK_BYTES": 512,
    })
    app.extensions["test_clock"] = clock
    yield app
    close_app(app)


@pytest.fixture
def logged(app, client, keys) -> dict[str, Path]:
    """Rank, reward and join the events of DAYS; returns each day's partition file."""
    clock = app.extensions["test_clock"]
    headers = auth(keys["client"])
    for day, n_events in DAYS.items():
        clock.now = _noon(day)
        for index in range(n_events):
            deferred = index == n_events - 1  # never activated: logged with _skipLearn
            decision = client.post("/personalizer/v1.0/rank", headers=headers, json={
                "contextFeatures": CONTEXT, "actions": ACTIONS,
                "eventId": f"{day}-{index}", "deferActivation": deferred}).get_json()
            if index % 3 == 2:
                continue  # no reward: the default reward (0) is joined
            value = 1.0 if decision["rewardActionId"] == "good" else 0.25
            response = client.post(f"/v1/events/{decision['eventId']}/reward",
                                   headers=headers, json={"value": value})
            assert response.status_code == 204
            clock.now += 1.0
        clock.now += 60.0  # past the reward wait of every event of the day
        assert get_engine(app).process_due() == n_events
    root = Path(app.config["ENGINE_DATA_DIR"]) / "logs"
    files = {day: root / f"dt={day}" / "events.dsjson" for day in DAYS}
    assert all(path.is_file() for path in files.values())
    return files


def _records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


# --------------------------------------------------------------------------- listing


def test_listing_shows_each_partition_with_its_events(client, keys, logged) -> None:
    response = client.get("/v1/logs", headers=auth(keys["analyst"]))
    assert response.status_code == 200
    body = response.get_json()
    assert [p["date"] for p in body["partitions"]] == list(DAYS)
    for partition in body["partitions"]:
        path = logged[partition["date"]]
        records = _records(path.read_bytes())
        assert partition["events"] == DAYS[partition["date"]] == len(records)
        assert partition["bytes"] == path.stat().st_size
        stamps = sorted(r["Timestamp"] for r in records)
        assert (partition["firstTimestamp"], partition["lastTimestamp"]) == (stamps[0],
                                                                             stamps[-1])
        assert stamps[0].startswith(partition["date"])
    assert body["events"] == sum(DAYS.values())
    assert body["bytes"] == sum(path.stat().st_size for path in logged.values())


def test_an_empty_log_lists_no_partition(client, keys) -> None:
    body = client.get("/v1/logs", headers=auth(keys["admin"])).get_json()
    assert body == {"partitions": [], "events": 0, "bytes": 0}


# --------------------------------------------------------------------------- export


def test_export_is_the_log_files_byte_for_byte(client, keys, logged) -> None:
    response = client.get("/v1/logs/export?from=2024-03-01&to=2024-03-04",
                          headers=auth(keys["analyst"]))
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="banditkit-events-2024-03-01_2024-03-04.ndjson"')
    assert response.data == b"".join(logged[day].read_bytes() for day in DAYS)


@pytest.mark.parametrize("start, end, days", [
    ("2024-03-02", "2024-03-02", ["2024-03-02"]),
    ("2024-03-02", "2024-03-03", ["2024-03-02"]),
    ("2024-02-20", "2024-03-01", ["2024-03-01"]),
    ("2024-03-03", "2024-03-03", []),
    ("2024-03-05", "2025-03-05", []),  # 366 days: the longest range allowed
])
def test_export_respects_the_date_range(client, keys, logged, start, end, days) -> None:
    response = client.get(f"/v1/logs/export?from={start}&to={end}",
                          headers=auth(keys["analyst"]))
    assert response.status_code == 200
    assert response.data == b"".join(logged[day].read_bytes() for day in days)
    assert {r["Timestamp"][:10] for r in _records(response.data)} == set(days)


def test_export_streams_whole_lines_in_blocks(app, client, keys, logged) -> None:
    expected = b"".join(logged[day].read_bytes() for day in DAYS)
    response = client.get("/v1/logs/export?from=2024-03-01&to=2024-03-04",
                          headers=auth(keys["analyst"]), buffered=False)
    assert response.status_code == 200
    assert response.is_streamed
    assert "Content-Length" not in response.headers
    chunks = list(response.response)
    response.close()
    # ANALYST_EXPORT_CHUNK_BYTES=512: the files are sent in many blocks, each of
    # whole lines (a block holds at least one line, so about 512 bytes or one line).
    assert len(chunks) > len(DAYS)
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert b"".join(chunks) == expected


def test_a_line_being_appended_is_neither_exported_nor_counted(client, keys, logged) -> None:
    path = logged["2024-03-04"]
    complete = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"_label_cost":-1,"_label_probability":0.5,"Timest')  # half a line
    analyst = auth(keys["analyst"])
    exported = client.get("/v1/logs/export?from=2024-03-04&to=2024-03-04", headers=analyst)
    assert exported.data == complete
    listed = client.get("/v1/logs", headers=analyst).get_json()["partitions"][-1]
    assert (listed["events"], listed["bytes"]) == (DAYS["2024-03-04"], len(complete))


# --------------------------------------------------------------------------- evaluation


def _observed_mean_reward(client, keys) -> tuple[float, int]:
    data = client.get("/v1/logs/export?from=2024-03-01&to=2024-03-04",
                      headers=auth(keys["analyst"])).data
    rewards = [-r["_label_cost"] for r in _records(data) if not r.get("_skipLearn")]
    return sum(rewards) / len(rewards), len(rewards)


def test_evaluation_of_the_logged_policy_is_the_observed_mean(app, client, keys,
                                                               logged) -> None:
    mean, n_rounds = _observed_mean_reward(client, keys)
    assert n_rounds == sum(DAYS.values()) - len(DAYS)  # one skipped event a day
    response = client.post("/v1/evaluations", headers=auth(keys["analyst"]), json={
        "from": "2024-03-01", "to": "2024-03-04",
        "policies": ["logged", "uniform", "baseline", "model:latest"],
        "estimators": ["ips", "snips", "dr"]})
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    latest = get_engine(app).store.latest_model_version()
    assert list(report["policies"]) == ["logged", "uniform", "baseline", f"model:v{latest}"]
    assert (report["from"], report["to"], report["n_rounds"]) == ("2024-03-01", "2024-03-04",
                                                                  n_rounds)
    assert report["notes"]["skipped_not_activated"] == len(DAYS)
    assert report["estimates"] == report["policies"]["logged"]["estimates"]
    logged_estimates = report["policies"]["logged"]["estimates"]
    # Every weight of the logged policy is 1: IPS and SNIPS are the plain mean.
    for name in ("ips", "snips"):
        assert logged_estimates[name]["value"] == pytest.approx(mean, abs=1e-9)
    for policy, entry in report["policies"].items():
        assert list(entry["estimates"]) == ["ips", "snips", "dr"]
        for name, estimate in entry["estimates"].items():
            low, high = estimate["ci"]
            assert low is not None and high is not None, (policy, name)
            assert low <= estimate["value"] <= high, (policy, name)
            assert estimate["n_rounds"] == n_rounds


def test_evaluation_is_what_the_cli_prints(app, client, keys, logged) -> None:
    body = {"from": "2024-03-01", "to": "2024-03-04",
            "policies": ["logged", "uniform", "offline"], "estimators": ["ips", "dr", "switch_dr"]}
    report = client.post("/v1/evaluations", headers=auth(keys["analyst"]), json=body).get_json()
    result = CliRunner().invoke(banditkit_cli, [
        "evaluate", *[str(logged[day]) for day in DAYS], "--json",
        "--data-dir", app.config["ENGINE_DATA_DIR"], "--estimators", "ips,dr,switch_dr",
        "--policy", "logged", "--policy", "uniform", "--policy", "offline"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output.strip().splitlines()[-1])
    assert report == {"from": "2024-03-01", "to": "2024-03-04", **printed}


@pytest.mark.slow
def test_each_estimator_threshold_is_its_own(app, client, keys, logged) -> None:
    body = {"from": "2024-03-01", "to": "2024-03-04", "policies": ["uniform"],
            "estimators": ["clipped_ips", "switch_dr", "dros"]}

    def values(**thresholds: float) -> dict[str, float]:
        response = client.post("/v1/evaluations", headers=auth(keys["analyst"]),
                               json={**body, **thresholds})
        assert response.status_code == 200, response.get_json()
        return {name: e["value"] for name, e in response.get_json()["estimates"].items()}

    default = values()
    # Uniform over 3 actions against a 20 %-exploring log: weights reach 5, so
    # a cap of 1 clips, and would change Switch-DR and DRos if it reached them.
    capped = values(maxWeight=1)
    assert capped["clipped_ips"] != pytest.approx(default["clipped_ips"])
    assert (capped["switch_dr"], capped["dros"]) == (default["switch_dr"], default["dros"])
    own = values(switchTau=1, drosShrinkage=1)
    assert own["switch_dr"] != pytest.approx(default["switch_dr"])
    assert own["dros"] != pytest.approx(default["dros"])
    result = CliRunner().invoke(banditkit_cli, [
        "evaluate", *[str(logged[day]) for day in DAYS], "--json",
        "--data-dir", app.config["ENGINE_DATA_DIR"], "--estimators", "clipped_ips,switch_dr,dros",
        "--policy", "uniform", "--switch-tau", "1", "--dros-shrinkage", "1"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output.strip().splitlines()[-1])
    assert own == {name: e["value"] for name, e in printed["estimates"].items()}


def test_evaluation_defaults_are_the_clis(client, keys, logged) -> None:
    report = client.post("/v1/evaluations", headers=auth(keys["admin"]),
                         json={"from": "2024-03-02", "to": "2024-03-02"}).get_json()
    assert list(report["policies"]) == ["logged", "baseline", "uniform"]
    assert list(report["estimates"]) == ["ips", "snips", "dr"]
    assert report["n_rounds"] == DAYS["2024-03-02"] - 1


def test_an_evaluation_while_the_worker_runs_its_limit_is_429(app, client, keys,
                                                              logged) -> None:
    body = {"from": "2024-03-02", "to": "2024-03-02"}
    slots = app.extensions["banditkit.analyst.evaluation_slots"]
    assert slots.acquire(blocking=False)  # as a running evaluation holds it
    try:
        busy = client.post("/v1/evaluations", headers=auth(keys["analyst"]), json=body)
    finally:
        slots.release()
    assert busy.status_code == 429
    assert "ANALYST_MAX_CONCURRENT_EVALUATIONS" in busy.get_json()["error"]["message"]
    # The slot is given back after every evaluation, failed ones included.
    for _ in range(2):
        assert client.post("/v1/evaluations", headers=auth(keys["analyst"]),
                           json={"from": "2024-03-03", "to": "2024-03-03"}).status_code == 404
    assert client.post("/v1/evaluations", headers=auth(keys["analyst"]),
                       json=body).status_code == 200


def test_evaluation_of_an_empty_range_is_404(client, keys, logged) -> None:
    response = client.post("/v1/evaluations", headers=auth(keys["analyst"]),
                           json={"from": "2024-03-03", "to": "2024-03-03"})
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "NoEvents"
    assert "no events from 2024-03-03 to 2024-03-03" in error["message"]


def test_evaluation_above_the_event_limit_is_refused(app, client, keys, logged) -> None:
    app.config["ANALYST_MAX_EVALUATION_EVENTS"] = 10
    response = client.post("/v1/evaluations", headers=auth(keys["analyst"]),
                           json={"from": "2024-03-01", "to": "2024-03-04"})
    assert response.status_code == 400
    message = response.get_json()["error"]["message"]
    assert "holds 25 events" in message and "ANALYST_MAX_EVALUATION_EVENTS" in message
    within = client.post("/v1/evaluations", headers=auth(keys["analyst"]),
                         json={"from": "2024-03-02", "to": "2024-03-02"})
    assert within.status_code == 200


def test_model_versions_other_than_the_latest_are_refused(app, client, keys, logged) -> None:
    latest = get_engine(app).store.latest_model_version()
    assert latest >= 2
    analyst = auth(keys["analyst"])
    accepted = client.post("/v1/evaluations", headers=analyst, json={
        "from": "2024-03-01", "to": "2024-03-01", "policies": [f"model:v{latest}"]})
    assert accepted.status_code == 200
    assert list(accepted.get_json()["policies"]) == [f"model:v{latest}"]
    for body, target in ((["model:v1"], "policies[0]"),
                         (["model:latest", f"model:v{latest}"], "policies")):
        response = client.post("/v1/evaluations", headers=analyst, json={
            "from": "2024-03-01", "to": "2024-03-01", "policies": body})
        assert response.status_code == 400, body
        assert response.get_json()["error"]["target"] == target


# --------------------------------------------------------------------------- roles


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_roles(client, keys, logged, method, path, body) -> None:
    call = getattr(client, method)
    assert call(path, json=body).status_code == 401
    assert call(path, json=body, headers=auth("not-a-key")).status_code == 401
    for role in ("client", "marketer"):
        response = call(path, json=body, headers=auth(keys[role]))
        assert response.status_code == 403, role
        assert response.get_json()["error"]["code"] == "Forbidden"
    for role in ("analyst", "admin"):
        assert call(path, json=body, headers=auth(keys[role])).status_code == 200, role


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("query, target, words", [
    ("", "from", "from is required"),
    ("from=2024-03-01", "to", "to is required"),
    ("from=2024-3-1&to=2024-03-04", "from", "YYYY-MM-DD"),
    ("from=2024-03-01&to=2024-02-30", "to", "not a valid date"),
    ("from=2024-13-01&to=2024-03-04", "from", "not a valid date"),
    ("from=yesterday&to=2024-03-04", "from", "YYYY-MM-DD"),
    ("from=2024-03-01T00:00&to=2024-03-04", "from", "at most 10 characters"),
    ("from=2024-03-04&to=2024-03-01", "from", "must not be after"),
    ("from=2024-01-01&to=2025-01-01", "to", "367 days"),
])
def test_bad_export_dates_are_400_naming_the_parameter(client, keys, query, target,
                                                       words) -> None:
    response = client.get(f"/v1/logs/export?{query}", headers=auth(keys["analyst"]))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["target"] == target
    assert words in error["message"]


RANGE = {"from": "2024-03-01", "to": "2024-03-04"}


@pytest.mark.parametrize("body, target, words", [
    ([], "", "must be a JSON object"),
    ({"to": "2024-03-04"}, "from", "from is required"),
    ({**RANGE, "to": 20240304}, "to", "must be a string"),
    ({**RANGE, "from": "2024-03-05"}, "from", "must not be after"),
    ({**RANGE, "policies": "logged"}, "policies", "must be an array"),
    ({**RANGE, "policies": []}, "policies", "at least one"),
    ({**RANGE, "policies": ["logged", "logged"]}, "policies", "repeat"),
    ({**RANGE, "policies": ["greedy"]}, "policies[0]", "must be one of"),
    ({**RANGE, "policies": [3]}, "policies[0]", "must be a string"),
    ({**RANGE, "policies": ["logged", "model:/etc/passwd"]}, "policies[1]",
     "not accepted over HTTP"),
    ({**RANGE, "policies": ["model:../banditkit.sqlite3"]}, "policies[0]",
     "not accepted over HTTP"),
    ({**RANGE, "policies": ["model:models/model-v1.vw"]}, "policies[0]",
     "not accepted over HTTP"),
    ({**RANGE, "estimators": ["bogus"]}, "estimators[0]", "must be among"),
    ({**RANGE, "estimators": []}, "estimators", "at least one"),
    ({**RANGE, "estimators": ["ips", "IPS"]}, "estimators", "repeat"),
    ({**RANGE, "confidence": 1.5}, "confidence", "between 0 and 1"),
    ({**RANGE, "maxWeight": 0}, "maxWeight", "between 0 and inf"),
    ({**RANGE, "switchTau": -1}, "switchTau", "at least 0"),
    ({**RANGE, "drosShrinkage": 0}, "drosShrinkage", "between 0 and inf"),
    ({**RANGE, "ciMethod": "bootstrap"}, "ciMethod", "clt, bernstein"),
])
def test_bad_evaluation_bodies_are_400_naming_the_field(client, keys, logged, body, target,
                                                        words) -> None:
    response = client.post("/v1/evaluations", headers=auth(keys["analyst"]), json=body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error.get("target", "") == target
    assert words in error["message"]


def test_a_model_file_named_by_the_request_is_never_read(app, client, keys, logged) -> None:
    # The file exists and is a valid model: still refused, whatever its path.
    model = Path(app.config["ENGINE_DATA_DIR"]) / "models" / "model-v1.vw"
    assert model.is_file()
    response = client.post("/v1/evaluations", headers=auth(keys["admin"]),
                           json={**RANGE, "policies": [f"model:{model}"]})
    assert response.status_code == 400
    assert "model:latest or model:vN" in response.get_json()["error"]["message"]


def test_a_non_json_evaluation_body_is_415(client, keys) -> None:
    response = client.post("/v1/evaluations", headers=auth(keys["analyst"]), data="from=x",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_the_routes_are_documented(client) -> None:
    spec = client.get("/openapi.json").get_json()
    for method, path, _ in ROUTES:
        operation = spec["paths"][path.split("?")[0]][method]
        assert operation["x-banditkit-roles"] == ["admin", "analyst"]
    export = spec["paths"]["/v1/logs/export"]["get"]
    assert "application/x-ndjson" in export["responses"]["200"]["content"]
    assert {p["name"] for p in export["parameters"]} == {"from", "to"}
