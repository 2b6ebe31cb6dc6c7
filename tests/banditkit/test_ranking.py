"""Probabilities, the exploration floor, seeded sampling and event-id rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from banditkit.engine import Engine, RankRequest
from banditkit.errors import DuplicateEventError, InvalidInputError
from banditkit.sampling import sample_index
from banditkit.settings import LoopSettings
from banditkit.types import Action

CONTEXT = {"Member": {"country": "US", "device": "mobile"}}
ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(4)]


def _trained(tmp_path, clock, database_url):
    """An engine whose model prefers v2 after learning that v2 gets played."""
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=LoopSettings(
        reward_wait_seconds=1, exploration_percentage=0.2, model_update_seconds=0))
    for i in range(200):
        decision = engine.rank(CONTEXT, ACTIONS, event_id=f"train-{i}")
        if decision.reward_action_id == "v2":
            engine.reward(decision.event_id, 1.0)
    clock.advance(2)
    engine.process_due(force_publish=True)
    return engine


@pytest.fixture
def trained_engine(tmp_path, clock):
    """:func:`_trained` on SQLite, for what does not depend on the store."""
    engine = _trained(tmp_path, clock, None)
    yield engine
    engine.close()


@pytest.fixture
def trained_on_each_store(database_url, tmp_path, clock):
    """:func:`_trained` on each store in turn, for what the store keeps."""
    engine = _trained(tmp_path, clock, database_url)
    yield engine
    engine.close()


def test_probabilities_sum_to_one_and_respect_the_epsilon_floor(trained_engine):
    decision = trained_engine.rank(CONTEXT, ACTIONS, event_id="probe")
    probabilities = np.array([r.probability for r in decision.ranking])
    assert probabilities.sum() == pytest.approx(1.0)
    # epsilon-greedy gives every action at least epsilon / K
    assert probabilities.min() >= 0.2 / len(ACTIONS) - 1e-6
    assert decision.ranking[0].id == decision.reward_action_id
    best = max(decision.ranking, key=lambda r: r.probability)
    assert best.id == "v2" and best.probability == pytest.approx(1 - 0.2 + 0.2 / 4, abs=1e-6)


def test_the_python_api_gives_the_logged_short_probabilities(trained_on_each_store):
    """Each probability is the float32 the model drew with, printed as its shortest decimal."""
    trained_engine = trained_on_each_store
    decision = trained_engine.rank(CONTEXT, ACTIONS, event_id="short")
    for ranked in decision.ranking:
        assert ranked.probability == float(str(np.float32(ranked.probability)))
    logged = json.loads(trained_engine.store.event("short")["decision"])
    # dsjson's "p" is aligned with "a", the ranking order
    assert logged["p"] == [r.probability for r in decision.ranking]


def test_choice_frequencies_match_the_probabilities(trained_engine):
    """Over many event ids the chosen action follows the pmf (binomial tolerance)."""
    n = 4000
    pmf = {r.id: r.probability for r in trained_engine.rank(CONTEXT, ACTIONS).ranking}
    decisions = trained_engine.rank_many(
        [RankRequest(
            context=CONTEXT, actions=ACTIONS, event_id=f"freq-{i}") for i in range(n)])
    counts = {a.id: 0 for a in ACTIONS}
    for decision in decisions:
        counts[decision.reward_action_id] += 1
    for action_id, p in pmf.items():
        # 4.5 binomial standard deviations: all four pass together with prob > 0.9999
        tolerance = 4.5 * np.sqrt(n * p * (1 - p))
        assert abs(counts[action_id] - n * p) <= tolerance, (action_id, counts, pmf)


def test_same_event_id_and_model_give_the_same_choice(database_url, tmp_path, clock,
                                                      trained_on_each_store):
    trained_engine = trained_on_each_store
    first = trained_engine.rank(CONTEXT, ACTIONS, event_id="replay-me")
    other = Engine.open(tmp_path, database_url=database_url, clock=clock)
    # A second process with the same snapshot reproduces the draw for the same id.
    assert other.model_version == first.model_version
    pmf = np.array([{r.id: r.probability for r in first.ranking}[a.id] for a in ACTIONS])
    assert ACTIONS[sample_index(pmf, "replay-me")].id == first.reward_action_id
    choices = {other._decide(
        RankRequest(
            context=CONTEXT, actions=ACTIONS, event_id="replay-me"),
        other._encoder.encode(CONTEXT), other.settings, "t")[0].reward_action_id for _ in range(5)}
    assert choices == {first.reward_action_id}


def test_duplicate_event_id_is_rejected_and_nothing_changes(trained_on_each_store):
    trained_engine = trained_on_each_store
    trained_engine.rank(CONTEXT, ACTIONS, event_id="once")
    before = trained_engine.store.event("once")
    with pytest.raises(DuplicateEventError, match="'once' was already used"):
        trained_engine.rank(CONTEXT, ACTIONS, event_id="once")
    assert trained_engine.store.event("once") == before


def test_excluded_actions_get_zero_and_are_never_chosen(trained_engine):
    for i in range(300):
        decision = trained_engine.rank(CONTEXT, ACTIONS, event_id=f"ex-{i}", excluded=["v2", "v0"])
        assert decision.reward_action_id in {"v1", "v3"}
        assert [r.id for r in decision.ranking[-2:]] == ["v0", "v2"]
        assert all(r.probability == 0 for r in decision.ranking[-2:])
        assert sum(r.probability for r in decision.ranking) == pytest.approx(1.0)


@pytest.mark.parametrize("bad, message", [
    ({"excluded": ["nope"]}, "not among the actions"),
    ({"excluded": ["v0", "v1", "v2", "v3"]}, "every action is excluded"),
    ({"event_id": ""}, "event id must not be empty"),
    ({"event_id": "a/b"}, "event id must not contain '/'"),
    ({"event_id": "a\x00b"}, r"event id must not contain control characters \(U\+0000\)"),
    ({"event_id": "a\x9fb"}, r"event id must not contain control characters \(U\+009F\)"),
    ({"event_id": ".."}, "event id must not be '.' or '..'"),
    ({"event_id": "e" * 257}, "event id must be at most 256 characters, got 257"),
    ({"context": {"Member": {"country": None}}}, r"context\['Member'\]\['country'\]"),
    ({"context": {"Member": {"hour": float("nan")}}}, "must be finite"),
    ({"context": {"Member": {"hour": 1e39}}}, r"within ±3.4e38"),
    ({"context": {"Member": {"hour": 10**400}}}, r"within ±3.4e38"),
    ({"context": {"Émotion": {"x": 1}}}, "must start with an ASCII character"),
    ({"context": {"Member": {"x": "\ud800"}}}, "no unpaired surrogates"),
    ({"context": {"Member": {"\udfff": "x"}}}, "feature names must be non-empty valid"),
    ({"context": ["not", "a", "dict"]}, "context must be an object"),
    ({"actions": []}, "non-empty list"),
    ({"actions": [ACTIONS[0], ACTIONS[0]]}, "duplicate action id 'v0'"),
])
def test_bad_rank_input_names_the_problem(trained_engine, bad, message):
    arguments = {"context": CONTEXT, "actions": ACTIONS, **bad}
    with pytest.raises(InvalidInputError, match=message):
        trained_engine.rank(arguments.pop("context"), arguments.pop("actions"), **arguments)


def test_non_ascii_text_after_the_first_namespace_letter_is_fine(trained_engine):
    decision = trained_engine.rank({"Mémoire": {"genre": "comédie", "🎬": 1.0}}, ACTIONS)
    assert sum(r.probability for r in decision.ranking) == pytest.approx(1.0)


def test_too_many_actions_is_rejected(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, max_actions=3)
    with pytest.raises(InvalidInputError, match="at most 3"):
        engine.rank(CONTEXT, ACTIONS)


@pytest.mark.parametrize("policy", ["--cb_explore_adf --softmax --lambda 5",
                                    "--cb_explore_adf --bag 4",
                                    "--cb_explore_adf --squarecb",
                                    "--cb_explore_adf --cover 3"])
def test_every_exploration_algorithm_ranks_and_learns(database_url, tmp_path, clock, policy):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=LoopSettings(
        policy_args=policy, reward_wait_seconds=0, model_update_seconds=0))
    assert engine.settings.learner_args() == policy  # no epsilon forced onto another algorithm
    for i in range(50):
        decision = engine.rank(CONTEXT, ACTIONS, event_id=f"{i}")
        engine.reward(decision.event_id, float(decision.reward_action_id == "v1"))
    clock.advance(1)
    assert engine.process_due(force_publish=True) == 50
    decision = engine.rank(CONTEXT, ACTIONS)
    assert decision.model_version != "0"
    assert sum(r.probability for r in decision.ranking) == pytest.approx(1.0)
