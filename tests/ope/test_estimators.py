"""Estimators on hand-computed cases, shared checks, streaming equality, bad inputs."""

import dataclasses
import inspect
import math
import re
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ope.base import OffPolicyEstimator
from ope.estimators import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    ClippedIPS,
    DRos,
    Replay,
    SwitchDR,
    all_estimators,
)
from ope.rounds import LoggedRounds, TargetRounds, iter_chunks

Z95 = NormalDist().inv_cdf(0.975)

# A four-round log, small enough to compute every estimate by hand:
#   reward r  = [1,   0,   0,    1  ]
#   pi_b(a_i) = [0.5, 0.5, 0.25, 0.8]
#   pi_e(a_i) = [1,   0,   0.5,  0.4]  ->  w = [2, 0, 2, 0.5]
#   q_hat     = [0.2, 0.5, 0.5,  0.5]  ->  r - q_hat = [0.8, -0.5, -0.5, 0.5]
#   v_hat     = [0.6, 0.4, 0.2,  0.5]  (sum 1.7)
#   w (r - q) = [1.6, 0,  -1,    0.25] (sum 0.85)
ROUNDS = LoggedRounds(reward=[1.0, 0.0, 0.0, 1.0], action=[0, 1, 1, 0],
                      probability=[0.5, 0.5, 0.25, 0.8], n_actions=[2, 2, 4, 2])
TARGET = TargetRounds(probability=[1.0, 0.0, 0.5, 0.4], model_reward=[0.2, 0.5, 0.5, 0.5],
                      model_value=[0.6, 0.4, 0.2, 0.5])

HAND_COMPUTED = [
    (IPS(), (2 + 0 + 0 + 0.5) / 4),
    (ClippedIPS(max_weight=1.0), (1 + 0 + 0 + 0.5) / 4),
    (SNIPS(), (2 + 0 + 0 + 0.5) / (2 + 0 + 2 + 0.5)),
    (DM(), 1.7 / 4),
    (DR(), (1.7 + 0.85) / 4),
    (SNDR(), 1.7 / 4 + 0.85 / 4.5),
    # tau = 1 keeps the weight-0 and weight-0.5 rounds' corrections only: 0 + 0.25
    (SwitchDR(tau=1.0), (1.7 + 0.25) / 4),
    # lambda = 1: w_hat = w / (w^2 + 1) = [0.4, 0, 0.4, 0.4]; corrections 0.32, 0, -0.2, 0.2
    (DRos(shrinkage=1.0), (1.7 + 0.32 + 0 - 0.2 + 0.2) / 4),
]


@pytest.mark.parametrize(("estimator", "expected"), HAND_COMPUTED, ids=lambda x: repr(x))
def test_hand_computed_value(estimator, expected):
    assert estimator.estimate_policy_value(ROUNDS, TARGET) == pytest.approx(expected, rel=1e-12)
    assert estimator.estimate(ROUNDS, TARGET).value == pytest.approx(expected, rel=1e-12)


def test_infinite_shrinkage_is_dr_and_switch_zero_is_dm():
    assert DRos(shrinkage=math.inf).estimate_policy_value(ROUNDS, TARGET) == pytest.approx(
        DR().estimate_policy_value(ROUNDS, TARGET))
    assert SwitchDR(tau=0.0).estimate_policy_value(ROUNDS, TARGET) == pytest.approx(
        DM().estimate_policy_value(ROUNDS, TARGET) + 0.0)  # only w=0 rounds kept: 0 correction


def test_ips_clt_interval_is_mean_plus_minus_z_standard_error():
    terms = np.array([2.0, 0.0, 0.0, 0.5])
    se = terms.std(ddof=1) / 2  # sqrt(n) = 2
    result = IPS().estimate(ROUNDS, TARGET)
    assert result.std_error == pytest.approx(se)
    assert result.ci == pytest.approx((terms.mean() - Z95 * se, terms.mean() + Z95 * se))
    assert result.ci_method == "clt"


def test_snips_delta_method_standard_error():
    # g(a, b) = a / b, grad = (1/b, -a/b^2); var = grad' Cov grad / n
    terms = np.array([[2.0, 2.0], [0.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    mean = terms.mean(axis=0)
    grad = np.array([1 / mean[1], -mean[0] / mean[1] ** 2])
    se = math.sqrt(grad @ np.cov(terms.T) @ grad / 4)
    assert SNIPS().estimate(ROUNDS, TARGET).std_error == pytest.approx(se)


def test_bernstein_interval_matches_maurer_pontil():
    terms = np.array([2.0, 0.0, 0.0, 0.5])
    log_term = math.log(4 / 0.05)
    half = math.sqrt(2 * terms.var(ddof=1) * log_term / 4) + 7 * 2.0 * log_term / (3 * 3)
    result = IPS(ci_method="bernstein").estimate(ROUNDS, TARGET)
    assert result.ci == pytest.approx((0.625 - half, 0.625 + half))
    assert result.ci_method == "bernstein"


def test_weight_diagnostics_by_hand():
    diagnostics = IPS().estimate(ROUNDS, TARGET).diagnostics
    # ESS = (sum w)^2 / sum w^2 = 4.5^2 / (4 + 0 + 4 + 0.25)
    assert diagnostics.effective_sample_size == pytest.approx(4.5 ** 2 / 8.25)
    assert diagnostics.max_weight == 2.0
    assert diagnostics.mean_weight == pytest.approx(4.5 / 4)
    weights = np.array([2.0, 0.0, 2.0, 0.5])
    for q, value in diagnostics.weight_quantiles.items():
        # histogram quantiles are exact to one 0.01-decade bin (2.3 %)
        assert value == pytest.approx(np.quantile(weights, q, method="lower"), rel=0.024)
    assert diagnostics.unsupported_share is None


def test_unsupported_share_counts_rounds_with_mass_off_the_loggers_support():
    rounds = LoggedRounds(reward=[1.0, 0.0, 1.0], action=[0, 0, 1],
                          probability=[1.0, 0.5, 0.5], n_actions=2)
    logging = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    target = TargetRounds.from_dense(rounds, np.array([[0.3, 0.7], [1.0, 0.0], [0.0, 1.0]]),
                                     logging_dist=logging)
    diagnostics = IPS().estimate(rounds, target).diagnostics
    assert diagnostics.unsupported_share == pytest.approx(1 / 3)
    assert diagnostics.unsupported_mass == pytest.approx(0.7 / 3)


def test_replay_on_uniform_log_with_deterministic_target_is_li_et_al():
    # M = max w = 2: rounds matching the target are kept surely, others never.
    rounds = LoggedRounds(reward=[1.0, 1.0, 0.0, 0.0, 1.0], action=[0, 0, 1, 1, 0],
                          probability=[0.5] * 5, n_actions=2)
    target = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    result = Replay(seed=3).estimate(rounds, target)
    assert result.value == pytest.approx(2 / 3)  # rewards 1, 0, 1 on matching rounds
    assert result.extra["acceptance_rate"] == pytest.approx(3 / 5)
    assert result.extra["accepted_rounds"] == 3
    assert result.extra["n_capped"] == 0


def test_replay_resolves_its_bound_over_the_whole_log_not_per_block():
    # 200k rounds span several internal blocks of 65536; the largest weight
    # (20) sits in the last block only, so a per-block bound would differ.
    n = 200_000
    probability = np.full(n, 0.5)
    probability[-1] = 0.05
    rng = np.random.default_rng(0)
    rounds = LoggedRounds(reward=rng.random(n), action=np.zeros(n, dtype=int),
                          probability=probability, n_actions=2)
    target = np.ones(n)
    result = Replay(seed=1).estimate(rounds, target)
    assert result.extra["rejection_bound"] == 20.0
    # acceptance is w / M = 2 / 20 on all but one round
    assert result.extra["acceptance_rate"] == pytest.approx(0.1, abs=0.003)
    assert Replay(seed=1).estimate_policy_value(rounds, target) == result.value
    assert Replay(seed=1, max_weight=20.0).estimate(rounds, target).value == result.value


def test_replay_counts_capped_rounds():
    rounds = LoggedRounds(reward=[1.0, 0.0], action=[0, 0], probability=[0.25, 0.5],
                          n_actions=4)
    result = Replay(max_weight=2.0).estimate(rounds, np.array([1.0, 1.0]))
    assert result.extra["n_capped"] == 1  # w = 4 > M = 2


# -- one generic suite for every estimator -----------------------------------


def world_like_log(n=3000, seed=0, n_actions=5):
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.ones(n_actions), size=n) * 0.8 + 0.2 / n_actions
    action = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)).sum(axis=1)
    action = np.minimum(action, n_actions - 1)
    q = rng.random((n, n_actions)) * 0.5
    reward = (rng.random(n) < q[np.arange(n), action]).astype(float) + rng.normal(0, 0.1, n)
    rounds = LoggedRounds(reward=reward, action=action,
                          probability=logging[np.arange(n), action], n_actions=n_actions)
    target = rng.dirichlet(np.ones(n_actions) * 0.3, size=n)
    return rounds, TargetRounds.from_dense(rounds, target, model_predictions=q + 0.05,
                                           logging_dist=logging)


def streaming_estimators():
    return [Replay(max_weight=30.0)] + [e for e in all_estimators() if e.name != "replay"]


@pytest.mark.parametrize("estimator", streaming_estimators(), ids=repr)
def test_chunked_equals_in_memory(estimator):
    rounds, target = world_like_log()
    whole = estimator.estimate(rounds, target)
    chunked = estimator.estimate_chunks(iter_chunks(rounds, target, 700))
    assert chunked.value == pytest.approx(whole.value, rel=1e-10)
    assert chunked.ci == pytest.approx(whole.ci, rel=1e-10)
    assert chunked.n_rounds == whole.n_rounds == len(rounds)
    assert chunked.diagnostics.effective_sample_size == pytest.approx(
        whole.diagnostics.effective_sample_size, rel=1e-10)
    assert chunked.diagnostics.weight_quantiles == whole.diagnostics.weight_quantiles
    assert chunked.diagnostics.unsupported_share == whole.diagnostics.unsupported_share
    assert chunked.extra == pytest.approx(whole.extra)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), size=st.integers(1, 400), seed=st.integers(0, 2**16))
def test_any_chunking_gives_the_in_memory_estimate(n, size, seed):
    rounds, target = world_like_log(n=n, seed=seed)
    for estimator in (IPS(), SNIPS(), DR(), Replay(max_weight=50.0, seed=seed)):
        whole = estimator.estimate(rounds, target)
        chunked = estimator.estimate_chunks(iter_chunks(rounds, target, size))
        assert chunked.value == pytest.approx(whole.value, rel=1e-9, abs=1e-12, nan_ok=True)
        # A standard error that is (nearly) 0 in exact arithmetic (one accepted
        # Replay round, two SNIPS rounds) is the square root of a variance
        # computed with rounding error ~1e-16 x scale^2, so it can differ by
        # ~sqrt(1e-16) x scale = 1e-8 x scale between the two paths; allow 1e-6.
        assert chunked.ci == pytest.approx(whole.ci, rel=1e-9, abs=1e-6, nan_ok=True)
        assert chunked.diagnostics.effective_sample_size == pytest.approx(
            whole.diagnostics.effective_sample_size, rel=1e-9)
        assert chunked.diagnostics.weight_quantiles == whole.diagnostics.weight_quantiles


def test_statistics_travel_between_processes():
    # Per-partition statistics are what a cluster job ships to the driver.
    import pickle

    rounds, target = world_like_log()
    pieces = [pickle.loads(pickle.dumps(SNIPS().statistics(r, t)))
              for r, t in iter_chunks(rounds, target, 1000)]
    total = pieces[0].merge(pieces[1]).merge(pieces[2])
    assert SNIPS().estimate_from_statistics(total).value == pytest.approx(
        SNIPS().estimate(rounds, target).value, rel=1e-12)


def test_merge_is_order_independent():
    rounds, target = world_like_log()
    pieces = [DR().statistics(r, t) for r, t in iter_chunks(rounds, target, 1000)]
    forward = pieces[0].merge(pieces[1]).merge(pieces[2])
    backward = pieces[2].merge(pieces[1].merge(pieces[0]))
    assert DR().estimate_from_statistics(forward).value == pytest.approx(
        DR().estimate_from_statistics(backward).value, rel=1e-12)


@pytest.mark.parametrize("estimator", all_estimators(), ids=repr)
def test_clone_equals_and_bootstrap_is_seed_reproducible(estimator):
    rounds, target = world_like_log(n=800)
    assert dataclasses.replace(estimator) == estimator
    boot = dataclasses.replace(estimator, ci_method="bootstrap", n_bootstrap=200, seed=1)
    first = boot.estimate(rounds, target)
    assert first.ci == boot.estimate(rounds, target).ci
    assert first.ci != dataclasses.replace(boot, seed=2).estimate(rounds, target).ci
    # the point estimate is the full-sample value, not a bootstrap mean
    # (same seed: Replay's rejection draws depend on it)
    assert first.value == dataclasses.replace(boot, ci_method="clt").estimate_policy_value(
        rounds, target)
    assert first.ci[0] < first.value < first.ci[1]


@pytest.mark.parametrize("estimator", all_estimators(), ids=repr)
def test_constructor_arguments_are_keyword_only_and_validated(estimator):
    cls = type(estimator)
    with pytest.raises(TypeError):
        cls(0.9)
    with pytest.raises(ValueError, match=r"ci_method must be one of .*got 'jackknife'"):
        dataclasses.replace(estimator, ci_method="jackknife")
    with pytest.raises(ValueError, match=r"confidence_level must be in \(0, 1\), got 1.5"):
        dataclasses.replace(estimator, confidence_level=1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'confidence'"):
        cls(**{**{f.name: getattr(estimator, f.name) for f in dataclasses.fields(estimator)},
               "confidence": 0.9})


def documented_dataclasses():
    from ope.dsjson import HashedRewardModel
    from ope.reward_model import CrossFitRewardModel
    from ope.slate import (
        SlateIndependentIPS,
        SlatePseudoInverse,
        SlateRewardInteractionIPS,
        SlateStandardIPS,
    )
    return [*all_estimators(), SlateIndependentIPS(), SlatePseudoInverse(),
            SlateRewardInteractionIPS(), SlateStandardIPS(), CrossFitRewardModel(),
            HashedRewardModel()]


@pytest.mark.parametrize("estimator", documented_dataclasses(), ids=repr)
def test_docstring_defaults_match_the_signature(estimator):
    docs = "\n".join(inspect.getdoc(c) or "" for c in type(estimator).__mro__)
    for f in dataclasses.fields(estimator):
        match = re.search(rf"^\s*{f.name} : [^\n]*?(?:, default=(.+))?$", docs, re.M)
        assert match, f"{f.name} is not documented"
        if f.default is dataclasses.MISSING:
            assert match.group(1) is None, f"{f.name} has no default but documents one"
        else:
            assert match.group(1) is not None, f"{f.name} default is not documented"
            assert match.group(1).strip("\"'") == str(f.default)


@pytest.mark.parametrize("estimator", all_estimators(), ids=repr)
def test_bad_inputs_are_rejected(estimator):
    rounds, target = world_like_log(n=50)
    with pytest.raises(ValueError, match="target must have length n_rounds=50, got 49"):
        estimator.estimate(rounds, target.take(slice(0, 49)))
    with pytest.raises(TypeError, match="rounds must be a LoggedRounds, got dict"):
        estimator.estimate({"reward": [1]}, target)


@pytest.mark.parametrize("estimator", [DM(), DR(), SNDR(), SwitchDR(tau=1.0),
                                       DRos(shrinkage=1.0)], ids=repr)
def test_model_based_estimators_say_what_is_missing(estimator):
    with pytest.raises(ValueError, match="needs a reward model.*model_reward=None"):
        estimator.estimate(ROUNDS, np.array([1.0, 0.0, 0.5, 0.4]))


def test_required_parameters_have_no_default():
    with pytest.raises(TypeError, match="max_weight"):
        ClippedIPS()
    with pytest.raises(TypeError, match="tau"):
        SwitchDR()
    with pytest.raises(TypeError, match="shrinkage"):
        DRos()
    with pytest.raises(ValueError, match="max_weight must be > 0, got 0.0"):
        ClippedIPS(max_weight=0.0)
    with pytest.raises(ValueError, match="tau must be >= 0, got -1.0"):
        SwitchDR(tau=-1.0)


def test_streaming_rejects_what_cannot_stream():
    rounds, target = world_like_log(n=100)
    with pytest.raises(ValueError, match="cannot stream"):
        Replay().statistics(rounds, target)
    stats = IPS().statistics(rounds, target)
    with pytest.raises(ValueError, match="needs every round in memory"):
        IPS(ci_method="bootstrap").estimate_from_statistics(stats)
    with pytest.raises(ValueError, match="bernstein.*ratio"):
        SNIPS(ci_method="bernstein")
    with pytest.raises(ValueError, match="other must come from the same estimator"):
        stats.merge(SNIPS().statistics(rounds, target))
    with pytest.raises(ValueError, match="at least one"):
        IPS().estimate_chunks([])


def test_every_estimator_is_an_off_policy_estimator_with_a_name():
    names = [e.name for e in all_estimators()]
    assert len(set(names)) == len(names) == 9
    assert all(isinstance(e, OffPolicyEstimator) for e in all_estimators())


def test_estimate_to_dict_has_the_cli_json_keys():
    d = SNIPS().estimate(ROUNDS, TARGET).to_dict()
    assert {"value", "ci", "ess", "max_weight", "weight_quantiles",
            "unsupported_share"} <= d.keys()
    assert d["value"] == pytest.approx(2.5 / 4.5)
    assert isinstance(d["ci"], list) and len(d["ci"]) == 2
