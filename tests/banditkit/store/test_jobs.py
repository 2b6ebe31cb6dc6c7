"""The job store: the queue's states, idempotent creation, recovery after a stop; on both
stores (SQLite, and PostgreSQL as a slow case)."""

import pytest

from banditkit.errors import InvalidInputError
from banditkit.store.jobs import (
    FAILED,
    NOT_SUBMITTED,
    RUNNING,
    SUCCEEDED,
    JobExistsError,
    PostgresJobStore,
    SQLiteJobStore,
)


def _open(tmp_path, database_url, clock):
    if database_url is None:
        return SQLiteJobStore.open(tmp_path / "banditkit.sqlite3", clock=clock)
    return PostgresJobStore.open(database_url, clock=clock)


@pytest.fixture
def jobs(tmp_path, database_url):
    now = iter(float(t) for t in range(1000, 2000))
    store = _open(tmp_path, database_url, lambda: next(now))
    yield store
    store.close()


def test_a_job_goes_from_queued_to_succeeded_with_its_artifacts(jobs):
    job, created = jobs.create("evaluation", "e1", name="first", request={"a": 1})
    assert created and job.status == NOT_SUBMITTED and job.attempts == 0
    claimed = jobs.claim_next()
    assert claimed.job_id == "e1" and claimed.status == RUNNING and claimed.attempts == 1
    assert jobs.claim_next() is None  # one runner, one job at a time
    assert jobs.finish(claimed, status=SUCCEEDED, message="done", result={"value": [1]},
                       artifacts={"model:x": b"\x00\x01"})
    done = jobs.get("evaluation", "e1")
    assert done.status == SUCCEEDED and done.result == {"value": [1]}
    assert done.finished_at > done.started_at > done.created_at
    assert jobs.artifact(done, "model:x") == b"\x00\x01"
    assert jobs.artifact(done, "model:y") is None


def test_creation_is_idempotent_for_the_same_request_only(jobs):
    first, _ = jobs.create("evaluation", "e1", name="n", request={"a": 1, "b": [2]})
    again, created = jobs.create("evaluation", "e1", name="n", request={"b": [2], "a": 1})
    assert not created and again.row == first.row
    with pytest.raises(JobExistsError, match="'e1' exists with another request"):
        jobs.create("evaluation", "e1", name="n", request={"a": 2})
    # the same id is free in the other kind
    assert jobs.create("featureImportance", "e1", name="n", request={"a": 2})[1]
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        jobs.get("evaluations", "e1")


def test_pages_filter_and_count(jobs):
    for i in range(5):
        jobs.create("evaluation", f"e{i}", name=f"n{i}", request={"i": i},
                    job_type="Auto" if i % 2 else "Manual")
    page, total = jobs.page("evaluation", skip=1, top=2)
    assert [j.job_id for j in page] == ["e1", "e2"] and total == 5
    assert all(j.result is None for j in page)
    autos, total = jobs.page("evaluation", skip=0, top=10, job_type="Auto")
    assert [j.job_id for j in autos] == ["e1", "e3"] and total == 2
    assert jobs.page("evaluation", skip=0, top=10, status=RUNNING) == ([], 0)


def test_a_job_deleted_while_running_keeps_nothing(jobs):
    jobs.create("evaluation", "e1", name="n", request={})
    claimed = jobs.claim_next()
    assert jobs.delete("evaluation", "e1") and not jobs.delete("evaluation", "e1")
    assert not jobs.finish(claimed, status=SUCCEEDED, message="", result={},
                           artifacts={"m": b"1"})
    assert jobs.get("evaluation", "e1") is None


def test_recovery_requeues_then_fails_an_interrupted_job(jobs):
    jobs.create("evaluation", "e1", name="n", request={})
    first = jobs.claim_next()
    (requeued,) = jobs.recover(max_attempts=2)
    assert requeued.status == NOT_SUBMITTED and "during attempt 1" in requeued.message
    second = jobs.claim_next()
    assert second.attempts == 2
    # The first runner, alive after all, finishes late: the second attempt's job stays.
    assert not jobs.finish(first, status=SUCCEEDED, message="late", result={})
    assert jobs.get("evaluation", "e1").status == RUNNING
    (failed,) = jobs.recover(max_attempts=2)
    assert failed.status == FAILED and "each of its 2 attempts" in failed.message
    assert jobs.claim_next() is None and jobs.recover(max_attempts=2) == []


@pytest.mark.slow  # PostgreSQL
def test_hosts_claim_each_job_once(postgres_url):
    import threading

    hosts = [PostgresJobStore.open(postgres_url) for _ in range(2)]
    try:
        for i in range(12):
            hosts[0].create("evaluation", f"e{i}", name="n", request={"i": i})
        # A claim under way on one host holds its row: the other host takes the next
        # job at once instead of waiting for it.
        with hosts[0].database.transaction(exclusive=False) as db:
            held = db.execute("SELECT job_id FROM jobs ORDER BY rowid_ LIMIT 1 "
                              "FOR UPDATE").fetchone()[0]
            assert hosts[1].claim_next(where="b").job_id == "e1" != held
        claimed: list[str] = ["e1"]
        lock = threading.Lock()

        def runner(store: PostgresJobStore) -> None:
            while (job := store.claim_next()) is not None:
                with lock:
                    claimed.append(job.job_id)

        threads = [threading.Thread(target=runner, args=(hosts[i % 2],)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(claimed) == sorted(f"e{i}" for i in range(12))  # each exactly once
        assert {j.attempts for j in hosts[1].page("evaluation", skip=0, top=20)[0]} == {1}
    finally:
        for store in hosts:
            store.close()
