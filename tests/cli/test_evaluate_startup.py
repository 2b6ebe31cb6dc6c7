"""``banditkit evaluate`` on a table loads only what it runs: no pandas, scikit-learn,
SciPy, matplotlib or Vowpal Wabbit, whose imports cost more than the evaluation."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["matplotlib", "pandas", "scipy", "sklearn", "vowpal_wabbit_next"]


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
    code = ("import sys; from cli import main; "
            f"main({arguments!r}, standalone_mode=False); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=True)
    report, loaded = finished.stdout.splitlines()
    assert loaded == "[]"
    estimates = json.loads(report)["estimates"]
    assert set(estimates) == {"ips", "snips", "dr"}
    # w = [2, 0, 2, 0.5]: IPS = (2 + 0 + 0 + 0.5) / 4
    assert estimates["ips"]["value"] == pytest.approx(2.5 / 4)
