"""The PostgreSQL store's own behaviour: its URL, its migrations, hosts starting at once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from banditkit.errors import InvalidInputError
from banditkit.store import PostgresStore
from banditkit.store.postgres import MIGRATIONS, LearnerLease, check_database_url, migrate


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql", "", "http://h/db"])
def test_a_url_of_another_form_is_refused_naming_the_expectation(url):
    with pytest.raises(InvalidInputError, match="postgresql://user@host:port/database"):
        check_database_url(url)


def test_the_password_of_a_refused_url_is_not_repeated():
    with pytest.raises(InvalidInputError) as error:
        check_database_url("mysql://me:secret@h/db")
    assert "secret" not in str(error.value)


@pytest.mark.slow
def test_migrations_apply_once_when_hosts_start_at_once(postgres_url, tmp_path):
    errors, applied = [], []

    def start() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                applied.append(migrate(connection, schema="banditkit"))
        except Exception as error:  # noqa: BLE001 - collected for the assert
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(map(len, applied)) == [0, 0, 0, len(MIGRATIONS)]
    with psycopg.connect(postgres_url) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM banditkit.schema_migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]


@pytest.mark.slow
def test_a_store_opened_again_keeps_its_rows_and_applies_no_migration(postgres_url, tmp_path):
    store = PostgresStore.open(postgres_url, local=tmp_path / "banditkit")
    store.put_setting("k", {"v": 1})
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert migrate(connection, schema="banditkit") == []
    again = PostgresStore.open(postgres_url, local=tmp_path / "banditkit")
    assert again.get_setting("k") == {"v": 1}
    again.close()
    assert again.get_setting("k") == {"v": 1}  # a closed store opens its pool again
    again.close()


@pytest.mark.slow
def test_decisions_are_stored_lz4_compressed_when_the_server_has_lz4(postgres_url, tmp_path):
    store = PostgresStore.open(postgres_url, local=tmp_path / "banditkit", schema="lz4_check")
    store.close()
    with psycopg.connect(postgres_url) as connection:
        # Debian's PostgreSQL is built with lz4: default_toast_compression accepts it.
        connection.execute("SET default_toast_compression = lz4")
        methods = dict(connection.execute(
            "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = "
            "'lz4_check.events'::regclass AND attname IN ('decision', 'joined_line')"))
    assert methods == {"decision": "l", "joined_line": "l"}


@pytest.mark.slow
def test_a_bad_schema_name_is_refused(postgres_url, tmp_path):
    with pytest.raises(InvalidInputError, match="schema must be"):
        PostgresStore.open(postgres_url, local=tmp_path / "x", schema="Robert'); DROP")


@pytest.mark.slow
def test_one_learner_lease_among_hosts_and_a_dead_holders_goes_to_the_next(postgres_url):
    first, second = LearnerLease(url=postgres_url), LearnerLease(url=postgres_url)
    try:
        assert first.acquire() is True
        assert second.acquire() is False
        assert first.held() is True
        # The holder's session ends (its host died; the server ended the session).
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks "
                          "WHERE locktype = 'advisory' AND granted")
        assert first.held() is False
        assert second.acquire() is True
        assert first.acquire() is False  # back in line
    finally:
        first.release()
        second.release()


@pytest.mark.slow
def test_a_second_hosts_learner_waits_for_the_lease_and_takes_over(postgres_url, tmp_path,
                                                                    caplog):
    from serving.learner_process import run_learner

    stops = {host: threading.Event() for host in ("a", "b")}
    threads = {host: threading.Thread(target=run_learner, args=(tmp_path / host,), kwargs={
        "database_url": postgres_url, "interval_seconds": 0.1, "stop": stops[host]})
        for host in ("a", "b")}
    caplog.set_level("INFO", logger="banditkit.serve")
    threads["a"].start()
    _wait(lambda: _started(caplog) == 1)
    threads["b"].start()
    _wait(lambda: "waiting for it and shipping" in caplog.text)
    assert _started(caplog) == 1  # b waits while a learns
    stops["a"].set()
    threads["a"].join()
    _wait(lambda: _started(caplog) == 2)  # b took over
    stops["b"].set()
    threads["b"].join()


def _started(caplog) -> int:
    return sum('"learner started"' in record.getMessage() for record in caplog.records)


def _wait(condition, seconds: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_hosts_ingest_their_own_journals_and_never_forget_anothers_offsets(postgres_url,
                                                                           tmp_path):
    from banditkit.engine import Engine
    from banditkit.types import Action

    actions = [Action(id=f"v{i}", features={"Artwork": {"t": f"t{i}"}}) for i in range(2)]
    hosts = {name: Engine.open(tmp_path / name, database_url=postgres_url)
             for name in ("a", "b")}
    for round_ in range(3):
        for name, engine in hosts.items():
            event_id = f"{name}-{round_}"
            engine.rank({"Member": {"c": "BR"}}, actions, event_id=event_id)
            engine.reward(event_id, 1.0)
            engine.store.ingest()
    a = hosts["a"].store
    for name in hosts:
        for round_ in range(3):
            assert [r["value"] for r in a.event(f"{name}-{round_}")["rewards"]] == [1.0]
    assert a.rejects() == [] and hosts["b"].store.rejects() == []
    for engine in hosts.values():
        engine.close()


@pytest.mark.slow
def test_a_waiting_hosts_journal_is_shipped_and_joined_by_the_lease_holder(postgres_url,
                                                                            tmp_path, caplog):
    from banditkit.engine import Engine
    from banditkit.eventlog import read_events
    from banditkit.settings import LoopSettings
    from banditkit.types import Action
    from serving.learner_process import run_learner

    settings = LoopSettings(reward_wait_seconds=0.2, model_update_seconds=0.0)
    Engine.open(tmp_path / "a", database_url=postgres_url, settings=settings).close()
    stops = {host: threading.Event() for host in ("a", "b")}
    threads = {host: threading.Thread(target=run_learner, args=(tmp_path / host,), kwargs={
        "database_url": postgres_url, "interval_seconds": 0.1, "stop": stops[host]})
        for host in ("a", "b")}
    caplog.set_level("INFO", logger="banditkit.serve")
    threads["a"].start()
    _wait(lambda: _started(caplog) == 1)  # a holds the lease
    threads["b"].start()
    _wait(lambda: "shipping this host's journals" in caplog.text)
    # A worker of host b: its journal is in b's data directory, which only b reads.
    worker = Engine.open(tmp_path / "b", database_url=postgres_url)
    actions = [Action(id=f"v{i}", features={"Artwork": {"t": f"t{i}"}}) for i in range(2)]
    worker.rank({"Member": {"c": "BR"}}, actions, event_id="from-b")
    worker.reward("from-b", 1.0)

    def joined_on_a() -> list:
        logs = tmp_path / "a" / "logs"
        return [e for e in read_events([logs]) if e.event_id == "from-b"] if logs.exists() else []

    _wait(joined_on_a)
    assert [e.reward for e in joined_on_a()] == [1.0]
    for host in ("a", "b"):
        stops[host].set()
        threads[host].join()
    worker.close()
