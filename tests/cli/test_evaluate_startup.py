"""``banditkit evaluate`` on a table loads only what it runs: no pandas, scikit-learn,
SciPy, matplotlib or Vowpal Wabbit, whose imports cost more than the evaluation, none
of the HTTP stack (Flask, pydantic) that only ``serve`` needs, and none of the decision
store (its journals and the dsjson codec) that only a --database-url needs."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["flask", "matplotlib", "pandas", "pydantic", "scipy", "sklearn", "vowpal_wabbit_next"]
#: Our own modules the table path does not need (a package stands for its submodules).
UNNEEDED = ["banditkit.dsjson", "banditkit.store"]


def _loaded_after(arguments: list[str]) -> tuple[str, list[str]]:
    """What ``banditkit ARGUMENTS`` printed, and which of HEAVY and UNNEEDED it imported."""
    code = ("import sys; from cli import main; "
            f"main({arguments!r}, standalone_mode=False); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}) | "
            f"{{m for m in {UNNEEDED!r} if m in sys.modules}}))")
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=True)
    *printed, loaded = finished.stdout.splitlines()
    return "\n".join(printed), json.loads(loaded.replace("'", '"'))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_json_evaluation_of_a_table_loads_no_heavy_package(tmp_path, suffix):
    frame = pd.DataFrame({"reward": [1.0, 0.0, 0.0, 1.0], "propensity": [0.5, 0.5, 0.25, 0.8],
                          "action": ["a", "b", "b", "a"], "new": [1.0, 0.0, 0.5, 0.4],
                          "q": [0.5, 0.5, 0.5, 0.5], "v": [0.4, 0.4, 0.4, 0.4]})
    path = tmp_path / f"log{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    arguments = ["evaluate", str(path), "--action-col", "action", "--target-prob-col", "new",
                 "--model-reward-col", "q", "--model-value-col", "v", "--json"]
    report, loaded = _loaded_after(arguments)
    assert loaded == []
    estimates = json.loads(report)["estimates"]
    assert set(estimates) == {"ips", "snips", "dr"}
    # w = [2, 0, 2, 0.5]: IPS = (2 + 0 + 0 + 0.5) / 4
    assert estimates["ips"]["value"] == pytest.approx(2.5 / 4)


def test_the_text_table_loads_no_heavy_package_and_shows_each_estimate(tmp_path):
    path = tmp_path / "log.csv"
    pd.DataFrame({"reward": [1.0, 0.0, 0.0, 1.0], "propensity": [0.5, 0.5, 0.25, 0.8],
                  "new": [1.0, 0.0, 0.5, 0.4]}).to_csv(path, index=False)
    table, loaded = _loaded_after(["evaluate", str(path), "--target-prob-col", "new",
                                   "--estimators", "ips,snips"])
    assert loaded == []
    lines = table.splitlines()
    assert lines[0] == "4 rounds"
    assert lines[1].split()[:5] == ["policy", "estimator", "value", "ci_low", "ci_high"]
    values = {line.split()[1]: float(line.split()[2]) for line in lines[2:4]}
    # w = [2, 0, 2, 0.5]: IPS = 2.5 / 4; SNIPS = 2.5 / (2 + 0 + 2 + 0.5)
    assert values == {"ips": pytest.approx(2.5 / 4, abs=5e-5),
                      "snips": pytest.approx(2.5 / 4.5, abs=5e-5)}
