"""Every malformed request gets a 4xx JSON body naming the problem, never a 500."""

from __future__ import annotations

import pytest

from server import close_app
from tests.server.conftest import auth, build_app, make_keys


# One app for the module: the requests under test are refused and change
# nothing; the few accepted ranks they need use fresh event ids.
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-input") / "data"


@pytest.fixture(scope="module")
def keys(data_dir):
    return make_keys(data_dir)


@pytest.fixture(scope="module")
def app(data_dir, keys):
    app = build_app(data_dir)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()

RANK = "/personalizer/v1.0/rank"
OK_ACTIONS = [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": []}]


def _post(client, path, key, *, json=None, data=None, content_type="application/json"):
    if json is not None:
        return client.post(path, headers=auth(key), json=json)
    return client.post(path, headers=auth(key), data=data, content_type=content_type)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"\xff\xfe", 400, "JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"actions": NaN}', 400, "NaN"),
        (b'{"actions": [{"id": "a", "features": [{"x": Infinity}]}]}', 400, "Infinity"),
        (b'{"actions": [{"id": "a", "features": [{"x": 1e999}]}]}', 400, "finite"),
        (b'{"actions": [{"id": "a", "features": [{"x": 1e39}]}]}', 400, "32-bit float"),
        (b'{"actions": [{"id": "a", "features": [{"ns": {"x": -4e38}}]}]}', 400, "32-bit float"),
        (b'{"actions": [{"id": "a", "features": [{"ns": {"x": ' + b"9" * 40 + b'}}]}]}', 400,
         "32-bit float"),
        (b'{"actions": [{"id": "a\\ud90e", "features": []}]}', 400, "unpaired UTF-16 surrogate"),
        (b'{"actions": [{"id": "a", "features": [{"\\udc00": {"x": 1}}]}]}', 400,
         "unpaired UTF-16 surrogate"),
        (b'{"actions": [{"id": "a", "features": [{"ns": {"x": "\\ud800y"}}]}]}', 400,
         "unpaired UTF-16 surrogate"),
        (b'{"actions": [{"id": "\xed\xa0\x80", "features": []}]}', 400, "UTF-8"),
        # A namespace starting with a non-ASCII character aborts Vowpal Wabbit.
        ('{"actions": [{"id": "a", "features": [{"Émotion": {"x": 1}}]}]}'.encode(), 400,
         "must start with an ASCII character"),
        (b'{"contextFeatures": [{"\\u773b": {"x": 1}}], "actions": [{"id": "a", "features": []}]}',
         400, "must start with an ASCII character"),
        (b"[" * 20_000 + b"]" * 20_000, 400, "nests too deeply"),
        (b"{}", 400, "actions is required"),
        (b'{"actions": []}', 400, "at least one"),
        (b'{"actions": {"id": "a"}}', 400, "actions must be an array"),
        (b'{"actions": ["a"]}', 400, "actions[0] must be a JSON object"),
        (b'{"actions": [{"features": []}]}', 400, "actions[0].id is required"),
        (b'{"actions": [{"id": 5, "features": []}]}', 400, "actions[0].id must be a string"),
        (b'{"actions": [{"id": "", "features": []}]}', 400, "must not be empty"),
        (b'{"actions": [{"id": "a", "features": {"x": 1}}]}', 400, "features must be an array"),
        (b'{"actions": [{"id": "a", "features": [{"x": [1, {"y": null}, [true]]}]}], '
         b'"contextFeatures": "BR"}', 400, "contextFeatures must be an array"),
        (b'{"actions": [{"id": "a", "features": []}, {"id": "a", "features": []}]}', 400,
         "duplicate action id"),
        (b'{"actions": [{"id": "a", "features": [{"_hidden": 1}]}]}', 400, "_hidden"),
        (b'{"actions": [{"id": "a", "features": []}], "excludedActions": ["a"]}', 400,
         "every action is excluded"),
        (b'{"actions": [{"id": "a", "features": []}], "excludedActions": ["zz"]}', 400, "zz"),
        (b'{"actions": [{"id": "a", "features": []}], "excludedActions": "a"}', 400,
         "excludedActions must be an array"),
        (b'{"actions": [{"id": "a", "features": []}], "eventId": 7}', 400,
         "eventId must be a string"),
        (b'{"actions": [{"id": "a", "features": []}], "eventId": "' + b"e" * 257 + b'"}', 400,
         "at most 256"),
        (b'{"actions": [{"id": "a", "features": []}], "deferActivation": "yes"}', 400,
         "deferActivation must be true or false"),
        (b'{"actions": [' + b",".join(b'{"id": "a%d", "features": []}' % i for i in range(11))
         + b"]}", 400, "at most 10 actions"),
    ],
    ids=lambda value: value[:40].decode("latin-1") if isinstance(value, bytes) else None,
)
def test_bad_rank_bodies(client, keys, body: bytes, status: int, needle: str) -> None:
    response = _post(client, RANK, keys["client"], data=body)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert needle in error["message"]
    assert error["code"] == "BadRequest"


def test_wrong_content_type_is_415(client, keys) -> None:
    response = _post(client, RANK, keys["client"], data=b"actions=a",
                     content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]["message"]


def test_oversized_body_is_413(client, keys) -> None:
    body = b'{"actions": [{"id": "a", "features": [{"x": "' + b"y" * 70_000 + b'"}]}]}'
    response = _post(client, RANK, keys["client"], data=body)
    assert response.status_code == 413
    assert "SERVER_MAX_BODY_BYTES" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('"1"', "value must be a number, got a string"),
        ("true", "got a boolean"),
        ("null", "got null"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-1e400", "finite"),
        ("1e39", "within ±1e+06, got 1e+39"),
        ("1000000.5", "within ±1e+06"),
        ("-3e38", "within ±1e+06"),
        ("[1]", "got an array"),
    ],
)
@pytest.mark.parametrize("prefix", ["/personalizer/v1.0/events", "/v1/events"])
def test_bad_reward_values(client, keys, prefix: str, value: str, needle: str) -> None:
    event_id = _post(client, RANK, keys["client"], json={"actions": OK_ACTIONS}).get_json()[
        "eventId"]
    response = _post(client, f"{prefix}/{event_id}/reward", keys["client"],
                     data=b'{"value": ' + value.encode() + b"}")
    assert response.status_code == 400
    assert needle in response.get_json()["error"]["message"]


@pytest.mark.parametrize("prefix", ["/personalizer/v1.0/events", "/v1/events"])
def test_reward_without_value(client, keys, prefix: str) -> None:
    response = _post(client, f"{prefix}/e1/reward", keys["client"], json={"reward": 1})
    assert response.status_code == 400
    assert response.get_json()["error"]["target"] == "value"


@pytest.mark.parametrize("prefix", ["/personalizer/v1.0/events", "/v1/events"])
@pytest.mark.parametrize("action", ["reward", "activate"])
def test_unknown_event_is_404(client, keys, prefix: str, action: str) -> None:
    response = _post(client, f"{prefix}/never-ranked/{action}", keys["client"],
                     json={"value": 1.0})
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "ResourceNotFound"
    assert "never-ranked" in error["message"]


def test_event_id_too_long_in_path(client, keys) -> None:
    response = _post(client, f"/v1/events/{'e' * 300}/activate", keys["client"], json={})
    assert response.status_code == 400
    assert "at most 256" in response.get_json()["error"]["message"]


# Ids that rank must refuse: their reward and activate URLs could not reach them
# (a '/' is decoded before routing, '.' and '..' are dropped by URL normalisation),
# or they hold control characters, which no log line or URL should carry.
BAD_EVENT_IDS = [
    ("a/b", "must not contain '/'"),
    ("a\tb", "control characters (U+0009)"),
    ("a\x00b", "control characters (U+0000)"),
    ("a\x85b", "control characters (U+0085)"),
    (".", "must not be '.' or '..'"),
    ("..", "must not be '.' or '..'"),
    ("", "must not be empty"),
    ("e" * 257, "at most 256 characters, got 257"),
]
ROWS_RANK_BODY = {"rows": [{"id": "r1"}, {"id": "r2"}], "slots": 1}
MULTISLOT_RANK_BODY = {"actions": OK_ACTIONS, "slots": [{"id": "s1", "baselineAction": "a"}]}
RANK_ROUTES = [
    (RANK, {"actions": OK_ACTIONS}),
    ("/personalizer/rank?api-version=2022-09-01-preview", {"actions": OK_ACTIONS}),
    ("/personalizer/v1.0/multislot/rank", MULTISLOT_RANK_BODY),
    ("/personalizer/multislot/rank?api-version=2022-09-01-preview", MULTISLOT_RANK_BODY),
    ("/v1/rows/rank", ROWS_RANK_BODY),
]


@pytest.mark.parametrize(("path", "body"), RANK_ROUTES, ids=lambda v: str(v)[:40])
@pytest.mark.parametrize(("event_id", "needle"), BAD_EVENT_IDS, ids=repr)
def test_rank_refuses_event_ids_its_routes_could_not_reach(
        client, keys, path: str, body: dict, event_id: str, needle: str) -> None:
    response = _post(client, path, keys["client"], json={**body, "eventId": event_id})
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["target"] == "eventId"
    assert error["message"].startswith("eventId ")
    assert needle in error["message"]


@pytest.mark.parametrize(("path", "body"), RANK_ROUTES, ids=lambda v: str(v)[:40])
def test_rank_accepts_event_ids_that_need_percent_encoding(client, keys, path: str,
                                                          body: dict) -> None:
    # Legal ids a URL carries percent-encoded: the reward route finds them again.
    from urllib.parse import quote

    event_id = f"{path[:12]}:é %?#\u00a0\\{len(path)}...".replace("/", "-")
    response = _post(client, path, keys["client"], json={**body, "eventId": event_id})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["eventId"] == event_id
    family = path.split("/rank")[0]
    query = path.partition("?")[2]
    activate = f"{family}/events/{quote(event_id, safe='')}/activate" + (
        f"?{query}" if query else "")
    assert _post(client, activate, keys["client"], json={}).status_code == 204


@pytest.mark.parametrize("prefix", [
    "/personalizer/v1.0/events", "/v1/events", "/v1/rows/events",
    "/personalizer/v1.0/multislot/events"])
@pytest.mark.parametrize(("encoded", "needle"), [
    ("a%7Fb", "control characters (U+007F)"),
    ("a%01b", "control characters (U+0001)"),
    ("a%C2%85b", "control characters (U+0085)"),
])
def test_event_routes_refuse_ids_rank_refuses(client, keys, prefix: str, encoded: str,
                                              needle: str) -> None:
    response = _post(client, f"{prefix}/{encoded}/activate", keys["client"], json={})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["target"] == "eventId"
    assert needle in error["message"]


def test_duplicate_event_id_is_409(client, keys) -> None:
    body = {"actions": OK_ACTIONS, "eventId": "once"}
    assert _post(client, RANK, keys["client"], json=body).status_code == 201
    response = _post(client, RANK, keys["client"], json=body)
    assert response.status_code == 409
    assert "once" in response.get_json()["error"]["message"]


SERVICE = "/personalizer/v1.0/configurations/service"
GOOD_CONFIG = {"rewardWaitTime": "PT10M", "defaultReward": 0.0, "rewardAggregation": "earliest",
               "explorationPercentage": 0.2, "modelExportFrequency": "PT1M",
               "logRetentionDays": 90}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"rewardWaitTime": None}, "Missing required fields: rewardWaitTime"),
        ({"rewardWaitTime": "10 minutes"}, "rewardWaitTime"),
        ({"rewardWaitTime": "P1M"}, "months"),
        ({"rewardWaitTime": 600}, "rewardWaitTime must be a string"),
        ({"modelExportFrequency": "-PT1M"}, "negative"),
        ({"defaultReward": "0"}, "defaultReward must be a number"),
        ({"rewardAggregation": "average"}, "reward_aggregation"),
        ({"explorationPercentage": 1.5}, "exploration_percentage"),
        ({"logRetentionDays": 0}, "logRetentionDays must be -1 (forever) or a number of days"),
        ({"logRetentionDays": 10**30}, "logRetentionDays must be between -1 and 1000000"),
        ({"modelRetrainDays": -1}, "modelRetrainDays must be between 0 and 1000000"),
        ({"rewardAggregation": "Most"}, "reward_aggregation must be one of"),
        ({"logRetentionDays": 1.5}, "logRetentionDays must be an integer"),
        ({"learningMode": "Offline"}, "learningMode must be one of"),
        ({"logMirrorEnabled": True}, "not supported"),
        ({"isAutoOptimizationEnabled": "no"}, "true or false"),
    ],
)
def test_bad_service_configuration(app, client, keys, changes: dict, needle: str) -> None:
    from serving.runtime import get_engine

    before = get_engine(app).settings
    body = {**GOOD_CONFIG, **changes}
    body = {key: value for key, value in body.items() if value is not None}
    response = client.put(SERVICE, headers=auth(keys["admin"]), json=body)
    assert response.status_code == 400, response.get_json()
    assert needle in response.get_json()["error"]["message"]
    assert get_engine(app).settings == before


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "x"}, "Missing required fields: arguments"),
        ({"arguments": "--cb_explore_adf"}, "Missing required fields: name"),
        ({"name": "x", "arguments": 5}, "arguments must be a string"),
        ({"name": "x", "arguments": "--cb_adf"}, "--cb_explore_adf"),
        ({"name": "x", "arguments": "--cb_explore_adf 'unclosed"}, "cannot be split"),
    ],
)
def test_bad_policy(client, keys, body: dict, needle: str) -> None:
    response = client.put("/personalizer/v1.0/configurations/policy",
                          headers=auth(keys["admin"]), json=body)
    assert response.status_code == 400
    assert needle in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/personalizer/v1.0/rank", 405),
        ("POST", "/personalizer/v1.0/nothing", 404),
        ("POST", "/v1/events//reward", 404),
        ("DELETE", "/personalizer/v1.0/configurations/service", 405),
    ],
)
def test_unknown_routes_and_methods_are_json(client, method: str, path: str, status: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "option",
    ["-p {path}", "-p{path}", "--predictions {path}", "--readable_model={path}",
     "-f {path}", "--invert_hash {path}", "--cache_file {path}", "-d {path}"],
)
def test_policy_may_not_touch_files(app, client, keys, tmp_path, option: str) -> None:
    # Building a VW learner with -p PATH creates/truncates PATH on the server.
    from serving.runtime import get_engine

    target = tmp_path / "victim.txt"
    target.write_text("precious")
    arguments = "--cb_explore_adf " + option.format(path=target)
    response = client.put("/personalizer/v1.0/configurations/policy",
                          headers=auth(keys["admin"]), json={"name": "x", "arguments": arguments})
    assert response.status_code == 400
    assert "are not allowed" in response.get_json()["error"]["message"]
    assert target.read_text() == "precious"
    assert str(target) not in get_engine(app).settings.policy_args


def test_surrogate_pairs_and_non_ascii_are_fine(client, keys) -> None:
    # A correctly paired escape (an emoji) and raw UTF-8 are ordinary text.
    body = ('{"actions": [{"id": "\\ud83c\\udfac", "features": [{"Titre": {"genre": "comédie"}}]},'
            ' {"id": "b", "features": [{"x": 3.4e38}]}]}').encode()
    response = _post(client, RANK, keys["client"], data=body)
    assert response.status_code == 201, response.get_json()
    assert {r["id"] for r in response.get_json()["ranking"]} == {"\U0001f3ac", "b"}
