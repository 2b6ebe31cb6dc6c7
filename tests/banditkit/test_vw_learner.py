"""The VW learner's rank path (vw-next's core calls) predicts exactly as its public API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from banditkit.encoding import FeatureEncoder
from banditkit.eventlog import dsjson_context
from banditkit.vw import VWLearner

ACTIONS = [{"Artwork": {"theme": f"t{j}", "brightness": j / 7}, "Genre": {"g": f"x{j % 3}"}}
           for j in range(8)]


def _context(i: int) -> dict:
    return {"Member": {"country": ("BR", "US", "JP")[i % 3], "hour": float(i % 24),
                       "kids": bool(i % 2)}}


def _fresh(learner: VWLearner, context: dict, actions: list[dict]) -> np.ndarray:
    """Probabilities from every example parsed afresh through vw-next's public API."""
    line = json.dumps({"c": dsjson_context(context, actions)})
    pmf = np.zeros(len(actions))
    for index, probability in learner._vw.predict_one(learner._parse(line)):
        pmf[index] = probability
    return pmf / pmf.sum()


@pytest.fixture(scope="module")
def trained() -> VWLearner:
    learner = VWLearner(args="--cb_explore_adf --epsilon 0.1 -q MA -q GA")
    rng = np.random.default_rng(0)
    for i in range(3000):
        chosen = int(rng.integers(len(ACTIONS)))
        learner.learn_one(_context(i), ACTIONS, chosen=chosen,
                          reward=float(chosen == i % len(ACTIONS)), probability=0.125)
    return learner


def test_the_rank_path_predicts_exactly_as_the_public_api(trained):
    encoder = FeatureEncoder()
    texts = [encoder.encode(a) for a in ACTIONS]
    for i in range(300):
        # Any subset and order of the kept actions, as exclusions and pages make.
        order = np.random.default_rng(i).permutation(len(ACTIONS))[:3 + i % 6]
        context = _context(i)
        ours = trained.predict_encoded(encoder.encode(context), [texts[j] for j in order])
        fresh = _fresh(trained, context, [ACTIONS[j] for j in order])
        np.testing.assert_allclose(ours, fresh, rtol=1e-6, atol=1e-7)
    assert max(ours) > 0.5  # the model is not uniform, so agreement means something


def test_identical_actions_in_one_decision_and_an_empty_context(trained):
    encoder = FeatureEncoder()
    same = encoder.encode(ACTIONS[0])
    pmf = trained.predict_encoded(encoder.encode({}), [same, same, encoder.encode(ACTIONS[1])])
    np.testing.assert_allclose(pmf, _fresh(trained, {}, [ACTIONS[0], ACTIONS[0], ACTIONS[1]]),
                               rtol=1e-6)
