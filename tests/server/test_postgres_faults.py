"""Faults of many hosts sharing PostgreSQL, with real processes and a real server.

* A learner whose lease passed to another (its database session ended while its
  process lives on) joins, appends and publishes nothing more: the epoch
  fences it, and the new holder logs what it joined but could not append. A
  holder without heartbeat is deposed.
* The lease holder's whole host is killed under load: the other host's
  learner takes the lease and the shared log goes on; once the dead host is
  back and has shipped its journal, every acknowledged decision and reward is
  in the log exactly once.
* The other host is killed under load and restarted: the same count.
* PostgreSQL is stopped for 10 s under load: ranks and rewards keep being
  answered from the journals, shipping resumes, nothing is lost.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import requests

from banditkit.engine import Engine
from banditkit.eventlog import EventLogWriter, read_events
from banditkit.settings import LoopSettings
from banditkit.store.journaled import LeaseLostError
from banditkit.store.postgres import LearnerLease
from banditkit.store.psql import session_name
from banditkit.types import Action
from serving.learner_process import fence_loop, wait_for_learner_lease
from tests.postgres_fixture import PostgresServer, find_binaries
from tests.server.conftest import make_keys
from tests.server.pg_hosts import (
    Load,
    check_joined_once,
    joined_events,
    lease_holder,
    new_host,
    start_host,
)
from tests.server.test_serve import ACTIONS as SERVE_ACTIONS
from tests.server.test_serve import CONTEXT as SERVE_CONTEXT
from tests.server.test_serve import RANK, alive, kill, rank, wait_until

pytestmark = pytest.mark.slow  # PostgreSQL and real servers

SETTINGS = LoopSettings(reward_wait_seconds=2.0, model_update_seconds=0.0)
# Longer than a host is down in these tests: a reward journaled on a host reaches the
# store when the host is back (or the database is), and must do so within its
# decision's reward wait to count (docs/operations.md, "When a host or the database
# is down").
HOSTS_SETTINGS = LoopSettings(reward_wait_seconds=15.0, model_update_seconds=0.0)
ACTIONS = [Action(id=f"v{i}", features={"Artwork": {"theme": f"t{i}"}}) for i in range(3)]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class _LeaseMovesBeforeAppend(EventLogWriter):
    """A log whose next append is preceded by ``move`` (the lease passing to another
    learner between a join's commit and its append, the narrowest window)."""

    def __init__(self, log: EventLogWriter, move) -> None:  # type: ignore[no-untyped-def]
        super().__init__(root=log.root)
        self.log = log
        self.move = move

    def append(self, lines):  # type: ignore[no-untyped-def]
        self.move()
        return self.log.append(lines)


def _end_lease_sessions(url: str) -> None:
    """End the session holding the learner lease, as a server does when its host is gone."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks "
                      "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()")


def test_a_deposed_learner_joins_appends_and_publishes_nothing(postgres_server,
                                                               tmp_path: Path) -> None:
    url = postgres_server.create_database()
    clock, shared = _Clock(), tmp_path / "shared"
    old, new = (Engine.open(tmp_path / name, settings=SETTINGS, database_url=url,
                            log_dir=shared, clock=clock) for name in ("a", "b"))
    first, second = LearnerLease(url=url), LearnerLease(url=url)
    try:
        assert first.acquire() and not second.acquire()
        fence_loop(old, first.fence())

        def rank(prefix: str) -> None:
            for i in range(4):
                old.rank({"Member": {"c": "BR"}}, ACTIONS, event_id=f"{prefix}{i}")
                old.reward(f"{prefix}{i}", i / 4)
            clock.now += 3

        rank("x")
        assert old.process_due() == 4
        version = old.store.latest_model_version()
        assert version > 0

        def move() -> None:  # the old holder's session is ended; its process lives on
            _end_lease_sessions(url)
            wait_until(second.acquire, seconds=10, what="the second learner to take the lease")
            fence_loop(new, second.fence())

        rank("y")
        fenced_log = old.log
        old.log = _LeaseMovesBeforeAppend(fenced_log, move)
        passed = rf"epoch {first.epoch}\) passed to another learner \(epoch {first.epoch + 1}\)"
        with pytest.raises(LeaseLostError, match=passed):
            old.process_due()  # joined y0..y3 (committed), then the lease moved: no append
        assert second.epoch == first.epoch + 1
        assert len(list(read_events([shared / "logs"]))) == 4  # x only
        old.log = fenced_log
        rank("z")
        with pytest.raises(LeaseLostError):
            old.process_due()  # its join is refused in the join's transaction
        with pytest.raises(LeaseLostError):
            old.publish()
        assert new.store.latest_model_version() == version
        old.store.ingest()  # shipping its host's journal is all a waiting learner does
        # The new holder logs y (joined by the old one, never appended) and joins z.
        assert new.process_due() == 4
        events = list(read_events([shared / "logs"]))
        counts = Counter(event.event_id for event in events)
        assert counts == Counter({f"{p}{i}": 1 for p in "xyz" for i in range(4)})
        assert {e.event_id: e.reward for e in events} == {
            f"{p}{i}": i / 4 for p in "xyz" for i in range(4)}
        assert new.store.latest_model_version() > version  # the new holder publishes
    finally:
        first.release()
        second.release()
        old.close()
        new.close()


def test_a_holder_without_heartbeat_is_deposed_and_one_with_it_is_not(postgres_url) -> None:
    beating, waiting = LearnerLease(url=postgres_url), LearnerLease(url=postgres_url,
                                                                    stale_seconds=0.5)
    try:
        assert beating.acquire()
        for _ in range(6):  # heartbeats every 0.2 s: never stale
            time.sleep(0.2)
            assert beating.held()
            assert not waiting.acquire()
        time.sleep(0.8)  # the holder hangs: no heartbeat
        assert not waiting.acquire()  # ends the stale holder's session
        wait_until(waiting.acquire, seconds=10, what="the waiting learner to take the lease")
        assert waiting.epoch == beating.epoch + 1
        assert not beating.held()
    finally:
        beating.release()
        waiting.release()


def test_a_holder_stopped_inside_a_transaction_is_deposed_with_its_locks(postgres_url) -> None:
    stopped = LearnerLease(url=postgres_url)
    waiting = LearnerLease(url=postgres_url, stale_seconds=0.5)
    # A session of the holder's process (its store's pool names them so), left inside
    # a join's transaction when the process stopped: the epoch's row stays locked.
    join = psycopg.connect(postgres_url, application_name=session_name())
    try:
        assert stopped.acquire()
        join.execute(stopped.fence().statement)
        time.sleep(0.8)  # no heartbeat
        assert not waiting.acquire()  # deposes: ends the lease session and the join's
        taken = threading.Event()
        threading.Thread(target=lambda: wait_until(waiting.acquire, seconds=10, what="lease")
                         or taken.set(), daemon=True).start()
        assert taken.wait(15), "the new holder waits for the stopped holder's locks"
        assert waiting.epoch == stopped.epoch + 1
        with pytest.raises(psycopg.OperationalError):
            join.execute("SELECT 1")  # its session was ended
    finally:
        join.close()
        stopped.release()
        waiting.release()


@pytest.mark.slow
def test_a_holder_hung_with_the_write_lock_is_deposed_while_this_host_ships(
        postgres_url, tmp_path: Path) -> None:
    # A holder stopped inside a join keeps the store's write lock, for which this
    # host's shipments wait; asking for the lease must go on and depose it.
    Engine.open(tmp_path, database_url=postgres_url).close()  # the store's schema
    stopped = LearnerLease(url=postgres_url)
    join = psycopg.connect(postgres_url, application_name=session_name())
    stop, found = threading.Event(), []
    try:
        assert stopped.acquire()
        join.execute("SELECT pg_advisory_xact_lock(%s)",
                     (zlib.crc32(b"banditkit:banditkit:write"),))
        waiting = threading.Thread(target=lambda: found.append(wait_for_learner_lease(
            tmp_path, postgres_url, stop=stop, interval_seconds=0.2)), daemon=True)
        waiting.start()
        waiting.join(30)  # the holder is stale after 10 s without a heartbeat
        assert found, "asking for the lease waited behind a shipment"
        assert found[0].epoch == stopped.epoch + 1
        with pytest.raises(psycopg.OperationalError):
            join.execute("SELECT 1")  # the stopped holder's session was ended
    finally:
        stop.set()
        join.close()
        stopped.release()
        for lease in found:
            lease.release()


def _started_hosts(tmp_path: Path, url: str, settings: LoopSettings = HOSTS_SETTINGS,
                   log_suffix: str = "") -> tuple[list, Path]:
    """Hosts a and b serving one database and one shared log folder (server logs
    ``<name><log_suffix>.log``), and that folder."""
    Engine.open(tmp_path / "a", settings=settings, database_url=url).close()
    hosts = [new_host(tmp_path, name, url) for name in ("a", "b")]
    log_dir = tmp_path / "shared-logs"
    for host in hosts:
        start_host(host, tmp_path / f"{host.name}{log_suffix}.log", url, log_dir)
    return hosts, log_dir


def _holder(hosts: list, url: str):  # type: ignore[no-untyped-def]
    """The host whose learner process holds the lease, and the lease's epoch."""
    found = lease_holder(url)
    if found is None:
        return None, 0
    epoch, pid = found
    for host in hosts:
        if pid in host.served.learner_pids():
            return host, epoch
    return None, epoch


def _stop(load: Load | None, hosts: list) -> None:
    """Stop the load, then every host still served."""
    if load is not None:
        load.stop()
    for host in hosts:
        if host.served is not None:
            kill(host.served)


def _wait_until_joined(load: Load, log_dir: Path) -> None:
    """Until every acknowledged decision is in the shared log, and a learner step more
    (nothing may be joined twice)."""
    wait_until(lambda: set(load.acknowledged) <= {
        e.event_id for e in joined_events(log_dir)}, seconds=45,
        what="every acknowledged decision to be joined")
    time.sleep(1.0)


def _first_holder(hosts: list, url: str):  # type: ignore[no-untyped-def]
    """:func:`_holder` once a learner of the started hosts has taken the lease."""
    wait_until(lambda: _holder(hosts, url)[0] is not None, seconds=30,
               what="a learner to take the lease")
    return _holder(hosts, url)


@pytest.mark.parametrize("victim", ["lease holder", "other host"])
def test_a_killed_host_loses_no_acknowledged_decision_and_the_log_goes_on(
        postgres_server, tmp_path: Path, victim: str) -> None:
    url = postgres_server.create_database()
    hosts, log_dir = _started_hosts(tmp_path, url, log_suffix="-1")
    load = None
    try:
        holder, epoch = _first_holder(hosts, url)
        dead = holder if victim == "lease holder" else next(h for h in hosts if h != holder)
        alive = next(h for h in hosts if h != dead)
        load = Load(hosts=hosts, prefix="load").start()
        time.sleep(3.0)
        load.use([alive])
        kill(dead.served)  # the whole process group, SIGKILL
        killed_at = time.monotonic()
        if dead is holder:
            wait_until(lambda: _holder(hosts, url) == (alive, epoch + 1), seconds=30,
                       what="the other host's learner to take the lease")
            print(f"takeover after {time.monotonic() - killed_at:.1f} s")
        time.sleep(2.0)  # the alive host ranks and rewards alone
        start_host(dead, tmp_path / f"{dead.name}-2.log", url, log_dir)
        load.use(hosts)
        time.sleep(2.0)
        load.stop()
        _wait_until_joined(load, log_dir)
        counts = check_joined_once(load, log_dir)
        # The learner that took over kept the lease when the dead host came back.
        assert _holder(hosts, url)[0] is (alive if dead is holder else holder)
        assert len(load.acknowledged) > 100 and len(load.rewards) > 100
        # Only calls in flight when the host was killed failed.
        assert sum(load.failures.values()) <= 2 * load.threads, dict(load.failures)
        assert sum(counts.values()) >= len(load.acknowledged)
        # Analysts read the shared log through any host, the one that never learned too.
        days = sorted({event.timestamp[:10] for event in joined_events(log_dir)})
        exported = requests.get(f"{dead.url}/v1/logs/export",
                                params={"from": days[0], "to": days[-1]}, timeout=30,
                                headers={"Ocp-Apim-Subscription-Key": dead.analyst_key})
        assert exported.status_code == 200, exported.text
        assert len(exported.text.splitlines()) == len(joined_events(log_dir))
        # Every host ranks with the snapshot the learner published last, within
        # modelExportFrequency (0 here) + 2 s.
        with Engine.open(tmp_path / "inspect", database_url=url) as engine:
            published = engine.store.latest_model_version()
        time.sleep(2.0)
        for host in hosts:
            answer = rank(host.url, host.key, f"after-{host.name}")
            assert int(answer.headers["X-Banditkit-Model-Version"]) >= published > 0
        print(f"{victim}: {len(load.acknowledged)} decisions and {len(load.rewards)} rewards "
              f"acknowledged, failures {dict(load.failures)}")
    finally:
        _stop(load, hosts)


def test_a_hung_learner_is_deposed_and_writes_nothing_when_it_wakes(
        postgres_server, tmp_path: Path) -> None:
    url = postgres_server.create_database()
    # The hung host's own journal waits for its learner: 10 s until it is deposed,
    # then woken and restarted; its rewards must arrive within the reward wait.
    settings = HOSTS_SETTINGS.replace(reward_wait_seconds=20.0)
    hosts, log_dir = _started_hosts(tmp_path, url, settings)
    load = None
    try:
        holder, epoch = _first_holder(hosts, url)
        other = next(h for h in hosts if h is not holder)
        learner = lease_holder(url)[1]
        load = Load(hosts=hosts, prefix="hung").start()
        time.sleep(2.0)
        os.kill(learner, signal.SIGSTOP)  # its host and connections stay up
        stopped_at = time.monotonic()
        try:
            wait_until(lambda: _holder(hosts, url) == (other, epoch + 1), seconds=30,
                       what="the other host's learner to depose the hung one")
            print(f"deposed after {time.monotonic() - stopped_at:.1f} s")
            time.sleep(1.0)
        finally:
            os.kill(learner, signal.SIGCONT)
        wait_until(lambda: not alive(learner), seconds=15,
                   what="the woken learner to find its lease lost and exit")
        load.stop()
        _wait_until_joined(load, log_dir)
        check_joined_once(load, log_dir)
        assert sum(load.failures.values()) == 0, dict(load.failures)
        assert _holder(hosts, url)[0] is other
    finally:
        _stop(load, hosts)


@pytest.fixture
def own_postgres():  # type: ignore[no-untyped-def]
    """A PostgreSQL server of this test's own: it is stopped and started again."""
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are missing")
    server = PostgresServer(bin_dir=bin_dir, folder=Path(tempfile.mkdtemp(prefix="bk-pg-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def test_ranks_are_answered_while_postgres_is_down_and_nothing_is_lost(
        own_postgres, tmp_path: Path) -> None:
    url = own_postgres.create_database()
    hosts, log_dir = _started_hosts(tmp_path, url)
    load = None
    try:
        unused_key = make_keys(tmp_path / "keys", database_url=url)["client"]
        load = Load(hosts=hosts, prefix="outage").start()
        time.sleep(3.0)
        before = len(load.acknowledged)
        own_postgres.pause()
        time.sleep(5.0)
        # A key no process has verified yet cannot be checked: 503, saying why.
        unchecked = requests.post(
            f"{hosts[0].url}{RANK}", timeout=10,
            json={"contextFeatures": SERVE_CONTEXT, "actions": SERVE_ACTIONS},
            headers={"Ocp-Apim-Subscription-Key": unused_key})
        assert unchecked.status_code == 503, unchecked.text
        assert "key store cannot be reached" in unchecked.json()["error"]["message"]
        time.sleep(5.0)
        during = len(load.acknowledged) - before
        failures_during = sum(load.failures.values())
        own_postgres.resume()
        time.sleep(3.0)
        load.stop()
        _wait_until_joined(load, log_dir)
        check_joined_once(load, log_dir)
        assert failures_during == 0, dict(load.failures)
        assert during > 50  # ranked and rewarded through the 10 s without the database
        print(f"{during} decisions acknowledged while PostgreSQL was down, "
              f"{len(load.acknowledged)} in all; slowest call "
              f"{max(load.latencies):.2f} s")
    finally:
        _stop(load, hosts)
