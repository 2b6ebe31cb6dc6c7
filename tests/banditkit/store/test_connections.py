"""Per-thread SQLite connections: a server that starts a thread per request keeps
its file handles bounded (the threads that ended give theirs back)."""

from __future__ import annotations

import os
import threading

from banditkit.store import ThreadConnections


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_threads_that_ended_give_their_connections_back(tmp_path):
    connections = ThreadConnections(path=tmp_path / "t.sqlite3",
                                    schema="CREATE TABLE IF NOT EXISTS t (x);")
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
