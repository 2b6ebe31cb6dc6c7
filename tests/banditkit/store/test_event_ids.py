"""The Bloom filter that spares the duplicate check its SQLite read: never a miss."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys

import pytest
from scipy.stats import binom

from banditkit.errors import DuplicateEventError
from banditkit.store import PendingEvent, Store
from banditkit.store.event_ids import _CATCH_UP_ROWS, _PROBES, ChangeToken, StoredIdFilter


def _store(tmp_path) -> Store:
    return Store(path=tmp_path / "banditkit.sqlite3")


def _stored(store: Store, ids: list[str]) -> None:
    """Decisions recorded and ingested, as another process's would be."""
    store.insert_events([PendingEvent(i, 1.0, False, None, "{}") for i in ids], fresh_ids=True)
    store.ingest()


def _filter(store: Store, **kwargs) -> tuple[StoredIdFilter, sqlite3.Connection]:
    db = sqlite3.connect(store.path, isolation_level=None)
    return StoredIdFilter(token=ChangeToken(path=store._events_token.path), **kwargs), db


def _false_positive_bound(n_stored: int, n_bits: int, n_asked: int) -> float:
    """False positives of a Bloom filter exceeded once in 10^9 runs (binomial tail).

    Python's str hash is seeded per process, so which ids collide differs per run.
    """
    p = (1 - math.exp(-_PROBES * n_stored / n_bits)) ** _PROBES
    return float(binom.isf(1e-9, n_asked, p))


def test_every_stored_id_is_a_candidate_and_few_new_ones_are(tmp_path):
    store = _store(tmp_path)
    stored = [f"s{i}" for i in range(1500)]
    _stored(store, stored)
    ids, db = _filter(store, min_capacity=1000)  # loaded: about 18 false positives expected
    assert _candidates(ids, db, stored) == stored
    new = [f"n{i}" for i in range(50_000)]
    n_bits = 8 * len(ids._bits)
    assert len(_candidates(ids, db, new)) <= _false_positive_bound(1500, n_bits, 50_000)


def test_an_id_another_process_stored_is_refused_at_once(tmp_path):
    mine, theirs = _store(tmp_path), _store(tmp_path)
    mine.insert_events([PendingEvent("mine", 1.0, False, None, "{}")])  # the filter is built
    _stored(theirs, ["theirs"])
    with pytest.raises(DuplicateEventError, match="'theirs' was already used"):
        mine.insert_events([PendingEvent("theirs", 2.0, False, None, "{}")])


def test_a_large_table_is_read_in_steps_and_every_id_asks_sqlite_meanwhile(tmp_path):
    store = _store(tmp_path)
    stored = [f"s{i}" for i in range(2 * _CATCH_UP_ROWS + 10)]
    _stored(store, stored)
    ids, db = _filter(store)
    new = [f"n{i}" for i in range(100)]
    for _ in range(2):  # two full steps
        assert _candidates(ids, db, new) == new
    assert len(_candidates(ids, db, new)) < len(new)  # the last 10 rows: complete
    assert _candidates(ids, db, stored) == stored


def test_an_id_another_os_process_stored_is_refused_at_once(tmp_path):
    mine = _store(tmp_path)
    mine.insert_events([PendingEvent("mine", 1.0, False, None, "{}")])
    child = (
        "import sys\n"
        "from banditkit.store import PendingEvent, Store\n"
        "store = Store(path=sys.argv[1])\n"
        "store.insert_events([PendingEvent('child', 1.0, False, None, '{}')])\n"
        "store.ingest()\n")
    subprocess.run([sys.executable, "-c", child, str(mine.path)], check=True, timeout=60)
    with pytest.raises(DuplicateEventError, match="'child' was already used"):
        mine.insert_events([PendingEvent("child", 2.0, False, None, "{}")])


@pytest.mark.parametrize("refilled", [10, 150])
def test_rowids_reused_after_the_table_was_emptied_are_read(tmp_path, refilled):
    """Below or past the newest rowid the filter read, the new rows are found."""
    mine, theirs = _store(tmp_path), _store(tmp_path)
    _stored(theirs, [f"old{i}" for i in range(100)])
    mine.insert_events([PendingEvent("probe", 1.0, False, None, "{}")])
    theirs._db.execute("DELETE FROM events")  # retention dropped every event
    _stored(theirs, [f"new{i}" for i in range(refilled)])
    with pytest.raises(DuplicateEventError, match="'new3' was already used"):
        mine.insert_events([PendingEvent("new3", 2.0, False, None, "{}")])


def test_the_filter_grows_past_its_capacity_and_misses_nothing(tmp_path):
    store = _store(tmp_path)
    _stored(store, [f"a{i}" for i in range(500)])
    ids, db = _filter(store, min_capacity=1000)
    _candidates(ids, db, ["x"])
    small = len(ids._bits)
    grown = [f"b{i}" for i in range(1600)]
    _stored(store, grown)
    assert _candidates(ids, db, ["x"]) == ["x"]  # reads the 1600 rows: past capacity
    assert _candidates(ids, db, ["x"]) == ["x"]  # starts over, sized for the table,
    assert len(ids._bits) > small                      # and reads its first 2000 rows
    _candidates(ids, db, ["x"])  # the last 100: complete
    everything = [f"a{i}" for i in range(500)] + grown
    assert _candidates(ids, db, everything) == everything
    new = [f"n{i}" for i in range(20_000)]
    bound = _false_positive_bound(len(everything), 8 * len(ids._bits), len(new))
    assert len(_candidates(ids, db, new)) <= bound


def test_a_change_token_is_shared_through_its_file(tmp_path):
    writer, reader = ChangeToken(path=tmp_path / "t"), ChangeToken(path=tmp_path / "t")
    before = reader.read()
    writer.change()
    assert reader.read() != before and reader.read() == writer.read()


def _candidates(ids: StoredIdFilter, db: sqlite3.Connection, event_ids: list[str]) -> list[str]:
    """What a store asks of its filter before a decision: catch up if stale, then filter."""
    if ids.stale():
        ids.catch_up(db)
    return ids.maybe(event_ids)
