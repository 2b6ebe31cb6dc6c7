"""Two hosts on one PostgreSQL store: outcomes that reach it before their
decision (kept waiting, joined when the decision arrives, orphans when it never
does), and an event id ranked on both hosts."""

from __future__ import annotations

import json
import logging

import pytest

from banditkit.engine import Engine
from banditkit.errors import DuplicateEventError
from banditkit.eventlog import log_files
from banditkit.settings import LoopSettings
from banditkit.types import Action

pytestmark = pytest.mark.slow  # every test needs the session's PostgreSQL server

ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]
CONTEXT = {"Member": {"country": "BR"}}
SETTINGS = LoopSettings(reward_wait_seconds=10, orphan_grace_seconds=30,
                        policy_args="--cb_explore_adf -q MA")


@pytest.fixture
def hosts(postgres_url, tmp_path, clock):
    """Two hosts' engines: separate data directories, one database."""
    engines = {name: Engine.open(tmp_path / name, database_url=postgres_url, clock=clock,
                                 settings=SETTINGS) for name in ("a", "b")}
    yield engines
    for engine in engines.values():
        engine.close()


def _joined(engine: Engine) -> dict[str, dict]:
    """The host's joined log, by event id (each id at most once)."""
    lines = [json.loads(line) for path in log_files([engine.log.root])
             for line in path.read_text().splitlines() if line.startswith("{")]
    by_id = {line["EventId"]: line for line in lines}
    assert len(by_id) == len(lines)
    return by_id


def test_a_reward_before_its_decision_arrives_is_joined_with_it(hosts, clock):
    a, b = hosts["a"], hosts["b"]
    a.rank(CONTEXT, ACTIONS, event_id="e1", defer_activation=True)
    clock.advance(1)
    # Host b has never seen e1: it accepts both, and ships them before a ships e1.
    assert b.activate("e1") is False
    assert b.reward("e1", 0.75) is False
    assert b.store.ingest() == 2
    assert b.store.unmatched_counts() == (2, 0)
    assert b.store.event("e1") is None
    a.store.ingest()  # the decision arrives: the outcomes leave the waiting table
    assert a.store.unmatched_counts() == (0, 0)
    event = a.store.event("e1")
    assert event["activated_at"] == clock.now
    assert [(r["value"], r["late"]) for r in event["rewards"]] == [(0.75, False)]
    clock.advance(SETTINGS.reward_wait_seconds)
    assert a.process_due() == 1
    line = _joined(a)["e1"]
    assert line["c"] is not None and line["_label_cost"] == -0.75
    assert a.store.rejects() == [] and a.store.orphans() == []


def test_a_reward_whose_decision_never_comes_is_an_orphan_after_the_grace(hosts, clock):
    a, b = hosts["a"], hosts["b"]
    b.reward("never", 1.0)
    a.rank(CONTEXT, ACTIONS, event_id="ranked")
    b.store.ingest()
    clock.advance(SETTINGS.reward_wait_seconds + SETTINGS.orphan_grace_seconds - 1)
    assert a.process_due() == 1  # "ranked" joins; "never" still waits within the grace
    assert a.store.unmatched_counts() == (1, 0) and a.store.orphans() == []
    clock.advance(2)
    a.process_due()
    assert a.store.unmatched_counts() == (0, 1)
    (orphan,) = b.store.orphans()
    assert (orphan["kind"], orphan["event_id"], orphan["record"]) == ("r", "never", "1.0")
    assert "reward wait (10 s) and the orphan grace (30 s)" in orphan["reason"]
    assert set(_joined(a)) == {"ranked"}


def test_an_orphan_whose_decision_arrives_after_all_is_joined_with_it(
        hosts, postgres_url, tmp_path, clock):
    a, b = hosts["a"], hosts["b"]
    behind = Engine.open(tmp_path / "behind", database_url=postgres_url, clock=clock)
    try:
        behind.rank(CONTEXT, ACTIONS, event_id="slow")  # a host whose shipping stalled
        clock.advance(1)
        b.reward("slow", 0.5)
        b.store.ingest()
        clock.advance(SETTINGS.reward_wait_seconds + SETTINGS.orphan_grace_seconds + 1)
        a.process_due()
        assert a.store.unmatched_counts() == (0, 1)
        behind.store.ingest()
    finally:
        behind.close()
    assert a.store.unmatched_counts() == (0, 0)
    assert a.process_due() == 1
    assert _joined(a)["slow"]["_label_cost"] == -0.5


def test_deleting_every_event_drops_the_unmatched_outcomes_too(hosts, clock):
    hosts["b"].reward("gone", 1.0)
    hosts["b"].store.ingest()
    hosts["a"].store.purge_events()
    assert hosts["a"].store.unmatched_counts() == (0, 0)


def test_an_event_id_ranked_on_two_hosts_is_kept_once_and_the_later_set_aside(
        hosts, clock, caplog):
    a, b = hosts["a"], hosts["b"]
    a.rank(CONTEXT, ACTIONS, event_id="dup")
    first_at = clock.now
    clock.advance(1)
    b.rank(CONTEXT, ACTIONS, event_id="dup")  # b's claims and filter know nothing of a's
    b.reward("dup", 0.5)
    a.store.ingest()
    with caplog.at_level(logging.WARNING, logger="banditkit.store.journaled"):
        b.store.ingest()
    assert "record for event 'dup' rejected: duplicate event id" in caplog.text
    (reject,) = a.store.rejects()
    assert (reject["kind"], reject["event_id"], reject["at"], reject["reason"]) == (
        "d", "dup", first_at + 1, "duplicate event id")
    assert a.store.event("dup")["created_at"] == first_at  # the earlier decision stays
    for host in (a, b):  # once in the database, the id is refused on every host
        with pytest.raises(DuplicateEventError):
            host.rank(CONTEXT, ACTIONS, event_id="dup")
    clock.advance(SETTINGS.reward_wait_seconds)
    assert a.process_due() == 1
    assert _joined(a)["dup"]["_label_cost"] == -0.5  # b's reward went to the decision kept
