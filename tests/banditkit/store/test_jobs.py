"""The job store: the queue's states, idempotent creation, recovery after a stop."""

import pytest

from banditkit.errors import InvalidInputError
from banditkit.store.jobs import (
    FAILED,
    NOT_SUBMITTED,
    RUNNING,
    SUCCEEDED,
    JobExistsError,
    SQLiteJobStore,
)


@pytest.fixture
def jobs(tmp_path):
    now = iter(float(t) for t in range(1000, 2000))
    store = SQLiteJobStore.open(tmp_path / "banditkit.sqlite3", clock=lambda: next(now))
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
    jobs.claim_next()
    (requeued,) = jobs.recover(max_attempts=2)
    assert requeued.status == NOT_SUBMITTED and "during attempt 1" in requeued.message
    assert jobs.claim_next().attempts == 2
    (failed,) = jobs.recover(max_attempts=2)
    assert failed.status == FAILED and "each of its 2 attempts" in failed.message
    assert jobs.claim_next() is None and jobs.recover(max_attempts=2) == []
