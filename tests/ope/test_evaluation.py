"""The Python API: evaluate / evaluate_stream, pandas and JSON shapes, table logs."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ope.estimators import DR, IPS, SNIPS, ClippedIPS, Replay
from ope.evaluation import (
    ESTIMATOR_NAMES,
    evaluate,
    evaluate_stream,
    make_estimators,
    read_table,
)
from ope.report import write_report
from ope.rounds import LoggedRounds, TargetRounds, iter_chunks


def small_log(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    probability = rng.choice([0.2, 0.5, 0.8], size=n)
    rounds = LoggedRounds(reward=(rng.random(n) < 0.3).astype(float),
                          action=rng.integers(3, size=n), probability=probability,
                          n_actions=3)
    greedy = TargetRounds(probability=(rng.random(n) < 0.5).astype(float),
                          model_reward=np.full(n, 0.3), model_value=np.full(n, 0.25))
    soft = TargetRounds(probability=rng.uniform(0, 1, n), model_reward=np.full(n, 0.3),
                        model_value=np.full(n, 0.3))
    return rounds, {"greedy": greedy, "soft": soft}


def test_evaluate_matches_each_estimator_and_frames_one_row_per_pair():
    rounds, targets = small_log()
    report = evaluate(rounds, targets, estimators=[IPS(), SNIPS(), DR()],
                      true_values={"greedy": 0.3})
    assert report.estimates["soft"]["snips"].value == SNIPS().estimate(
        rounds, targets["soft"]).value
    frame = report.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 6
    assert {"policy", "estimator", "value", "ci_low", "ci_high", "ess", "max_weight",
            "weight_q0.5", "weight_q0.99", "unsupported_share"} <= set(frame.columns)
    assert frame.loc[frame.policy == "greedy", "true_value"].tolist() == [0.3] * 3
    assert frame.loc[frame.policy == "soft", "true_value"].isna().all()


def test_json_shape_is_the_cli_contract():
    rounds, targets = small_log()
    report = evaluate(rounds, targets, estimators=[IPS(), SNIPS()])
    d = json.loads(json.dumps(report.to_dict()))  # JSON-serialisable
    assert d["n_rounds"] == len(rounds)
    assert set(d["estimates"]) == {"ips", "snips"}
    ips = d["estimates"]["ips"]
    assert ips["value"] == pytest.approx(report.estimates["greedy"]["ips"].value)
    assert len(ips["ci"]) == 2 and ips["ci"][0] < ips["value"] < ips["ci"][1]
    assert ips["ess"] > 0
    assert set(d["policies"]) == {"greedy", "soft"}
    assert d["policies"]["soft"]["estimates"]["snips"]["value"] == pytest.approx(
        report.estimates["soft"]["snips"].value)


def test_non_finite_values_become_json_null():
    rounds = LoggedRounds(reward=[1.0, 0.0], action=[0, 1], probability=[0.5, 0.5],
                          n_actions=2)
    report = evaluate(rounds, {"never": np.zeros(2)}, estimators=[SNIPS()])
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["estimates"]["snips"]["value"] is None  # every weight is 0: undefined


def test_a_policy_no_logged_round_supports_is_named_with_its_estimators(tmp_path):
    rounds, targets = small_log()
    never = TargetRounds(probability=np.zeros(len(rounds)), model_reward=np.full(len(rounds), 0.3),
                         model_value=np.full(len(rounds), 0.3))
    report = evaluate(rounds, {**targets, "never": never}, estimators=[IPS(), DR()])
    # IPS says 0 with a [0, 0] interval: certain-looking, and no data behind it.
    assert report.estimates["never"]["ips"].ci == (0.0, 0.0)
    (warning,) = report.warnings
    assert warning.startswith("never, ips, dr: no logged round has a positive importance weight")
    assert json.loads(json.dumps(report.to_dict()))["warnings"] == [warning]
    supported = evaluate(rounds, targets, estimators=[IPS()])
    assert supported.warnings == [] and "warnings" not in supported.to_dict()
    page = write_report(report, tmp_path).read_text()
    assert f"<li>{warning}</li>" in page


def test_evaluate_stream_equals_in_memory():
    rounds, targets = small_log()
    estimators = [IPS(), SNIPS(), DR(), Replay(max_weight=5.0)]
    whole = evaluate(rounds, targets, estimators=estimators)

    def chunks():
        pieces = {name: list(iter_chunks(rounds, target, 900)) for name, target in targets.items()}
        for i in range(len(pieces["greedy"])):
            yield pieces["greedy"][i][0], {name: pieces[name][i][1] for name in targets}

    streamed = evaluate_stream(chunks(), estimators=estimators)
    assert streamed.n_rounds == whole.n_rounds
    for policy in targets:
        for estimator in estimators:
            a = whole.estimates[policy][estimator.name]
            b = streamed.estimates[policy][estimator.name]
            assert b.value == pytest.approx(a.value, rel=1e-10)
            assert b.ci == pytest.approx(a.ci, rel=1e-10)


def test_evaluate_rejects_bad_arguments():
    rounds, targets = small_log(n=50)
    with pytest.raises(ValueError, match="at least one policy"):
        evaluate(rounds, {})
    with pytest.raises(ValueError, match="distinct names"):
        evaluate(rounds, targets, estimators=[IPS(), IPS(ci_method="bernstein")])
    with pytest.raises(TypeError, match="OffPolicyEstimator instances, got str"):
        evaluate(rounds, targets, estimators=["ips"])
    with pytest.raises(ValueError, match="every chunk must give the policies"):
        evaluate_stream([(rounds, targets), (rounds, {"greedy": targets["greedy"]})],
                        estimators=[IPS()])


def test_make_estimators_states_thresholds_and_rejects_unknown_names():
    estimators = make_estimators(list(ESTIMATOR_NAMES), max_weight=7.0)
    assert [e.name for e in estimators] == list(ESTIMATOR_NAMES)
    by_name = {e.name: e for e in estimators}
    assert by_name["clipped_ips"] == ClippedIPS(max_weight=7.0)
    assert by_name["replay"].max_weight is None
    # The clipping cap is not Switch-DR's tau, nor DRos's lambda (another scale).
    assert by_name["switch_dr"].tau == 100.0 and by_name["dros"].shrinkage == 100.0 ** 2
    own = {e.name: e for e in make_estimators(["switch_dr", "dros"], switch_tau=3.0,
                                              dros_shrinkage=50.0)}
    assert own["switch_dr"].tau == 3.0 and own["dros"].shrinkage == 50.0
    bernstein = {e.name: e.ci_method for e in make_estimators(["ips", "snips"],
                                                              ci_method="bernstein")}
    assert bernstein == {"ips": "bernstein", "snips": "clt"}
    with pytest.raises(ValueError, match="estimator names must be among .*got 'ipw'"):
        make_estimators(["ipw"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_table_with_a_column_map(tmp_path, suffix):
    table = pd.DataFrame({
        "clicked": [1.0, 0.0, 1.0, 1.0],
        "p_log": [0.5, 0.5, 0.25, 0.8],
        "variant": ["a", "b", "b", "a"],
        "p_new": [1.0, 0.0, 0.5, 0.4],
    })
    path = tmp_path / f"log{suffix}"
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path)
    log = read_table([path], reward_col="clicked", propensity_col="p_log",
                     action_col="variant", target_prob_cols=["p_new"], include_logged=True)
    assert log.rounds.action.tolist() == [0, 1, 1, 0]
    assert log.rounds.n_actions.tolist() == [2] * 4
    assert list(log.targets) == ["logged", "p_new"]
    # w = [2, 0, 2, 0.5]; IPS = (2 + 0 + 2 + 0.5) / 4
    assert IPS().estimate_policy_value(log.rounds, log.targets["p_new"]) == pytest.approx(
        4.5 / 4)
    # the logged policy has weight 1 everywhere: its value is the mean reward
    assert IPS().estimate_policy_value(log.rounds, log.targets["logged"]) == pytest.approx(
        0.75)


def test_read_table_reports_missing_columns_and_bad_files(tmp_path):
    path = tmp_path / "log.csv"
    pd.DataFrame({"reward": [1.0], "propensity": [0.5]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"columns \['p_new'\] are not in the table"):
        read_table([path], reward_col="reward", propensity_col="propensity",
                   target_prob_cols=["p_new"])
    with pytest.raises(ValueError, match="log file does not exist"):
        read_table([tmp_path / "nope.csv"], reward_col="reward", propensity_col="propensity")
    bad = tmp_path / "log.txt"
    bad.write_text("x")
    with pytest.raises(ValueError, match="must be .dsjson, .csv or .parquet"):
        read_table([bad], reward_col="reward", propensity_col="propensity")
    zero = tmp_path / "zero.csv"
    pd.DataFrame({"reward": [1.0], "propensity": [0.0]}).to_csv(zero, index=False)
    with pytest.raises(ValueError, match=r"probability must be in \(0, 1\], got 0.0"):
        read_table([zero], reward_col="reward", propensity_col="propensity")


def test_estimate_row_has_no_missing_mandatory_fields():
    rounds, targets = small_log(n=100)
    row = evaluate(rounds, targets, estimators=[IPS()]).to_frame().iloc[0]
    for column in ("value", "ci_low", "ci_high", "ess", "max_weight"):
        assert math.isfinite(row[column])


def test_default_estimators_add_dr_only_when_a_reward_model_is_there():
    rounds, targets = small_log(n=200)
    assert set(evaluate(rounds, targets).estimates["soft"]) == {"ips", "snips", "dr"}
    bare = {"soft": targets["soft"].probability}
    assert set(evaluate(rounds, bare).estimates["soft"]) == {"ips", "snips"}


ROOT = Path(__file__).resolve().parents[2]


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    return path


@pytest.mark.parametrize(("values", "codes", "n_actions"), [
    ([2, 0, 2, 1], [2, 0, 2, 1], 3),  # a non-negative integer index is kept
    ([-1, 3, -1, 5], [0, 1, 0, 2], 3),  # other values are coded in order of appearance
    (["b", "a", "b", "c"], [0, 1, 0, 2], 3),
    ([1.5, 0.5, 1.5, 1.5], [0, 1, 0, 0], 2),
    ([True, False, True, True], [0, 1, 0, 0], 2),
    (pd.Categorical(["b", "a", "b", "c"]), [0, 1, 0, 2], 3),  # not the sorted categories
], ids=["index", "negative", "strings", "floats", "booleans", "categorical"])
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz", ".parquet"])
def test_read_table_codes_actions_alike_in_every_format(tmp_path, values, codes, n_actions,
                                                        suffix):
    frame = pd.DataFrame({"reward": [1, 0, 1, 1], "propensity": [0.5, 0.25, 0.5, 0.8],
                          "action": values})
    path = write_frame(frame, tmp_path / f"log{suffix}")
    log = read_table([path], reward_col="reward", propensity_col="propensity",
                     action_col="action")
    assert log.rounds.action.tolist() == codes
    assert log.rounds.n_actions.tolist() == [n_actions] * 4
    assert log.rounds.reward.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert log.rounds.probability.tolist() == [0.5, 0.25, 0.5, 0.8]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_table_numbers_are_the_ones_pandas_reads(tmp_path, suffix):
    # Full-precision decimals: a reader that rounded differently from pandas'
    # would change estimates in their last digits.
    rng = np.random.default_rng(3)
    n = 20_000
    frame = pd.DataFrame({"reward": rng.random(n), "propensity": rng.uniform(0.01, 1, n),
                          "new": rng.random(n), "q": rng.normal(size=n), "v": rng.normal(size=n),
                          "k": rng.integers(3, 6, n)})
    path = write_frame(frame, tmp_path / f"log{suffix}")
    expected = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    log = read_table([path], reward_col="reward", propensity_col="propensity",
                     n_actions_col="k", target_prob_cols=["new"], model_reward_col="q",
                     model_value_col="v")
    target = log.targets["new"]
    for got, column in [(log.rounds.reward, "reward"), (log.rounds.probability, "propensity"),
                        (log.rounds.n_actions, "k"), (target.probability, "new"),
                        (target.model_reward, "q"), (target.model_value, "v")]:
        np.testing.assert_array_equal(got, expected[column].to_numpy())


def test_read_table_reads_booleans_and_wide_files_alike(tmp_path):
    # numbers are parsed as floats straight away; a file where that fails is read
    # again with inferred types, so booleans still count as 0/1
    path = tmp_path / "log.csv"
    path.write_text("note,reward,propensity,extra\na,true,0.5,x\nb,false,0.25,y\n")
    log = read_table([path], reward_col="reward", propensity_col="propensity")
    assert log.rounds.reward.tolist() == [1.0, 0.0]
    assert log.rounds.probability.tolist() == [0.5, 0.25]


def test_read_table_concatenates_files_in_order_and_widens_integers(tmp_path):
    first = write_frame(pd.DataFrame({"reward": [1, 0], "propensity": [0.5, 0.5],
                                      "action": [0, 1]}), tmp_path / "a.csv")
    second = write_frame(pd.DataFrame({"reward": [0.5], "propensity": [0.25], "action": [2]}),
                         tmp_path / "b.parquet")
    log = read_table([first, second], reward_col="reward", propensity_col="propensity",
                     action_col="action")
    assert log.rounds.reward.tolist() == [1.0, 0.0, 0.5]
    assert log.rounds.action.tolist() == [0, 1, 2]
    lacking = write_frame(pd.DataFrame({"reward": [1.0], "propensity": [0.5]}),
                          tmp_path / "c.csv")
    with pytest.raises(ValueError, match=r"columns \['action'\] are not in the table; .*c\.csv "
                                         r"has \['reward', 'propensity'\]"):
        read_table([first, lacking], reward_col="reward", propensity_col="propensity",
                   action_col="action")


@pytest.mark.parametrize(("text", "message"), [
    ("reward,propensity,action\n1,0.5,a\n,0.5,b\n0,0.5,b\n",
     "column 'reward' must have a value in every row, got 1 empty, the first at position 1"),
    ("reward,propensity,action\n1,0.5,a\n0,0.5,b\n0,0.5,\n",
     "column 'action' must have a value in every row, got 1 empty, the first at position 2"),
    ("reward,propensity,action\nyes,0.5,a\n",
     "column 'reward' must hold numbers, got string values"),
    ("reward,propensity,action\n", "log files must hold at least one row, got none in"),
])
def test_read_table_names_empty_cells_non_numbers_and_empty_logs(tmp_path, text, message):
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_table([path], reward_col="reward", propensity_col="propensity",
                   action_col="action")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reading_and_evaluating_a_table_leaves_pandas_unimported(tmp_path, suffix):
    path = write_frame(pd.DataFrame({"reward": [1.0, 0.0], "propensity": [0.5, 0.5],
                                     "action": ["a", "b"], "new": [1.0, 0.0]}),
                       tmp_path / f"log{suffix}")
    code = ("import json, sys; from ope.evaluation import evaluate, read_table; "
            f"log = read_table([{str(path)!r}], reward_col='reward', "
            "propensity_col='propensity', action_col='action', target_prob_cols=['new']); "
            "print(json.dumps(evaluate(log.rounds, log.targets).to_dict())); "
            "print('pandas' in sys.modules)")
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=True)
    report, pandas_loaded = finished.stdout.splitlines()
    # w = [2, 0]: IPS = 2 * 1 / 2
    assert json.loads(report)["estimates"]["ips"]["value"] == pytest.approx(1.0)
    assert pandas_loaded == "False"
