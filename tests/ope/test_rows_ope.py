"""Slate OPE of page policies fed from the row engine's CCB log, against exact truth."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from banditkit.errors import InvalidInputError
from banditkit.rows import PageRules, RowEngine, decide_page, default_slots
from banditkit.settings import LoopSettings
from ope.rows_ope import evaluate_pages, make_page_policy, read_pages, slate_inputs
from ope.slate import PageRounds, PageTarget, SlateIndependentIPS
from simulator.rows_world import RowWorld, SoftmaxPage, slot_marginals

N_SLOTS = 3


def _uniform_truth(world: RowWorld) -> float:
    pages = list(itertools.permutations(range(world.n_rows), N_SLOTS))
    return float(np.mean([[world.page_value(m, p) for p in pages]
                          for m in range(world.n_types)]))


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """3000 pages of a 5-row world logged by the real engine, exploring heavily."""
    world = RowWorld.generate(seed=5, n_genres=3, rows_per_genre=1, n_general=2)
    root = tmp_path_factory.mktemp("rows-ope")
    clock = iter(np.arange(1.767e9, 1.767e9 + 10_000, 1.0))
    now = [next(clock)]
    settings = LoopSettings(reward_wait_seconds=1.0, model_update_seconds=0.0,
                            exploration_percentage=0.6)
    rng = np.random.default_rng(0)
    index = {row.id: i for i, row in enumerate(world.rows)}
    page_rewards = []
    with RowEngine.open(root, settings=settings, clock=lambda: now[0]) as engine:
        for i, member in enumerate(world.sample_members(3000, seed=1)):
            decision = engine.rank_rows(world.context(int(member)), world.rows, N_SLOTS,
                                        event_id=f"p{i}")
            plays = world.sample_plays(int(member), [index[r] for r in decision.row_ids], rng)
            if plays.any():
                engine.reward_slots(decision.event_id, {
                    s.slot_id: 1.0 for s, p in zip(decision.slots, plays, strict=True) if p})
            engine.reward_page(decision.event_id, float(plays.sum()))
            page_rewards.append(plays.sum())
            now[0] = next(clock)
            if (i + 1) % 500 == 0:
                now[0] += 5
                engine.process_due(force_publish=True)
        model = engine.latest_model_path()
    return world, root / "rows" / "logs", model, float(np.mean(page_rewards))


@pytest.mark.slow
def test_logged_policy_estimates_the_observed_mean(logged):
    world, log_dir, _, observed = logged
    report = evaluate_pages([log_dir], policies=["logged"], estimators=["rips", "sips"])
    assert report.n_rounds == 3000
    for estimate in report.estimates["logged"].values():
        assert estimate.value == pytest.approx(observed)  # every weight is 1
    page = evaluate_pages([log_dir], policies=["logged"], estimators=["pi"], reward="page")
    assert page.estimates["logged"]["slate_pi"].value == pytest.approx(observed)


def test_rips_and_sips_from_the_log_cover_the_true_value_of_uniform_pages(logged):
    world, log_dir, _, _ = logged
    truth = _uniform_truth(world)
    report = evaluate_pages([log_dir], policies=["uniform"], estimators=["rips", "sips"])
    for estimate in report.estimates["uniform"].values():
        # Unbiased with conditional probabilities; 4 CLT standard errors (the
        # logger keeps >= 0.6 / 5 per row, so weights stay below 5^3 / 0.6^3
        # and the CLT is reasonable at 3000 pages).
        assert abs(estimate.value - truth) < 4 * estimate.std_error, estimate
        assert estimate.std_error < 0.1


@pytest.mark.slow
def test_model_policies_and_editorial_evaluate(logged):
    _, log_dir, model, _ = logged
    report = evaluate_pages([log_dir], policies=["editorial", f"greedy:{model}",
                                                 f"model:{model}"], estimators=["rips"])
    for policy in report.estimates.values():
        assert np.isfinite(policy["slate_rips"].value)
    pages = list(read_pages([log_dir]))[:50]
    deployed = make_page_policy(f"model:{model}")
    _, targets = slate_inputs(pages, [deployed])
    probability = targets[f"model:{model}"].probability
    assert ((probability > 0) & (probability <= 1)).all()


@pytest.mark.slow
def test_independent_ips_with_exact_marginals_is_unbiased():
    """IIPS on the position-based world, marginals enumerated exactly."""
    world = RowWorld.generate(seed=2, n_genres=3, rows_per_genre=1, n_general=2)
    rng = np.random.default_rng(3)
    members = world.sample_members(4000, seed=4)
    slots = default_slots(N_SLOTS)
    n_rows = world.n_rows
    target_scores = np.linspace(1.0, -1.0, n_rows)  # prefers the editorial order
    target_marginal = slot_marginals(
        SoftmaxPage(scores=target_scores, temperature=1.0, n_slots=N_SLOTS),
        n_rows=n_rows, n_slots=N_SLOTS)
    exam = world.examination(N_SLOTS)
    truth = float(np.mean([(exam[:, None] * target_marginal * world.attraction[m]).sum()
                           for m in range(world.n_types)]))
    reward, logging_p, target_p = [], [], []
    for i, member in enumerate(members):
        logger = SoftmaxPage(scores=world.attraction[member], temperature=0.5,
                                  n_slots=N_SLOTS)
        marginal = slot_marginals(logger, n_rows=n_rows, n_slots=N_SLOTS)
        page = decide_page(logger, world.rows, slots, rules=PageRules(),
                           event_id=f"iips-{i}").chosen
        reward.append(world.sample_plays(int(member), page, rng))
        logging_p.append(marginal[np.arange(N_SLOTS), page])
        target_p.append(target_marginal[np.arange(N_SLOTS), page])
    estimate = SlateIndependentIPS().estimate(
        PageRounds(reward=np.array(reward), probability=np.array(logging_p)),
        PageTarget(probability=np.array(target_p)))
    # unbiased under the position-based model; 4 standard errors
    assert abs(estimate.value - truth) < 4 * estimate.std_error
    assert estimate.std_error < 0.05


def test_a_line_that_is_not_a_ccb_page_is_named(tmp_path):
    path = tmp_path / "bad.dsjson"
    path.write_text('{"EventId": "x", "c": {"_multi": []}}\n')
    with pytest.raises(InvalidInputError, match="bad.dsjson:1: not a joined CCB page"):
        list(read_pages([path]))


def test_banditkit_evaluate_recognises_row_logs(logged, tmp_path):
    from click.testing import CliRunner

    from cli import main

    _, log_dir, _, _ = logged
    result = CliRunner().invoke(main, ["evaluate", str(log_dir), "--policy", "uniform",
                                       "--estimators", "rips,pi", "--json",
                                       "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n_rounds"] == 3000
    assert set(report["estimates"]) == {"slate_rips", "slate_pi"}
    assert (tmp_path / "report" / "index.html").is_file()
    bad = CliRunner().invoke(main, ["evaluate", str(log_dir), "--estimators", "dr"])
    assert bad.exit_code != 0 and "slate estimator names" in bad.output
