"""Cross-fitted reward models."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor

from ope.reward_model import CrossFitRewardModel
from ope.rounds import LoggedRounds


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
