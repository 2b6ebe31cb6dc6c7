"""Personalizer's evaluations over a multi-slot log: one result per policy and slot.

The row engine logs pages of a world whose true per-slot values are known
(``RowWorld``); the evaluation job reads that log through HTTP and the job
runner, and each slot's Online, Baseline and Random estimates are checked
against the log itself and against the world's truth.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from banditkit.engine import Engine
from banditkit.rows import RowEngine, Slot, default_slots
from banditkit.settings import LoopSettings
from banditkit.store.jobs import SQLiteJobStore
from server import close_app, create_app
from serving.jobs import JobLimits, JobRunner
from simulator.rows_world import RowWorld
from tests.server.conftest import FAST_SETTINGS, auth, make_keys

V = "?api-version=2022-09-01-preview"
EVALUATIONS = "/personalizer/evaluations"
N_SLOTS, N_PAGES = 3, 2000
# 2000 pages one second apart from 2026-01-01T00:00:00Z
FIRST = 1_767_225_600.0
START, END = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


@pytest.fixture(scope="module")
def world():
    return RowWorld.generate(seed=5, n_genres=3, rows_per_genre=1, n_general=2)


def _slots(world):
    """Slots whose baselines are the last rows, bottom up: not the first allowed rows."""
    return [Slot(id=slot.id, features=slot.features, baseline=world.rows[-1 - k].id)
            for k, slot in enumerate(default_slots(N_SLOTS))]


@pytest.fixture(scope="module")
def served(world, tmp_path_factory):
    """An app over a data dir whose row engine logged N_PAGES pages, exploring heavily."""
    data_dir = tmp_path_factory.mktemp("slots") / "data"
    now = [FIRST]
    settings = LoopSettings(reward_wait_seconds=1.0, model_update_seconds=0.0,
                            exploration_percentage=0.6)
    rng = np.random.default_rng(0)
    index = {row.id: i for i, row in enumerate(world.rows)}
    with RowEngine.open(data_dir, settings=settings, clock=lambda: now[0]) as rows:
        for i, member in enumerate(world.sample_members(N_PAGES, seed=1)):
            decision = rows.rank_rows(world.context(int(member)), world.rows,
                                      slots=_slots(world), event_id=f"p{i}")
            plays = world.sample_plays(int(member), [index[r] for r in decision.row_ids], rng)
            if plays.any():
                rows.reward_slots(decision.event_id, {
                    s.slot_id: 1.0 for s, p in zip(decision.slots, plays, strict=True) if p})
            now[0] += 1.0
            if (i + 1) % 500 == 0:
                now[0] += 5
                rows.process_due(force_publish=True)
    keys = make_keys(data_dir)
    app = create_app({"TESTING": True, "ENGINE_DATA_DIR": str(data_dir),
                      "ENGINE_SETTINGS": FAST_SETTINGS, "LEARNER_ENABLED": False})
    engine, rows = Engine.open(data_dir), RowEngine.open(data_dir)
    runner = JobRunner(jobs=SQLiteJobStore.open(data_dir / "banditkit.sqlite3"), engine=engine,
                       rows=rows, limits=JobLimits(workers=1))
    yield app.test_client(), keys, runner, data_dir
    runner.jobs.close()
    engine.close()
    rows.close()
    close_app(app)


def _put(client, key, job_id, **body):
    body = {"name": job_id, "startTime": START, "endTime": END, **body}
    return client.put(f"{EVALUATIONS}/{job_id}{V}", json=body, headers=auth(key))


@pytest.fixture(scope="module")
def evaluated(served):
    """An evaluation of the multi-slot log, asked without ``multiSlot`` (the single-slot
    log is empty), run to its end."""
    client, keys, runner, _ = served
    response = _put(client, keys["analyst"], "pages")
    assert response.status_code == 200, response.json
    job = runner.run_once()
    assert job.status == "Succeeded", job.message
    return client.get(f"{EVALUATIONS}/pages{V}&startTime={START}&endTime={END}",
                      headers=auth(keys["analyst"])).json


def _logged(data_dir):
    """Per page: the slots' rewards, in slot order."""
    lines = [json.loads(line) for path in sorted((data_dir / "rows" / "logs").rglob("*.dsjson"))
             for line in path.read_text().splitlines()]
    return np.array([[-o["_label_cost"] for o in line["_outcomes"]] for line in lines])


def _result(evaluation, name, slot):
    return next(p for p in evaluation["content"]["value"]
                if p["name"] == name and p["slotId"] == slot)


@pytest.mark.slow  # logs 2000 pages and runs one evaluation (about 4 s)
def test_each_slots_online_estimate_is_that_slots_log_average(evaluated, served):
    rewards = _logged(served[3])
    assert rewards.shape == (N_PAGES, N_SLOTS)
    values = evaluated["content"]["value"]
    assert sorted({p["slotId"] for p in values}) == ["", "1", "2", "3"]
    assert len(values) == 3 * (N_SLOTS + 1)
    for k in range(N_SLOTS):
        online = _result(evaluated, "Online", str(k + 1))
        # the online policy's weights are all 1: SNIPS is the slot's plain average
        mean = rewards[:, k].mean()
        assert online["summary"]["expectedReward"] == pytest.approx(mean, rel=1e-9)
        low, high = online["summary"]["confidenceInterval"]
        assert low < mean < high
        assert online["timeseries"]["data"]
    page = _result(evaluated, "Online", "")
    assert page["summary"]["expectedReward"] == pytest.approx(rewards.sum(axis=1).mean())


@pytest.mark.slow  # shares the evaluation of the first test
def test_the_first_slots_baseline_is_its_baseline_action_self_normalised(evaluated, served,
                                                                          world):
    lines = [json.loads(line)
             for path in sorted((served[3] / "rows" / "logs").rglob("*.dsjson"))
             for line in path.read_text().splitlines()]
    row_ids = [row.id for row in world.rows]
    shown = np.array([row_ids[line["_outcomes"][0]["_a"][0]] for line in lines])
    p = np.array([line["_outcomes"][0]["_p"][0] for line in lines])
    r = np.array([-line["_outcomes"][0]["_label_cost"] for line in lines])
    match = shown == _slots(world)[0].baseline  # not the first allowed row
    assert 0 < match.sum() < len(lines)
    snips = (r[match] / p[match]).sum() / (1 / p[match]).sum()
    got = _result(evaluated, "Baseline", "1")["summary"]["expectedReward"]
    assert got == pytest.approx(snips, rel=1e-9)


@pytest.mark.slow  # shares the evaluation of the first test
def test_each_slots_baseline_and_random_cover_the_worlds_truth(evaluated, world):
    members = range(world.n_types)  # members are drawn uniformly over types
    baseline_page = [world.row_index(slot.baseline) for slot in _slots(world)]
    baseline = np.mean([world.slot_play_probability(m, baseline_page) for m in members],
                       axis=0)
    pages = list(itertools.permutations(range(world.n_rows), N_SLOTS))
    uniform = np.mean([world.slot_play_probability(m, p) for m in members for p in pages],
                      axis=0)
    for name, truth in (("Baseline", baseline), ("Random", uniform)):
        for k in range(N_SLOTS):
            low, high = _result(evaluated, name, str(k + 1))["summary"]["confidenceInterval"]
            # a 95 % interval per slot: the margin keeps 6 checks from failing by chance
            margin = (high - low) / 2
            assert low - margin < truth[k] < high + margin, (name, k, low, high, truth[k])
            assert high - low < 0.3  # informative: the logger explores every row often


@pytest.mark.slow  # logs 2000 pages (about 3 s)
def test_custom_policies_are_refused_on_a_multi_slot_log(served):
    client, keys, _, _ = served
    response = _put(client, keys["analyst"], "custom",
                    policies=[{"name": "mine", "arguments": "--cb_explore_adf"}])
    assert response.status_code == 400
    assert response.json["error"]["code"] == "InvalidEvaluationContract"
    assert "multi-slot" in response.json["error"]["message"]
    response = _put(client, keys["analyst"], "optimize", enablePolicyOptimization=True)
    assert response.status_code == 400
    assert response.json["error"]["target"] == "enablePolicyOptimization"
    response = _put(client, keys["analyst"], "single", multiSlot=False)
    assert response.status_code == 404
    assert "single-slot" in response.json["error"]["message"]


@pytest.mark.slow  # shares the logged pages of the first test
def test_a_page_window_refuses_a_broken_line_and_an_empty_range(served, tmp_path):
    from banditkit.errors import InvalidInputError
    from ope.personalizer import freeze_page_window

    source = next((served[3] / "rows" / "logs").rglob("*.dsjson"))
    broken = tmp_path / "events.dsjson"
    lines = source.read_text().splitlines()
    broken.write_text("\n".join([*lines[:3], '{"EventId": "x"}', *lines[3:]]) + "\n")
    with pytest.raises(InvalidInputError, match=r"events\.dsjson:4: not a joined CCB page"):
        freeze_page_window([broken])
    with pytest.raises(InvalidInputError, match="no joined page"):
        freeze_page_window([source], start=FIRST - 100, end=FIRST - 10)
    window = freeze_page_window([source], start=FIRST, end=FIRST + 10)
    assert len(window) == 10 and window.slot_ids() == ["1", "2", "3"]
