"""A real PostgreSQL server for the tests: one per session, a fresh database per test.

``postgres_server`` runs ``initdb`` and ``pg_ctl start`` in a temporary folder on
a free loopback port (as an unprivileged user when the tests run as root:
PostgreSQL refuses root) and stops it at the end of the session.
``database_url`` is parametrised over both stores: None (SQLite, the
embedded default) and the URL of the session's test database, emptied of
every schema before the test (``CREATE DATABASE`` takes 1-2 s on a busy
2-core machine, dropping the schemas a few milliseconds;
:meth:`PostgresServer.create_database` gives a whole fresh database where a
test needs one of its own). Without PostgreSQL's binaries the PostgreSQL cases fail
in CI (``$CI`` set) naming what to install, and are skipped, with that
reason, elsewhere.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "database_url", "find_binaries", "postgres_server", "postgres_url"]

_USER = "banditkit"
_counter = itertools.count()


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's versioned folder."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """A PostgreSQL cluster in ``folder``, listening on ``127.0.0.1:port``.

    Parameters
    ----------
    bin_dir : path
        Where initdb and pg_ctl are.
    folder : path
        An empty folder for the cluster, its socket and its log.
    """

    def __init__(self, *, bin_dir: Path, folder: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.port = _free_port()
        self.test_url = ""  # the session's test database (postgres_server makes it)
        # PostgreSQL refuses to run as root: the server runs as an unprivileged user.
        self._as = [] if os.geteuid() != 0 else ["runuser", "-u", _server_user(), "--"]

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True,
                                check=False, timeout=120)
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}{tail}")

    def start(self) -> None:
        if self._as:
            user = pwd.getpwnam(self._as[2])
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        data = self.folder / "data"
        self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-U", _USER, "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        self.resume()

    def resume(self) -> None:
        """Start the cluster made by :meth:`start` again, on the same port."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-l",
                  str(self.folder / "server.log"), "-o", options, "-w", "-t", "60", "start")

    def pause(self) -> None:
        """Stop the server as an operator would (``-m fast``: sessions are ended), keeping
        its data for :meth:`resume`."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                  "-w", "stop")

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m",
                  "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database (a copy of the template); returns its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def emptied(self, url: str) -> str:
        """``url`` after dropping every schema its database holds but PostgreSQL's own."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            schemas = [row[0] for row in connection.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname NOT IN ('information_schema', 'public')")]
            for schema in schemas:
                connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        return url


def _server_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_binaries()
    if bin_dir is None:
        message = ("PostgreSQL's initdb and pg_ctl are missing: install Debian's postgresql "
                   "package (.ci/run does)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="banditkit-pg-"))
    server = PostgresServer(bin_dir=bin_dir, folder=folder)
    try:
        server.start()
        server.test_url = server.create_database()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of the session's test database, holding no schema of a previous test.

    Every PostgreSQL store the test opened in this process is closed at its
    end: a pool left to the garbage collector may be collected on one of its
    own threads, which it cannot join.
    """
    from banditkit.store import PostgresStore

    opened: list[PostgresStore] = []
    open_store = PostgresStore.open.__func__

    def recording_open(cls: type[PostgresStore], *args: object, **kwargs: object
                       ) -> PostgresStore:
        store = open_store(cls, *args, **kwargs)
        opened.append(store)
        return store

    monkeypatch.setattr(PostgresStore, "open", classmethod(recording_open))
    yield postgres_server.emptied(postgres_server.test_url)
    for store in opened:
        store.close()
    gc.collect()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn: None (SQLite in the data directory), then a fresh PostgreSQL
    database's URL (a slow case: it needs the session's server)."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")
