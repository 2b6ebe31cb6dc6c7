"""``banditkit logs to-parquet`` and ``banditkit evaluate --spark`` through click's runner."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cli import main
from ope.logtable import SCHEMA, TORN_LINE, record_of_row

ROOT = Path(__file__).resolve().parents[2]


def odd_records(path):
    """Records a writer other than banditkit's may produce, all of them joined events."""
    records = []
    for number, line in enumerate(path.read_text().splitlines()[:6]):
        record = json.loads(line)
        record["EventId"] = f"odd-{number}"
        records.append(record)
    records[0]["DeferredAction"] = True
    records[0]["_skipLearn"] = True
    records[1]["VWState"] = {"m": "v7", "t": "2026-01-01"}  # more than the model version
    records[2]["pdrop"] = 0.1  # a top-level key of VW's own
    del records[3]["Version"], records[3]["o"], records[3]["_label_Action"]
    records[4]["_banditkit"] = {"note": "no action ids"}
    records[5]["c"]["Member"] = {"country": "BR", "hour": 21, "ratio": 0.25}
    return records


def test_to_parquet_keeps_every_field_of_the_dsjson(partitioned_log, tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(partitioned_log, logs)
    first = sorted(logs.glob("dt=*/events.dsjson"))[0]
    odd = odd_records(first)
    with open(first, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in odd)
        handle.write('{"EventId":"torn"')  # still being written
    (logs / "_SUCCESS").write_text("")  # a foreign file: not read, and said so
    result = CliRunner().invoke(main, ["logs", "to-parquet", str(logs), "--out",
                                       str(tmp_path / "table"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["events"] == 1200 + len(odd) and summary["partitions"] == 4
    assert summary["skipped_lines"] == {TORN_LINE: 1}
    assert summary["ignored_files"] == {"not a .dsjson or .parquet file": {
        "count": 1, "examples": [str(logs / "_SUCCESS")]}}

    expected = [json.loads(line) for path in sorted(logs.glob("dt=*/events.dsjson"))
                for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]
    files = sorted((tmp_path / "table").rglob("*.parquet"))
    assert [f.parent.name for f in files] == [p.parent.name
                                              for p in sorted(logs.glob("dt=*/events.dsjson"))]
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    assert pq.read_schema(files[0]) == SCHEMA
    assert [record_of_row(row) for row in rows] == expected
    # features keep their types: strings categorical, numbers numeric
    context = json.loads(next(r["context"] for r in rows if r["event_id"] == "odd-5"))
    assert context["Member"] == {"country": "BR", "hour": 21, "ratio": 0.25}


def test_to_parquet_refuses_a_folder_that_holds_files(partitioned_log, tmp_path):
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "old.parquet").write_bytes(b"")
    result = CliRunner().invoke(main, ["logs", "to-parquet", str(partitioned_log), "--out",
                                       str(tmp_path / "table")])
    assert result.exit_code == 1
    assert "out must be a new or empty folder" in result.output


def test_to_parquet_says_a_uri_needs_spark(partitioned_log, tmp_path):
    for arguments in (["hdfs://namenode/logs", "--out", str(tmp_path / "table")],
                      [str(partitioned_log), "--out", "hdfs://namenode/table"]):
        result = CliRunner().invoke(main, ["logs", "to-parquet", *arguments],
                                    env={"BANDITKIT_SPARK_MASTER": None})
        assert result.exit_code == 2
        assert ("is a URI, which only Spark reads and writes: add --spark MASTER"
                in result.output)
    assert not (tmp_path / "table").exists()


def test_evaluate_reads_the_table_as_its_log(partitioned_log, tmp_path):
    table = tmp_path / "table"
    assert CliRunner().invoke(main, ["logs", "to-parquet", str(partitioned_log), "--out",
                                     str(table)]).exit_code == 0
    arguments = ["--estimators", "ips,snips,clipped_ips", "--json"]
    from_log = CliRunner().invoke(main, ["evaluate", str(partitioned_log), *arguments])
    from_table = CliRunner().invoke(main, ["evaluate", str(table), *arguments])
    assert from_table.exit_code == 0, from_table.output
    expected, got = json.loads(from_log.stdout), json.loads(from_table.stdout)
    assert got["n_rounds"] == expected["n_rounds"] == 1200
    for policy, entry in expected["policies"].items():
        for name, estimate in entry["estimates"].items():
            assert got["policies"][policy]["estimates"][name]["value"] == pytest.approx(
                estimate["value"], rel=1e-9)


@pytest.mark.slow
def test_evaluate_on_spark_prints_the_in_process_json_plus_the_engine(spark, partitioned_log,
                                                                      tmp_path):
    arguments = ["--estimators", "ips,snips,replay", "--json"]
    expected = json.loads(CliRunner().invoke(
        main, ["evaluate", str(partitioned_log), *arguments]).stdout)
    result = CliRunner().invoke(main, ["evaluate", str(partitioned_log), *arguments],
                                env={"BANDITKIT_SPARK_MASTER": "local[2]"})
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got.pop("engine") == "spark"
    assert got["notes"].pop("engine") == "spark"
    assert got["n_rounds"] == expected["n_rounds"]
    assert got["notes"] == expected["notes"]
    for policy, entry in expected["policies"].items():
        for name, estimate in entry["estimates"].items():
            mine = got["policies"][policy]["estimates"][name]
            assert mine["value"] == pytest.approx(estimate["value"], rel=1e-9)
            assert mine["ci"] == pytest.approx(estimate["ci"], rel=1e-9)

    table = tmp_path / "table"
    result = CliRunner().invoke(main, ["logs", "to-parquet", str(partitioned_log), "--out",
                                       str(table), "--spark", "local[2]"])
    assert result.exit_code == 0, result.output
    assert "1,200 events in 4 files, 4 date partitions" in result.output
    at_uri = (tmp_path / "at-uri").as_uri()
    result = CliRunner().invoke(main, ["logs", "to-parquet", partitioned_log.as_uri(), "--out",
                                       at_uri, "--spark", "local[2]"])
    assert result.exit_code == 0, result.output
    assert f"1,200 events in 4 files, 4 date partitions: {at_uri}" in result.output
    on_table = json.loads(CliRunner().invoke(
        main, ["evaluate", str(table), "--spark", "local[2]", *arguments]).stdout)
    assert on_table["policies"]["uniform"]["estimates"]["replay"]["value"] == pytest.approx(
        expected["policies"]["uniform"]["estimates"]["replay"]["value"], rel=1e-9)


def test_evaluate_spark_refuses_what_it_does_not_run(partitioned_log, tmp_path):
    csv = tmp_path / "log.csv"
    csv.write_text("reward,propensity\n1,0.5\n")
    result = CliRunner().invoke(main, ["evaluate", str(csv), "--spark", "local[2]"])
    assert result.exit_code == 2 and "not files with a column map" in result.output
    result = CliRunner().invoke(main, ["evaluate", str(partitioned_log), "--spark",
                                       "spark://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the Spark master spark://127.0.0.1:9" in result.output


@pytest.mark.slow
def test_evaluate_reads_uris_on_spark_and_asks_for_spark_without_it(spark, partitioned_log):
    arguments = ["--estimators", "ips,snips", "--json"]
    expected = json.loads(CliRunner().invoke(
        main, ["evaluate", str(partitioned_log), "--spark", "local[2]", *arguments]).stdout)
    result = CliRunner().invoke(main, ["evaluate", partitioned_log.as_uri(), "--spark",
                                       "local[2]", *arguments])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected

    result = CliRunner().invoke(main, ["evaluate", "hdfs://namenode/logs", *arguments])
    assert result.exit_code == 2
    assert "hdfs://namenode/logs is a URI, which is read through Spark's Hadoop " \
           "FileSystem: add --spark MASTER" in result.output


@pytest.mark.slow  # two interpreters that import the CLI: a few seconds
def test_without_pyspark_spark_says_how_to_install_it(partitioned_log, tmp_path):
    # A real interpreter in which importing pyspark fails, as on a machine without it.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyspark' or name.startswith('pyspark.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, _Blocked())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    for command in (["evaluate", str(partitioned_log), "--spark", "local[2]"],
                    ["logs", "to-parquet", str(partitioned_log), "--out",
                     str(tmp_path / "table"), "--spark", "local[2]"]):
        done = subprocess.run([sys.executable, "-m", "cli", *command], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            "Error: --spark needs PySpark, which is not installed: pip install "
            "'banditkit[spark]' (and Java 17, e.g. openjdk-17-jre-headless)"]
