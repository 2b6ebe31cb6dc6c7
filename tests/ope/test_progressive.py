"""Personalizer's evaluations on a log written by banditkit's own online learner (``-q ::``).

One world (``ArtworkWorld``: reward driven by taste x theme) and one evaluation
with Custom policies, search and feature importance are shared by the tests;
every figure is seeded, so each assertion is deterministic.
"""

import json
import re

import numpy as np
import pytest

from banditkit.dsjson import parse_event
from banditkit.errors import InvalidInputError
from banditkit.vw import ProgressiveScorer, VWLearner
from ope.estimators import DR, SNIPS
from ope.personalizer import evaluate_window
from ope.progressive import CandidatePool, freeze_window, score_candidates
from ope.search import SearchBudget, search, split_exploration
from simulator.learnerlog import write_learner_log
from simulator.world import ArtworkWorld

ONLINE = "--cb_explore_adf --epsilon 0.2 -q ::"
NO_INTERACTIONS = "--cb_explore_adf --epsilon 0.2"
N_EVENTS = 6000


@pytest.fixture(scope="module")
def world():
    return ArtworkWorld.generate(seed=0, n_members=500, n_titles=20, n_variants=4)


@pytest.fixture(scope="module")
def log_path(world, tmp_path_factory):
    path = tmp_path_factory.mktemp("online") / "logs" / "events.dsjson"
    return write_learner_log(world, VWLearner(args=ONLINE), path, n_rounds=N_EVENTS, seed=1,
                             seconds_between=1.0)


@pytest.fixture(scope="module")
def window(log_path):
    return freeze_window([log_path])


@pytest.fixture(scope="module")
def evaluation(window):
    return evaluate_window(
        window, online_args=ONLINE,
        custom=[("no-interactions", NO_INTERACTIONS),
                ("taste-by-theme", "--cb_explore_adf --epsilon 0.2 -q TA")],
        optimize=True, importance=True, interval_minutes=5,
        budget=SearchBudget(cpu_seconds=30.0, max_candidates=12, stage_b_samples=2),
        workers=2)


@pytest.mark.slow
def test_online_snips_is_the_plain_log_average(evaluation, window):
    online = evaluation.policy("Online")
    # the online policy's weights are its own propensities over themselves: all 1
    assert online.summary.value == pytest.approx(window.reward.mean(), rel=1e-12)
    assert online.summary.ci[0] < window.reward.mean() < online.summary.ci[1]
    assert online.estimates["ips"].value == pytest.approx(window.reward.mean(), rel=1e-12)


@pytest.mark.slow
def test_random_and_baseline_intervals_hold_their_exact_values(evaluation, world):
    baseline = np.zeros(world.take_probability.shape)
    baseline[..., 0] = 1.0  # the first action of _multi is variant 0
    # seeded 95 % intervals; their standard errors (about 0.007 and 0.016) are
    # far wider than the estimators' O(1/n) bias
    for name, policy in (("Random", world.uniform_policy()), ("Baseline", baseline)):
        low, high = evaluation.policy(name).summary.ci
        assert low < world.policy_value(policy) < high, name


@pytest.mark.slow
def test_no_interaction_custom_scores_below_the_online_policy(evaluation):
    online = evaluation.policy("Online").summary
    flat = evaluation.policy("no-interactions").summary
    # without a taste x theme term the policy cannot personalize: its whole
    # interval lies below the online interval
    assert flat.ci[1] < online.ci[0]


@pytest.mark.slow
def test_the_optimum_is_not_worse_than_the_best_custom(evaluation):
    customs = [p for p in evaluation.policies if p.policy_source == "Custom"]
    optimized = evaluation.policy(evaluation.optimal_policy)
    assert optimized.policy_source == "OfflineExperimentation"
    assert optimized.summary.value >= max(p.summary.value for p in customs)
    assert evaluation.models["Optimized"]


@pytest.mark.slow
def test_the_search_finds_a_taste_by_artwork_interaction(evaluation):
    best = evaluation.search.best.args
    pairs = re.findall(r"-q (\S+)", best)
    assert "TA" in pairs or "::" in pairs, best
    stages = {row.stage for row in evaluation.search.trace}
    assert {"seed", "interactions"} <= stages
    assert evaluation.search.n_candidates <= 12
    # the exploration stays the online policy's
    assert split_exploration(best)[0] == ["--epsilon", "0.2"]


@pytest.mark.slow
def test_features_that_drive_reward_score_above_noise_features(evaluation):
    scores = {(s.namespace, s.feature_name): s for s in evaluation.feature_scores}
    drivers = [scores[("Artwork", "theme")]] + [s for k, s in scores.items() if k[0] == "Taste"]
    # country never changes a take; a title's genres are the same for all its variants
    noise = [scores[("Member", "country")]] + [s for k, s in scores.items() if k[0] == "Genre"]
    assert min(s.score for s in drivers) > max(s.score for s in noise)
    assert scores[("Artwork", "theme")].ci[0] > 0
    values = [s.score for s in evaluation.feature_scores]
    assert values == sorted(values, reverse=True) and values[0] == 1.0


@pytest.mark.slow
def test_the_last_expanding_point_is_the_summary(evaluation):
    for policy in evaluation.policies:
        last = policy.timeseries.points[-1].estimate
        assert last.value == pytest.approx(policy.summary.value, rel=1e-9), policy.name
        assert last.ci == pytest.approx(policy.summary.ci, rel=1e-9), policy.name
        assert last.n_rounds == N_EVENTS


def test_rolling_points_split_the_window_into_buckets(window):
    result = evaluate_window(window, online_args=ONLINE, interval_minutes=60,
                             window_kind="Rolling")
    points = result.policy("Online").timeseries.points
    # 6000 events one second apart from 1.7e9 s: 100 minutes over two hour buckets
    assert len(points) == 2
    assert sum(p.estimate.n_rounds for p in points) == N_EVENTS
    assert points[1].time - points[0].time == 3600.0
    # each Rolling point is the estimator on its bucket's events alone
    second = window.timestamp >= points[1].time
    assert points[1].estimate.value == pytest.approx(window.reward[second].mean(), rel=1e-12)
    shape = result.to_dict()["value"][0]
    assert set(shape) >= {"name", "arguments", "policySource", "summary", "timeseries"}
    assert set(shape["timeseries"]["data"][0]) == {"timeStamp", "expectedReward",
                                                  "confidenceInterval"}
    json.dumps(result.to_dict())


def test_bad_arguments_and_names_are_refused_before_any_run(window):
    with pytest.raises(InvalidInputError, match="may not use '-f'"):
        evaluate_window(window, online_args=ONLINE, custom=[("a", NO_INTERACTIONS + " -f m")])
    with pytest.raises(InvalidInputError, match="must contain --cb_explore_adf"):
        evaluate_window(window, online_args=ONLINE, custom=[("a", "--epsilon 0.2")])
    with pytest.raises(ValueError, match="must differ from"):
        evaluate_window(window, online_args=ONLINE, custom=[("online", NO_INTERACTIONS)])
    with pytest.raises(ValueError, match="unique"):
        evaluate_window(window, online_args=ONLINE,
                        custom=[("a", NO_INTERACTIONS), ("A", NO_INTERACTIONS)])
    with pytest.raises(ValueError, match="interval_minutes"):
        evaluate_window(window, online_args=ONLINE, interval_minutes=7)
    with pytest.raises(ValueError, match=r"reward model .* got \['dr', 'snips'\]"):
        evaluate_window(window, online_args=ONLINE,
                        estimators=[DR(), SNIPS(ci_method="bootstrap")])


@pytest.mark.slow
def test_pool_results_equal_in_process_results(window, log_path):
    small = freeze_window([log_path], end=window.timestamp[600])
    tasks = [NO_INTERACTIONS, ("--cb_explore_adf --epsilon 0.2 -q TA", ("Taste", "comedy"))]
    alone = score_candidates(small, tasks, workers=1)
    with CandidatePool.open(small, workers=2) as pool:
        pooled = score_candidates(small, tasks, pool=pool)
        again = pool.run(tasks[:1])  # the same children serve a second stage
        with pytest.raises(ValueError, match="opened on this window"):
            score_candidates(window, tasks, pool=pool)
    for a, b in zip(alone, pooled, strict=True):
        np.testing.assert_array_equal(a.probability, b.probability)
        assert a.args == b.args and a.dropped == b.dropped
    np.testing.assert_array_equal(again[0].probability, alone[0].probability)


def test_each_event_is_scored_before_it_is_learned(window):
    first, second = window.lines[:2]
    scorer = ProgressiveScorer(args=ONLINE)
    scorer.step(first, int(window.n_actions[0]))
    before = scorer.step(second, int(window.n_actions[1]))
    learner = VWLearner(args=ONLINE)
    learner.learn_dsjson(first)
    event = parse_event(json.loads(second))
    np.testing.assert_allclose(before, learner.predict_one(event.context, event.actions),
                               rtol=1e-6)
    assert scorer.n_updates_ == 2 and scorer.to_bytes()


def test_the_window_keeps_its_bounds_and_skips_unactivated_events(log_path, tmp_path):
    lines = log_path.read_text().splitlines()
    record = json.loads(lines[10])
    record["_skipLearn"] = True
    lines[10] = json.dumps(record)
    path = tmp_path / "events.dsjson"
    path.write_text("\n".join(lines[:100]) + "\n")
    window = freeze_window([path], start=1.7e9 + 5, end=1.7e9 + 50)
    assert len(window) == 44 and window.n_skipped == 1
    assert window.timestamp.min() >= 1.7e9 + 5 and window.timestamp.max() < 1.7e9 + 50
    naive = json.loads(lines[0])
    naive["Timestamp"] = naive["Timestamp"].rstrip("Z")  # no offset: UTC
    path.write_text(json.dumps(naive) + "\n")
    assert freeze_window([path]).timestamp[0] == 1.7e9
    path.write_text(lines[0] + "\n{\"EventId\": \"x\"}\n")
    with pytest.raises(InvalidInputError, match=r"events.dsjson:2: not a joined dsjson event"):
        freeze_window([path])
    with pytest.raises(InvalidInputError, match="no joined event"):
        freeze_window([log_path], start=1.0, end=2.0)


def test_split_exploration_keeps_the_service_exploration_apart():
    exploration, searched, other = split_exploration(
        "--cb_explore_adf --epsilon=0.3 --dsjson -q :: -l 0.5 -b 20 --quiet")
    assert exploration == ["--epsilon", "0.3"]
    assert searched == ["-q", "::", "-l", "0.5"]
    assert other == ["-b", "20"]


def test_a_spent_budget_returns_the_best_seed(window, log_path):
    small = freeze_window([log_path], end=window.timestamp[800])
    # Personalizer's own example arguments carry --dsjson: accepted
    seeds = score_candidates(small, [ONLINE, NO_INTERACTIONS + " --dsjson"])
    found = search(small, exploration=["--epsilon", "0.2"], seeds=seeds,
                   budget=SearchBudget(cpu_seconds=1e-9))
    assert found.n_candidates == 0 and found.cpu_seconds == 0
    values = {row.args: row.value for row in found.trace}
    assert found.best.args == max(values, key=values.get)
