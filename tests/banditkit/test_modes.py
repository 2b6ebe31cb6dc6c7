"""Apprentice and logging-only modes, and the loop settings."""

from __future__ import annotations

import json

import pytest

from banditkit.engine import Engine
from banditkit.errors import InvalidInputError
from banditkit.sampling import strictly_preferred
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWLearner

CONTEXT = {"Member": {"device": "tv"}}
ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]


def test_apprentice_returns_the_baseline_learns_it_and_reports_agreement(database_url,
                                                                         tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=LoopSettings(
        learning_mode="apprentice", reward_wait_seconds=1, model_update_seconds=0,
        policy_args="--cb_explore_adf --cb_type mtr -q MA"))
    liked, disliked = {"Member": {"device": "tv"}}, {"Member": {"device": "mobile"}}
    for i in range(60):
        context = liked if i % 2 else disliked
        decision = engine.rank(context, ACTIONS, event_id=f"{i}",
                               excluded=["v0"] if i == 0 else ())
        assert decision.reward_action_id == ("v1" if i == 0 else "v0")  # the baseline
        assert decision.probability == 1.0
        # On TVs members play the baseline; on phones it costs (negative reward).
        engine.reward(decision.event_id, 1.0 if context is liked else -1.0)
        clock.advance(2)
        engine.process_due(force_publish=True)
    lines = [json.loads(line) for path in sorted((tmp_path / "logs").rglob("*.dsjson"))
             for line in path.read_text().splitlines()]
    agrees = {line["EventId"]: line["_banditkit"]["modelAgreesWithBaseline"] for line in lines}
    assert engine.apprentice_agreement() == pytest.approx(sum(agrees.values()) / len(agrees))
    # After a few events the model has learned when the baseline is right.
    assert all(agrees[str(i)] for i in range(21, 60, 2))
    assert not any(agrees[str(i)] for i in range(20, 60, 2))
    assert 0.4 < engine.apprentice_agreement() < 0.7
    # Personalizer's apprentice metrics: rewards of all events, and of those imitated.
    metrics = engine.apprentice_metrics()
    rewards = {line["EventId"]: -line["_label_cost"] for line in lines}
    assert metrics.n_events == len(lines) == 60
    assert metrics.sum_of_rewards == pytest.approx(sum(rewards.values()))
    assert metrics.sum_of_imitated_rewards == pytest.approx(
        sum(r for event_id, r in rewards.items() if agrees[event_id]))
    # It imitates the baseline where the baseline pays, not where it costs.
    assert metrics.sum_of_imitated_rewards > metrics.sum_of_rewards + 15
    assert (metrics.started_at, metrics.last_event_at) == (lines[0]["Timestamp"],
                                                            lines[-1]["Timestamp"])
    assert metrics.last_batch == (1, rewards["59"], rewards["59"] if agrees["59"] else 0.0)


def test_an_untrained_model_does_not_agree_with_the_baseline(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=LoopSettings(
        learning_mode="apprentice", reward_wait_seconds=1, model_update_seconds=0))
    for i in range(3):  # no model update: the pmf stays uniform, the model indifferent
        engine.reward(engine.rank(CONTEXT, ACTIONS, event_id=f"{i}").event_id, 1.0)
    clock.advance(2)
    assert engine.process_due() == 3
    lines = [json.loads(line) for path in sorted((tmp_path / "logs").rglob("*.dsjson"))
             for line in path.read_text().splitlines()]
    assert [line["_banditkit"]["modelAgreesWithBaseline"] for line in lines] == [False] * 3
    metrics = engine.apprentice_metrics()
    assert (metrics.n_events, metrics.n_agreed, metrics.sum_of_imitated_rewards) == (3, 0, 0.0)


def test_strictly_preferred_needs_the_action_alone_on_top():
    assert strictly_preferred([0.5, 0.3, 0.2], 0)
    assert strictly_preferred([1.0], 0)
    assert not strictly_preferred([0.4, 0.4, 0.2], 0)
    assert not strictly_preferred([0.2, 0.4, 0.4], 1)
    assert not strictly_preferred([1 / 3] * 3, 0)


def test_logging_only_logs_the_baseline_and_learns_nothing(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=LoopSettings(
        learning_mode="logging_only", reward_wait_seconds=1, model_update_seconds=0))
    for i in range(10):
        assert engine.rank(CONTEXT, ACTIONS, event_id=f"{i}").reward_action_id == "v0"
    clock.advance(2)
    assert engine.process_due(force_publish=True) == 10
    assert engine._trainer.__dict__.get("_n_updates", 0) == 0


def test_exploration_percentage_sets_epsilon_unless_another_algorithm_is_chosen():
    settings = LoopSettings(exploration_percentage=0.05,
                            policy_args="--cb_explore_adf --epsilon 0.3 -q MA")
    assert settings.learner_args() == "--cb_explore_adf -q MA --epsilon 0.05"
    assert LoopSettings(policy_args="--cb_explore_adf --bag 5").learner_args() == (
        "--cb_explore_adf --bag 5")


def _trained_pmf(args: str) -> list[float]:
    """The pmf VW gives three actions after learning that the first one pays."""
    learner = VWLearner(args=args)
    for _ in range(5):
        learner.learn_one(CONTEXT, [a.features for a in ACTIONS], chosen=0, reward=1.0,
                          probability=1 / 3)
    return list(learner.predict_one(CONTEXT, [a.features for a in ACTIONS]))


@pytest.mark.parametrize("policy_args", ["--cb_explore_adf --epsilon=0.05 -q MA",
                                         "--cb_explore_adf --epsilon=0.05 --epsilon 0.3"])
def test_vw_explores_at_the_exploration_percentage_whatever_the_policy_spelling(policy_args):
    args = LoopSettings(exploration_percentage=0.2, policy_args=policy_args).learner_args()
    assert "0.05" not in args
    # epsilon-greedy over 3 actions: each action the model does not prefer gets
    # exactly epsilon / 3, so the floor shows which epsilon VW runs with.
    assert min(_trained_pmf(args)) == pytest.approx(0.2 / 3)


@pytest.mark.parametrize("policy_args", ["--cb_explore_adf --bag=3",
                                         "--cb_explore_adf --cover=3"])
def test_no_epsilon_is_forced_onto_another_algorithm_spelled_with_equals(policy_args):
    assert LoopSettings(policy_args=policy_args).learner_args() == policy_args


def test_a_policy_epsilon_that_contradicts_the_exploration_percentage_is_refused():
    settings = LoopSettings(exploration_percentage=0.2)
    for policy_args in ("--cb_explore_adf --epsilon=0.05", "--cb_explore_adf --epsilon 0.05"):
        with pytest.raises(InvalidInputError, match=r"--epsilon.0\.05.*exploration_percentage"):
            settings.with_policy_args(policy_args)
    # An equal epsilon (a policy exported from Personalizer carries one) is
    # accepted and not stored, so a later exploration change leaves none stale.
    same = settings.with_policy_args("--cb_explore_adf --epsilon=0.2 -q MA")
    assert same.policy_args == "--cb_explore_adf -q MA"
    assert same.replace(exploration_percentage=0.1).learner_args() == (
        "--cb_explore_adf -q MA --epsilon 0.1")
    # Another algorithm reads its own --epsilon, which the percentage does not set.
    bag = settings.with_policy_args("--cb_explore_adf --bag 3 --epsilon 0.05")
    assert bag.learner_args() == "--cb_explore_adf --bag 3 --epsilon 0.05"


def test_the_exploration_percentage_reaches_vw_exactly():
    settings = LoopSettings(exploration_percentage=0.1234567)
    assert settings.learner_args().endswith("--epsilon 0.1234567")


@pytest.mark.parametrize("field, value, message", [
    ("reward_aggregation", "max", "reward_aggregation must be one of"),
    ("learning_mode", "Online", "learning_mode must be one of"),
    ("exploration_percentage", 1.5, r"exploration_percentage must be in \[0, 1\]"),
    ("reward_wait_seconds", -1, "reward_wait_seconds must be a finite number"),
    ("policy_args", "--cb_adf", "must contain --cb_explore_adf"),
    ("policy_args", "--cb_explore_adf -p /tmp/victim", "may not use '-p'"),
    ("policy_args", "--cb_explore_adf --readable_model=/etc/x", "may not use"),
])
def test_bad_settings_are_rejected(field, value, message):
    with pytest.raises(InvalidInputError, match=message):
        LoopSettings(**{field: value})


def test_invalid_vw_arguments_are_rejected_and_settings_unchanged(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock)
    before = engine.settings
    with pytest.raises(InvalidInputError, match="invalid VW arguments"):
        engine.update_settings(before.replace(policy_args="--cb_explore_adf --no_such_flag"))
    assert engine.settings == before


def test_settings_persist_across_restarts(database_url, tmp_path, clock):
    Engine.open(tmp_path, database_url=database_url,
                clock=clock, settings=LoopSettings(default_reward=0.25)).close()
    assert Engine.open(tmp_path, database_url=database_url,
                       clock=clock).settings.default_reward == 0.25
