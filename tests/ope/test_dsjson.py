"""Evaluation over the dsjson decision log, read with banditkit's own reader."""

import json

import numpy as np
import pytest

from banditkit.eventlog import read_events
from banditkit.vw import VWLearner
from ope.dsjson import (
    HashedRewardModel,
    evaluate_dsjson,
    make_policy,
    rounds_from_events,
    targets_from_events,
)
from ope.estimators import DR, IPS, SNIPS, Replay
from simulator.world import ArtworkWorld
from simulator.worldlog import reference_policies, sample_log, taste_policy, write_world_log

N_EVENTS = 3000


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    world = ArtworkWorld.generate(seed=3, n_members=200, n_titles=15)
    logging = taste_policy(world, sharpness=4.0, epsilon=0.2)
    log = sample_log(world, logging, n_rounds=N_EVENTS, seed=4)
    path = write_world_log(log, tmp_path_factory.mktemp("logs") / "dt=2026-01-01" /
                           "events.dsjson")
    return world, logging, log, path


def test_written_log_reads_back_with_banditkits_reader(simulated):
    world, logging, log, path = simulated
    events = list(read_events([path]))
    assert len(events) == N_EVENTS
    rounds = rounds_from_events(events)
    np.testing.assert_array_equal(rounds.action, log.rounds.action)
    np.testing.assert_array_equal(rounds.reward, log.rounds.reward)
    np.testing.assert_array_equal(rounds.probability, log.rounds.probability)
    assert rounds.round_id[0] == events[0].event_id
    first = events[0]
    member, title = log.requests[0]
    np.testing.assert_allclose(first.pmf, logging[member, title])
    assert first.context == world.context(int(member))


@pytest.mark.parametrize("chunk_size", [N_EVENTS, 700])
def test_dsjson_evaluation_equals_the_array_path(simulated, chunk_size):
    world, logging, log, path = simulated
    report = evaluate_dsjson([path.parent.parent], policies=["logged", "baseline", "uniform"],
                             estimators=[IPS(), SNIPS()], chunk_size=chunk_size)
    assert report.n_rounds == N_EVENTS
    references = reference_policies(world, logging)
    for name in ("logged", "baseline", "uniform"):
        target = log.target(references[name])
        for estimator in (IPS(), SNIPS()):
            expected = estimator.estimate(log.rounds, target)
            got = report.estimates[name][estimator.name]
            assert got.value == pytest.approx(expected.value, rel=1e-9)
            assert got.ci == pytest.approx(expected.ci, rel=1e-9)
            assert got.diagnostics.unsupported_share == 0.0  # the logger explores all


@pytest.mark.slow
def test_dr_on_dsjson_is_close_to_the_truth(simulated):
    world, logging, log, path = simulated
    report = evaluate_dsjson([path], policies=["uniform"], estimators=[DR()],
                             reward_model=HashedRewardModel(n_folds=3))
    result = report.estimates["uniform"]["dr"]
    truth = log.true_value(world.uniform_policy())
    # 3000 rounds: within 4 of DR's own standard errors unless biased
    assert abs(result.value - truth) <= 4 * result.std_error


def test_replay_bound_comes_from_the_smallest_logged_propensity(simulated):
    _, _, log, path = simulated
    report = evaluate_dsjson([path], policies=["baseline"], estimators=[Replay()])
    assert report.notes["replay_bound"] == pytest.approx(1 / log.rounds.probability.min())
    assert report.estimates["baseline"]["replay"].extra["n_capped"] == 0


def test_saved_model_policy_recomputes_probabilities_on_each_context(simulated, tmp_path):
    _, _, _, path = simulated
    events = list(read_events([path]))[:300]
    learner = VWLearner()
    for event in events[:200]:
        learner.learn_one(event.context, event.actions, chosen=event.chosen_index,
                          reward=event.reward, probability=event.probability)
    model_path = tmp_path / "model-v1.vw"
    model_path.write_bytes(learner.to_bytes())
    policy = make_policy(f"model:{model_path}")
    targets = targets_from_events(events[200:], [policy])
    expected = [learner.predict_one(e.context, e.actions)[e.chosen_index] for e in events[200:]]
    np.testing.assert_allclose(targets[f"model:{model_path}"].probability, expected)
    report = evaluate_dsjson([path], policies=[f"model:{model_path}"], estimators=[IPS()])
    assert report.n_rounds == N_EVENTS


def test_latest_published_model_comes_with_its_vw_arguments(simulated, tmp_path):
    from banditkit.store import Store

    _, _, _, path = simulated
    events = list(read_events([path]))[:250]
    learner = VWLearner(args="--cb_explore_adf --epsilon 0.1 -q ::")
    for event in events[:200]:
        learner.learn_one(event.context, event.actions, chosen=event.chosen_index,
                          reward=event.reward, probability=event.probability)
    Store(path=tmp_path / "banditkit.sqlite3").publish_model(
        created_at=0.0, policy_args=learner.args, banditkit_version="test", through_seq=0,
        n_updates=200, data=learner.to_bytes())
    policy = make_policy("model:latest", data_dir=tmp_path)
    assert policy.name == "model:v1"
    for event in events[200:]:
        np.testing.assert_allclose(policy.pmf(event),
                                   learner.predict_one(event.context, event.actions))
    with pytest.raises(ValueError, match="needs a data directory with a store"):
        make_policy("model:latest", data_dir=tmp_path / "elsewhere")


def test_offline_policy_is_trained_on_the_first_part_and_all_are_scored_on_the_rest(simulated):
    _, _, _, path = simulated
    report = evaluate_dsjson([path], policies=["offline", "logged"], estimators=[IPS()],
                             train_fraction=0.6)
    assert report.notes["offline_train_events"] == int(N_EVENTS * 0.6)
    assert report.n_rounds == N_EVENTS - int(N_EVENTS * 0.6)
    assert set(report.estimates) == {"offline", "logged"}


def test_never_activated_events_are_skipped_and_counted(simulated, tmp_path):
    _, _, _, path = simulated
    lines = path.read_text().splitlines()[:100]
    records = [json.loads(line) for line in lines]
    for record in records[:10]:
        record["_skipLearn"] = True
    edited = tmp_path / "events.dsjson"
    edited.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    report = evaluate_dsjson([edited], policies=["logged"], estimators=[IPS()])
    assert report.n_rounds == 90
    assert report.notes["skipped_not_activated"] == 10


def test_bad_logs_and_policies_are_rejected(tmp_path, simulated):
    _, _, _, path = simulated
    with pytest.raises(ValueError, match="policy must be logged, baseline, uniform"):
        make_policy("greedy")
    with pytest.raises(ValueError, match="model file does not exist"):
        make_policy(f"model:{tmp_path / 'missing.vw'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no .dsjson files found"):
        evaluate_dsjson([empty], estimators=[IPS()])
    with pytest.raises(ValueError, match="needs every round in memory"):
        evaluate_dsjson([path], policies=["logged"],
                        estimators=[IPS(ci_method="bootstrap")])
    with pytest.raises(ValueError, match="train_fraction must be in"):
        evaluate_dsjson([path], estimators=[IPS()], train_fraction=1.0)
