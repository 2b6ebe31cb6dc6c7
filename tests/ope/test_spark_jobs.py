"""Candidate policies scored on Spark executors (local[2], the run's one session) against
the local pool: progressive validation is deterministic given the arguments and the window,
so every probability, model and estimate is equal, not close."""

import dataclasses

import numpy as np
import pytest

from banditkit.errors import InvalidInputError
from banditkit.vw import VWLearner
from ope.importance import feature_importance
from ope.personalizer import evaluate_window
from ope.progressive import CandidatePool, freeze_window
from ope.search import SearchBudget
from ope.spark import SparkCandidatePool, check_master
from simulator.learnerlog import write_learner_log
from simulator.world import ArtworkWorld
from tests.ope.job_results import without_cpu_seconds

ONLINE = "--cb_explore_adf --epsilon 0.2 -q ::"
CUSTOM = [("no-interactions", "--cb_explore_adf --epsilon 0.2"),
          ("taste-by-theme", "--cb_explore_adf --epsilon 0.2 -q TA")]
# max_candidates binds before the CPU-seconds, so the search is the same on every machine
BUDGET = SearchBudget(cpu_seconds=600.0, max_candidates=4, stage_b_samples=1)


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    world = ArtworkWorld.generate(seed=0, n_members=300, n_titles=12, n_variants=3)
    path = tmp_path_factory.mktemp("online") / "logs" / "events.dsjson"
    write_learner_log(world, VWLearner(args=ONLINE), path, n_rounds=1500, seed=1,
                      seconds_between=1.0)
    return freeze_window([path])


def _same_runs(got, expected):
    assert [r.args for r in got] == [r.args for r in expected]
    assert [r.dropped for r in got] == [r.dropped for r in expected]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.probability, b.probability)
        assert a.model == b.model


@pytest.mark.slow  # Spark's Python workers start here: about 10 s
def test_the_spark_pool_scores_as_the_local_pool(spark, window):
    tasks = [ONLINE, CUSTOM[0][1], (ONLINE, ("T", "taste")), (ONLINE, ("", "missing"))]
    with SparkCandidatePool.open(window, spark=spark) as on_spark:
        got = on_spark.run(tasks)
        assert on_spark.run([]) == []
    with CandidatePool.open(window, workers=1) as local:
        _same_runs(got, local.run(tasks))


@pytest.mark.slow  # an evaluation with a search and an importance, each twice: about 10 s
def test_evaluations_and_importances_on_spark_equal_the_local_ones(spark, window):
    options = dict(online_args=ONLINE, custom=CUSTOM, optimize=True, interval_minutes=5,
                   budget=BUDGET)
    with SparkCandidatePool.open(window, spark=spark) as pool:
        got = evaluate_window(window, pool=pool, **options)
        scores = feature_importance(window, args=ONLINE, pool=pool)
    expected = evaluate_window(window, workers=2, **options)
    assert without_cpu_seconds(got.to_dict()) == without_cpu_seconds(expected.to_dict())
    assert got.search.to_dict()["candidates"] == BUDGET.max_candidates
    assert got.models == expected.models
    assert scores == feature_importance(window, args=ONLINE, workers=1)


@pytest.mark.slow  # needs the session, runs no task
def test_bad_arguments_fail_on_the_driver_before_any_task(spark, window):
    with SparkCandidatePool.open(window, spark=spark) as pool:
        with pytest.raises(InvalidInputError, match="--no_such_option"):
            pool.run([ONLINE, "--cb_explore_adf --no_such_option"])
        with pytest.raises(ValueError, match="opened on this window"):
            evaluate_window(dataclasses.replace(window), online_args=ONLINE, pool=pool)


def test_master_urls_are_checked_before_any_connection():
    check_master("local[2]", connect=False)
    check_master("spark://nowhere.invalid:7077", connect=False)
    with pytest.raises(InvalidInputError, match="Spark master must be"):
        check_master("spark:/host", connect=False)
    with pytest.raises(InvalidInputError, match="cannot reach the Spark master"):
        check_master("spark://127.0.0.1:9")
