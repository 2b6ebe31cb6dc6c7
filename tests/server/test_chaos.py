"""The fault campaign (``benchmarks/chaos.py``) against ``banditkit serve``, bounded.

About 60 s of rank, reward and activate calls over loopback while workers, the
learner and the whole process group are killed at seeded random times; then
every acknowledged call is checked against the joined dsjson log.
``BANDITKIT_CHAOS_SECONDS`` shortens the run for a quick local check (below
about 40 s some kinds of kill may not get their turn, and the test says so).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("BANDITKIT_CHAOS_SECONDS", "60"))


def load_campaign() -> ModuleType:
    spec = importlib.util.spec_from_file_location("banditkit_chaos",
                                                  ROOT / "benchmarks" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_no_acknowledged_call_is_lost_or_logged_twice_while_processes_are_killed(
        tmp_path: Path) -> None:
    chaos = load_campaign()
    summary = chaos.main(["--duration", str(SECONDS), "--seed", "7", "--threads", "4",
                          "--workers", "2", "--data-dir", str(tmp_path / "data")])
    report = {key: summary[key] for key in ("kills", "acknowledged", "lost", "duplicated",
                                            "rewards_lost", "activations_lost")}
    report["gone_by_next_kill"] = summary["log_report"]["gone_by_next_kill"]
    report["lost_where"] = summary["log_report"]["lost_where"]
    report["timeline"] = summary["kill_report"]["timeline"]
    report["settled"] = summary["settled"]
    detail = json.dumps(report)  # a string: pytest shortens a dict in the message

    # The campaign did what it claims: load was acknowledged and every kind of
    # kill happened at least once, so a pass means the faults were survived.
    assert summary["acknowledged"].get("rank", 0) > 1000, detail
    assert summary["acknowledged"].get("reward", 0) > 500, detail
    assert summary["acknowledged"].get("activate", 0) > 50, detail
    missing = [kind for kind, n in summary["kills"].items() if n == 0]
    assert not missing, f"kills that never happened: {missing}; {detail}"
    assert summary["kill_report"]["killer_error"] is None, detail

    assert summary["lost"] == 0, detail
    assert summary["duplicated"] == 0, detail
    assert summary["rewards_lost"] == 0, detail
    assert summary["activations_lost"] == 0, detail
    assert summary["log_report"]["log_readable"], detail
