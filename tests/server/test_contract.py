"""The HTTP contract stated once: models, limits, the hand-written rank parsers, the document."""

from __future__ import annotations

import pytest

from serving._parsing import personalizer_features
from serving.contract.common import RewardRequest
from serving.contract.limits import EVENT_ID_MAX_LENGTH, ID_MAX_LENGTH
from serving.contract.personalizer import RankRequest
from serving.contract.rows import MultiSlotRankRequest
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
