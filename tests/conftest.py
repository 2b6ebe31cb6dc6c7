"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from tests.postgres_fixture import (  # noqa: F401 - fixtures of every test package
    database_url,
    postgres_server,
    postgres_url,
)


class FakeClock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session, one JVM, for the whole run (modest memory: shared machines)."""
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("banditkit-tests")
               .config("spark.driver.memory", "512m").config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    yield session
    session.stop()


def write_partitioned_log(root, *, n_events: int, days: int, seed: int):
    """A simulated joined dsjson log in ``root/dt=YYYY-MM-DD/events.dsjson`` partitions,
    written by banditkit's own log writer; returns the ``WorldLog``."""
    import json

    from banditkit.eventlog import EventLogWriter
    from simulator.world import ArtworkWorld
    from simulator.worldlog import sample_log, taste_policy, write_world_log

    world = ArtworkWorld.generate(seed=seed, n_members=200, n_titles=15)
    log = sample_log(world, taste_policy(world, sharpness=4.0, epsilon=0.2),
                     n_rounds=n_events, seed=seed + 1)
    flat = write_world_log(log, root.parent / f"{root.name}-flat.dsjson",
                           seconds_between=days * 86_400 / n_events)
    lines = flat.read_text(encoding="utf-8").splitlines()
    flat.unlink()
    EventLogWriter(root=root, fsync=False).append(
        (json.loads(line)["Timestamp"], line) for line in lines)
    return log


@pytest.fixture(scope="session")
def partitioned_log(tmp_path_factory):
    """1,200 joined events over 4 date partitions (read-only: copy before changing it)."""
    root = tmp_path_factory.mktemp("partitioned") / "logs"
    write_partitioned_log(root, n_events=1200, days=3, seed=3)
    return root
