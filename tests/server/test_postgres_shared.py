"""Two ``banditkit serve`` hosts on one PostgreSQL database share the catalogue, the API
keys and the evaluation jobs, for real.

Each host has its own data directory; nothing of these lives there. A key made
with ``banditkit keys --database-url`` on a third machine works on both; a
marketer's upload on host A is served and ranked by host B, and a change on A
reaches B's ranking within the catalogue's refresh; an evaluation queued on A
is seen on B and run once, by the learner lease's holder.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from banditkit.engine import Engine
from banditkit.settings import LoopSettings
from banditkit.store.jobs import PostgresJobStore
from banditkit.vw import VWLearner
from simulator.learnerlog import write_learner_log
from simulator.world import ArtworkWorld
from tests.server.test_catalogue_helpers import poster
from tests.server.test_serve import kill, serve, wait_until

pytestmark = pytest.mark.slow  # two real gunicorn servers and PostgreSQL

# 300 decisions one second apart from 2023-11-14T22:13:20Z, in both hosts' logs: the
# evaluation reads the log of whichever host holds the learner lease.
START, END = "2023-11-14T00:00:00Z", "2023-11-15T00:00:00Z"
V = "?api-version=2022-09-01-preview"


def _key(url: str, data_dir: Path, role: str) -> str:
    from cli import main

    created = CliRunner().invoke(main, ["keys", "create", "--role", role, "--data-dir",
                                        str(data_dir), "--database-url", url])
    assert created.exit_code == 0, created.output
    return created.stdout.strip()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, postgres_server):
    """Hosts ``a`` and ``b`` (their URLs), the database URL, keys made by the CLI
    elsewhere, and the hosts' data directories."""
    folder = tmp_path_factory.mktemp("shared")
    url = postgres_server.create_database()
    dirs = {name: folder / name for name in ("a", "b")}
    world = ArtworkWorld.generate(seed=0, n_members=200, n_titles=10, n_variants=3)
    for data_dir in dirs.values():
        write_learner_log(world, VWLearner(args="--cb_explore_adf --epsilon 0.2 -q ::"),
                          data_dir / "logs" / "dt=2023-11-14" / "events.dsjson",
                          n_rounds=300, seed=1, seconds_between=1.0)
    Engine.open(dirs["a"], settings=LoopSettings(model_update_seconds=0.0),
                database_url=url).close()
    keys = {role: _key(url, folder / "ops-laptop", role) for role in ("marketer", "client",
                                                                      "analyst")}
    served = {}
    try:
        for name, data_dir in dirs.items():
            served[name] = serve(data_dir, folder / f"{name}.log", "--database-url", url)
        yield {name: s.url for name, s in served.items()}, url, keys, served
    finally:
        for host in served.values():
            kill(host)


def _headers(key: str) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": key}


def _upload(url: str, key: str, title_id: str, seed: int) -> dict:
    response = requests.post(f"{url}/v1/catalogue/titles/{title_id}/variants",
                             files={"file": (f"{seed}.jpg", io.BytesIO(poster(seed)),
                                             "image/jpeg")},
                             headers=_headers(key), timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def _ranked(url: str, key: str, title_id: str) -> str:
    response = requests.post(f"{url}/v1/artwork/rank", json={"titles": [title_id]},
                             headers=_headers(key), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["results"][0]["variantId"]


def test_a_key_made_by_the_cli_works_on_every_host(hosts) -> None:
    urls, _, keys, _ = hosts
    for url in urls.values():
        titles = requests.get(f"{url}/v1/catalogue/titles", headers=_headers(keys["marketer"]),
                              timeout=10)
        assert titles.status_code == 200, titles.text
        refused = requests.get(f"{url}/v1/catalogue/titles",
                               headers=_headers(keys["marketer"] + "x"), timeout=10)
        assert refused.status_code == 401


def test_an_upload_on_one_host_is_served_and_ranked_by_the_other(hosts) -> None:
    urls, _, keys, _ = hosts
    marketer, client = keys["marketer"], keys["client"]
    created = requests.post(f"{urls['a']}/v1/catalogue/titles",
                            json={"id": "dark", "genres": ["drama"]},
                            headers=_headers(marketer), timeout=10)
    assert created.status_code == 201, created.text
    first = _upload(urls["a"], marketer, "dark", 1)
    image = requests.get(urls["b"] + first["imageUrl"], timeout=10)  # B never saw the file
    assert image.status_code == 200 and image.content == poster(1)
    assert image.headers["Content-Type"] == "image/jpeg"
    assert _ranked(urls["b"], client, "dark") == first["id"]
    # A swaps the artwork: B's ranking follows within the catalogue's refresh.
    second = _upload(urls["a"], marketer, "dark", 2)
    switched = requests.patch(f"{urls['a']}/v1/catalogue/titles/dark/variants/{first['id']}",
                              json={"active": False}, headers=_headers(marketer), timeout=10)
    assert switched.status_code == 200, switched.text
    started = time.monotonic()
    wait_until(lambda: all(_ranked(urls["b"], client, "dark") == second["id"]
                           for _ in range(4)),  # both workers, whichever answers
               seconds=10, what="host B to rank the variant uploaded on host A")
    print(f"host B ranked host A's change after {time.monotonic() - started:.2f} s")


def test_an_evaluation_queued_on_one_host_runs_once_and_shows_on_both(hosts) -> None:
    urls, url, keys, served = hosts
    analyst = _headers(keys["analyst"])
    path = "/personalizer/evaluations/shared"
    queued = requests.put(f"{urls['a']}{path}{V}", headers=analyst, timeout=10,
                          json={"name": "shared", "startTime": START, "endTime": END})
    assert queued.status_code == 200, queued.text
    seen = requests.get(f"{urls['b']}{path}{V}", headers=analyst, timeout=10)
    assert seen.status_code == 200 and seen.json()["name"] == "shared"

    def status() -> str:
        return requests.get(f"{urls['b']}{path}{V}", headers=analyst,
                            timeout=10).json()["status"]

    wait_until(lambda: status() in ("Succeeded", "Failed"), seconds=60,
               what="the evaluation to run")
    assert status() == "Succeeded"
    on_a = requests.get(f"{urls['a']}{path}{V}", headers=analyst, timeout=10).json()
    on_b = requests.get(f"{urls['b']}{path}{V}", headers=analyst, timeout=10).json()
    assert on_a == on_b
    jobs = PostgresJobStore.open(url)
    try:
        assert jobs.get("evaluation", "shared").attempts == 1
    finally:
        jobs.close()
    started = [line for host in served.values()
               for line in host.log_path.read_text().splitlines()
               if '"job started"' in line and json.loads(line).get("id") == "shared"]
    assert len(started) == 1, started
