"""The VW learner's rank path: kept action and context examples predict exactly as fresh
parses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from banditkit import vw as vw_module
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


def test_reused_action_examples_predict_exactly_as_a_fresh_parse(trained):
    """Contexts recur every 24 decisions, so kept context examples are reused too."""
    encoder = FeatureEncoder()
    texts = [encoder.encode(a) for a in ACTIONS]
    for i in range(300):
        # Any subset and order of the kept actions, as exclusions and pages make.
        order = np.random.default_rng(i).permutation(len(ACTIONS))[:3 + i % 6]
        context = _context(i)
        kept = trained.predict_encoded(encoder.encode(context), [texts[j] for j in order])
        fresh = _fresh(trained, context, [ACTIONS[j] for j in order])
        np.testing.assert_allclose(kept, fresh, rtol=1e-6, atol=1e-7)
    assert max(kept) > 0.5  # the model is not uniform, so agreement means something


def test_identical_actions_in_one_decision_and_an_empty_context(trained):
    encoder = FeatureEncoder()
    same = encoder.encode(ACTIONS[0])
    pmf = trained.predict_encoded(encoder.encode({}), [same, same, encoder.encode(ACTIONS[1])])
    np.testing.assert_allclose(pmf, _fresh(trained, {}, [ACTIONS[0], ACTIONS[0], ACTIONS[1]]),
                               rtol=1e-6)


def test_the_kept_examples_are_bounded(trained, monkeypatch):
    monkeypatch.setattr(vw_module, "ACTION_EXAMPLES_KEPT", 4)
    monkeypatch.setattr(vw_module, "SHARED_EXAMPLES_KEPT", 3)
    encoder = FeatureEncoder()
    learner = VWLearner(args=trained.args, model_data=trained.to_bytes())
    for j in range(len(ACTIONS)):
        learner.predict_encoded(encoder.encode(_context(j)), [encoder.encode(ACTIONS[j])])
    # Past the limit the older half goes: at most the limit, the newest kept.
    assert list(learner._action_examples) == [encoder.encode(ACTIONS[j]) for j in (6, 7)]
    assert list(learner._shared_examples) == [encoder.encode(_context(j)) for j in (6, 7)]
