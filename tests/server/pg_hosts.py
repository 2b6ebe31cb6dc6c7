"""Several ``banditkit serve`` hosts on one PostgreSQL store, for the multi-host tests.

A host is a ``banditkit serve`` process group with a data directory of its own
(journals, claims) and the database (keys too) and ``--log-dir`` it shares with
the others. :class:`Load` drives Personalizer's routes through all live hosts
from threads, each decision ranked on one host and rewarded on the next,
recording what was acknowledged and what was in flight when a host died, so a
test can count every acknowledged decision and reward in the joined log.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from banditkit.eventlog import read_events
from tests.server.conftest import make_keys
from tests.server.test_serve import ACTIONS, CONTEXT, RANK, Served, serve

__all__ = ["Host", "Load", "check_joined_once", "gauge", "joined_events", "lease_holder",
           "new_host", "start_host"]


@dataclass
class Host:
    """One serving host: its data directory, its server and a client and an analyst key of
    its key store."""

    name: str
    data_dir: Path
    key: str
    analyst_key: str = ""
    served: Served | None = None

    @property
    def url(self) -> str:
        assert self.served is not None
        return self.served.url


def start_host(host: Host, log: Path, database_url: str, log_dir: Path, *args: str) -> Host:
    """(Re)start ``banditkit serve`` for ``host`` on the shared database and log folder."""
    host.served = serve(host.data_dir, log, "--database-url", database_url,
                        "--log-dir", str(log_dir), *args)
    return host


def new_host(tmp_path: Path, name: str, database_url: str) -> Host:
    """A host with its own data directory and keys in the key store every host shares."""
    data_dir = tmp_path / name
    keys = make_keys(data_dir, database_url=database_url)
    return Host(name=name, data_dir=data_dir, key=keys["client"], analyst_key=keys["analyst"])


def joined_events(log_dir: Path) -> list:
    """Every joined single-slot event of the shared log folder."""
    logs = log_dir / "logs"
    return list(read_events([logs])) if logs.exists() else []


def gauge(url: str, name: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    return float(re.search(rf"^{name} (\S+)$", text, re.MULTILINE).group(1))


def lease_holder(database_url: str) -> tuple[int, int] | None:
    """``(epoch, pid)`` of the learner that took the learner lease last, or None."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT epoch, holder FROM banditkit.learner_epoch").fetchone()
    return None if row is None else (int(row[0]), int(row[1].rsplit(":", 1)[1]))


@dataclass
class Load:
    """Rank on one live host and reward on the next, from ``threads`` threads, until stopped.

    ``acknowledged`` maps each event id whose rank answered 201 to its host
    (``acknowledged_at``: to when);
    ``rewards`` the rewards answered 204 to their values. Calls that failed
    (the host died or stalled) are counted in ``failures`` by kind and their
    event ids kept in ``in_flight``: they may or may not have been recorded.
    """

    hosts: list[Host]
    prefix: str
    threads: int = 2
    pause_seconds: float = 0.005
    acknowledged: dict[str, str] = field(default_factory=dict)
    acknowledged_at: dict[str, float] = field(default_factory=dict)  # time.monotonic()
    rewards: dict[str, float] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    failures: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for number in range(self.threads):
            worker = threading.Thread(target=self._run, args=(number,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def use(self, hosts: list[Host]) -> None:
        """Send the next calls to these hosts only (before one is killed)."""
        self.hosts = list(hosts)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, number: int) -> None:
        count = 0
        while not self._stop.is_set():
            hosts = self.hosts
            ranker, rewarder = hosts[count % len(hosts)], hosts[(count + 1) % len(hosts)]
            event_id = f"{self.prefix}-{number}-{count}"
            value = (count % 4) / 4
            count += 1
            if self._call("rank", ranker, RANK, event_id, {
                    "contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": event_id}, 201):
                with self._lock:
                    self.acknowledged[event_id] = ranker.name
                    self.acknowledged_at[event_id] = time.monotonic()
                if self._call("reward", rewarder,
                              f"/personalizer/v1.0/events/{event_id}/reward",
                              event_id, {"value": value}, 204):
                    with self._lock:
                        self.rewards[event_id] = value
            self._stop.wait(self.pause_seconds)

    def _call(self, kind: str, host: Host, path: str, event_id: str, body: dict,
              status: int) -> bool:
        started = time.monotonic()
        try:
            response = requests.post(host.url + path, json=body, timeout=10,
                                     headers={"Ocp-Apim-Subscription-Key": host.key})
            answered = response.status_code == status
        except requests.RequestException:
            answered = False
        with self._lock:
            if answered:
                self.latencies.append(time.monotonic() - started)
            else:
                self.failures[kind] += 1
                self.in_flight.add(event_id)
        return answered


def check_joined_once(load: Load, log_dir: Path) -> Counter:
    """Assert every acknowledged decision is in the log once with its acknowledged reward,
    and nothing else but calls in flight when a host died; returns the counts."""
    events = joined_events(log_dir)
    counts = Counter(event.event_id for event in events)
    ours = {event_id: n for event_id, n in counts.items() if event_id.startswith(load.prefix)}
    assert set(load.acknowledged) <= set(ours), sorted(set(load.acknowledged) - set(ours))[:10]
    assert set(ours) - set(load.acknowledged) <= load.in_flight
    assert max(ours.values()) == 1, [e for e, n in ours.items() if n > 1][:10]
    by_id = {event.event_id: event.reward for event in events}
    wrong = {e: (v, by_id[e]) for e, v in load.rewards.items()
             if e not in load.in_flight and by_id[e] != v}
    assert not wrong, list(wrong.items())[:10]
    return Counter(ours)
