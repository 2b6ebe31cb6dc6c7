"""ThreadConnections: one connection per thread, the schema applied as each opens; a
server that starts a thread per request keeps its file handles bounded."""

from __future__ import annotations

import os
import threading

from banditkit.rows.store import PageStore, RowStore
from banditkit.store import DecisionStore, Store, ThreadConnections

_SCHEMA = "CREATE TABLE IF NOT EXISTS t (x INTEGER);"


def test_each_thread_has_its_own_connection_opened_once(tmp_path):
    prepared = []
    connections = ThreadConnections(path=tmp_path / "sub" / "db.sqlite3", schema=_SCHEMA,
                                    prepare=prepared.append)
    mine = connections.get()
    assert connections.get() is mine
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(connections.get()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    assert prepared == [mine, theirs[0]]
    assert mine.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert mine.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
    connections.close()


def test_close_closes_every_thread_and_the_next_query_reopens(tmp_path):
    connections = ThreadConnections(path=tmp_path / "db.sqlite3", schema=_SCHEMA)
    first = connections.get()
    first.execute("INSERT INTO t VALUES (1)")
    connections.close()
    second = connections.get()
    assert second is not first
    assert second.execute("SELECT x FROM t").fetchall() == [(1,)]
    connections.close()


def test_the_sqlite_stores_implement_the_interfaces(tmp_path):
    store = Store(path=tmp_path / "banditkit.sqlite3")
    rows = RowStore(path=tmp_path / "rows.sqlite3")
    assert isinstance(store, DecisionStore)
    assert isinstance(rows, PageStore)
    rows.close()
    store.close()


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_threads_that_ended_give_their_connections_back(tmp_path):
    connections = ThreadConnections(path=tmp_path / "t.sqlite3", schema=_SCHEMA)
    connections.get().execute("INSERT INTO t VALUES (1)")

    def request() -> None:
        assert connections.get().execute("SELECT COUNT(*) FROM t").fetchone() == (1,)

    def serve(requests: int) -> None:
        for _ in range(requests):
            thread = threading.Thread(target=request)
            thread.start()
            thread.join()

    serve(5)
    before = _open_files()
    serve(200)  # 200 more threads, each with its own connection while it ran
    # Each SQLite connection holds the database file (and in WAL mode more): without
    # the ended threads' connections closed, 200 threads would hold 200 or more.
    assert _open_files() <= before + 3
    connections.close()
