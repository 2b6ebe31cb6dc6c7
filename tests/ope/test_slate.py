"""Slate estimators: hand-computed cases and unbiasedness on a slot-wise simulated page."""

import dataclasses

import numpy as np
import pytest

from ope.slate import (
    PageRounds,
    PageTarget,
    SlateIndependentIPS,
    SlatePseudoInverse,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
)

# Two rounds, two slots:
#   reward  = [[1, 0], [1, 1]]
#   mu      = [[0.5, 0.5], [0.25, 0.5]]
#   pi      = [[1, 0.5], [0.5, 1]]     -> w = [[2, 1], [2, 2]]
ROUNDS = PageRounds(reward=[[1.0, 0.0], [1.0, 1.0]], probability=[[0.5, 0.5], [0.25, 0.5]])
TARGET = np.array([[1.0, 0.5], [0.5, 1.0]])

HAND_COMPUTED = [
    # sum_l w r: round 1 = 2*1 + 1*0 = 2, round 2 = 2*1 + 2*1 = 4
    (SlateIndependentIPS(), (2 + 4) / 2),
    # cumulative weights [2, 2] and [2, 4]: round 1 = 2, round 2 = 2 + 4 = 6
    (SlateRewardInteractionIPS(), (2 + 6) / 2),
    # page weights 2 and 4 times page rewards 1 and 2
    (SlateStandardIPS(), (2 * 1 + 4 * 2) / 2),
    # (sum w - L + 1) * page reward: (3 - 1) * 1 and (4 - 1) * 2
    (SlatePseudoInverse(), (2 * 1 + 3 * 2) / 2),
]


@pytest.mark.parametrize(("estimator", "expected"), HAND_COMPUTED, ids=repr)
def test_hand_computed(estimator, expected):
    assert estimator.estimate_policy_value(ROUNDS, TARGET) == pytest.approx(expected)
    result = estimator.estimate(ROUNDS, TARGET)
    assert result.value == pytest.approx(expected)
    assert result.ci[0] <= result.value <= result.ci[1]


def product_page(n, seed, n_slots=3, n_rows=4):
    """Slots filled independently; each slot's reward depends on its row and position."""
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.ones(n_rows) * 2, size=n_slots) * 0.8 + 0.2 / n_rows
    target = rng.dirichlet(np.ones(n_rows), size=n_slots) * 0.9 + 0.1 / n_rows
    click = rng.uniform(0.05, 0.5, size=(n_slots, n_rows))
    shown = np.stack([rng.choice(n_rows, size=n, p=logging[slot]) for slot in range(n_slots)],
                     axis=1)
    slots = np.arange(n_slots)
    reward = (rng.random((n, n_slots)) < click[slots, shown]).astype(float)
    truth = float((target * click).sum())
    rounds = PageRounds(reward=reward, probability=logging[slots, shown])
    return rounds, PageTarget(probability=target[slots, shown]), truth


@pytest.mark.parametrize("estimator", [SlateIndependentIPS(), SlateRewardInteractionIPS(),
                                       SlateStandardIPS(), SlatePseudoInverse()], ids=repr)
def test_unbiased_on_additive_slot_wise_pages(estimator):
    # Independent slots and additive rewards satisfy every estimator's
    # assumptions, so each is unbiased: 60k pages, 4 of its own standard errors.
    rounds, target, truth = product_page(60_000, seed=0)
    result = estimator.estimate(rounds, target)
    assert abs(result.value - truth) <= 4 * result.std_error


def test_independent_ips_is_tighter_than_standard_ips():
    rounds, target, _ = product_page(20_000, seed=1)
    assert SlateIndependentIPS().estimate(rounds, target).std_error < \
        SlateStandardIPS().estimate(rounds, target).std_error


def test_slate_streaming_equals_in_memory():
    rounds, target, _ = product_page(5000, seed=2)
    estimator = SlateRewardInteractionIPS()
    whole = estimator.estimate(rounds, target)
    stats = None
    for start in range(0, 5000, 1300):
        piece = estimator.statistics(rounds.take(slice(start, start + 1300)),
                                     target.take(slice(start, start + 1300)))
        stats = piece if stats is None else stats.merge(piece)
    streamed = estimator.estimate_from_statistics(stats)
    assert streamed.value == pytest.approx(whole.value, rel=1e-10)
    assert streamed.ci == pytest.approx(whole.ci, rel=1e-10)


def test_slate_inputs_are_validated():
    with pytest.raises(ValueError, match=r"probability must be in \(0, 1\], got 0.0 at round 0"):
        PageRounds(reward=[[1.0, 0.0]], probability=[[0.0, 0.5]])
    with pytest.raises(ValueError, match=r"probability must have shape \(1, 2\)"):
        PageRounds(reward=[[1.0, 0.0]], probability=[[0.5]])
    with pytest.raises(ValueError, match="reward must be finite"):
        PageRounds(reward=[[np.nan, 0.0]], probability=[[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"target probability must have shape \(2, 2\)"):
        SlateIndependentIPS().estimate(ROUNDS, np.ones((2, 3)))
    with pytest.raises(TypeError, match="rounds must be a PageRounds"):
        SlateIndependentIPS().estimate({"reward": 1}, TARGET)
    assert dataclasses.replace(SlatePseudoInverse()) == SlatePseudoInverse()
