"""Personalizer's evaluation jobs with ``JOBS_SPARK_MASTER``: through HTTP and the job runner,
the policies scored on Spark (local[2], the run's one session) give the local run's result;
a master that cannot run them fails the job with the reason."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time

import pytest

from banditkit.engine import Engine
from banditkit.store.jobs import SQLiteJobStore
from banditkit.vw import VWLearner
from server import close_app, create_app
from serving.config import ConfigError, ServerConfig, environ_config, get_config
from serving.jobs import JobLimits, JobRunner
from simulator.learnerlog import write_learner_log
from simulator.world import ArtworkWorld
from tests.ope.job_results import without_cpu_seconds
from tests.server.conftest import FAST_SETTINGS, auth, make_keys

ONLINE = "--cb_explore_adf --epsilon 0.2 -q ::"
START, END = "2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z"
V = "?api-version=2022-09-01-preview"
EVALUATIONS = "/personalizer/evaluations"
BODY = {"startTime": START, "endTime": END, "enablePolicyOptimization": True,
        "policies": [{"name": "no-interactions", "arguments": "--cb_explore_adf --epsilon 0.2"}]}


@pytest.fixture
def served(tmp_path):
    """An app configured with JOBS_SPARK_MASTER over 2000 events of the learner's log, and a
    job runner with its limits (a small search, bound by its candidate count, not CPU time)."""
    data_dir = tmp_path / "data"
    world = ArtworkWorld.generate(seed=0, n_members=300, n_titles=12, n_variants=3)
    write_learner_log(world, VWLearner(args=ONLINE),
                      data_dir / "logs" / "dt=2023-11-14" / "events.dsjson",
                      n_rounds=2000, seed=1, seconds_between=1.0)
    keys = make_keys(data_dir)
    app = create_app({"TESTING": True, "ENGINE_DATA_DIR": str(data_dir),
                      "ENGINE_SETTINGS": {**FAST_SETTINGS, "exploration_percentage": 0.2},
                      "LEARNER_ENABLED": False, "JOBS_SPARK_MASTER": "local[2]",
                      "JOBS_WORKERS": 1, "JOBS_SEARCH_MAX_CANDIDATES": 3,
                      "JOBS_SEARCH_SAMPLES": 1})
    engine = Engine.open(data_dir)
    runner = JobRunner(jobs=SQLiteJobStore.open(data_dir / "banditkit.sqlite3"),
                       engine=engine, limits=JobLimits.from_config(get_config(app)))
    yield app.test_client(), keys["analyst"], runner
    runner.jobs.close()
    engine.close()
    close_app(app)


@pytest.mark.slow  # a small search on Spark, then locally: about 5 s once the session runs
def test_an_evaluation_on_spark_equals_the_local_one(spark, served):
    client, key, runner = served
    assert runner.limits.spark_master == "local[2]"
    for job_id in ("on-spark", "local"):
        response = client.put(f"{EVALUATIONS}/{job_id}{V}", json={"name": job_id, **BODY},
                              headers=auth(key))
        assert response.status_code == 200, response.json
    # the server answers while the runner waits for Spark, and says where the job runs
    described, finished = set(), threading.Event()

    def watch() -> None:
        watcher = client.application.test_client()
        while not finished.is_set():
            shown = watcher.get(f"{EVALUATIONS}/on-spark{V}", headers=auth(key))
            described.add((shown.status_code, shown.json["status"], shown.json["description"]))
            time.sleep(0.05)

    watching = threading.Thread(target=watch)
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    watching.start()
    try:
        on_spark = runner.run_once()  # the oldest: "on-spark"
    finally:
        finished.set()
        watching.join()
    assert (200, "Running", "running on Spark local[2]") in described
    ran = set(tracker.getJobIdsForGroup()) - before
    # one Spark job per batch of candidates: the Custom and Online runs, each search stage
    assert len(ran) >= 2
    local = JobRunner(jobs=runner.jobs, engine=runner.engine,
                      limits=dataclasses.replace(runner.limits, spark_master=None)).run_once()
    assert (on_spark.job_id, local.job_id) == ("on-spark", "local")
    assert on_spark.status == local.status == "Succeeded", (on_spark.message, local.message)
    assert on_spark.message == "evaluated 2000 events on Spark local[2]"
    assert local.message == "evaluated 2000 events on 1 local process"
    assert (on_spark.result["ranOn"], local.result["ranOn"]) == ("Spark local[2]",
                                                                 "1 local process")
    assert on_spark.result["search"]["candidates"] == 3
    # progressive validation is deterministic given the arguments and the window
    same = {k: without_cpu_seconds(v) for k, v in on_spark.result.items() if k != "ranOn"}
    assert same == {k: without_cpu_seconds(v) for k, v in local.result.items()
                    if k != "ranOn"}
    shown = [client.get(f"{EVALUATIONS}/{job_id}{V}", headers=auth(key)).json
             for job_id in ("on-spark", "local")]
    assert shown[0]["description"] == on_spark.message
    assert shown[0]["content"]["value"] == shown[1]["content"]["value"]


def test_a_master_that_does_not_answer_fails_the_job_with_the_reason(served, caplog):
    client, key, runner = served
    nobody = JobRunner(jobs=runner.jobs, engine=runner.engine,
                       limits=dataclasses.replace(runner.limits,
                                                  spark_master="spark://127.0.0.1:9"))
    assert client.put(f"{EVALUATIONS}/unreachable{V}", json={"name": "x", **BODY},
                      headers=auth(key)).status_code == 200
    failed = nobody.run_once()
    assert failed.status == "Failed"
    assert failed.message.startswith("cannot run the job on Spark: cannot reach the Spark "
                                     "master spark://127.0.0.1:9")
    shown = client.get(f"{EVALUATIONS}/unreachable{V}", headers=auth(key)).json
    assert shown["status"] == "Failed" and shown["description"] == failed.message
    # the runner names the problem when it starts (a stop already set: it runs no job)
    stopped = threading.Event()
    stopped.set()
    with caplog.at_level("WARNING", logger="banditkit.jobs"):
        nobody.run(stopped)
    assert "cannot reach the Spark master spark://127.0.0.1:9" in caplog.text


def test_without_pyspark_the_reason_says_how_to_install_it():
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "from serving.jobs import spark_problem\n"
            "print(spark_problem('local[2]'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("JOBS_SPARK_MASTER needs PySpark, which is not installed: "
                          "pip install 'banditkit[spark]'")


def test_the_key_is_read_from_the_environment_and_checked():
    config = ServerConfig.from_mapping(environ_config(
        {"BANDITKIT_JOBS_SPARK_MASTER": "spark://spark-master:7077"}))
    assert JobLimits.from_config(config).spark_master == "spark://spark-master:7077"
    assert ServerConfig.from_mapping({"JOBS_SPARK_MASTER": ""}).jobs_spark_master is None
    with pytest.raises(ConfigError, match="JOBS_SPARK_MASTER: .*Spark master must be .*"
                                          "'spark:/nowhere'"):
        ServerConfig.from_mapping({"JOBS_SPARK_MASTER": "spark:/nowhere"})
