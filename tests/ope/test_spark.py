"""Evaluation on a real Spark (local[2], the run's one session) against the in-process engine."""

import json
import shutil
from pathlib import Path

import pytest

from banditkit.errors import InvalidInputError
from banditkit.eventlog import read_events
from banditkit.store import Store
from banditkit.vw import VWLearner
from ope.evaluation import evaluate_log, make_estimators
from ope.logtable import record_of_row
from ope.partitioned import evaluate_partitions, write_log_table
from ope.spark import evaluate_spark, spark_session, to_parquet

FIXED = ["ips", "snips", "clipped_ips", "replay"]


def assert_same_estimates(got, expected, *, rel=1e-9):
    assert got.n_rounds == expected.n_rounds
    assert list(got.estimates) == list(expected.estimates)
    for policy, by_name in expected.estimates.items():
        for name, estimate in by_name.items():
            other = got.estimates[policy][name]
            assert other.value == pytest.approx(estimate.value, rel=rel), (policy, name)
            assert other.ci == pytest.approx(estimate.ci, rel=rel), (policy, name)
            assert other.diagnostics.effective_sample_size == pytest.approx(
                estimate.diagnostics.effective_sample_size, rel=rel)
            assert other.diagnostics.max_weight == estimate.diagnostics.max_weight


@pytest.mark.slow
def test_fixed_policy_estimates_equal_the_in_process_engine(spark, partitioned_log):
    estimators = make_estimators(FIXED)
    expected = evaluate_log([partitioned_log], estimators=estimators, chunk_size=500)
    got = evaluate_spark(spark, [partitioned_log], estimators=estimators, chunk_size=500)
    assert len(list(partitioned_log.glob("dt=*/events.dsjson"))) == 4  # one task each
    assert_same_estimates(got, expected)
    # replay's draws follow each event's position in the whole log, so even it is equal
    for policy in expected.estimates:
        assert got.estimates[policy]["replay"].extra == pytest.approx(
            expected.estimates[policy]["replay"].extra, rel=1e-9)
    assert got.notes == {**expected.notes, "engine": "spark"}


@pytest.mark.slow
def test_reward_model_chunks_follow_the_whole_logs_across_partitions(partitioned_log):
    # 300 events per partition, chunks of 400: most chunks are joined from two
    # partitions' pieces, so the reward model is fitted on the same events.
    estimators = make_estimators(["dm", "dr", "replay"])
    expected = evaluate_log([partitioned_log], estimators=estimators, chunk_size=400)
    assert_same_estimates(evaluate_partitions([partitioned_log], estimators=estimators,
                                              chunk_size=400), expected)


@pytest.mark.slow
def test_model_based_estimates_on_spark_equal_up_to_the_solver_tolerance(spark,
                                                                         partitioned_log):
    estimators = make_estimators(["dm", "dr"])
    expected = evaluate_log([partitioned_log], estimators=estimators, chunk_size=400)
    got = evaluate_spark(spark, [partitioned_log], estimators=estimators, chunk_size=400)
    assert got.n_rounds == expected.n_rounds
    for policy in expected.estimates:
        for name in ("dm", "dr"):
            mine, theirs = got.estimates[policy][name], expected.estimates[policy][name]
            # Spark's Python workers run BLAS on one thread, which moves the ridge
            # solver's answer within its tolerance (1e-4); measured: < 0.001 SE.
            assert abs(mine.value - theirs.value) < 0.01 * theirs.std_error, (policy, name)


@pytest.mark.slow
def test_a_vw_model_scores_on_the_executors_as_it_does_locally(spark, partitioned_log,
                                                               tmp_path):
    learner = VWLearner(args="--cb_explore_adf --epsilon 0.1 -q ::")
    for event in list(read_events([partitioned_log]))[:300]:
        learner.learn_one(event.context, event.actions, chosen=event.chosen_index,
                          reward=event.reward, probability=event.probability)
    model = tmp_path / "model.vw"
    model.write_bytes(learner.to_bytes())
    Store(path=tmp_path / "banditkit.sqlite3").publish_model(
        created_at=0.0, policy_args="--cb_explore_adf --epsilon 0.2 -q ::",
        banditkit_version="test", through_seq=0, n_updates=300, data=learner.to_bytes())
    options = {"estimators": make_estimators(["ips", "snips"]),
               "policies": ["logged", f"model:{model}", "model:latest"], "chunk_size": 500,
               "model_args": "--cb_explore_adf --epsilon 0.1 -q ::", "data_dir": tmp_path}
    expected = evaluate_log([partitioned_log], **options)
    got = evaluate_spark(spark, [partitioned_log], **options)
    assert_same_estimates(got, expected)
    # the model is not the logging policy, and the store's arguments explore more
    assert got.estimates[f"model:{model}"]["ips"].diagnostics.max_weight > 1
    assert got.estimates["model:v1"]["ips"].value != got.estimates[f"model:{model}"]["ips"].value


@pytest.mark.slow
def test_the_log_table_evaluates_as_its_log_in_process_and_on_spark(spark, partitioned_log,
                                                                    tmp_path):
    estimators = make_estimators(FIXED)
    expected = evaluate_log([partitioned_log], estimators=estimators, chunk_size=500)
    table = tmp_path / "table"
    write_log_table([partitioned_log], table)
    local = evaluate_partitions([table], estimators=estimators, chunk_size=500)
    assert_same_estimates(local, expected)
    assert_same_estimates(evaluate_spark(spark, [table], estimators=estimators,
                                         chunk_size=500), expected)
    on_spark = tmp_path / "table-spark"
    summary = to_parquet(spark, [partitioned_log], on_spark)
    assert summary.events == 1200 and len(summary.files) == 4
    for path in table.rglob("*.parquet"):
        import pyarrow.parquet as pq

        assert pq.read_table(on_spark / path.relative_to(table)).equals(pq.read_table(path))
    # analysts read it with Spark SQL, partitions discovered from dt=...
    frame = spark.read.parquet(str(on_spark))
    assert frame.count() == 1200
    assert {str(row.dt) for row in frame.select("dt").distinct().collect()} == {
        p.name[3:] for p in partitioned_log.iterdir()}
    frame.createOrReplaceTempView("events")  # the query of docs/evaluation.md
    rows = spark.sql("""
        SELECT dt, model_version, count(*) AS events, avg(reward) AS mean_reward
        FROM events
        WHERE dt >= '2023-11-15' AND get_json_object(context, '$.Member.device') = 'tv'
        GROUP BY dt, model_version ORDER BY dt""").collect()
    on_tv = [e for e in read_events([partitioned_log]) if e.timestamp >= "2023-11-15"
             and e.context["Member"]["device"] == "tv"]
    assert sum(row.events for row in rows) == len(on_tv) > 0
    assert len(rows) == 3 and all(row.model_version == "simulated" for row in rows)


@pytest.mark.slow
def test_bad_partitions_are_reported_as_in_process(spark, partitioned_log, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(partitioned_log, logs)
    first = sorted(logs.glob("dt=*/events.dsjson"))[0]
    with open(first, "a", encoding="utf-8") as handle:
        handle.write('{"EventId":"torn","Timest')  # a writer killed mid-append
    second = sorted(logs.glob("dt=*/events.dsjson"))[1]
    text = second.read_text()
    second.write_text(text.replace('"_skipLearn": false', '"_skipLearn": true', 5))
    (logs / "_SUCCESS").write_text("")
    (logs / "README.txt").write_text("notes")
    estimators = make_estimators(["ips", "snips"])
    expected = evaluate_log([logs], estimators=estimators)
    got = evaluate_spark(spark, [logs], estimators=estimators)
    assert_same_estimates(got, expected)  # the torn line is left out by both
    assert got.notes["skipped_not_activated"] == expected.notes["skipped_not_activated"] == 5
    assert got.notes["skipped_lines"] == {
        "torn last line (no newline: still being written), not read": 1}
    assert got.notes["ignored_files"]["not a .dsjson or .parquet file"]["count"] == 2

    last = sorted(logs.glob("dt=*/events.dsjson"))[-1]
    lines = last.read_text().splitlines(keepends=True)
    record = json.loads(lines[3])
    del record["_labelIndex"]
    lines[3] = json.dumps(record) + "\n"
    last.write_text("".join(lines))
    with pytest.raises(InvalidInputError) as in_process:
        evaluate_log([logs], estimators=estimators)
    with pytest.raises(InvalidInputError) as on_spark:
        evaluate_spark(spark, [logs], estimators=estimators)
    assert str(on_spark.value) == str(in_process.value)
    assert f"{last}:4: not a joined dsjson event" in str(on_spark.value)


def torn_copy(log, logs):
    """A copy of ``log`` at ``logs`` whose first file ends in a torn line, with a note
    beside its partitions."""
    shutil.copytree(log, logs)
    first = sorted(logs.glob("dt=*/events.dsjson"))[0]
    with open(first, "a", encoding="utf-8") as handle:
        handle.write('{"EventId":"torn","Timest')  # a writer killed mid-append
    (logs / "README.txt").write_text("notes")
    return logs


@pytest.mark.slow
def test_uris_are_read_through_sparks_file_system_as_the_paths_are(spark, partitioned_log,
                                                                   tmp_path):
    logs = torn_copy(partitioned_log, tmp_path / "logs")
    estimators = make_estimators(FIXED)
    expected = evaluate_spark(spark, [logs], estimators=estimators, chunk_size=500)
    got = evaluate_spark(spark, [logs.as_uri()], estimators=estimators, chunk_size=500)
    assert_same_estimates(got, expected)
    assert got.notes["skipped_lines"] == expected.notes["skipped_lines"] == {
        "torn last line (no newline: still being written), not read": 1}
    assert got.notes["ignored_files"]["not a .dsjson or .parquet file"]["examples"] == [
        f"file:{logs / 'README.txt'}"]

    table = tmp_path / "table"
    write_log_table([partitioned_log], table)
    local = evaluate_partitions([table], estimators=estimators, chunk_size=500)
    assert_same_estimates(evaluate_spark(spark, [table.as_uri()], estimators=estimators,
                                         chunk_size=500), local)

    # a bad line is named by the URI Spark read it at, and its line number
    last = sorted(logs.glob("dt=*/events.dsjson"))[-1]
    lines = last.read_text().splitlines(keepends=True)
    lines[6] = "{}\n"
    last.write_text("".join(lines))
    with pytest.raises(InvalidInputError, match=f"^file:{last}:7: not a joined dsjson event"):
        evaluate_spark(spark, [logs.as_uri()], estimators=estimators)


def table_rows_in_order(files):
    """Every row of a log table's files, in the order a reader takes them (by path)."""
    import pyarrow.parquet as pq

    local = sorted(str(f).removeprefix("file:") for f in files)
    return [row for path in local for row in pq.read_table(path).to_pylist()]


@pytest.mark.slow
def test_a_log_table_at_a_uri_is_written_by_sparks_writer_in_the_logs_order(
        spark, partitioned_log, tmp_path):
    logs = torn_copy(partitioned_log, tmp_path / "logs")
    expected = write_log_table([logs], tmp_path / "local")

    out = (tmp_path / "on-hadoop").as_uri()
    summary = to_parquet(spark, [logs.as_uri()], out)
    assert summary.events == expected.events == 1200
    assert summary.skipped_lines == expected.skipped_lines == {
        "torn last line (no newline: still being written), not read": 1}
    assert summary.ignored_files["not a .dsjson or .parquet file"]["examples"] == [
        f"file:{logs / 'README.txt'}"]
    # one file per source file and date, as in process; the same rows, types and order
    assert sorted(Path(f).parent.name for f in summary.files) == sorted(
        Path(f).parent.name for f in expected.files)
    rows = table_rows_in_order(summary.files)
    assert rows == table_rows_in_order(expected.files)
    assert [record_of_row(row)["EventId"] for row in rows] == [
        event.event_id for event in read_events([logs])]
    estimators = make_estimators(FIXED)
    assert_same_estimates(evaluate_spark(spark, [out], estimators=estimators, chunk_size=500),
                          evaluate_log([logs], estimators=estimators, chunk_size=500))
    # local paths read, a table written at a URI; a local folder written from URIs
    assert table_rows_in_order(to_parquet(spark, [logs], out + "-2").files) == rows
    local_out = tmp_path / "from uris"
    local_out.mkdir()
    assert table_rows_in_order(to_parquet(spark, [logs.as_uri()], local_out).files) == rows
    assert len(list(local_out.rglob("*.parquet"))) == 4  # in the folder named, not "from%20uris"

    with pytest.raises(InvalidInputError, match=f"^out must be a new or empty folder, got "
                                                f"{out}, which already holds files$"):
        to_parquet(spark, [logs.as_uri()], out)
    last = sorted(logs.glob("dt=*/events.dsjson"))[-1]
    lines = last.read_text().splitlines(keepends=True)
    lines[6] = "{}\n"
    last.write_text("".join(lines))
    failed = tmp_path / "failed"
    with pytest.raises(InvalidInputError, match=f"^file:{last}:7: not a joined dsjson event"):
        to_parquet(spark, [logs.as_uri()], failed.as_uri())
    assert not list(failed.rglob("*.parquet"))  # nothing published: the same out again
    lines[6] = "\n"
    last.write_text("".join(lines))
    assert to_parquet(spark, [logs.as_uri()], failed.as_uri()).events == 1199


@pytest.mark.slow
def test_a_page_log_at_a_uri_is_named_as_one(spark, tmp_path):
    from banditkit.dsjson import CcbSlot, ccb_decision_line

    logs = tmp_path / "pages" / "dt=2026-01-01"
    logs.mkdir(parents=True)
    slots = [CcbSlot(id="top", features={}, eligible=[0, 1], actions=[1, 0],
                     probabilities=[0.9, 0.1]),
             CcbSlot(id="second", features={}, eligible=[0, 1], actions=[0],
                     probabilities=[1.0])]
    page = ccb_decision_line("p1", "2026-01-01T00:00:00Z", "v1", {"Member": {"country": "BR"}},
                             [{"Row": {"genre": "drama"}}, {"Row": {"genre": "comedy"}}],
                             slots, {"slotIds": ["top", "second"]})
    (logs / "events.dsjson").write_text(page + "\n")
    with pytest.raises(InvalidInputError, match=r"events.dsjson:1: not a joined dsjson event: "
                                                r"a page \(multi-slot\) event, not a single "
                                                r"decision"):
        evaluate_spark(spark, [logs.parent.as_uri()], estimators=make_estimators(["ips"]))


@pytest.mark.slow
def test_a_uri_spark_cannot_list_is_named_with_the_reason(spark, tmp_path):
    estimators = make_estimators(["ips"])
    missing = (tmp_path / "nowhere").as_uri()
    with pytest.raises(InvalidInputError, match=f"^log path does not exist: {missing}$"):
        evaluate_spark(spark, [missing], estimators=estimators)
    with pytest.raises(InvalidInputError, match='cannot list nosuchfs://host/logs through '
                                                'Spark.s Hadoop FileSystem: .*"nosuchfs"'):
        evaluate_spark(spark, ["nosuchfs://host/logs"], estimators=estimators)


def test_a_uri_without_spark_says_to_use_spark(partitioned_log):
    with pytest.raises(InvalidInputError, match="is a URI, which is read through Spark"):
        evaluate_partitions([partitioned_log.as_uri()], estimators=make_estimators(["ips"]))


def test_a_table_without_the_columns_evaluation_reads_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "table" / "dt=2026-01-01").mkdir(parents=True)
    path = tmp_path / "table" / "dt=2026-01-01" / "part-00000.parquet"
    pq.write_table(pa.table({"event_id": ["a"], "reward": [1.0]}), path)
    with pytest.raises(InvalidInputError, match=r"lacks columns \['timestamp', "):
        evaluate_partitions([tmp_path / "table"], estimators=make_estimators(["ips"]))


@pytest.mark.parametrize("master, message", [
    ("spark://127.0.0.1:9", "cannot reach the Spark master spark://127.0.0.1:9"),
    ("local[two]", "Spark master must be local, local[N]"),
])
def test_a_bad_master_is_named_before_any_jvm_starts(master, message):
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[")), \
            spark_session(master):
        pass


def test_offline_is_refused_with_the_way_out(partitioned_log):
    with pytest.raises(ValueError, match="evaluate it as model:PATH"):
        evaluate_partitions([partitioned_log], estimators=make_estimators(["ips"]),
                            policies=["offline"])
