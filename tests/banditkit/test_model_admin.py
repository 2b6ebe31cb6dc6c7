"""Importing, resetting and exporting models, and purging the log (the loop's part).

Two engines on one data directory stand for two processes: a worker that
imports and ranks, and the learner.
"""

from __future__ import annotations

import numpy as np
import pytest

from banditkit.engine import Engine
from banditkit.errors import InvalidInputError
from banditkit.eventlog import read_events
from banditkit.settings import LoopSettings
from banditkit.store import open_store
from banditkit.types import Action
from banditkit.vw import VWLearner, VWPageLearner, check_model, read_model_options

ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]
CONTEXT = {"Member": {"country": "BR"}}
POLICY = "--cb_explore_adf -q MA"


def _settings() -> LoopSettings:
    return LoopSettings(reward_wait_seconds=10, model_update_seconds=3600, policy_args=POLICY)


def _drive(engine: Engine, clock, n: int, prefix: str, best: str = "v1") -> None:
    for i in range(n):
        decision = engine.rank(CONTEXT, ACTIONS, event_id=f"{prefix}-{i}")
        engine.reward(decision.event_id, float(decision.reward_action_id == best))
        clock.advance(1)
    clock.advance(20)


def _pmf(model: bytes, args: str) -> np.ndarray:
    return VWLearner(args=args, model_data=model).predict_one(
        CONTEXT, [a.features for a in ACTIONS])


def _ranked(engine: Engine, event_id: str) -> tuple[str, np.ndarray]:
    decision = engine.rank(CONTEXT, ACTIONS, event_id=event_id)
    by_id = {ranked.id: ranked.probability for ranked in decision.ranking}
    return decision.model_version, np.array([by_id[a.id] for a in ACTIONS])


def test_publish_compares_with_the_version_it_replaces(database_url, tmp_path):
    store = open_store(tmp_path, database_url=database_url)
    common = {"created_at": 0.0, "policy_args": POLICY, "banditkit_version": "x",
              "through_seq": 0, "n_updates": 0, "data": b"m"}
    assert store.publish_model(**common, replaces=0) == 1
    assert store.publish_model(**common, replaces=0) == 0  # version 1 is newer: refused
    assert store.latest_model_version() == 1
    assert store.publish_model(**common, replaces=1, origin="learner") == 2
    assert store.latest_model().origin == "learner"


def test_only_models_not_made_by_the_learner_change_the_token(database_url, tmp_path):
    store = open_store(tmp_path, database_url=database_url)
    other = open_store(tmp_path, database_url=database_url)  # another process's view
    common = {"created_at": 0.0, "policy_args": POLICY, "banditkit_version": "x",
              "through_seq": 0, "n_updates": 0, "data": b"m"}
    before = other.model_token()
    store.publish_model(**common)
    assert other.model_token() == before
    store.publish_model(**common, origin="import")
    assert other.model_token() != before
    assert store.latest_model().origin == "import"


def test_an_import_ranks_at_the_next_decision_of_another_process_and_the_learner_follows(
        database_url, tmp_path, clock):
    learner = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(learner, clock, 30, "a", best="v2")
    learner.process_due(force_publish=True)
    exported_version, exported = learner.model_bytes()
    _drive(learner, clock, 30, "b", best="v0")
    learner.process_due(force_publish=True)

    worker = Engine.open(tmp_path, database_url=database_url, clock=clock)
    worker.refresh_seconds = 3600.0  # only the model token can make it reload
    moved_on, pmf = _ranked(worker, "w-0")
    assert int(moved_on) > exported_version
    args = learner.settings.learner_args()
    assert not np.allclose(pmf, _pmf(exported, args))

    import_seq = worker.store.last_join_seq()
    version = worker.replace_model(exported, origin="import")
    assert version > int(moved_on)
    ranked_by, pmf = _ranked(worker, "w-1")
    assert ranked_by == str(version)
    np.testing.assert_allclose(pmf, _pmf(exported, args))
    _, by_learner_process = _ranked(learner, "w-2")
    np.testing.assert_allclose(by_learner_process, pmf)

    # The learner drops its own model and learns what was joined after the import
    # on top of it: its next snapshot is the import plus those events.
    clock.advance(20)
    learner.process_due(force_publish=True)
    latest = learner.store.latest_model()
    assert latest.origin == "learner" and latest.version > version
    replay = VWLearner(args=args, model_data=exported)
    lines = [line for _, line in learner.store.joined_lines_after(import_seq)]
    assert len(lines) == 3  # w-0, w-1, w-2
    for line in lines:
        replay.learn_dsjson(line)
    np.testing.assert_allclose(_pmf(latest.data, args), _pmf(replay.to_bytes(), args))


def test_a_learner_snapshot_never_overwrites_an_import_made_meanwhile(database_url,
                                                                      tmp_path, clock):
    learner = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(learner, clock, 10, "a")
    learner.process_due(force_publish=True)
    _drive(learner, clock, 10, "b")
    learner.process_due()  # learned, not published yet (interval of an hour)
    fresh = VWLearner(args=learner.settings.learner_args()).to_bytes()
    imported = Engine.open(tmp_path, database_url=database_url,
                           clock=clock).replace_model(fresh, origin="import")
    assert learner._publish() == 0  # what the learner grew from is no longer the newest
    assert learner.store.latest_model().version == imported
    learner.process_due(force_publish=True)
    assert learner.store.latest_model().version == imported  # nothing new to learn


@pytest.mark.parametrize("bad", ["garbage", "cut in its header", "other interactions", "ccb"])
def test_a_bad_model_is_refused_and_publishes_nothing(database_url, tmp_path, clock, bad):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(engine, clock, 20, "a")
    engine.process_due(force_publish=True)
    version, model = engine.model_bytes()
    data = {"garbage": b"not a model" * 20,
            # VW loads a model cut among its weights without complaint (its weights
            # are read to the end of the file): only the signed zip's sha256 catches that.
            "cut in its header": model[:60],
            "other interactions": VWLearner(args="--cb_explore_adf -q AA").to_bytes(),
            "ccb": VWPageLearner(args="--ccb_explore_adf -q MA").to_bytes()}[bad]
    with pytest.raises(InvalidInputError):
        engine.replace_model(data, origin="import")
    assert engine.store.latest_model_version() == version
    assert engine.model_bytes() == (version, model)


def test_check_model_reads_the_saved_options():
    args = "--cb_explore_adf --epsilon 0.2 -q ::"
    model = VWLearner(args=args).to_bytes()
    assert "--quadratic ::" in read_model_options(model)
    check_model(model, args=args)
    with pytest.raises(InvalidInputError, match="saved under VW options"):
        check_model(model, args="--cb_explore_adf --epsilon 0.2")


def test_reset_publishes_a_fresh_model_and_starts_its_lineage(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(engine, clock, 20, "a")
    engine.process_due(force_publish=True)
    created, _ = engine.model_times()
    clock.advance(100)
    version = engine.replace_model(None, origin="reset")
    snapshot = engine.store.latest_model()
    assert snapshot.version == version and snapshot.origin == "reset"
    assert snapshot.data == VWLearner(args=engine.settings.learner_args()).to_bytes()
    reset_at, modified = engine.model_times()
    assert reset_at > created and reset_at == modified


def test_purging_the_log_keeps_the_join_sequence_and_learning_goes_on(database_url,
                                                                      tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    _drive(engine, clock, 12, "a")
    engine.process_due()
    engine.rank(CONTEXT, ACTIONS, event_id="pending")
    seq = engine.store.last_join_seq()
    assert seq == 12 and list(read_events([tmp_path / "logs"]))

    events, partitions = engine.purge_log()
    assert (events, partitions) == (13, 1)
    assert not (tmp_path / "logs").exists()
    assert engine.store.event("pending") is None and engine.store.pending_count() == 0
    assert engine.store.last_join_seq() == seq  # never goes back
    assert engine.store.latest_model_version() > 0  # models stay

    learned = engine._trainer.n_updates_
    _drive(engine, clock, 3, "b")
    engine.process_due()
    assert engine.store.last_join_seq() == seq + 3
    assert engine._trainer.n_updates_ == learned + 3
    assert [e.event_id for e in read_events([tmp_path / "logs"])] == ["b-0", "b-1", "b-2"]
