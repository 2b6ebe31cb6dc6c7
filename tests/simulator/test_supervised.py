"""Supervised-to-bandit conversion on digits, and the estimators against its truth."""

import numpy as np
import pytest

from ope.estimators import DM, DR, IPS, SNIPS
from ope.reward_model import CrossFitRewardModel
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


@pytest.mark.slow
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
