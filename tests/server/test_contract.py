"""The HTTP contract stated once: models, limits, the hand-written rank parsers, the document."""

from __future__ import annotations

import pytest

from serving._parsing import personalizer_features
from serving.contract import analyst, catalogue, personalizer, rows
from serving.contract.analyst import DateRangeQuery
from serving.contract.catalogue import PerformanceQuery, TitleCreate, TitleUpdate
from serving.contract.common import RewardRequest
from serving.contract.limits import EVENT_ID_MAX_LENGTH, ID_MAX_LENGTH
from serving.contract.personalizer import PolicyContract, RankRequest, ServiceConfiguration
from serving.contract.rows import MultiSlotRankRequest, MultiSlotRewardRequest, RowsRewardRequest
from serving.contract.validation import validate
from serving.errors import ApiError
from serving.personalizer import parse_rank_request
from serving.rows import parse_multislot_rank

ACTION = {"id": "a", "features": [{"x": 1}, {"Ns": {"y": "z"}}, None]}
MAX_ACTIONS = next(rule.max_length for rule in RankRequest.model_fields["actions"].metadata
                   if hasattr(rule, "max_length"))

# Bodies on both sides of every rule the RankRequest model states.
RANK_BODIES = [
    {"actions": [ACTION]},
    {"actions": [{"id": "a"}, {"id": "b", "features": None}]},
    {"actions": [ACTION], "contextFeatures": None, "excludedActions": None, "eventId": None,
     "deferActivation": None},
    {"actions": [ACTION], "contextFeatures": [{"Member": {"country": "BR"}}],
     "excludedActions": ["b"], "eventId": "e 1:é", "deferActivation": True, "other": 1},
    {"actions": [{"id": "x" * ID_MAX_LENGTH}], "eventId": "e" * EVENT_ID_MAX_LENGTH},
    {"actions": [{"id": f"a{i}"} for i in range(MAX_ACTIONS)]},
    [1],
    {},
    {"actions": None},
    {"actions": []},
    {"actions": {"id": "a"}},
    {"actions": ["a"]},
    {"actions": [{"features": []}]},
    {"actions": [{"id": 5}]},
    {"actions": [{"id": ""}]},
    {"actions": [{"id": " \t"}]},
    {"actions": [{"id": "x" * (ID_MAX_LENGTH + 1)}]},
    {"actions": [{"id": "a", "features": {"x": 1}}]},
    {"actions": [{"id": "a", "features": [5]}]},
    {"actions": [ACTION], "contextFeatures": "BR"},
    {"actions": [ACTION], "excludedActions": "a"},
    {"actions": [ACTION], "excludedActions": [""]},
    {"actions": [ACTION], "eventId": 7},
    {"actions": [ACTION], "eventId": ""},
    {"actions": [ACTION], "eventId": "a/b"},
    {"actions": [ACTION], "eventId": ".."},
    {"actions": [ACTION], "eventId": "a\tb"},
    {"actions": [ACTION], "eventId": "e" * (EVENT_ID_MAX_LENGTH + 1)},
    {"actions": [ACTION], "deferActivation": "yes"},
    {"actions": [{"id": f"a{i}"} for i in range(MAX_ACTIONS + 1)]},
]


SLOT = {"id": "s1", "baselineAction": "a"}
# Multi-slot bodies on both sides of the MultiSlotRankRequest model's rules (the
# relations between fields, a baseline among the actions, are the parser's alone).
MULTISLOT_BODIES = [
    {"actions": [ACTION], "slots": [SLOT]},
    {"actions": [ACTION], "slots": [{**SLOT, "features": None, "excludedActions": None}],
     "contextFeatures": None, "eventId": None, "deferActivation": None},
    {"actions": [ACTION, {"id": "b"}], "slots": [SLOT, {"id": "s2", "baselineAction": "b",
                                                        "excludedActions": ["a"]}],
     "eventId": "page 1", "deferActivation": True},
    {"actions": [ACTION]},
    {"actions": [ACTION], "slots": []},
    {"actions": [ACTION], "slots": [{"id": "s1"}]},
    {"actions": [ACTION], "slots": [{**SLOT, "id": ""}]},
    {"actions": [ACTION], "slots": [{**SLOT, "features": {"x": 1}}]},
    {"actions": [ACTION], "slots": [{**SLOT, "excludedActions": "b"}]},
    {"actions": [], "slots": [SLOT]},
    {"actions": [{"id": 1}], "slots": [SLOT]},
    {"actions": [ACTION], "slots": [SLOT], "eventId": "a/b"},
    {"actions": [ACTION], "slots": [SLOT], "deferActivation": 1},
]


def _accepts(parse, body: object) -> bool:
    try:
        parse(body)
    except ApiError:
        return False
    return True


@pytest.mark.parametrize("body", RANK_BODIES, ids=lambda body: str(body)[:60])
def test_the_rank_parser_and_the_rank_model_agree(body) -> None:
    # rank keeps its hand-written parser (the hot path); the model describes it in
    # /openapi.json, so both must accept and refuse the same bodies.
    assert _accepts(lambda value: parse_rank_request(
        value, max_actions=MAX_ACTIONS, action_features=personalizer_features), body) == (
        _accepts(lambda value: validate(RankRequest, value), body))


@pytest.mark.parametrize("body", MULTISLOT_BODIES, ids=lambda body: str(body)[:60])
def test_the_multislot_parser_and_its_model_agree(body) -> None:
    assert _accepts(lambda value: parse_multislot_rank(
        value, max_actions=MAX_ACTIONS, max_slots=MAX_ACTIONS), body) == (
        _accepts(lambda value: validate(MultiSlotRankRequest, value), body))


@pytest.mark.parametrize(("body", "target", "needle"), [
    ({}, "value", "Missing required fields: value"),
    ([], "", "The request body must be a JSON object, got an array"),
    ({"value": "1"}, "value", "value must be a number, got a string"),
    ({"value": 2e6}, "value", "value must be a finite number within ±1e+06, got 2000000.0"),
    ({"value": 10**400}, "value", "beyond the float range"),
])
def test_validation_errors_name_the_field(body, target: str, needle: str) -> None:
    with pytest.raises(ApiError) as raised:
        validate(RewardRequest, body)
    assert raised.value.status == 400
    assert raised.value.target == target
    assert needle in raised.value.message


def test_the_document_states_the_app_s_limits(tmp_path) -> None:
    from server import close_app, create_app

    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "LEARNER_ENABLED": False,
                      "AUTH_ENABLED": False, "RANK_MAX_ACTIONS": 7, "ROWS_MAX_SLOTS": 3})
    try:
        spec = app.test_client().get("/openapi.json").get_json()
    finally:
        close_app(app)
    schemas = spec["components"]["schemas"]
    assert schemas["RankRequest"]["properties"]["actions"]["maxItems"] == 7
    assert schemas["MultiSlotRankRequest"]["properties"]["actions"]["maxItems"] == 7
    slots = schemas["RowsRankRequest"]["properties"]["slots"]["anyOf"]
    assert [branch.get("maximum", branch.get("maxItems")) for branch in slots] == [3, 3]
    assert "x-config-limit" not in str(spec)


SERVICE = {"rewardWaitTime": "PT10M", "defaultReward": 0.0, "rewardAggregation": "Sum",
           "explorationPercentage": 0.2, "modelExportFrequency": "00:01:00",
           "logRetentionDays": 90}
RANGE = {"from": "2024-03-01", "to": "2024-03-04"}


def _evaluation(body: object) -> object:
    from serving.contract.analyst import evaluation_request

    return validate(evaluation_request(), body, context={"max_days": 10})


# The non-rank routes validate through their models: the refusals the hand
# parsers gave, each naming its field, now come from the models' validators.
@pytest.mark.parametrize(("parse", "body", "target", "needle"), [
    (lambda b: validate(ServiceConfiguration, b), {**SERVICE, "logRetentionDays": 1_000_001},
     "logRetentionDays", "logRetentionDays must be between -1 and 1000000, got 1000001"),
    (lambda b: validate(ServiceConfiguration, b), {**SERVICE, "modelRetrainDays": 2.5},
     "modelRetrainDays", "modelRetrainDays must be an integer"),
    (lambda b: validate(ServiceConfiguration, b), {**SERVICE, "rewardWaitTime": "-PT1M"},
     "rewardWaitTime", "rewardWaitTime: '-PT1M' is negative"),
    (lambda b: validate(ServiceConfiguration, b), {**SERVICE, "learningMode": None, "x": 1,
                                                  "logMirrorEnabled": True},
     "logMirrorEnabled", "logMirrorEnabled=true is not supported"),
    (lambda b: validate(PolicyContract, b), {"name": "p", "arguments": "--cb_explore_adf -d x"},
     "arguments", "may not use '-d'"),
    (lambda b: validate(RowsRewardRequest, b), {"rewards": [], "pageReward": None},
     "rewards", "Give rewards"),
    (lambda b: validate(MultiSlotRewardRequest, b), {"reward": [{"slotId": "s"}]},
     "reward[0]", "reward[0] needs slotId and value"),
    (lambda b: validate(MultiSlotRewardRequest, b), {"reward": []},
     "reward", "reward must hold at least one item, got an array with none"),
    (lambda b: validate(TitleCreate, b), {"id": "a..b"}, "titleId", "titleId must match"),
    (lambda b: validate(TitleUpdate, b), {"id": "a"}, "id", "Unknown field id"),
    (lambda b: validate(PerformanceQuery, b), {"days": "2.5"}, "days",
     "days must be an integer, got a string"),
    (lambda b: validate(PerformanceQuery, b), {"takeThreshold": "inf"}, "takeThreshold",
     "takeThreshold must be a finite number"),
    (lambda b: validate(DateRangeQuery, b, context={"max_days": 3}), RANGE, "to",
     "covers 4 days; at most 3"),
    (lambda b: validate(DateRangeQuery, b), {"from": "2024-03-05", "to": "2024-03-04"},
     "from", "from (2024-03-05) must not be after to (2024-03-04)"),
    (_evaluation, {"from": "2024-02-30", "to": "2024-03-04"}, "from", "not a valid date"),
    (_evaluation, {**RANGE, "policies": ["logged", "model:x"]}, "policies[1]",
     "policies[1] names 'model:x', which is not accepted over HTTP"),
    (_evaluation, {**RANGE, "estimators": ["Clipped-IPS", "clipped_ips"]}, "estimators",
     "must not repeat a name, got clipped_ips twice"),
    (_evaluation, {**RANGE, "drosShrinkage": -1}, "drosShrinkage",
     "between 0 and inf (exclusive)"),
])
def test_the_models_refuse_naming_the_field(parse, body, target: str, needle: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse(body)
    assert raised.value.status == 400
    assert raised.value.target == target
    assert needle in raised.value.message


def test_the_models_hold_what_the_engine_takes() -> None:
    config = validate(ServiceConfiguration, {**SERVICE, "logRetentionDays": 12.0,
                                             "learningMode": "loggingonly",
                                             "latestApprenticeModeMetrics": {"startTime": None}})
    assert (config.reward_wait_time, config.model_export_frequency) == (600.0, 60.0)
    assert (config.reward_aggregation, config.learning_mode) == ("sum", "logging_only")
    assert config.log_retention_days == 12 and type(config.log_retention_days) is int
    query = validate(PerformanceQuery, {"days": "7", "confidence": "0.9"})
    assert (query.days, query.confidence, query.take_threshold) == (7, 0.9, 0.0)
    # null takes the default, as absent does
    spec = _evaluation({**RANGE, "policies": None, "confidence": None})
    assert spec.policies == ["logged", "baseline", "uniform"] and spec.confidence == 0.95
    assert spec.estimators == ["ips", "snips", "dr"]


# A body or query each non-rank route refuses, and the operation that documents it:
# the route's 400 is its documented model's own verdict, word for word.
ROUTE_REFUSALS = [
    ("put", "/personalizer/v1.0/configurations/service", {**SERVICE, "rewardWaitTime": 5},
     personalizer.OPERATIONS["update_service_configuration"]),
    ("put", "/personalizer/v1.0/configurations/policy", {"name": " ", "arguments": "x"},
     personalizer.OPERATIONS["update_policy"]),
    ("post", "/v1/events/e/reward", {"value": True}, personalizer.EVENT_OPERATIONS["reward"]),
    ("post", "/v1/rows/events/e/reward", {"rewards": [{"slotId": "s"}]},
     rows.ROWS_OPERATIONS["reward"]),
    ("post", "/personalizer/v1.0/multislot/events/e/reward", {"reward": []},
     rows.MULTISLOT_OPERATIONS["multislot_reward"]),
    ("post", "/v1/catalogue/titles", {"id": "a..b"}, catalogue.OPERATIONS["create_title"]),
    ("patch", "/v1/catalogue/titles/t", {"genres": "drama"},
     catalogue.OPERATIONS["update_title"]),
    ("get", "/v1/logs/export?from=2024-03-02&to=2024-03-01",
     {"from": "2024-03-02", "to": "2024-03-01"}, analyst.OPERATIONS["export_logs"]),
    ("post", "/v1/evaluations", {**RANGE, "ciMethod": "bootstrap"},
     analyst.OPERATIONS["create_evaluation"]),
]


@pytest.mark.parametrize(("method", "path", "body", "operation"), ROUTE_REFUSALS,
                         ids=lambda value: value if isinstance(value, str) else None)
def test_each_route_answers_its_model_s_verdict(tmp_path, method: str, path: str,
                                                body: dict, operation) -> None:
    from server import close_app
    from tests.server.conftest import auth, build_app, make_keys

    keys = make_keys(tmp_path)
    app = build_app(tmp_path)
    try:
        response = getattr(app.test_client(), method)(
            path, headers=auth(keys["admin"]), json=None if method == "get" else body)
    finally:
        close_app(app)
    with pytest.raises(ApiError) as raised:
        validate(operation.request_model() or operation.query, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == {"code": "BadRequest",
                                            "message": raised.value.message,
                                            "target": raised.value.target}
