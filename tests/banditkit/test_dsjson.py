"""The decision log is VW dsjson that Vowpal Wabbit's own parser reads as is."""

from __future__ import annotations

import json

import numpy as np
import pytest
import vowpal_wabbit_next as vw
from hypothesis import given, settings
from hypothesis import strategies as st

from banditkit.dsjson import (
    CcbSlot,
    CcbSlotJoin,
    _spliced,
    ccb_decision_line,
    ccb_slot_ids,
    decision_head,
    decision_line,
    dsjson_context,
    joined_ccb_line,
    joined_line_text,
    parse_event,
    parse_page,
    shortest_probability,
)
from banditkit.encoding import compact_json
from banditkit.engine import Engine
from banditkit.eventlog import iso_timestamp, read_events
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWLearner

CONTEXT = {"Member": {"country": "BR", "device": "tv", "hour": 21, "kids": True, "off": False},
           "Taste": {"comedy": 0.7, "drama": 0.25}, "": {"time": "evening"}}
ACTIONS = [Action(id=f"poster-{i}", features={"Artwork": {"theme": theme, "brightness": b},
                                               "Id": {"variant": f"poster-{i}"}})
           for i, (theme, b) in enumerate([("comedy", 0.8), ("drama", 0.3), ("action", 0.5)])]


def _one_joined_line(tmp_path, clock, *, reward: float) -> tuple[str, object]:
    engine = Engine.open(tmp_path, settings=LoopSettings(reward_wait_seconds=5), clock=clock)
    decision = engine.rank(CONTEXT, ACTIONS, event_id="event-1")
    engine.reward("event-1", reward)
    clock.advance(6)
    assert engine.process_due() == 1
    (path,) = (tmp_path / "logs").rglob("*.dsjson")
    return path.read_text().strip(), decision


def test_joined_line_parses_with_vw_and_carries_the_label(tmp_path, clock):
    line, decision = _one_joined_line(tmp_path, clock, reward=0.75)
    examples = vw.DSJsonFormatParser(vw.Workspace(["--cb_explore_adf", "--quiet"])).parse_json(
        line)
    assert len(examples) == 1 + len(ACTIONS)  # shared + one per action
    chosen = [a.id for a in ACTIONS].index(decision.reward_action_id)
    labelled = [(i, ex.get_label().label) for i, ex in enumerate(examples[1:])
                if ex.get_label().label is not None]
    assert labelled == [(chosen, (chosen + 1, -0.75, pytest.approx(decision.probability)))]
    record = json.loads(line)
    assert record["_labelIndex"] == chosen and record["_label_Action"] == chosen + 1
    assert record["a"][0] == chosen + 1
    assert record["p"][0] == pytest.approx(decision.probability)
    assert record["_banditkit"]["actionIds"] == [a.id for a in ACTIONS]


def test_reader_leaves_a_line_still_being_appended(tmp_path, clock, caplog):
    line, _ = _one_joined_line(tmp_path, clock, reward=1.0)
    (path,) = (tmp_path / "logs").rglob("*.dsjson")
    with open(path, "a") as handle:
        handle.write(line.replace("event-1", "event-2")[:100])  # the learner mid-write
    assert [e.event_id for e in read_events([path])] == ["event-1"]
    assert "line still being written" in caplog.text
    with open(path, "a") as handle:
        handle.write(line.replace("event-1", "event-2")[100:] + "\n")
    assert [e.event_id for e in read_events([path])] == ["event-1", "event-2"]


def test_reader_round_trips_the_log(tmp_path, clock):
    line, decision = _one_joined_line(tmp_path, clock, reward=1.0)
    (event,) = read_events([tmp_path / "logs"])
    assert event.event_id == "event-1"
    assert event.context == {k: v for k, v in CONTEXT.items()}
    assert event.actions == [a.features for a in ACTIONS]
    assert event.action_ids[event.chosen_index] == decision.reward_action_id
    assert event.reward == 1.0 and not event.skip_learn
    assert sum(event.pmf) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["with space", "a:b", "pipe|bar", "ünïcode", "quote\"s"])
def test_any_feature_name_is_a_distinct_feature(name):
    """Names VW's text format cannot carry still reach the model, and stay distinct."""
    learner = VWLearner(args="--cb_explore_adf --epsilon 0 -q MA")
    context = {"Member": {name: "x"}}
    other = {"Member": {"plain": "x"}}
    features = [a.features for a in ACTIONS]
    for _ in range(40):  # poster 1 pleases `name`, poster 0 pleases `plain`
        for chosen in (0, 1):
            learner.learn_one(context, features, chosen=chosen, reward=float(chosen == 1),
                              probability=1 / 3)
            learner.learn_one(other, features, chosen=chosen, reward=float(chosen == 0),
                              probability=1 / 3)
    assert learner.predict_one(context, features).argmax() == 1
    assert learner.predict_one(other, features).argmax() == 0


def test_learning_online_equals_learning_from_the_log():
    online = VWLearner(args="--cb_explore_adf --epsilon 0.1 -q MA")
    offline = VWLearner(args="--cb_explore_adf --epsilon 0.1 -q MA")
    features = [a.features for a in ACTIONS]
    rng = np.random.default_rng(0)
    for _ in range(30):
        chosen, reward = int(rng.integers(3)), float(rng.random())
        online.learn_one(CONTEXT, features, chosen=chosen, reward=reward, probability=1 / 3)
        line = json.dumps({"_label_cost": -reward, "_label_probability": 1 / 3,
                           "_label_Action": chosen + 1, "_labelIndex": chosen,
                           "a": [chosen + 1], "p": [1 / 3],
                           "c": dsjson_context(CONTEXT, features)})
        offline.learn_dsjson(line)
    np.testing.assert_allclose(online.predict_one(CONTEXT, features),
                               offline.predict_one(CONTEXT, features))
    np.testing.assert_allclose(online._vw.weights(), offline._vw.weights())


def test_the_store_gives_back_the_exact_logged_line_without_keeping_features_twice(
        tmp_path, clock):
    line, _ = _one_joined_line(tmp_path, clock, reward=0.5)
    engine = Engine.open(tmp_path, clock=clock)
    assert engine.store.event("event-1")["joined_line"] == line
    assert [text for _, text in engine.store.joined_lines_after(0)] == [line]
    stored = engine.store._db.execute(
        "SELECT joined_line FROM events WHERE event_id = 'event-1'").fetchone()[0]
    features = json.dumps(json.loads(line)["c"], separators=(",", ":"))
    assert '"c":' not in stored and len(line) - len(stored) == len(',"c":' + features)
    ((_, _, decision, joined),) = engine.store.events_since(0)
    assert json.loads(joined) == {k: v for k, v in json.loads(line).items() if k != "c"}
    assert "c" not in json.loads(decision) and json.loads(decision)["EventId"] == "event-1"
    ((_, _, decision, joined),) = engine.store.events_since(0, with_features=True)
    assert joined == line and json.loads(decision)["c"] == json.loads(line)["c"]


@pytest.mark.parametrize("event_id", ["plain", 'with "quotes" and \\ slash', "naïve ✓ 日本",
                                      "line\u2028separator\u00a0nbsp"])
@pytest.mark.parametrize("extra, excluded", [({}, []), ({"title": "ç \"t\"", "n": 3}, []),
                                             ({}, ['q"1'])])
def test_a_decision_record_is_written_exactly_as_compact_json(tmp_path, clock, event_id,
                                                             extra, excluded):
    """The rank path formats the record's head itself; it must be the JSON encoder's text."""
    actions = [Action(id=i, features=a.features)
               for i, a in zip(['p"0', 'q"1', "r\\2 ✓"], ACTIONS, strict=True)]
    engine = Engine.open(tmp_path, clock=clock)
    engine.rank(CONTEXT, actions, event_id=event_id, excluded=excluded, extra=extra)
    decision = engine.store.event(event_id)["decision"]
    assert decision == json.dumps(json.loads(decision), separators=(",", ":"))
    record = json.loads(decision)
    assert record["EventId"] == event_id
    shown = [a.id for a in actions if a.id not in excluded]
    assert record["_banditkit"] == {"actionIds": shown, **extra,
                                    **({"excludedActionIds": excluded} if excluded else {})}
    assert sum(record["p"]) == pytest.approx(1.0)
    assert sorted(record["a"]) == list(range(1, len(shown) + 1))


@pytest.mark.parametrize("text", ['{"a":[1,2.5],"b":{"c":"\\u00fc"}}', ' {"a":1}', '{"a":1}\n',
                                  '{"a":1}x', "", "{", "[1]", '"s"'])
def test_decoding_a_head_is_json_loads(text):
    from banditkit.dsjson import _decoded

    try:
        expected = json.loads(text)
    except json.JSONDecodeError as error:
        with pytest.raises(json.JSONDecodeError, match=error.msg):
            _decoded(text)
    else:
        assert _decoded(text) == expected


# Feature names as check_features admits them: never starting with "_" (dsjson's own keys).
_NAMES = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=6).filter(
    lambda name: name[0] != "_")
_VALUES = st.one_of(st.text(max_size=8), st.floats(allow_nan=False, allow_infinity=False))
_FEATURES = st.dictionaries(st.sampled_from(["Member", "Taste", "Artwork", ""]),
                            st.dictionaries(_NAMES, _VALUES, min_size=1, max_size=3),
                            max_size=3)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)
_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_TIME = st.floats(min_value=0, max_value=4e9).map(iso_timestamp)


@st.composite
def _decisions(draw: st.DrawFn) -> dict:
    n_actions = draw(st.integers(1, 4))
    return {
        "event_id": draw(st.text(max_size=12)),
        "timestamp": draw(_TIME),
        "model_version": draw(st.integers(0, 10**6)),
        "order": draw(st.permutations(range(n_actions))),
        "pmf": draw(st.lists(st.floats(min_value=0, max_value=1), min_size=n_actions,
                             max_size=n_actions)),
        "action_ids": draw(st.lists(st.text(max_size=8), min_size=n_actions,
                                    max_size=n_actions, unique=True)),
        # "defaultReward" among the keys: the head is not spliced but encoded
        "extra": draw(st.dictionaries(st.text(max_size=6) | st.just("defaultReward"), _JSON,
                                      max_size=3)),
        "context": draw(_FEATURES),
        "actions": draw(st.lists(_FEATURES, min_size=n_actions, max_size=n_actions)),
    }


@pytest.mark.slow  # hundreds of generated records
@settings(max_examples=300, deadline=None)
@given(decision=_decisions(), reward=_FINITE, deferred=st.booleans(), skip_learn=st.booleans(),
       outcomes=st.lists(st.fixed_dictionaries({"EventId": st.text(max_size=5), "v": _FINITE,
                                                "t": _TIME}), max_size=2),
       ignored=st.lists(st.fixed_dictionaries({"v": _FINITE, "t": _TIME}), max_size=2))
def test_a_written_decision_spliced_and_parsed_back_is_the_encoded_one(
        decision, reward, deferred, skip_learn, outcomes, ignored):
    """Head writer -> splice -> parser gives what the slow encode path gives, and the inputs."""
    actions = [Action(id=i, features=f)
               for i, f in zip(decision["action_ids"], decision["actions"], strict=True)]
    head = decision_head(decision["event_id"], decision["timestamp"], decision["model_version"],
                         decision["order"], decision["pmf"], actions, decision["extra"])
    line = decision_line(head, compact_json(dsjson_context(decision["context"],
                                                           decision["actions"])))
    assert line == compact_json(json.loads(line))
    join = {"reward": reward, "outcomes": outcomes, "ignored": ignored, "deferred": deferred,
            "skip_learn": skip_learn, "used_default": not outcomes}
    spliced = joined_line_text(line, len(head), **join)
    encoded = joined_line_text(line, None, **join)
    if "defaultReward" not in decision["extra"]:
        assert _spliced(head + "}", reward, outcomes, ignored, deferred, skip_learn,
                        not outcomes) is not None
    # The same object; the spliced text is byte for byte the encoder's, features last.
    assert json.loads(spliced.line) == json.loads(encoded.line)
    assert spliced.stored == compact_json({k: v for k, v in json.loads(encoded.line).items()
                                           if k != "c"})
    assert spliced.line == spliced.stored[:-1] + line[len(head):-1] + "}"
    assert (spliced.timestamp, spliced.learning_mode, spliced.skip_learn) == (
        encoded.timestamp, encoded.learning_mode, encoded.skip_learn)
    event = parse_event(json.loads(spliced.line))
    assert event == parse_event(json.loads(encoded.line))
    chosen = decision["order"][0]
    assert (event.event_id, event.timestamp, event.model_version) == (
        decision["event_id"], decision["timestamp"], str(decision["model_version"]))
    # Logged as the HTTP answers give them: float32's shortest decimals.
    logged = tuple(shortest_probability(p) for p in decision["pmf"])
    assert (event.chosen_index, event.probability, event.reward, event.skip_learn) == (
        chosen, logged[chosen], reward, skip_learn)
    assert event.action_ids == decision["action_ids"]
    assert event.pmf == logged
    assert event.context == decision["context"] and event.actions == decision["actions"]
    assert event.extra["defaultReward"] == (not outcomes)


def test_a_page_written_joined_and_parsed_back_keeps_its_fields():
    """The CCB record: decision writer -> join -> parser gives the page's fields back."""
    rows = [{"Row": {"kind": f"k{i}"}} for i in range(3)]
    slots = [CcbSlot("1", {"Slot": {"top": True}}, [0, 1, 2], [2, 0, 1], [0.5, 0.3, 0.2]),
             CcbSlot("2", {"": {"pos": 2.0}}, [0, 1], [0, 1], [0.75, 0.25])]
    decision = ccb_decision_line("p\u00e9", "2026-01-01T00:00:00.000000Z", "7", CONTEXT, rows,
                                 slots, {"rowIds": ["a", "b", "c"], "slotIds": ["1", "2"]})
    assert list(json.loads(decision)) == ["EventId", "Timestamp", "Version", "VWState", "c",
                                          "_outcomes", "_banditkit"]
    assert ccb_slot_ids(decision) == ["1", "2"]
    joined = joined_ccb_line(
        decision, {"1": CcbSlotJoin(1.5, False, [{"v": 1.5, "t": "x"}], []),
                   "2": CcbSlotJoin(0.0, True, [], [{"v": 9.0, "t": "y"}])},
        deferred=True, activated_at="z", skip_learn=False, page_reward=2.0,
        page_used_default=False, page_ignored=[])
    record = json.loads(joined.line)
    assert record["_banditkit"]["ignoredRewards"] == {"2": [{"v": 9.0, "t": "y"}]}
    assert record["_banditkit"]["defaultRewardSlots"] == ["2"]
    assert record["DeferredAction"] is True and joined.timestamp == "2026-01-01T00:00:00.000000Z"
    page = parse_page(record)
    assert (page.event_id, page.model_version, page.page_reward) == ("p\u00e9", "7", 2.0)
    assert page.context == CONTEXT and page.rows == rows
    assert page.slots == [{"Slot": {"top": True}}, {"": {"pos": 2.0}}]
    assert page.chosen == [2, 0] and page.eligible == [[0, 1, 2], [0, 1]]
    assert page.probability == (0.5, 0.75) and page.reward == (1.5, 0.0)
    assert page.row_ids == ["a", "b", "c"] and page.slot_ids == ["1", "2"]


@given(st.floats(min_value=0.0, max_value=1.0, width=32))
def test_shortest_probability_reads_back_as_the_same_float32(probability: float) -> None:
    short = shortest_probability(probability)
    assert np.float32(short) == np.float32(probability)
    digits = repr(short).split("e")[0].replace(".", "").strip("0")
    assert len(digits) <= 9, repr(short)


def test_shortest_probability_drops_float32_noise() -> None:
    noisy = float(np.float32(0.06))
    assert repr(noisy) == "0.05999999865889549"
    assert repr(shortest_probability(noisy)) == "0.06"
    assert repr(shortest_probability(float(np.float32(1 / 3)))) == "0.33333334"
    assert shortest_probability(1.0) == 1.0 and shortest_probability(0.0) == 0.0
