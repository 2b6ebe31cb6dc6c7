"""Personalizer's join rules, one test per rule, through the real engine and log."""

from __future__ import annotations

import json

import pytest

from banditkit.engine import Engine
from banditkit.errors import InvalidInputError, UnknownEventError
from banditkit.eventlog import read_events
from banditkit.settings import LoopSettings
from banditkit.types import Action

CONTEXT = {"Member": {"country": "FR"}}
ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]
WAIT = 100.0


def _engine(tmp_path, clock, database_url, **settings) -> Engine:
    return Engine.open(tmp_path, clock=clock, database_url=database_url, settings=LoopSettings(
        reward_wait_seconds=WAIT, default_reward=-0.5, model_update_seconds=0, **settings))


def _joined(engine: Engine, tmp_path, clock) -> dict:
    clock.advance(WAIT + 1)
    engine.process_due()
    return {e.event_id: e for e in read_events([tmp_path / "logs"])}


def _learned(engine: Engine) -> int:
    return engine._trainer.__dict__.get("_n_updates", 0)


def test_no_defer_reward_within_wait_is_learned(database_url, tmp_path, clock):
    engine = _engine(tmp_path, clock, database_url)
    engine.rank(CONTEXT, ACTIONS, event_id="e")
    clock.advance(10)
    engine.reward("e", 1.0)
    clock.advance(WAIT - 20)
    assert engine.process_due() == 0  # not due yet: rewards may still come
    events = _joined(engine, tmp_path, clock)
    assert events["e"].reward == 1.0 and not events["e"].skip_learn
    assert _learned(engine) == 1


def test_defer_activate_reward_counts_from_activation(database_url, tmp_path, clock):
    engine = _engine(tmp_path, clock, database_url)
    engine.rank(CONTEXT, ACTIONS, event_id="e", defer_activation=True)
    clock.advance(WAIT - 10)
    engine.activate("e")
    clock.advance(50)  # past created + wait, inside activated + wait
    engine.reward("e", 2.0)
    assert engine.process_due() == 0
    events = _joined(engine, tmp_path, clock)
    assert events["e"].reward == 2.0 and not events["e"].skip_learn
    line = (next((tmp_path / "logs").rglob("*.dsjson"))).read_text()
    assert json.loads(line)["DeferredAction"] is True
    assert _learned(engine) == 1


def test_defer_never_activated_is_logged_with_skip_learn_and_not_learned(database_url, tmp_path,
                                                                          clock):
    engine = _engine(tmp_path, clock, database_url)
    engine.rank(CONTEXT, ACTIONS, event_id="e", defer_activation=True)
    engine.reward("e", 1.0)
    events = _joined(engine, tmp_path, clock)
    assert events["e"].skip_learn
    assert _learned(engine) == 0
    record = json.loads(next((tmp_path / "logs").rglob("*.dsjson")).read_text())
    assert record["_skipLearn"] is True
    assert record["_banditkit"]["ignoredRewards"][0]["v"] == 1.0  # kept, not dropped


def test_defer_activate_without_reward_learns_the_default(database_url, tmp_path, clock):
    engine = _engine(tmp_path, clock, database_url)
    engine.rank(CONTEXT, ACTIONS, event_id="e", defer_activation=True)
    engine.activate("e")
    events = _joined(engine, tmp_path, clock)
    assert events["e"].reward == -0.5 and not events["e"].skip_learn
    assert events["e"].extra["defaultReward"] is True
    assert _learned(engine) == 1


@pytest.mark.parametrize("aggregation, expected", [("earliest", 0.25), ("sum", 1.75)])
def test_several_rewards_aggregate(database_url, tmp_path, clock, aggregation, expected):
    engine = _engine(tmp_path, clock, database_url, reward_aggregation=aggregation)
    engine.rank(CONTEXT, ACTIONS, event_id="e")
    for value in (0.25, 1.0, 0.5):
        clock.advance(5)
        engine.reward("e", value)
    assert _joined(engine, tmp_path, clock)["e"].reward == expected


def test_late_reward_is_recorded_but_not_learned(database_url, tmp_path, clock):
    engine = _engine(tmp_path, clock, database_url)
    engine.rank(CONTEXT, ACTIONS, event_id="e")
    assert _joined(engine, tmp_path, clock)["e"].reward == -0.5
    assert engine.reward("e", 1.0) is True  # late
    assert engine.store.event("e")["rewards"] == [
        {"value": 1.0, "received_at": clock.now, "late": True}]
    engine.process_due()
    assert _learned(engine) == 1  # the default reward only, once
    assert len(list(read_events([tmp_path / "logs"]))) == 1


def test_reward_after_wait_but_before_the_learner_ran_is_not_counted(database_url, tmp_path,
                                                                      clock):
    engine = _engine(tmp_path, clock, database_url)
    engine.rank(CONTEXT, ACTIONS, event_id="e")
    clock.advance(WAIT + 30)  # the learner is lagging
    engine.reward("e", 1.0)
    events = _joined(engine, tmp_path, clock)
    assert events["e"].reward == -0.5
    assert events["e"].extra["ignoredRewards"][0]["v"] == 1.0


def test_unknown_event_and_bad_values_are_rejected(database_url, tmp_path, clock):
    engine = _engine(tmp_path, clock, database_url)
    if database_url is None:  # a shared store waits for another host's decision instead
        with pytest.raises(UnknownEventError, match="unknown event id 'ghost'"):
            engine.reward("ghost", 1.0)
        with pytest.raises(UnknownEventError, match="unknown event id 'ghost'"):
            engine.activate("ghost")
    engine.rank(CONTEXT, ACTIONS, event_id="e")
    for bad in (float("nan"), float("inf"), 1e39, "1.0", None, True):
        with pytest.raises(InvalidInputError, match="finite number"):
            engine.reward("e", bad)
    assert engine.store.event("e")["rewards"] == []


@pytest.mark.parametrize("deferred,activated,rewards,excluded", [
    (False, False, [], ()),                       # default reward
    (False, False, [(1.0, 1.0), (0.5, 2.0)], ()),  # counted rewards
    (False, False, [(1.0, 99.0)], ("v2",)),        # ignored (too late), an exclusion
    (True, True, [(1.0, 2.0)], ()),                # deferred, activated
    (True, False, [(1.0, 2.0)], ()),               # deferred, never activated: skip
])
def test_the_spliced_joined_line_is_the_encoded_one(tmp_path, clock, deferred, activated,
                                                     rewards, excluded):
    from banditkit.encoding import compact_json
    from banditkit.join import join_event, joined_line
    from banditkit.store import PendingEvent, RewardRecord

    engine = _engine(tmp_path, clock, None)
    engine.rank({"Member": {"country": "BR"}, "": {"hour": 21.5}}, ACTIONS, event_id="e",
                excluded=excluded, defer_activation=deferred, extra={"title": "t 1"})
    stored = engine.store.event("e")
    row = engine.store._db.execute("SELECT context_at FROM events").fetchone()
    event = PendingEvent("e", stored["created_at"], deferred,
                         stored["created_at"] + 0.5 if activated else None,
                         stored["decision"], row[0])
    outcome = join_event(event, [RewardRecord(v, stored["created_at"] + t) for v, t in rewards],
                         engine.settings)
    spliced = joined_line(event, outcome)
    encoded = joined_line(event._replace(context_at=None), outcome)
    # What the store keeps: byte for byte the encoded record without its features.
    without_features = {k: v for k, v in encoded.record.items() if k != "c"}
    assert spliced.stored == compact_json(without_features)
    assert spliced.record == without_features
    # The line: the same object, the features last.
    assert json.loads(spliced.line) == json.loads(encoded.line)
    assert spliced.line == spliced.stored[:-1] + ',"c":' + compact_json(
        json.loads(encoded.line)["c"]) + "}"


def _pending(engine: Engine, event_id: str, *, activated: bool):
    from banditkit.store import PendingEvent

    stored = engine.store.event(event_id)
    row = engine.store._db.execute("SELECT context_at FROM events WHERE event_id = ?",
                                   (event_id,)).fetchone()
    return PendingEvent(event_id, stored["created_at"], bool(stored["deferred"]),
                        stored["created_at"] + 0.5 if activated else None,
                        stored["decision"], row[0])


@pytest.mark.parametrize("event_id", ["e", 'quo"te', "back\\slash", "ünïcode ☃ 𝄞", "line\u2028sep",
                                      '"leading', "<script>&amp;"])
@pytest.mark.parametrize("mode", ["online", "apprentice"])
@pytest.mark.parametrize("deferred,activated,rewards,excluded", [
    (False, False, [], ()),                                   # default reward
    (False, False, [(1.0, 1.0), (0.5, 2.0)], ()),             # counted rewards
    (False, False, [(1.0, 99.0), (-2.5, 300.0)], ("v2",)),    # ignored rewards, an exclusion
    (True, True, [(1.0, 2.0), (3.0, 0.1)], ()),               # deferred: before activation
    (True, False, [(1.0, 2.0)], ()),                          # never activated: skip
])
def test_the_joined_text_spliced_from_the_decision_is_the_encoded_record(
        tmp_path, clock, event_id, mode, deferred, activated, rewards, excluded):
    from banditkit.dsjson import _spliced
    from banditkit.encoding import compact_json
    from banditkit.join import _ignored_records, _outcome_records, join_event, joined_line
    from banditkit.store import RewardRecord

    engine = _engine(tmp_path, clock, None, learning_mode=mode)
    engine.rank({"Member": {"country": "BR", "nom": "Zoë \"Z\""}, "": {"hour": 21.5}}, ACTIONS,
                event_id=event_id, excluded=excluded, defer_activation=deferred,
                extra={"title": "t 1 ☃", "n": 3, "nested": {"k": [1.5, None, True]}})
    event = _pending(engine, event_id, activated=activated)
    outcome = join_event(event, [RewardRecord(v, event.created_at + t) for v, t in rewards],
                         engine.settings)
    joined = joined_line(event, outcome)
    encoded = joined_line(event._replace(context_at=None), outcome)
    without_features = {k: v for k, v in encoded.record.items() if k != "c"}
    assert joined.stored == compact_json(without_features)
    assert joined.line == joined.stored[:-1] + event.decision[event.context_at:-1] + "}"
    assert joined.record == without_features
    # The engine's decisions are spliced, not encoded again; the learner reads its mode.
    assert _spliced(event.decision[:event.context_at] + "}", outcome.reward,
                    _outcome_records(event, outcome), _ignored_records(outcome),
                    event.deferred, outcome.skip_learn, outcome.used_default) is not None
    assert joined.learning_mode == (None if mode == "online" else mode)
    assert joined.skip_learn == (deferred and not activated)


@pytest.mark.parametrize("head", [
    '{"Timestamp":"2026-01-01T00:00:00Z","a":[1],"p":[1.0]}',                  # no _banditkit
    '{"Timestamp":"2026-01-01T00:00:00Z","a":[1],"p":[1.0],"_banditkit":{}}',  # empty
    '{"Timestamp":"2026-01-01T00:00:00Z","_banditkit":{"x":1},"a":[1],"p":[1.0]}',  # not last
    '{"Timestamp":"2026-01-01T00:00:00Z","a":[1],"p":[1.0],"_banditkit":{"defaultReward":1}}',
    '{"Timestamp":"2026-01-01T00:00:00Z","a":[1],"p":[1.0],"o":[],"_banditkit":{"x":1}}',
    '{"Timestamp":"2026-01-01T00:00:00Z","a":[1],"p":[1],"_banditkit":{"x":"ü"}}',  # not ASCII
    '{"Timestamp":"2026-01-01T00:00:00Z","a":[1.0],"p":[NaN],"_banditkit":{"x":1}}',
])
def test_a_decision_of_another_shape_is_joined_by_encoding_it(head):
    from banditkit.encoding import compact_json
    from banditkit.join import join_event, joined_line
    from banditkit.store import PendingEvent

    event = PendingEvent("e", 0.0, False, None, head[:-1] + ',"c":{"x":1}}', len(head) - 1)
    joined = joined_line(event, join_event(event, [], LoopSettings(default_reward=-1)))
    assert joined.stored == compact_json(joined.record)
    assert joined.line == joined.stored[:-1] + ',"c":{"x":1}}'


def test_due_events_are_those_the_single_scan_found_in_its_order(database_url, tmp_path):
    """Due events come in two indexed parts; together, what one scan of every pending
    event gave, deferred events activated before their creation time (skewed clocks)
    included."""
    import itertools

    from banditkit.join import JoinedLine
    from banditkit.store import open_store

    store = open_store(tmp_path, database_url=database_url)
    rows = [(f"e{i}", float(created), deferred, activated)
            for i, (created, deferred, activated) in enumerate(itertools.product(
                [5, 1, 3, 3, 9], [0, 1], [None, 0.5, 2.0, 4.0, 7.0, 12.0]))]
    with store._connection() as db:
        db.executemany("INSERT INTO events (event_id, created_at, deferred, activated_at, "
                       "decision) VALUES (?, ?, ?, ?, '{}')", rows)
    single_scan = (
        "SELECT event_id FROM events WHERE joined_at IS NULL AND ((deferred = 0 AND "
        "created_at <= ?) OR (deferred = 1 AND COALESCE(activated_at, created_at) <= ?)) "
        f"ORDER BY created_at, {store.row_key} LIMIT ?")

    def due(cutoff: float, limit: int) -> list[str]:
        found = []

        def join(events, rewards):
            found.extend(event.event_id for event in events)
            return [JoinedLine("", "{}", "{}", None, False) for _ in events]

        store.join_due(now=cutoff + 10, wait_seconds=10, limit=limit, join=join)
        with store._connection() as db:
            db.execute("UPDATE events SET joined_at = NULL, join_seq = NULL")
        return found

    for cutoff, limit in itertools.product([0, 2.0, 3, 4.5, 8, 20], [1, 7, 25, 100]):
        with store._connection() as db:
            expected = [r[0] for r in db.execute(single_scan, (cutoff, cutoff, limit))]
        assert due(cutoff, limit) == expected, (cutoff, limit)
    store.close()


def test_the_learner_step_reads_neither_waiting_nor_retained_events(tmp_path, clock):
    engine = _engine(tmp_path, clock, None)
    engine.rank(CONTEXT, ACTIONS, event_id="e")
    db = engine.store._db
    from banditkit.store.schema import DUE_ACTIVATED_EARLY, DUE_CREATED

    plans = {sql: str(db.execute("EXPLAIN QUERY PLAN " + sql, {"c": 1.0, "n": 5}).fetchall())
             for sql in (DUE_CREATED, DUE_ACTIVATED_EARLY)}
    assert "events_pending (created_at<?)" in plans[DUE_CREATED]
    assert "events_activated_early (activated_at<?)" in plans[DUE_ACTIVATED_EARLY]
    retention = str(db.execute(
        "EXPLAIN QUERY PLAN DELETE FROM events WHERE joined_at IS NOT NULL AND joined_at < ? "
        "AND join_seq <= ?", (1.0, 5)).fetchall())
    assert "events_joined (joined_at>? AND joined_at<?)" in retention
