"""The per-process decision journal: durable at once, ingested exactly once."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from banditkit.engine import Engine, RankRequest
from banditkit.errors import DuplicateEventError, UnknownEventError
from banditkit.eventlog import read_events
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, Store, open_store
from banditkit.store.journal import decision_line, parse_line, reward_line, slot_reward_line
from banditkit.types import Action

ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]
CONTEXT = {"Member": {"country": "BR"}}


def _settings() -> LoopSettings:
    return LoopSettings(reward_wait_seconds=10, policy_args="--cb_explore_adf -q MA")


def _journal_files(store: Store) -> list[str]:
    return sorted(p.name for p in store.journal_dir.iterdir())


@pytest.mark.parametrize("event_id", ["plain", "with space", 'quo"te', "new\nline",
                                      '"leading-quote', "ünïcode", "tab\tbed"])
def test_journal_lines_round_trip_any_event_id(event_id):
    decision = parse_line(decision_line(event_id, 1.5, True, '{"a":[1]}').rstrip("\n"))
    assert (decision.kind, decision.event_id, decision.at, decision.deferred,
            decision.payload) == ("d", event_id, 1.5, True, '{"a":[1]}')
    for tag in (None, event_id, "-", "-x"):
        tagged = parse_line(decision_line(event_id, 1.5, False, "{}", 7, tag).rstrip("\n"))
        assert (tagged.event_id, tagged.tag, tagged.context_at, tagged.payload) == (
            event_id, tag, 7, "{}")
    reward = parse_line(reward_line(event_id, 2.25, -0.5).rstrip("\n"))
    assert (reward.kind, reward.event_id, reward.at, reward.value) == ("r", event_id, 2.25, -0.5)
    for slot_id in ("1", event_id):
        slot = parse_line(slot_reward_line(event_id, 3.5, slot_id, 0.25).rstrip("\n"))
        assert (slot.kind, slot.event_id, slot.at, slot.payload, slot.value) == (
            "s", event_id, 3.5, slot_id, 0.25)


def test_a_killed_process_loses_no_decision_and_its_journal_is_removed_once_ingested(
        database_url, tmp_path, clock):
    Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings()).close()
    script = textwrap.dedent(f"""
        import os, sys
        from banditkit.engine import Engine, RankRequest
        from banditkit.types import Action
        engine = Engine.open({str(tmp_path)!r}, database_url={database_url!r},
                             clock=lambda: {clock.now!r})
        actions = [Action(id=f"v{{i}}", features={{"Artwork": {{"theme": f"t{{i}}"}}}})
                   for i in range(3)]
        for i in range(5):
            engine.rank({{"Member": {{"country": "BR"}}}}, actions, event_id=f"killed-{{i}}")
        engine.reward("killed-2", 1.0)
        os.kill(os.getpid(), 9)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == -9, result.stderr
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock)
    assert len(_journal_files(engine.store)) == 1  # nothing was ingested before the kill
    # A reward for another process's decision triggers ingestion and is accepted.
    assert engine.reward("killed-4", 0.5) is False
    assert engine.store.pending_count() == 5
    assert [r["value"] for r in engine.store.event("killed-2")["rewards"]] == [1.0]
    # The dead writer's file went once read; this process's own stays while it lives.
    assert all(name.startswith(f"{os.getpid()}-") for name in _journal_files(engine.store))
    clock.advance(11)
    assert engine.process_due() == 5
    assert engine.store.event("killed-4")["rewards"][0]["value"] == 0.5


def test_ingestion_is_exactly_once(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    for i in range(3):
        engine.rank(CONTEXT, ACTIONS, event_id=f"e{i}")
    engine.reward("e1", 1.0)
    engine.activate("e1")
    assert engine.store.ingest() == 5
    assert engine.store.ingest() == 0
    engine.reward("e1", 2.0)
    other = open_store(tmp_path, database_url=database_url)  # another process's view
    assert other.ingest() == 1
    assert [r["value"] for r in engine.store.event("e1")["rewards"]] == [1.0, 2.0]
    assert engine.store.pending_count() == 3


def test_a_duplicate_id_is_refused_at_once_in_any_process_and_kept_aside_if_it_slips_in(
        database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    engine.rank(CONTEXT, ACTIONS, event_id="dup")
    with pytest.raises(DuplicateEventError, match="'dup' was already used"):
        engine.rank(CONTEXT, ACTIONS, event_id="dup")
    # A second process refuses it too, before anything was ingested (the claim)...
    racer = Engine.open(tmp_path, database_url=database_url, clock=clock)
    racer.rank(CONTEXT, ACTIONS, event_id="race")
    with pytest.raises(DuplicateEventError, match="'race' was already used"):
        engine.rank(CONTEXT, ACTIONS, event_id="race")
    with pytest.raises(DuplicateEventError):
        engine.store.insert_events([PendingEvent("race", clock.now, False, None, '{"x":1}')])
    # ...and a journal line that slipped past every check (a foreign writer) is
    # kept aside at ingestion: the first decision stays, the second is not learned.
    foreign = engine.store.journal_dir / "999997-foreign.journal"
    clock.advance(1)
    foreign.write_text(decision_line("race", clock.now, False, '{"x":1}'))
    (reject,) = engine.store.rejects()
    assert (reject["event_id"], reject["reason"], reject["record"]) == (
        "race", "duplicate event id", '{"x":1}')
    assert engine.store.event("race")["decision"] != '{"x":1}'
    # Once ingested, the duplicate is refused at once in any process.
    with pytest.raises(DuplicateEventError):
        racer.rank(CONTEXT, ACTIONS, event_id="dup")


def test_an_unknown_event_is_still_refused_by_one_hosts_store(tmp_path, clock):
    # PostgreSQL accepts it (another host may have ranked it): test_unmatched.py.
    engine = Engine.open(tmp_path, clock=clock, settings=_settings())
    with pytest.raises(UnknownEventError, match="unknown event id 'never'"):
        engine.reward("never", 1.0)
    with pytest.raises(UnknownEventError):
        engine.activate("never")


def test_an_unnamed_file_its_writer_abandoned_is_removed_and_a_fresh_one_kept(tmp_path, clock):
    engine = Engine.open(tmp_path, clock=clock, settings=_settings())
    engine.rank(CONTEXT, ACTIONS, event_id="kept")
    folder = engine.store.journal_dir
    abandoned, fresh = folder / "111-dead.new", folder / "222-starting.new"
    abandoned.touch()
    fresh.touch()
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    engine.process_due()  # the learner's step clears them; a reward miss does not
    assert not abandoned.exists() and fresh.exists()
    assert engine.store.event("kept") is not None


def test_a_torn_line_waits_and_a_foreign_line_is_kept_aside(database_url, tmp_path, clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    engine.rank(CONTEXT, ACTIONS, event_id="whole")
    path = engine.store.journal_dir / "999999-torn.journal"
    torn = decision_line("torn", clock.now, False, '{"EventId":"torn"}')
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # a live writer, mid-line
        handle.write(torn[:20])
        handle.flush()
        assert engine.store.ingest() == 1
        assert engine.store.event("torn") is None and path.exists()
        # A row store's slot reward has no table in an artwork store: kept aside too.
        handle.write(torn[20:] + "not a journal line\n"
                     + slot_reward_line("whole", clock.now, "1", 0.5))
    engine.store.ingest()
    assert engine.store.event("torn")["decision"] == '{"EventId":"torn"}'
    slot, unreadable = engine.store.rejects()  # outcomes are ingested first
    assert unreadable["reason"] == "unreadable line in 999999-torn.journal"
    assert unreadable["record"] == "not a journal line"
    assert (slot["kind"], slot["event_id"], slot["reason"], slot["record"]) == (
        "s", "whole", "no 's' records in this store", "slot '1': 0.5")
    assert not path.exists()


def test_a_dead_writers_torn_last_line_is_kept_aside_and_its_file_finished(database_url, tmp_path,
                                                                           clock):
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    path = engine.store.journal_dir / "999998-killed.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    whole = decision_line("whole", clock.now, False, '{"EventId":"whole"}')
    torn = decision_line("torn", clock.now, False, '{"EventId":"torn"}')
    path.write_text(whole + torn[:25])  # no lock: its writer was killed mid-write
    assert engine.store.ingest() == 1
    assert engine.store.event("whole") is not None and engine.store.event("torn") is None
    (reject,) = engine.store.rejects()
    assert reject["record"] == torn[:25]
    assert reject["reason"].startswith("torn last line of 999998-killed.journal")
    assert not path.exists()  # finished: it will never hold more


def test_a_forked_worker_writes_its_own_journal(tmp_path, clock):
    engine = Engine.open(tmp_path, clock=clock, settings=_settings())
    engine.rank(CONTEXT, ACTIONS, event_id="parent")  # the parent's journal is open
    pid = os.fork()
    if pid == 0:  # a gunicorn worker after the fork: same engine object
        try:
            engine.rank(CONTEXT, ACTIONS, event_id="child")
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    files = _journal_files(engine.store)
    assert sorted(name.split("-")[0] for name in files) == sorted([str(os.getpid()), str(pid)])
    assert engine.store.pending_count() == 2
    # The child is gone: its journal went once read; the parent's stays.
    assert [name.split("-")[0] for name in _journal_files(engine.store)] == [str(os.getpid())]


@pytest.mark.slow
def test_concurrent_rankers_and_a_learner_log_every_decision_exactly_once(database_url, tmp_path):
    Engine.open(tmp_path, database_url=database_url, settings=LoopSettings(
        reward_wait_seconds=0.1, model_update_seconds=0.5,
        policy_args="--cb_explore_adf -q MA")).close()
    made: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def ranker(worker: int) -> None:
        # Its own store and journal, as a worker process.
        engine = Engine.open(tmp_path, database_url=database_url)
        for i in itertools.count():
            if stop.is_set():
                return
            try:
                decision = engine.rank(CONTEXT, ACTIONS, event_id=f"w{worker}-{i}")
                made.append(decision.event_id)
                engine.reward(made[i * 7 % len(made)], 1.0)  # also others' decisions
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(error))

    def learner() -> None:
        engine = Engine.open(tmp_path, database_url=database_url)
        while not stop.is_set():
            try:
                engine.process_due()
            except Exception as error:  # noqa: BLE001
                errors.append(repr(error))

    threads = [threading.Thread(target=ranker, args=(k,)) for k in range(3)]
    threads.append(threading.Thread(target=learner))
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    final = Engine.open(tmp_path, database_url=database_url)
    time.sleep(0.2)
    final.process_due()
    logged = [event.event_id for event in read_events([tmp_path / "logs"])]
    assert errors == []
    # Enough decisions that rankers, rewards and the learner overlapped many times.
    # On PostgreSQL a reward of another ranker's decision not ingested yet waits
    # for an ingestion, a transaction queued behind the learner's on the server.
    assert len(made) > (1000 if database_url is None else 300)
    assert sorted(logged) == sorted(made)  # every decision, exactly once
    assert final.store.rejects() == [] and final.store.pending_count() == 0


def test_reports_find_a_tag_by_index_and_old_stores_gain_the_column(tmp_path, clock):
    old = sqlite3.connect(tmp_path / "banditkit.sqlite3")  # a store from before tags
    old.execute("CREATE TABLE events (event_id TEXT PRIMARY KEY, created_at REAL NOT NULL, "
                "deferred INTEGER NOT NULL, activated_at REAL, decision TEXT NOT NULL, "
                "joined_at REAL, join_seq INTEGER, joined_line TEXT)")
    old.execute("INSERT INTO events VALUES ('untagged', 1.0, 0, NULL, '{}', NULL, NULL, NULL)")
    old.commit()
    old.close()
    engine = Engine.open(tmp_path, clock=clock, settings=_settings())
    for i in range(4):
        engine.rank_many([RankRequest(context=CONTEXT, actions=ACTIONS, event_id=f"{t}-{i}",
                                      tag=t) for t in ("crown", "dune")])
    crown = [event_id for event_id, *_ in engine.store.events_since(0, tag="crown")]
    assert crown == ["untagged", *(f"crown-{i}" for i in range(4))]
    assert len(list(engine.store.events_since(0))) == 9
    plan = engine.store._db.execute(
        "EXPLAIN QUERY PLAN SELECT event_id FROM events WHERE (tag = ? OR tag IS NULL) "
        "AND created_at > ? ORDER BY created_at", ("crown", 0)).fetchall()
    assert "events_tag" in str(plan)


def test_a_journal_being_opened_is_not_taken_for_a_finished_one(tmp_path, monkeypatch):
    import banditkit.store.journal

    store = Store(path=tmp_path / "banditkit.sqlite3")
    flock = banditkit.store.journal.fcntl.flock
    ingested_meanwhile: list[int] = []
    calls = itertools.count()

    def another_process_ingests_first(fd, operation):
        if next(calls) == 0:  # the writer's, between creating the file and locking it
            ingested_meanwhile.append(store.ingest())
        flock(fd, operation)

    monkeypatch.setattr(banditkit.store.journal.fcntl, "flock", another_process_ingests_first)
    store.insert_events([PendingEvent("e", 1.0, False, None, '{"x":1}')])
    assert ingested_meanwhile == [0]
    assert store.pending_count() == 1 and store.event("e")["decision"] == '{"x":1}'


_LEARNER_KILLED_AT_REMOVE = """
import os, signal, sys
from banditkit.engine import Engine
from banditkit.store.journal import JournalReader

def remove(self, name, _remove=JournalReader.remove):
    {before}
    _remove(self, name)
    {after}

JournalReader.remove = remove
engine = Engine.open({data_dir!r}, database_url={database_url!r}, clock=lambda: {now!r})
engine.process_due()
"""


@pytest.mark.parametrize("moment", ["after", "before"])
def test_a_learner_killed_around_a_journal_removal_loses_nothing_and_reads_nothing_twice(
        database_url, tmp_path, clock, moment):
    """A finished journal goes only after the transaction that ingested it committed;
    a kill between the commit and the removal leaves a file whose offset says it was read."""
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings())
    engine.close()
    worker = textwrap.dedent(f"""
        from banditkit.engine import Engine
        from banditkit.types import Action
        engine = Engine.open({str(tmp_path)!r}, database_url={database_url!r},
                             clock=lambda: {clock.now!r})
        engine.rank({{"Member": {{"country": "BR"}}}},
                    [Action(id="v0", features={{"Artwork": {{"theme": "t0"}}}}),
                     Action(id="v1", features={{"Artwork": {{"theme": "t1"}}}})],
                    event_id="acknowledged")
        engine.reward("acknowledged", 1.0)
    """)
    subprocess.run([sys.executable, "-c", worker], check=True, timeout=120)
    kill = "os.kill(os.getpid(), signal.SIGKILL)"
    learner = _LEARNER_KILLED_AT_REMOVE.format(
        before=kill if moment == "before" else "pass", after=kill if moment == "after" else "pass",
        data_dir=str(tmp_path), now=clock.now + 11, database_url=database_url)
    result = subprocess.run([sys.executable, "-c", learner], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock)
    event = engine.store.event("acknowledged")
    assert event is not None
    assert [r["value"] for r in event["rewards"]] == [1.0]
    assert engine.store.rejects() == []  # nothing ingested twice
    assert _journal_files(engine.store) == []  # the finished file went, at last
    clock.advance(11)
    engine.process_due()
    (logged,) = read_events([tmp_path / "logs"])
    assert (logged.event_id, logged.reward) == ("acknowledged", 1.0)


_LEARNER_KILLED_MID_APPEND = """
import os, signal
from banditkit.engine import Engine
from banditkit.eventlog import EventLogWriter

def append(self, lines):
    text = "\\n".join(line for _, line in lines) + "\\n"
    path = self.partition(lines[0][0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(text[:len(text) // 2])  # half the batch, then the kill
    os.kill(os.getpid(), signal.SIGKILL)

EventLogWriter.append = append
Engine.open({data_dir!r}, clock=lambda: {now!r}).process_due()
"""


def test_a_learner_killed_mid_append_leaves_a_torn_log_that_the_next_one_repairs(
        tmp_path, clock):
    engine = Engine.open(tmp_path, clock=clock, settings=_settings())
    engine.rank(CONTEXT, ACTIONS, event_id="earlier")
    clock.advance(11)
    engine.process_due()
    partition = next((tmp_path / "logs").rglob("events.dsjson"))
    with open(partition, "a") as handle:  # recovery reads the end only, not this line
        handle.write("an unreadable line far above the batch\n")
    for i in range(20):
        engine.rank(CONTEXT, ACTIONS, event_id=f"batch-{i}")
        engine.reward(f"batch-{i}", float(i))
    engine.close()
    learner = _LEARNER_KILLED_MID_APPEND.format(data_dir=str(tmp_path), now=clock.now + 11)
    result = subprocess.run([sys.executable, "-c", learner], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not partition.read_text().endswith("\n")  # torn
    clock.advance(11)
    engine = Engine.open(tmp_path, clock=clock)
    engine.process_due()
    engine.rank(CONTEXT, ACTIONS, event_id="after")  # the loop goes on
    clock.advance(11)
    assert engine.process_due() == 1
    lines = partition.read_text().splitlines()
    ids = [json.loads(line)["EventId"] for line in lines if line.startswith("{")]
    assert sorted(ids) == sorted(["earlier", "after"] + [f"batch-{i}" for i in range(20)])
    rewards = {json.loads(line)["EventId"]: -json.loads(line)["_label_cost"]
               for line in lines if line.startswith("{")}
    assert rewards["batch-7"] == 7.0
    (kept,) = (tmp_path / "logs-rejects").iterdir()
    record = json.loads(kept.read_text())
    assert record["reason"].startswith("torn last line")
    assert record["file"] == str(partition) and record["fragment"]


_SENDER = """
import sys
from banditkit.engine import Engine
from banditkit.errors import DuplicateEventError
from banditkit.types import Action
engine = Engine.open({data_dir!r}, database_url={database_url!r})
actions = [Action(id="v0", features={{"A": {{"t": "0"}}}}),
           Action(id="v1", features={{"A": {{"t": "1"}}}})]
sys.stdin.readline()  # every sender starts at once
for i in range({n}):
    try:
        engine.rank({{"Member": {{"c": "BR"}}}}, actions, event_id=f"shared-{{i}}")
        print(f"shared-{{i}}", flush=True)
    except DuplicateEventError:
        pass
"""


@pytest.mark.slow  # several processes
def test_concurrent_processes_acknowledge_each_shared_id_exactly_once(database_url, tmp_path):
    Engine.open(tmp_path, database_url=database_url, settings=_settings()).close()
    n = 200
    senders = [subprocess.Popen([sys.executable, "-c", _SENDER.format(
                                    data_dir=str(tmp_path), n=n, database_url=database_url)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(4)]
    for sender in senders:
        sender.stdin.write("go\n")
        sender.stdin.flush()
    acknowledged = []
    for sender in senders:
        out, _ = sender.communicate(timeout=120)
        assert sender.returncode == 0
        acknowledged += out.split()
    assert sorted(acknowledged) == sorted(f"shared-{i}" for i in range(n))
    engine = Engine.open(tmp_path, database_url=database_url)
    assert engine.store.rejects() == []  # no duplicate reached the journals


def test_a_claim_whose_process_died_before_journaling_is_taken_over(database_url, tmp_path, clock):
    Engine.open(tmp_path, database_url=database_url, clock=clock, settings=_settings()).close()
    script = textwrap.dedent(f"""
        import os, signal
        from banditkit.engine import Engine
        from banditkit.store.journal import JournalWriter
        from banditkit.types import Action
        JournalWriter.append = lambda self, text: os.kill(os.getpid(), signal.SIGKILL)
        Engine.open({str(tmp_path)!r}, database_url={database_url!r}).rank(
            {{"Member": {{"c": "BR"}}}}, [Action(id="v0", features={{"A": {{"t": "0"}}}})],
            event_id="claimed-then-killed")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    engine = Engine.open(tmp_path, database_url=database_url, clock=clock)
    decision = engine.rank(CONTEXT, ACTIONS, event_id="claimed-then-killed")
    assert decision.event_id == "claimed-then-killed"  # never acknowledged: free again
    with pytest.raises(DuplicateEventError):
        engine.rank(CONTEXT, ACTIONS, event_id="claimed-then-killed")
