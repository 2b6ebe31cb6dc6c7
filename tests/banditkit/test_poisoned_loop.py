"""Nothing accepted corrupts the loop: bounded rewards, finite probabilities, and a
record that cannot be joined kept aside instead of stopping the learner."""

from __future__ import annotations

import json
import math

import pytest

from banditkit import __version__
from banditkit.engine import Engine
from banditkit.errors import InvalidInputError
from banditkit.eventlog import read_events
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent
from banditkit.types import REWARD_LIMIT, Action
from banditkit.vw import VWLearner

POLICY = "--cb_explore_adf --squarecb -q MA"
ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(4)]
CONTEXT = {"Member": {"country": "BR"}}


@pytest.fixture
def engine(database_url, tmp_path, clock):
    settings = LoopSettings(reward_wait_seconds=10, policy_args=POLICY)
    with Engine.open(tmp_path, database_url=database_url, clock=clock, settings=settings) as engine:
        yield engine


@pytest.mark.parametrize("value", [REWARD_LIMIT * 1.5, -3e38, math.inf, math.nan])
def test_a_reward_beyond_the_limit_is_refused_naming_it(engine, value):
    engine.rank(CONTEXT, ACTIONS, event_id="e")
    with pytest.raises(InvalidInputError, match=r"within ±1e\+06"):
        engine.reward("e", value)
    assert engine.reward("e", REWARD_LIMIT) is False  # the limit itself is accepted


def test_a_default_reward_beyond_the_limit_is_refused():
    with pytest.raises(InvalidInputError, match="default_reward"):
        LoopSettings(default_reward=3e38)


def _overflowed_model() -> bytes:
    """A real VW model whose weights overflowed: costs of 3e38 (beyond any accepted reward)."""
    learner = VWLearner(args=POLICY)
    for i in range(60):
        record = {"_label_cost": 3e38 if i % 2 else -3e38, "_label_probability": 0.25,
                  "_label_Action": 1, "_labelIndex": 0, "a": [1], "p": [0.25],
                  "c": {"Member": {"country": "BR"},
                        "_multi": [{"Artwork": {"theme": f"t{k}"}} for k in range(4)]}}
        learner.learn_dsjson(json.dumps(record))
    return learner.to_bytes()


def test_a_model_with_non_finite_output_falls_back_to_uniform_and_says_so(engine, clock):
    engine.store.publish_model(created_at=clock.now, policy_args=POLICY,
                               banditkit_version=__version__, through_seq=0, n_updates=60,
                               data=_overflowed_model())
    decision = engine.rank(CONTEXT, ACTIONS, event_id="after-overflow")
    assert [a.probability for a in decision.ranking] == [0.25] * 4
    assert engine.model_fallbacks == 1
    record = json.loads(engine.store.event("after-overflow")["decision"])
    assert record["p"] == [0.25] * 4  # a finite, true propensity is logged
    assert record["_banditkit"]["modelFallback"].startswith("uniform")
    engine.reward("after-overflow", 1.0)
    clock.advance(11)
    assert engine.process_due() == 1


def test_a_record_that_cannot_be_joined_is_kept_aside_and_the_loop_goes_on(engine, clock):
    engine.rank(CONTEXT, ACTIONS, event_id="before")
    poisoned = ('{"EventId":"poisoned","Timestamp":"2024-01-01T00:00:00.000000Z",'
                '"Version":"1","VWState":{"m":"0"},"a":[1,2],"p":[nan,nan],'
                '"_banditkit":{"actionIds":["v0","v1"]},"c":{"_multi":[{},{}]}}')
    engine.store.insert_events([PendingEvent("poisoned", clock.now, False, None, poisoned,
                                             poisoned.index(',"c":'))])
    engine.reward("poisoned", 1.0)
    engine.rank(CONTEXT, ACTIONS, event_id="after")
    clock.advance(11)
    assert engine.process_due() == 2
    assert sorted(e.event_id for e in read_events([engine.log.root])) == ["after", "before"]
    decision, reward = engine.store.rejects()
    assert (decision["kind"], decision["event_id"], decision["record"]) == (
        "d", "poisoned", poisoned)
    assert decision["reason"].startswith("decision cannot be joined: JSONDecodeError")
    assert (reward["kind"], reward["record"]) == ("r", "1.0")
    assert engine.store.event("poisoned") is None
    engine.rank(CONTEXT, ACTIONS, event_id="later")
    clock.advance(11)
    assert engine.process_due() == 1  # nothing stalls behind it
