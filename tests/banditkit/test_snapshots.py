"""Model snapshots, restarts and crash recovery."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from banditkit.engine import Engine
from banditkit.eventlog import read_events
from banditkit.loop import MODELS_KEPT
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWLearner

ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]


def _context(i: int) -> dict:
    return {"Member": {"country": ("BR", "US", "JP")[i % 3]}}


def _drive(engine: Engine, clock, n: int, prefix: str) -> None:
    for i in range(n):
        decision = engine.rank(_context(i), ACTIONS, event_id=f"{prefix}-{i}")
        engine.reward(decision.event_id, float(decision.reward_action_id == f"v{i % 3}"))
        clock.advance(1)


def _settings(**changes) -> LoopSettings:
    return LoopSettings(reward_wait_seconds=10, model_update_seconds=3600,
                        policy_args="--cb_explore_adf -q MA", **changes)


def test_snapshot_save_and_load_predict_identically(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(engine, clock, 60, "a")
    clock.advance(20)
    engine.process_due(force_publish=True)
    snapshot = engine.store.latest_model()
    restored = VWLearner(args=snapshot.policy_args, model_data=snapshot.data)
    from_file = VWLearner(args=snapshot.policy_args,
                          model_data=engine.latest_model_path().read_bytes())
    for i in range(3):
        features = [a.features for a in ACTIONS]
        expected = engine._trainer.predict_one(_context(i), features)
        np.testing.assert_array_equal(restored.predict_one(_context(i), features), expected)
        np.testing.assert_array_equal(from_file.predict_one(_context(i), features), expected)
    assert not np.allclose(expected, 1 / 3)  # it did learn something


def test_restart_keeps_pending_events_and_their_rewards(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    engine.rank(_context(0), ACTIONS, event_id="pending")
    engine.reward("pending", 1.0)
    engine.close()
    del engine
    reopened = Engine.open(tmp_path, database_url=database_url, clock=clock)
    assert reopened.store.pending_count() == 1
    reopened.activate("pending")  # still known after the restart
    clock.advance(11)
    assert reopened.process_due() == 1
    (event,) = read_events([tmp_path / "logs"])
    assert event.event_id == "pending" and event.reward == 1.0


def test_restart_relearns_events_joined_after_the_last_snapshot(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(engine, clock, 40, "a")
    clock.advance(20)
    engine.process_due(force_publish=True)
    _drive(engine, clock, 40, "b")
    clock.advance(20)
    engine.process_due()  # joined and learned, but the interval has not passed: no snapshot
    features = [a.features for a in ACTIONS]
    before = engine._trainer.predict_one(_context(1), features)
    weights = engine._trainer._vw.weights().copy()
    engine.close()
    # A new learner process starts from the snapshot and replays the 40 newer events.
    restarted = Engine.open(tmp_path, database_url=database_url, clock=clock)
    restarted.process_due()
    # Weights and their adaptive and normalisation state; VW keeps a last scratch
    # slot per weight that it does not serialise.
    np.testing.assert_allclose(restarted._trainer._vw.weights()[..., :3], weights[..., :3])
    np.testing.assert_allclose(restarted._trainer.predict_one(_context(1), features), before)


@pytest.mark.parametrize("dies_in,lines_in_log", [
    ("log.append", 0),           # after the join committed, before the log write
    ("store.mark_logged", 5),    # after the log write, before it was marked
])
def test_a_learner_killed_after_the_join_loses_no_line_and_writes_none_twice(database_url,
        tmp_path, clock, dies_in, lines_in_log):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(engine, clock, 5, "a")
    clock.advance(20)
    owner, method = dies_in.split(".")

    def killed(*_):
        raise SystemExit(f"killed in {dies_in}")

    setattr(getattr(engine, owner), method, killed)
    with pytest.raises(SystemExit):
        engine.process_due()
    engine.close()
    assert len(list(read_events(list(tmp_path.glob("logs"))))) == lines_in_log
    recovered = Engine.open(tmp_path, database_url=database_url, clock=clock)
    assert [len(entry.lines) for entry in recovered.store.unlogged()] == [5]
    recovered.process_due()
    recovered.process_due()
    assert recovered.store.unlogged() == []
    ids = [e.event_id for e in read_events([tmp_path / "logs"])]
    assert sorted(ids) == sorted(f"a-{i}" for i in range(5))


def test_rankers_in_other_processes_pick_up_new_snapshots(database_url, tmp_path, clock):
    learner = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    ranker = Engine.open(tmp_path, database_url=database_url, clock=clock)
    ranker.refresh_seconds = 0.0
    first_version = ranker.model_version
    _drive(learner, clock, 20, "a")
    clock.advance(20)
    learner.process_due(force_publish=True)
    assert ranker.rank(_context(0), ACTIONS).model_version == learner.model_version
    assert learner.model_version != first_version


def test_changing_the_policy_starts_a_fresh_model(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(engine, clock, 30, "a")
    clock.advance(20)
    engine.process_due(force_publish=True)
    old_version = engine.model_version
    engine.update_settings(engine.settings.replace(policy_args="--cb_explore_adf --bag 3"))
    assert engine.model_version != old_version
    assert engine.store.latest_model().policy_args == "--cb_explore_adf --bag 3"
    decision = engine.rank(_context(0), ACTIONS)
    assert sum(r.probability for r in decision.ranking) == pytest.approx(1.0)


def test_the_learner_follows_a_policy_changed_by_another_process(database_url, tmp_path, clock):
    learner = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(learner, clock, 20, "a")
    clock.advance(20)
    learner.process_due(force_publish=True)
    admin = Engine.open(tmp_path, database_url=database_url, clock=clock)  # e.g. a server worker
    admin.update_settings(admin.settings.replace(policy_args="--cb_explore_adf --bag 3"))
    _drive(admin, clock, 20, "b")
    clock.advance(20)
    learner.process_due(force_publish=True)
    assert learner._trainer.args == "--cb_explore_adf --bag 3"
    assert learner.store.latest_model().policy_args == "--cb_explore_adf --bag 3"


def test_a_learner_learns_what_another_joined_in_between(database_url, tmp_path, clock):
    first = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(first, clock, 6, "a")
    clock.advance(20)
    second = Engine.open(tmp_path, database_url=database_url, clock=clock)
    join_due = first.store.join_due

    def another_learner_joins_first(**kwargs):
        if second.store.pending_count():
            assert second.process_due(batch_size=3) == 6  # joins seq 1..6 before ours
            _drive(first, clock, 4, "b")
            clock.advance(20)
            kwargs["now"] = clock.now
        return join_due(**kwargs)

    first.store.join_due = another_learner_joins_first
    assert first.process_due() == 4  # our join is seq 7..10: a gap after our last (0)
    assert first._through_seq == first.store.last_join_seq() == 10
    assert first._trainer.n_updates_ == 10


@pytest.mark.parametrize("enabled", [True, False])
def test_a_learner_batch_leaves_the_garbage_collector_as_it_found_it(tmp_path, clock,
                                                                      enabled):
    import gc

    engine = Engine.open(tmp_path, clock=clock, settings=_settings())
    _drive(engine, clock, 3, "a")
    clock.advance(20)
    during = []

    def look_and_fail(lines):
        during.append(gc.isenabled())
        raise OSError("disk full")

    engine.log.append = look_and_fail
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(OSError, match="disk full"):
            engine.process_due()
        assert during == [False] and gc.isenabled() is enabled
    finally:
        gc.enable()


def test_a_database_made_with_4_kib_pages_keeps_them_and_its_wal_bound(tmp_path, clock):
    """Data directories from before 16 KiB pages: SQLite cannot change a WAL database's
    page size, so the store keeps it and bounds the WAL by bytes, not pages."""
    old = sqlite3.connect(tmp_path / "banditkit.sqlite3")
    old.execute("PRAGMA page_size=4096")
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    old.close()
    engine = Engine.open(tmp_path, clock=clock, settings=_settings())
    _drive(engine, clock, 30, "old")
    clock.advance(11)
    assert engine.process_due() == 30
    db = engine.store._db
    assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (40 << 20) // 4096
    fresh = Engine.open(tmp_path / "fresh", clock=clock)
    fresh_db = fresh.store._db
    assert fresh_db.execute("PRAGMA page_size").fetchone()[0] == 16_384
    assert fresh_db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (40 << 20) // 16_384


def test_old_snapshots_are_pruned_keeping_the_newest_and_each_days_last(database_url,
                                                                        tmp_path, clock):
    settings = LoopSettings(log_retention_days=3, model_update_seconds=0,
                            policy_args="--cb_explore_adf -q MA")
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=settings)
    start = clock.now
    published = []
    for day in range(5):  # 20 versions a day, an hour apart
        for hour in range(20):
            clock.now = start + day * 86400 + hour * 3600
            published.append((engine.publish(), clock.now))
    kept = [version for version, _ in engine.store.model_versions()]
    newest = {v for v, _ in published[-MODELS_KEPT:]}
    cutoff = clock.now - 3 * 86400
    by_day = {}
    for version, at in published:
        if at >= cutoff:
            by_day[int(at // 86400)] = version
    assert set(kept) == newest | set(by_day.values())
    assert len(kept) < len(published)
    files = {int(p.stem.removeprefix("model-v")) for p in (tmp_path / "models").glob("*.vw")}
    assert files == set(kept)
    assert engine.store.latest_model().version == published[-1][0]
