"""``banditkit evaluate`` and ``banditkit simulate`` through click's runner."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import main


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    out = folder / "logs" / "events.dsjson"
    result = CliRunner().invoke(main, ["simulate", "--data-dir", str(folder), "--rounds", "3000",
                                       "--members", "200", "--titles", "15", "--seed", "2",
                                       "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def test_simulate_prints_true_values_next_to_estimates(simulated):
    report, out = simulated
    assert out.is_file() and report["log"] == str(out)
    assert report["n_rounds"] == 3000
    policies = report["policies"]
    assert set(policies) == {"logged", "baseline", "uniform", "oracle", "best_single_variant"}
    # the oracle knows the truth: no policy beats it
    assert max(p["true_value"] for p in policies.values()) == policies["oracle"]["true_value"]
    for entry in policies.values():
        assert set(entry["estimates"]) == {"ips", "snips", "dr"}


def test_simulate_human_output_names_the_log(tmp_path):
    result = CliRunner().invoke(main, ["simulate", "--data-dir", str(tmp_path), "--rounds",
                                       "500", "--members", "50", "--titles", "5",
                                       "--estimators", "ips", "--online", "300"])
    assert result.exit_code == 0, result.output
    assert "true_value" in result.output
    assert "cumulative_regret" in result.output
    assert (tmp_path / "simulations" / "seed-0" / "events.dsjson").is_file()


def test_evaluate_dsjson_json_shape_matches_simulate(simulated):
    sim, out = simulated
    result = CliRunner().invoke(main, ["evaluate", str(out), "--json",
                                       "--estimators", "ips,snips"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_rounds"] == 3000
    assert set(report["estimates"]) == {"ips", "snips"}  # first policy: logged
    ips = report["estimates"]["ips"]
    assert {"value", "ci", "ess", "max_weight", "unsupported_share"} <= set(ips)
    # the same rounds and propensities as simulate's in-memory evaluation
    for policy in ("logged", "baseline", "uniform"):
        assert report["policies"][policy]["estimates"]["ips"]["value"] == pytest.approx(
            sim["policies"][policy]["estimates"]["ips"]["value"], rel=1e-9)


@pytest.mark.slow
def test_evaluate_writes_an_html_report(simulated, tmp_path):
    _, out = simulated
    result = CliRunner().invoke(main, ["evaluate", str(out), "--policy", "uniform",
                                       "--policy", "baseline", "--estimators", "ips,snips",
                                       "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert "estimates.png" in page and "baseline" in page
    for image in ("estimates.png", "weights.png"):
        assert (tmp_path / "report" / image).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_table_with_column_map(tmp_path):
    path = tmp_path / "log.csv"
    pd.DataFrame({"r": [1.0, 0.0, 0.0, 1.0], "p": [0.5, 0.5, 0.25, 0.8],
                  "new": [1.0, 0.0, 0.5, 0.4]}).to_csv(path, index=False)
    result = CliRunner().invoke(main, ["evaluate", str(path), "--reward-col", "r",
                                       "--propensity-col", "p", "--target-prob-col", "new",
                                       "--estimators", "ips,snips", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # w = [2, 0, 2, 0.5]: IPS = 2.5 / 4 and SNIPS = 2.5 / 4.5
    assert report["estimates"]["ips"]["value"] == pytest.approx(2.5 / 4)
    assert report["estimates"]["snips"]["value"] == pytest.approx(2.5 / 4.5)
    assert list(report["policies"]) == ["new"]


def test_evaluate_warns_of_a_policy_the_log_never_supports(tmp_path):
    path = tmp_path / "log.csv"
    pd.DataFrame({"reward": [1.0, 0.0, 1.0], "propensity": [0.5, 0.5, 0.5],
                  "never": [0.0, 0.0, 0.0], "some": [1.0, 0.0, 0.0]}).to_csv(path, index=False)
    result = CliRunner().invoke(main, ["evaluate", str(path), "--target-prob-col", "never",
                                       "--target-prob-col", "some"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: never, ips, snips: no logged round has a positive importance "
                        "weight (ESS 0), so the logged rewards do not inform these estimates "
                        "and their intervals are not certainty"]


def test_evaluate_table_defaults_to_estimators_it_can_run(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"reward": [1.0, 0.0, 1.0], "propensity": [0.5, 0.5, 0.5],
                  "new": [1.0, 0.0, 0.0]}).to_parquet(path)
    result = CliRunner().invoke(main, ["evaluate", str(path), "--target-prob-col", "new",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["estimates"]) == {"ips", "snips"}  # no model: no DR


@pytest.mark.parametrize(("arguments", "message"), [
    (["--estimators", "ipw"], "expected a comma-separated list"),
    (["--target-prob-col", "missing"], "columns ['missing'] are not in the table"),
    (["--estimators", "dr"], "needs a reward model"),
    (["--policy", "uniform"], "--policy may only be 'logged'"),
])
def test_evaluate_table_errors_are_clear(tmp_path, arguments, message):
    path = tmp_path / "log.csv"
    pd.DataFrame({"reward": [1.0, 0.0], "propensity": [0.5, 0.5]}).to_csv(path, index=False)
    result = CliRunner().invoke(main, ["evaluate", str(path), *arguments])
    assert result.exit_code != 0
    assert message in result.output


def test_evaluate_rejects_mixed_formats_and_streaming_bootstrap(simulated, tmp_path):
    _, out = simulated
    table = tmp_path / "log.csv"
    pd.DataFrame({"reward": [1.0], "propensity": [0.5]}).to_csv(table, index=False)
    result = CliRunner().invoke(main, ["evaluate", str(out), str(table)])
    assert result.exit_code != 0 and "all dsjson or all tables" in result.output
    result = CliRunner().invoke(main, ["evaluate", str(out), "--ci-method", "bootstrap"])
    assert result.exit_code != 0 and "needs every round in memory" in result.output


@pytest.mark.slow
def test_evaluate_reads_the_engines_own_log_and_latest_model(tmp_path):
    # End to end: the real decision loop (rank, reward, join, learn, publish)
    # writes the dsjson log and the model store that `evaluate` then reads.
    from simulator.demo import run_demo

    result = run_demo(tmp_path, n_events=1000, seed=0)
    run = CliRunner().invoke(main, ["evaluate", str(result.log_dir), "--data-dir",
                                    str(tmp_path), "--policy", "logged", "--policy",
                                    "model:latest", "--estimators", "ips,snips", "--json"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert report["n_rounds"] > 0
    assert any(name.startswith("model:v") for name in report["policies"])
    # the logged policy has weight 1: its IPS is the observed mean reward, in [0, 1]
    logged = report["policies"]["logged"]["estimates"]["ips"]
    assert logged["ess"] == pytest.approx(report["n_rounds"])
    assert 0.0 <= logged["value"] <= 1.0


@pytest.fixture(scope="module")
def online_log(tmp_path_factory):
    from banditkit.vw import VWLearner
    from simulator.learnerlog import write_learner_log
    from simulator.world import ArtworkWorld

    world = ArtworkWorld.generate(seed=0, n_members=100, n_titles=8, n_variants=3)
    path = tmp_path_factory.mktemp("online") / "logs" / "events.dsjson"
    return write_learner_log(world, VWLearner(args="--cb_explore_adf --epsilon 0.2 -q ::"),
                             path, n_rounds=1500, seed=3)


@pytest.mark.slow
def test_evaluate_custom_optimize_and_feature_importance(online_log, tmp_path):
    result = CliRunner().invoke(main, [
        "evaluate", str(online_log), "--custom", "flat=--cb_explore_adf --epsilon 0.2",
        "--custom", "--cb_explore_adf --epsilon 0.2 -q TA", "--optimize",
        "--max-candidates", "3", "--feature-importance", "--interval-minutes", "5",
        "--window", "rolling", "--json", "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    value = payload["value"]
    assert [p["name"] for p in value] == ["Online", "Baseline", "Random", "flat", "custom-2",
                                          "Optimized"]
    assert [p["policySource"] for p in value][-3:] == ["Custom", "Custom",
                                                      "OfflineExperimentation"]
    assert payload["optimalPolicy"] == "Optimized" and payload["intervalInMinutes"] == 5
    assert payload["nEvents"] == 1500 and payload["search"]["candidates"] <= 3
    # events one second apart from 1.7e9 s (22:13:20 UTC) to 1.7e9 + 1499 s: the
    # UTC-aligned 5-minute buckets 22:10 to 22:35
    first, last = 1.7e9 // 300, (1.7e9 + 1499) // 300
    data = value[0]["timeseries"]["data"]
    assert len(data) == last - first + 1 == 6
    assert data[0]["timeStamp"] == "2023-11-14T22:10:00Z"
    scores = [s["score"] for s in payload["featureScores"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Policy search" in page and (tmp_path / "report" / "features.png").is_file()


def test_evaluate_refuses_a_custom_policy_that_writes_files(online_log):
    result = CliRunner().invoke(main, ["evaluate", str(online_log), "--custom",
                                       "--cb_explore_adf --epsilon 0.2 --readable_model m.txt"])
    assert result.exit_code != 0
    assert "--readable_model" in result.output and "not allowed" in result.output


@pytest.mark.slow  # PostgreSQL
def test_evaluate_reads_the_latest_model_of_a_postgresql_store(online_log, tmp_path,
                                                               postgres_url, spark):
    from banditkit.engine import Engine

    with Engine.open(tmp_path / "learner-host", database_url=postgres_url) as engine:
        version = engine.replace_model(None, origin="reset")
    arguments = ["evaluate", str(online_log), "--data-dir", str(tmp_path / "analyst"),
                 "--policy", "model:latest", "--estimators", "ips", "--json"]
    run = CliRunner().invoke(main, [*arguments, "--database-url", postgres_url])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert list(report["policies"]) == [f"model:v{version}"] and report["n_rounds"] > 0
    # The analyst's data directory holds no store: without the URL there is no model.
    alone = CliRunner().invoke(main, arguments)
    assert alone.exit_code != 0 and "needs a data directory with a store" in alone.output
    # On Spark the same model is shipped to the executors: the same estimate.
    on_spark = CliRunner().invoke(main, [*arguments, "--database-url", postgres_url,
                                         "--spark", "local[2]"])
    assert on_spark.exit_code == 0, on_spark.output
    spark_report = json.loads(on_spark.stdout)
    assert spark_report["notes"]["engine"] == "spark"
    ours, theirs = (r["policies"][f"model:v{version}"]["estimates"]["ips"]["value"]
                    for r in (report, spark_report))
    assert theirs == pytest.approx(ours, rel=1e-9)
