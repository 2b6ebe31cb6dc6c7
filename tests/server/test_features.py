"""Personalizer feature lists -> banditkit's namespaced features."""

from __future__ import annotations

import json

import pytest

from banditkit.errors import InvalidInputError
from serving._parsing import MAX_FEATURE_DEPTH, FeatureMemory, personalizer_features
from serving.errors import ApiError


def convert(value):
    return personalizer_features(value, target="contextFeatures", default_namespace="")


def test_namespaces_and_default_namespace() -> None:
    features = convert([
        {"user": {"country": "BR", "age": 31}},
        {"hour": 21, "weekend": True},
        {"user": {"device": "tv"}},  # the same namespace again merges
    ])
    assert features == {
        "user": {"country": "BR", "age": 31, "device": "tv"},
        "": {"hour": 21, "weekend": True},
    }


def test_nested_objects_and_arrays_flatten_into_names() -> None:
    features = convert(
        [{"taste": {"genres": {"comedy": 0.7}, "vector": [0.1, 0.2], "tags": ["a"]}}]
    )
    assert features == {
        "taste": {"genres.comedy": 0.7, "vector[0]": 0.1, "vector[1]": 0.2, "tags[0]": "a"}
    }


def test_nulls_and_empty_namespaces_are_dropped() -> None:
    assert convert([{"user": {"country": None}}, None, {"x": None}]) == {}
    assert convert(None) == {}
    assert convert([]) == {}


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ({"user": {}}, "contextFeatures"),  # an object, not a list
        ("user", "contextFeatures"),
        ([1], "contextFeatures[0]"),
        ([["a"]], "contextFeatures[0]"),
        ([{"user": {"big": 10**400}}], "contextFeatures[0].user.big"),
        ([{"user": {"big": 2**128}}], "contextFeatures[0].user.big"),
        ([{"user": {"big": 1e39}}], "contextFeatures[0].user.big"),
        ([{"big": [1.0, -1e39]}], "contextFeatures[0].big[1]"),
        ([{"user": {"inf": float("inf")}}], "contextFeatures[0].user.inf"),
        ([{"x": float("nan")}], "contextFeatures[0].x"),
    ],
)
def test_rejects_with_target(value, target: str) -> None:
    with pytest.raises(ApiError) as error:
        convert(value)
    assert error.value.status == 400
    assert error.value.target == target


def test_rejects_deep_nesting() -> None:
    deep: dict = {"leaf": 1}
    for _ in range(MAX_FEATURE_DEPTH + 2):
        deep = {"n": deep}
    with pytest.raises(ApiError, match="nests deeper"):
        convert([{"ns": deep}])


def test_the_feature_memory_converts_once_and_never_confuses_types():
    memory = FeatureMemory(max_entries=3)
    raw = [{"Artwork": {"theme": "dark", "faces": 2}}, {"year": 1999}]
    first = memory(raw, target="actions[0].features", default_namespace="Action")
    assert memory(json.loads(json.dumps(raw)), target="actions[1].features",
                  default_namespace="Action") is first  # same content, one conversion
    assert {k: dict(v) for k, v in first.items()} == personalizer_features(
        raw, target="t", default_namespace="Action")
    as_bool = memory([{"Artwork": {"faces": True}}], target="t", default_namespace="Action")
    as_int = memory([{"Artwork": {"faces": 1}}], target="t", default_namespace="Action")
    assert as_bool["Artwork"]["faces"] is True and as_int["Artwork"]["faces"] == 1
    assert as_int["Artwork"]["faces"] is not True
    for i in range(10):
        last = memory([{"A": {"i": i}}], target="t", default_namespace="Action")
        assert len(memory.features) <= 3  # past it, the older half goes
    assert memory([{"A": {"i": 9}}], target="t", default_namespace="Action") is last


def test_the_feature_memory_refuses_invalid_lists_every_time():
    memory = FeatureMemory()
    for _ in range(2):
        with pytest.raises(InvalidInputError, match=r"actions\[4\].features.*'_hidden'"):
            memory([{"A": {"_hidden": 1}}], target="actions[4].features",
                   default_namespace="Action")


def test_remembered_action_arrays_parse_as_fresh_ones_and_bad_ones_fail_every_time():
    from banditkit.encoding import ContentMemo
    from serving.personalizer import parse_rank_request

    lists = ContentMemo(8)

    def body(faces: object, theme: object = "dark") -> dict:
        return {"actions": [{"id": "a", "features": [{"Artwork": {"theme": theme,
                                                                  "faces": faces}}]},
                            {"id": "b", "features": [{"year": 1999}]}],
                "contextFeatures": [{"Member": {"country": "BR"}}]}

    def parse(value: dict, **memory: object) -> list:
        return parse_rank_request(json.loads(json.dumps(value)), max_actions=4,
                                  action_features=FeatureMemory(), **memory)[1]

    fresh = parse(body(2))
    remembered = parse(body(2), action_lists=lists)
    assert parse(body(2), action_lists=lists) == remembered == fresh
    assert len(lists) == 1
    # Lookalike values are other content: their own conversion, never the remembered one.
    as_bool = parse(body(True), action_lists=lists)
    as_float = parse(body(2.0), action_lists=lists)
    assert as_bool[0].features["Artwork"]["faces"] is True
    assert type(as_float[0].features["Artwork"]["faces"]) is float
    assert len(lists) == 3
    for _ in range(2):
        with pytest.raises(ApiError, match=r"actions\[0\]\.features"):
            parse(body(float("nan")), action_lists=lists)
    assert len(lists) == 3
