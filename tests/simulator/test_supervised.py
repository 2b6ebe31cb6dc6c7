"""Supervised-to-bandit conversion on digits, and cross-fitted reward models."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor

from simulator.estimators import DM, DR, IPS, SNIPS
from simulator.reward_model import CrossFitRewardModel
from simulator.rounds import LoggedRounds
from simulator.supervised import digits_bandit, supervised_to_bandit


@pytest.fixture(scope="module")
def digits():
    bandit, targets = digits_bandit(seed=0)
    predictions = CrossFitRewardModel(n_folds=3).predict(bandit.rounds, bandit.features)
    return bandit, targets, predictions


def test_conversion_rewards_are_hits_and_truth_is_the_mean_target_probability():
    features = np.eye(3)
    labels = np.array([0, 1, 2])
    logging = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    bandit = supervised_to_bandit(features, labels, logging_dist=logging, seed=0)
    # deterministic logging: actions 0, 0, 2 -> hits on rounds 0 and 2
    assert bandit.rounds.action.tolist() == [0, 0, 2]
    assert bandit.rounds.reward.tolist() == [1.0, 0.0, 1.0]
    target = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 0.8]])
    assert bandit.true_value(target) == pytest.approx((0.5 + 1.0 + 0.8) / 3)


def test_conversion_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\)"):
        supervised_to_bandit(np.eye(2), np.array([0, 2]), logging_dist=np.full((2, 2), 0.5),
                             seed=0)


@pytest.mark.parametrize("policy", ["greedy", "softmax", "uniform", "logging"])
def test_estimators_recover_the_digits_truth(digits, policy):
    bandit, targets, predictions = digits
    truth = bandit.true_value(targets[policy])
    target = bandit.target(targets[policy], model_predictions=predictions)
    for estimator in (IPS(), SNIPS(), DR()):
        result = estimator.estimate(bandit.rounds, target)
        # ~1500 rounds: each estimate is within 4 of its own standard errors
        # (a 6e-5 two-sided Gaussian tail) unless it is biased
        assert abs(result.value - truth) <= 4 * result.std_error, (estimator.name, result)


def test_logging_policy_evaluates_to_its_own_mean_reward(digits):
    bandit, targets, _ = digits
    # target == logger: every weight is 1, IPS is the mean observed reward
    result = IPS().estimate(bandit.rounds, bandit.target(targets["logging"]))
    assert result.value == pytest.approx(bandit.rounds.reward.mean())
    assert result.diagnostics.effective_sample_size == pytest.approx(len(bandit.rounds))


def test_dr_is_tighter_than_ips_for_a_good_model(digits):
    bandit, targets, predictions = digits
    target = bandit.target(targets["softmax"], model_predictions=predictions)
    assert DR().estimate(bandit.rounds, target).std_error < \
        IPS().estimate(bandit.rounds, target).std_error
    assert DM().estimate(bandit.rounds, target).std_error < \
        DR().estimate(bandit.rounds, target).std_error


def test_cross_fitting_never_scores_a_round_with_a_model_that_saw_it():
    # A 1-nearest-neighbour model reproduces every training reward exactly, so
    # in-sample scoring of the logged action would return the reward itself.
    rng = np.random.default_rng(0)
    n = 400
    features = rng.normal(size=(n, 3))
    rounds = LoggedRounds(reward=rng.normal(size=n), action=rng.integers(2, size=n),
                          probability=np.full(n, 0.5), n_actions=2)
    model = CrossFitRewardModel(model=KNeighborsRegressor(n_neighbors=1), n_folds=4)
    held_out = model.predict(rounds, features)[np.arange(n), rounds.action]
    assert np.mean(np.isclose(held_out, rounds.reward)) < 0.01
    in_sample = KNeighborsRegressor(n_neighbors=1).fit(
        model._design(features, rounds.action, 2), rounds.reward)
    assert np.allclose(in_sample.predict(model._design(features, rounds.action, 2)),
                       rounds.reward)


def test_reward_model_validates_its_inputs():
    rounds = LoggedRounds(reward=[1.0, 0.5, 0.0], action=[0, 1, 0],
                          probability=[0.5] * 3, n_actions=2)
    with pytest.raises(ValueError, match=r"features must have shape \(n_rounds=3"):
        CrossFitRewardModel(n_folds=2).predict(rounds, np.zeros((2, 1)))
    with pytest.raises(ValueError, match="n_folds must be >= 2, got 1"):
        CrossFitRewardModel(n_folds=1)
    with pytest.raises(ValueError, match="at least n_folds=5 rounds, got 3"):
        CrossFitRewardModel().predict(rounds, np.zeros((3, 1)))
    with pytest.raises(TypeError, match="model must be a scikit-learn estimator"):
        CrossFitRewardModel(model="ridge")


def test_predictions_are_zero_outside_a_rounds_actions():
    rng = np.random.default_rng(1)
    n = 60
    n_actions = np.where(np.arange(n) % 2 == 0, 2, 3)
    rounds = LoggedRounds(reward=rng.random(n), action=rng.integers(2, size=n),
                          probability=np.full(n, 0.5), n_actions=n_actions)
    q = CrossFitRewardModel(n_folds=3).predict(rounds, rng.normal(size=(n, 2)))
    assert q.shape == (n, 3)
    assert np.all(q[n_actions == 2, 2] == 0.0)
