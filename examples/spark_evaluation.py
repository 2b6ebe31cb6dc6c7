"""Evaluation on Spark: the same numbers as on a laptop, from date-partitioned logs.

Run it with ``python examples/spark_evaluation.py`` (needs ``pip install -e '.[spark]'``
and Java 17; it starts a ``local[2]`` Spark, so it takes a minute).

A simulated world writes a week of decision logs, one ``dt=YYYY-MM-DD`` folder a
day, as banditkit's learner does. The script evaluates three policies on them
in this process, then on Spark (each executor parses its partitions and returns
the estimators' statistics; the driver merges them), and prints both beside
the true values the world knows: IPS and SNIPS agree to the last digit. It then
writes the log as a Parquet table and asks Spark SQL for the take rate per day.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from ope import evaluate_spark, make_estimators, to_parquet
from ope.evaluation import evaluate_log
from simulator.world import ArtworkWorld
from simulator.worldlog import epsilon_greedy, sample_log, taste_policy, write_world_log

DAY = 86_400.0
POLICIES = ("logged", "uniform", "baseline")

with tempfile.TemporaryDirectory(prefix="banditkit-example-") as folder:
    logs = Path(folder) / "logs"

    # A week of logs from an exploring policy: 1,000 decisions a day.
    world = ArtworkWorld.generate(seed=0, n_members=300)
    logging_policy = epsilon_greedy(taste_policy(world), epsilon=0.3)
    start = 1_767_225_600.0  # 2026-01-01 00:00 UTC
    for day in range(7):
        log = sample_log(world, logging_policy, n_rounds=1000, seed=day)
        write_world_log(log, logs / f"dt=2026-01-0{day + 1}" / "events.dsjson",
                        start_time=start + day * DAY, seconds_between=60.0)

    baseline = np.zeros_like(logging_policy)
    baseline[..., 0] = 1.0
    truth = {"logged": world.policy_value(logging_policy),
             "uniform": world.policy_value(world.uniform_policy()),
             "baseline": world.policy_value(baseline)}

    estimators = make_estimators(["ips", "snips"])
    local = evaluate_log([logs], estimators=estimators, policies=POLICIES)

    # One session for everything below; a notebook passes its own.
    spark = (SparkSession.builder.master("local[2]").appName("banditkit-example")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    try:
        spark.sparkContext.setLogLevel("ERROR")
        on_spark = evaluate_spark(spark, [logs], estimators=estimators, policies=POLICIES)

        print(f"{on_spark.n_rounds} logged rounds in 7 date partitions; take rate per policy")
        print(f"  {'policy':9s} {'estimator':9s} {'in process':>12s} {'on Spark':>12s} "
              f"{'true':>8s}")
        for policy in POLICIES:
            for name in ("ips", "snips"):
                here = local.estimates[policy][name].value
                there = on_spark.estimates[policy][name].value
                print(f"  {policy:9s} {name:9s} {here:12.6f} {there:12.6f} "
                      f"{truth[policy]:8.4f}")

        # The log as a table, the form analysts query with Spark SQL.
        table = Path(folder) / "log-table"
        summary = to_parquet(spark, [logs], table)
        print(f"log table: {summary.events} events in {table.name}/")
        spark.read.parquet(str(table)).createOrReplaceTempView("decisions")
        daily = spark.sql("SELECT dt, COUNT(*) AS decisions, AVG(reward) AS take_rate "
                          "FROM decisions GROUP BY dt ORDER BY dt").collect()
        for row in daily:
            print(f"  {row['dt']}: {row['decisions']} decisions, take rate {row['take_rate']:.3f}")
    finally:
        spark.stop()
