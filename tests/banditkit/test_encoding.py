"""Feature encoding: validated once per distinct content, never accepting what check refuses."""

from __future__ import annotations

import json
import math

import pytest

from banditkit.encoding import FeatureEncoder, FrozenFeatures, dsjson_namespaces
from banditkit.engine import Engine
from banditkit.errors import InvalidInputError
from banditkit.settings import LoopSettings
from banditkit.types import Action


def test_the_text_is_vw_json_of_the_namespaces():
    features = {"": {"bias": 1}, "Member": {"country": "BR", "hour": 21.5, "kids": True}}
    text = FeatureEncoder().encode(features)
    assert json.loads(text) == {"bias": 1, "Member": {"country": "BR", "hour": 21.5,
                                                      "kids": True}}
    assert text == json.dumps(dsjson_namespaces(features), separators=(",", ":"))


def test_a_remembered_content_never_lets_invalid_lookalikes_through():
    encoder = FeatureEncoder()
    encoder.encode({"1": {"x": 1}})
    encoder.encode({"Member": {"1": 1}})
    # Same JSON text, different Python content: still checked, still refused.
    with pytest.raises(InvalidInputError, match="namespace names"):
        encoder.encode({1: {"x": 1}})
    with pytest.raises(InvalidInputError, match="feature names"):
        encoder.encode({"Member": {1: 1}})
    # 1, 1.0 and True are different features for VW's JSON: each encoded as itself.
    assert encoder.encode({"Member": {"age": True}}) == '{"Member":{"age":true}}'
    assert encoder.encode({"Member": {"age": 1.0}}) == '{"Member":{"age":1.0}}'


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e39, None, [1]])
def test_invalid_values_are_refused_every_time(value):
    encoder = FeatureEncoder()
    for _ in range(2):
        with pytest.raises(InvalidInputError, match=r"Member.*'x'"):
            encoder.encode({"Member": {"x": value}}, name="context")


def test_the_memory_is_bounded():
    encoder = FeatureEncoder(max_entries=10)
    for i in range(100):
        encoder.encode({"Member": {"i": i}})
    assert len(encoder.texts) == 10


def test_frozen_features_are_read_only_validated_and_rank_like_a_dict(tmp_path, clock):
    raw = {"Artwork": {"theme": "dark", "faces": 2}}
    frozen = FrozenFeatures(raw)
    assert dict(frozen["Artwork"]) == raw["Artwork"] and list(frozen) == ["Artwork"]
    with pytest.raises(TypeError):
        frozen["Artwork"]["theme"] = "light"
    raw["Artwork"]["theme"] = "light"  # the source may change; the frozen copy does not
    assert frozen.text == '{"Artwork":{"theme":"dark","faces":2}}'
    with pytest.raises(InvalidInputError, match="variant 'x'"):
        FrozenFeatures({"Artwork": {"faces": math.nan}}, name="variant 'x'")

    settings = LoopSettings(policy_args="--cb_explore_adf -q MA")
    plain = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]
    frozen_actions = [Action(id=a.id, features=FrozenFeatures(a.features)) for a in plain]
    context = {"Member": {"country": "BR"}}
    first = Engine.open(tmp_path / "a", clock=clock, settings=settings)
    second = Engine.open(tmp_path / "b", clock=clock, settings=settings)
    assert (first.rank(context, plain, event_id="e") ==
            second.rank(context, frozen_actions, event_id="e"))
    assert (first.store.event("e")["decision"] == second.store.event("e")["decision"])


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, -0.0, 1e300, math.inf, -math.inf], "ü": "☃\n\"\\", "n": None, "t": True,
     "nested": {"x": [{}], "y": [], "z": [[False]]}},
    {7: "int key", 2.5: "float key", True: "bool key", None: "null key"},
    "a string", 3, 2.5, True, None, [], {}, [1, "2", (3, 4)],
])
def test_compact_json_writes_what_jsons_own_encoder_writes(value):
    from banditkit.encoding import compact_json

    assert compact_json(value) == json.JSONEncoder(separators=(",", ":")).encode(value)


def test_compact_json_refuses_what_json_refuses():
    from banditkit.encoding import compact_json

    for bad, message in [({"x": object()}, "not JSON serializable"), ({(1, 2): 3}, "keys must")]:
        with pytest.raises(TypeError, match=message):
            compact_json(bad)
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(RecursionError):
        compact_json(cyclic)
    assert compact_json({"after": "a failed call"}) == '{"after":"a failed call"}'
