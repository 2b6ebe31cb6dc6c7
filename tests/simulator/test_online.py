"""Online simulation: exact regret bookkeeping and a VW learner that learns."""

import numpy as np
import pytest

from banditkit.vw import VWLearner
from simulator.online import run_online
from simulator.world import ArtworkWorld


class UniformLearner:
    """A real (if dull) policy: uniform over the offered actions, learns nothing."""

    def predict_one(self, context, actions):
        return np.full(len(actions), 1.0 / len(actions))

    def learn_one(self, context, actions, *, chosen, reward, probability):
        assert probability == pytest.approx(1.0 / len(actions))


@pytest.fixture(scope="module")
def world():
    return ArtworkWorld.generate(seed=0, n_members=300, n_titles=20)


def test_uniform_policy_regret_equals_the_uniform_reference_exactly(world):
    result = run_online(world, UniformLearner(), n_rounds=500, seed=1)
    np.testing.assert_allclose(result.cumulative_regret, result.uniform_cumulative_regret)
    assert np.all(np.diff(result.cumulative_regret) >= 0)  # regret never decreases
    frame = result.to_frame(every=100)
    assert frame.step.tolist() == [100, 200, 300, 400, 500]


def test_vw_learner_regret_grows_slower_than_uniform(world):
    result = run_online(world, VWLearner(), n_rounds=3000, seed=0)
    # Learning shows as a higher exact take rate late than early, and as less
    # cumulative regret than the uniform policy on the same requests. Both are
    # exact expectations (no take noise); the margins are a fraction of the
    # gap between uniform (~0.14) and oracle (~0.35) take rates.
    early = result.expected_take[:500].mean()
    late = result.expected_take[-1000:].mean()
    assert late > early + 0.04
    assert result.cumulative_regret[-1] < 0.85 * result.uniform_cumulative_regret[-1]


def test_run_online_validates(world):
    with pytest.raises(ValueError, match="n_rounds must be >= 1, got 0"):
        run_online(world, UniformLearner(), n_rounds=0, seed=0)
