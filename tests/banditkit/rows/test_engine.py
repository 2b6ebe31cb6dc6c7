"""The row engine: CCB dsjson contract, per-slot join rules, probabilities, snapshots."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import vowpal_wabbit_next as vw

from banditkit.errors import DuplicateEventError, InvalidInputError, UnknownEventError
from banditkit.rows import PageRules, Row, RowEngine, Slot, default_slots
from banditkit.settings import LoopSettings
from banditkit.vw import VWPageLearner

CONTEXT = {"Member": {"country": "BR", "device": "tv"}}
ROWS = [Row(id=f"row{i}", features={"Row": {"kind": f"k{i}", "genre": "ab"[i % 2]}},
            genre="ab"[i % 2]) for i in range(5)]
FAST = LoopSettings(reward_wait_seconds=10, model_update_seconds=0)


@pytest.fixture
def engine(database_url, tmp_path, clock):
    engine = RowEngine.open(tmp_path, database_url=database_url, settings=FAST, clock=clock)
    yield engine
    engine.close()


def _lines(engine: RowEngine) -> list[dict]:
    files = sorted(Path(engine.log.root).rglob("*.dsjson"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def _by_id(engine: RowEngine) -> dict[str, dict]:
    return {line["EventId"]: line for line in _lines(engine)}


def test_one_event_id_per_page_and_slot_probabilities(engine):
    decision = engine.rank_rows(CONTEXT, ROWS, 3, event_id="page-1")
    assert decision.event_id == "page-1"
    assert [s.slot_id for s in decision.slots] == ["1", "2", "3"]
    assert len(set(decision.row_ids)) == 3
    # untrained: uniform over the rows left, given the rows above
    assert [s.probability for s in decision.slots] == pytest.approx([1 / 5, 1 / 4, 1 / 3])
    assert decision.probability == pytest.approx(1 / 60)


def test_ccb_dsjson_parses_with_vw_next_and_carries_each_slot_label(engine, clock):
    rules = PageRules(pinned={"row4": 1}, no_adjacent_same_genre=True)
    decision = engine.rank_rows(CONTEXT, ROWS, 3, rules=rules, event_id="p")
    engine.reward_slot("p", "2", 1.0)
    clock.advance(11)
    assert engine.process_due() == 1
    (line,) = _lines(engine)
    assert list(line)[:6] == ["EventId", "Timestamp", "Version", "VWState", "c", "_outcomes"]
    assert [o["_id"] for o in line["_outcomes"]] == ["1", "2", "3"]
    assert [o["_label_cost"] for o in line["_outcomes"]] == [0.0, -1.0, 0.0]
    ids = line["_banditkit"]["rowIds"]
    assert [ids[o["_a"][0]] for o in line["_outcomes"]] == decision.row_ids
    assert [o["_p"][0] for o in line["_outcomes"]] == pytest.approx(
        [s.probability for s in decision.slots])
    assert line["c"]["_slots"][0]["_inc"] == [4]  # pinned: the only eligible row
    workspace = vw.Workspace(["--ccb_explore_adf", "--quiet"])
    examples = vw.DSJsonFormatParser(workspace).parse_json(json.dumps(line))
    labels = [example.get_label() for example in examples]
    slot_labels = [label for label in labels if label.example_type == vw.CCBExampleType.Slot]
    assert len(examples) == 1 + len(ROWS) + 3
    for label, outcome in zip(slot_labels, line["_outcomes"], strict=True):
        cost, scores = label.outcome
        assert cost == pytest.approx(outcome["_label_cost"])
        assert [a for a, _ in scores] == outcome["_a"]
        assert [p for _, p in scores] == pytest.approx(outcome["_p"], rel=1e-6)
    assert list(slot_labels[0].explicit_included_actions) == [4]
    workspace.learn_one(examples)  # and VW learns from it


def test_per_slot_join_rules(database_url, tmp_path, clock):
    settings = FAST.replace(reward_aggregation="sum", default_reward=-0.5)
    with RowEngine.open(tmp_path, database_url=database_url,
                        settings=settings, clock=clock) as engine:
        engine.rank_rows(CONTEXT, ROWS, 3, event_id="sum")
        engine.reward_slots("sum", {"1": 1.0, "3": 0.25})
        clock.advance(1)
        engine.reward_slot("sum", "1", 2.0)
        engine.reward_page("sum", 5.0)
        clock.advance(20)
        engine.reward_slot("sum", "2", 9.0)  # after the wait: ignored, default instead
        engine.process_due()
        assert engine.reward_slot("sum", "3", 1.0) is True  # late: after the join
        line = _by_id(engine)["sum"]
        assert [o["_label_cost"] for o in line["_outcomes"]] == [-3.0, 0.5, -0.25]
        info = line["_banditkit"]
        assert info["pageReward"] == 5.0 and info["defaultRewardSlots"] == ["2"]
        assert info["ignoredRewards"]["2"][0]["v"] == 9.0
        stored = engine.store.page("sum")
        assert [r["late"] for r in stored["slot_rewards"]][-1] is True


def test_a_slot_reward_is_journaled_and_never_waits_for_the_learners_transaction(
        tmp_path, clock):
    """Like an artwork reward: one journal write, read by the next join."""
    with RowEngine.open(tmp_path, settings=FAST, clock=clock) as engine:
        engine.rank_rows(CONTEXT, ROWS, 3, event_id="page")
        engine.store.ingest()  # the page is in the tables, as after a learner step
        answers: list = []

        def reward() -> None:
            answers.append(engine.reward_slots("page", {"1": 1.0, "3": 0.5}))
            with pytest.raises(InvalidInputError, match="slot id '9' is not a slot"):
                engine.reward_slots("page", {"1": 1.0, "9": 1.0})
            answers.append("refused")
            # A page ranked moments ago, only in this process's journal.
            engine.rank_rows(CONTEXT, ROWS, 2, event_id="fresh")
            answers.append(engine.reward_slot("fresh", "2", 1.0))
            with pytest.raises(InvalidInputError, match=r"its slots are \['1', '2'\]"):
                engine.reward_slot("fresh", "3", 1.0)
            answers.append("refused")

        learner = sqlite3.connect(engine.store.path, isolation_level=None)
        learner.execute("BEGIN IMMEDIATE")  # a learner step holds the write lock
        worker = threading.Thread(target=reward)
        try:
            worker.start()
            worker.join(5)  # a write transaction would wait up to SQLite's 30 s timeout
            assert answers == [False, "refused", False, "refused"]
        finally:
            learner.execute("ROLLBACK")
            learner.close()
            worker.join()  # never close the engine under a call in flight
        clock.advance(11)
        assert engine.process_due() == 2
        line, fresh = _by_id(engine)["page"], _by_id(engine)["fresh"]
        # Every accepted reward was learned; nothing of the refused calls arrived.
        assert [o["_label_cost"] for o in line["_outcomes"]] == [-1.0, 0.0, -0.5]
        assert [o["_label_cost"] for o in fresh["_outcomes"]] == [0.0, -1.0]
        assert engine.reward_slot("page", "2", 1.0) is True  # after the join: late
        assert [(r["slot_id"], r["late"]) for r in engine.store.page("page")["slot_rewards"]
                ] == [("1", False), ("3", False), ("2", True)]


def test_earliest_deferred_activation_and_skip_learn(engine, clock):
    engine.rank_rows(CONTEXT, ROWS, 2, event_id="early")
    engine.reward_slot("early", "1", 0.3)
    engine.reward_slot("early", "1", 0.9)
    engine.rank_rows(CONTEXT, ROWS, 2, event_id="deferred", defer_activation=True)
    engine.reward_slot("deferred", "2", 1.0)  # before activation: does not count
    clock.advance(5)
    engine.activate("deferred")
    engine.reward_slot("deferred", "1", 1.0)
    engine.rank_rows(CONTEXT, ROWS, 2, event_id="never", defer_activation=True)
    clock.advance(30)
    engine.process_due()
    lines = _by_id(engine)
    assert [o["_label_cost"] for o in lines["early"]["_outcomes"]] == [-0.3, 0.0]
    assert [o["_label_cost"] for o in lines["deferred"]["_outcomes"]] == [-1.0, 0.0]
    assert lines["deferred"]["DeferredAction"] is True
    assert lines["never"]["_skipLearn"] is True
    assert "_skipLearn" not in lines["deferred"]


def test_bad_calls_name_the_problem(engine):
    engine.rank_rows(CONTEXT, ROWS, 2, event_id="x")
    with pytest.raises(DuplicateEventError):
        engine.rank_rows(CONTEXT, ROWS, 2, event_id="x")
    if not engine.store.accepts_unknown_events:  # PostgreSQL's: test_..._another_host
        with pytest.raises(UnknownEventError):
            engine.reward_slot("nope", "1", 1.0)
    with pytest.raises(InvalidInputError, match="slot id '9' is not a slot"):
        engine.reward_slot("x", "9", 1.0)
    with pytest.raises(InvalidInputError, match="finite"):
        engine.reward_slot("x", "1", float("nan"))
    with pytest.raises(InvalidInputError, match="6 slots but only 5"):
        engine.rank_rows(CONTEXT, ROWS, 6)
    with pytest.raises(InvalidInputError, match="exactly one of n_slots and slots"):
        engine.rank_rows(CONTEXT, ROWS)
    with pytest.raises(InvalidInputError, match="duplicate row id"):
        engine.rank_rows(CONTEXT, [ROWS[0], ROWS[0]], 1)
    with pytest.raises(InvalidInputError, match="not among the candidates"):
        engine.rank_rows(CONTEXT, ROWS, 2, excluded=["ghost"])
    assert engine.store.pending_count() == 1  # failed calls recorded nothing


def test_same_event_id_same_model_same_page(database_url, tmp_path, clock):
    pages = []
    for name in ("a", "b"):
        with RowEngine.open(tmp_path / name, database_url=database_url,
                            settings=FAST, clock=clock) as engine:
            pages.append([engine.rank_rows(CONTEXT, ROWS, 4, event_id=f"e{i}").row_ids
                          for i in range(20)])
    assert pages[0] == pages[1]
    assert len({tuple(p) for p in pages[0]}) > 5  # and different ids give different pages


@pytest.mark.slow
def test_slot_probabilities_match_sampling_frequencies(tmp_path, clock):
    """Logged conditional probabilities are the frequencies the engine samples with."""
    settings = FAST.replace(exploration_percentage=0.4)
    with RowEngine.open(tmp_path, settings=settings, clock=clock) as engine:
        for i in range(150):  # teach it that row2 in slot 1 gets played
            decision = engine.rank_rows(CONTEXT, ROWS, 2, event_id=f"train-{i}")
            if decision.row_ids[0] == "row2":
                engine.reward_slot(decision.event_id, "1", 1.0)
        clock.advance(11)
        engine.process_due(force_publish=True)
        n = 3000
        first = Counter()
        second: dict[str, Counter] = defaultdict(Counter)
        probability: dict[tuple[str, ...], float] = {}
        for i in range(n):
            decision = engine.rank_rows(CONTEXT, ROWS, 2, event_id=f"probe-{i}")
            top, below = decision.row_ids
            first[top] += 1
            second[top][below] += 1
            probability[(top,)] = decision.slots[0].probability
            probability[(top, below)] = decision.slots[1].probability
    assert probability[("row2",)] > 0.6  # it learned, so the test is not about a uniform pmf
    assert sum(probability[(r,)] for r in first) == pytest.approx(1.0, abs=1e-6)
    # Each frequency is a binomial proportion: 4.5 standard errors puts the chance
    # of a false alarm across the <= 25 cells below 2e-4.
    for row, count in first.items():
        p = probability[(row,)]
        assert abs(count / n - p) < 4.5 * np.sqrt(p * (1 - p) / n) + 1e-9
    for top, counts in second.items():
        m = sum(counts.values())
        if m < 100:
            continue
        for row, count in counts.items():
            p = probability[(top, row)]
            assert abs(count / m - p) < 4.5 * np.sqrt(p * (1 - p) / m) + 1e-9


def test_learning_snapshots_and_restart(database_url, tmp_path, clock):
    with RowEngine.open(tmp_path, database_url=database_url, settings=FAST, clock=clock) as engine:
        assert engine.model_version == "0"  # nothing published yet
        for i in range(40):
            decision = engine.rank_rows(CONTEXT, ROWS, 2, event_id=f"e{i}")
            engine.reward_slot(decision.event_id, "1", 1.0)
        clock.advance(11)
        assert engine.process_due() == 40
        assert engine.model_version == "1"
        assert engine.latest_model_path().exists()
    with RowEngine.open(tmp_path, database_url=database_url,
                        clock=clock) as again:  # another process, same folder
        assert again.model_version == "1"
        again.rank_rows(CONTEXT, ROWS, 2, event_id="after-restart")
        clock.advance(11)
        assert again.process_due() == 1
        assert len(_lines(again)) == 41


def test_logging_only_shows_slot_baselines(database_url, tmp_path, clock):
    settings = FAST.replace(learning_mode="logging_only")
    slots = [Slot(id="hero", baseline="row3"), Slot(id="second", baseline="row3")]
    with RowEngine.open(tmp_path, database_url=database_url,
                        settings=settings, clock=clock) as engine:
        decision = engine.rank_rows(CONTEXT, ROWS, slots=slots, event_id="b")
        # row3 in the hero slot; the second slot's baseline is taken, so the first
        # eligible row in candidate order
        assert decision.row_ids == ["row3", "row0"]
        assert [s.probability for s in decision.slots] == [1.0, 1.0]


def test_an_untrained_slot_model_does_not_agree_with_the_baseline(database_url, tmp_path, clock):
    settings = FAST.replace(learning_mode="apprentice")
    slots = [Slot(id="hero", baseline="row0"), Slot(id="second", baseline="row1")]
    with RowEngine.open(tmp_path, database_url=database_url,
                        settings=settings, clock=clock) as engine:
        engine.rank_rows(CONTEXT, ROWS, slots=slots, event_id="b")
        engine.reward_slot("b", "hero", 1.0)
        clock.advance(11)
        assert engine.process_due() == 1
        # untrained: every eligible row has the same probability, no preference
        (line,) = _lines(engine)
        assert line["_banditkit"]["modelAgreesWithBaseline"] == [False, False]


def test_reused_page_examples_give_the_pmf_of_a_fresh_page(engine, clock):
    """One parsed page answers any order of slot queries as a freshly parsed page would."""
    for i in range(60):  # a model with non-uniform slot pmfs
        decision = engine.rank_rows(CONTEXT, ROWS, 3, event_id=f"t{i}")
        engine.reward_slot(decision.event_id, "1", float(decision.row_ids[0] == "row1"))
        engine.reward_slot(decision.event_id, "2", float(decision.row_ids[1] == "row3"))
    clock.advance(11)
    engine.process_due(force_publish=True)
    snapshot = engine.store.latest_model()
    learner = VWPageLearner(args=snapshot.policy_args, model_data=snapshot.data)
    rows, slots = [r.features for r in ROWS], [s.features for s in default_slots(3)]
    reused = learner.open_page(CONTEXT, rows, slots)
    queries = [(0, [0, 1, 2, 3, 4], []), (1, [0, 2, 3, 4], [1]), (2, [0, 2, 4], [1, 3]),
               (1, [1, 2, 3, 4], [0]), (2, [2, 3, 4], [0, 1]), (1, [0, 1, 3, 4], [2])]
    for slot, included, above in queries:
        fresh = learner.open_page(CONTEXT, rows, slots).slot_pmf(slot, included, above)
        np.testing.assert_allclose(reused.slot_pmf(slot, included, above), fresh, rtol=1e-6)
    assert not np.allclose(reused.slot_pmf(0, [0, 1, 2, 3, 4], []), 0.2)  # it learned


@pytest.mark.slow
def test_a_slot_reward_for_a_page_of_another_host_waits_for_it_and_counts(
        postgres_url, tmp_path, clock):
    """Hosts share PostgreSQL: host b takes slot rewards for a page still in host a's
    journal; a's shipping brings the page, the join counts them, and a reward naming
    no slot of the page is kept in journal_rejects."""
    hosts = {name: RowEngine.open(tmp_path / name, database_url=postgres_url, settings=FAST,
                                  clock=clock) for name in ("a", "b")}
    try:
        hosts["a"].rank_rows(CONTEXT, ROWS, 3, event_id="page-on-a")
        assert hosts["b"].reward_slot("page-on-a", "2", 1.0) is False  # not joined yet
        hosts["b"].reward_slot("page-on-a", "9", 1.0)  # no such slot: checked at ingestion
        hosts["b"].store.ingest()  # b ships first: its rewards wait for the page
        assert hosts["b"].store.unmatched_counts() == (2, 0)
        hosts["a"].store.ingest()  # a ships the page
        assert hosts["a"].store.unmatched_counts() == (0, 0)
        clock.advance(11)
        assert hosts["b"].process_due() == 1
        line = _by_id(hosts["b"])["page-on-a"]
        assert [o["_label_cost"] for o in line["_outcomes"]] == [0.0, -1.0, 0.0]
        (reject,) = hosts["b"].store.rejects()
        assert (reject["kind"], reject["event_id"]) == ("s", "page-on-a")
        assert "slot id '9' is not a slot of event 'page-on-a'" in reject["reason"]
    finally:
        for engine in hosts.values():
            engine.close()
