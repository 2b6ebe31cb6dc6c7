"""Estimators against the exact truth of an ArtworkWorld: bias and interval coverage.

Repetitions are vectorized: one sample of ``N_REPS * N_ROUNDS`` rounds is drawn
at once and cut into ``N_REPS`` independent logs of ``N_ROUNDS`` rounds.
"""

import math

import numpy as np
import pytest

from ope.estimators import DM, DR, IPS, SNDR, SNIPS, DRos, Replay, SwitchDR
from ope.rounds import iter_chunks
from simulator.world import ArtworkWorld
from simulator.worldlog import epsilon_greedy, sample_log, taste_policy

N_REPS = 1000
N_ROUNDS = 2000


@pytest.fixture(scope="module")
def world():
    return ArtworkWorld.generate(seed=0, n_members=300, n_titles=20)


@pytest.fixture(scope="module")
def experiment(world):
    logging = taste_policy(world, sharpness=4.0, epsilon=0.2)
    target = epsilon_greedy(world.oracle_policy(), epsilon=0.2)
    log = sample_log(world, logging, n_rounds=N_REPS * N_ROUNDS, seed=1)
    # A deliberately wrong reward model (a constant): DR must stay unbiased anyway.
    wrong_model = np.full(world.take_probability.shape, 0.1)
    return log, log.target(target, model_predictions=wrong_model), log.true_value(target)


def repeat(estimator, log, target):
    return [estimator.estimate(r, t) for r, t in iter_chunks(log.rounds, target, N_ROUNDS)]


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [IPS(), SNIPS(), DR()], ids=lambda e: e.name)
def test_95_percent_intervals_cover_the_truth_93_to_97_percent(experiment, estimator):
    # With 1000 repetitions the coverage count is Binomial(1000, 0.95) if the
    # interval is exact: sd = sqrt(0.95 * 0.05 / 1000) = 0.69 %, so the issue's
    # 93-97 % window is +-2.9 sd around 95 %.
    log, target, truth = experiment
    results = repeat(estimator, log, target)
    covered = np.mean([r.ci[0] <= truth <= r.ci[1] for r in results])
    assert 0.93 <= covered <= 0.97, f"{estimator.name} covered {covered:.3f}"


@pytest.mark.parametrize("estimator", [IPS(), DR()], ids=lambda e: e.name)
def test_unbiased_mean_over_repetitions_within_its_standard_error(experiment, estimator):
    # The mean of N_REPS independent estimates has sd = sd(estimates)/sqrt(N_REPS);
    # an unbiased estimator lands within 4 sd with probability 0.99994.
    log, target, truth = experiment
    values = np.array([r.value for r in repeat(estimator, log, target)])
    assert abs(values.mean() - truth) <= 4 * values.std(ddof=1) / math.sqrt(N_REPS)


def test_intervals_are_not_trivially_wide(experiment):
    # Guard against a coverage test passed by huge intervals: the CLT half-width
    # must match the spread of the estimates across repetitions within 10 %
    # (the sd of a sample sd over 1000 draws is ~2.2 %).
    log, target, _ = experiment
    results = repeat(IPS(), log, target)
    half_width = np.mean([(r.ci[1] - r.ci[0]) / 2 for r in results])
    spread = np.std([r.value for r in results], ddof=1) * 1.959964
    assert half_width == pytest.approx(spread, rel=0.10)


def test_model_based_estimators_with_the_exact_model_are_close(world, experiment):
    # 200k rounds in one log: the IPS standard error is ~0.0017; allow 4 of the
    # estimator's own standard errors.
    log, _, truth = experiment
    big = log.take(slice(0, 200_000))
    target = big.target(epsilon_greedy(world.oracle_policy(), epsilon=0.2),
                        model_predictions=world.take_probability)
    for estimator in (DM(), DR(), SNDR(), SwitchDR(tau=5.0), DRos(shrinkage=5.0)):
        result = estimator.estimate(big.rounds, target)
        tolerance = 4 * max(result.std_error, 1e-4)
        assert abs(result.value - truth) <= tolerance, estimator.name


def test_replay_on_uniform_log_equals_on_policy_value(world):
    uniform_log = sample_log(world, world.uniform_policy(), n_rounds=200_000, seed=5)
    oracle = world.oracle_policy()
    result = Replay(seed=0).estimate(uniform_log.rounds, uniform_log.target(oracle))
    # deterministic target on K=4 uniform logging: about 1/4 of rounds are kept
    assert result.extra["acceptance_rate"] == pytest.approx(0.25, abs=0.01)
    # the estimate is a mean of ~50k Bernoulli takes: within 4 standard errors
    assert abs(result.value - uniform_log.true_value(oracle)) <= 4 * result.std_error


def test_replay_with_rejection_sampling_handles_non_uniform_logs(experiment, world):
    log, _, _ = experiment
    big = log.take(slice(0, 200_000))
    target_policy = world.best_single_variant_policy()
    target = big.target(target_policy)
    weights = target.probability / big.rounds.probability
    result = Replay(max_weight=float(weights.max()), seed=0).estimate(big.rounds, target)
    assert result.extra["n_capped"] == 0
    assert abs(result.value - big.true_value(target_policy)) <= 4 * result.std_error
    # naive replay (keep every match, ignore propensities) is biased here:
    # the logger favours variants matching taste, which are the better ones
    matches = target.probability > 0
    naive = big.rounds.reward[matches].mean()
    assert naive - big.true_value(target_policy) > 4 * result.std_error


def test_support_diagnostic_sees_a_logger_that_never_explores(world):
    greedy_logger = world.best_single_variant_policy()  # epsilon = 0
    log = sample_log(world, greedy_logger, n_rounds=5000, seed=2)
    diagnostics = IPS().estimate(log.rounds, log.target(world.uniform_policy())).diagnostics
    assert diagnostics.unsupported_share == 1.0
    # a uniform target puts (K-1)/K of its mass on variants never logged
    assert diagnostics.unsupported_mass == pytest.approx(3 / 4)


def test_bernstein_intervals_are_conservative(experiment):
    # A finite-sample bound: it must cover at least as often as promised, and
    # pays for it with width compared to the CLT interval.
    log, target, truth = experiment
    bernstein = repeat(IPS(ci_method="bernstein"), log, target)
    covered = np.mean([r.ci[0] <= truth <= r.ci[1] for r in bernstein])
    assert covered >= 0.95
    clt = repeat(IPS(), log, target)
    assert np.mean([r.ci[1] - r.ci[0] for r in bernstein]) > \
        np.mean([r.ci[1] - r.ci[0] for r in clt])


def test_bootstrap_intervals_cover_about_95_percent(experiment):
    # 200 repetitions (the bootstrap is the costly interval): the coverage
    # count is Binomial(200, 0.95) for an exact interval, sd = 1.5 %, so
    # 90-99 % is a +-3 sd band.
    log, target, truth = experiment
    estimator = IPS(ci_method="bootstrap", n_bootstrap=200, seed=3)
    pairs = list(iter_chunks(log.rounds, target, N_ROUNDS))[:200]
    covered = np.mean([lo <= truth <= hi for lo, hi in
                       (estimator.estimate(r, t).ci for r, t in pairs)])
    assert 0.90 <= covered <= 0.99
