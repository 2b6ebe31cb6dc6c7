"""Two hosts on one PostgreSQL database: rank on one, reward on the other, one learner.

Run it with ``BANDITKIT_DATABASE_URL=postgresql://USER@HOST:PORT/DATABASE python
examples/postgres_hosts.py``, the URL of an empty database you own (without
one it says how to make one).

It starts two ``banditkit serve`` hosts as an operator deploys them (the
"Deploying N hosts" section of docs/operations.md): the same database, a data
directory each, one shared ``--log-dir``. A client key made with ``banditkit
keys create --database-url`` on host A works on host B too, since keys live in
the database. Personalizer decisions ranked on host A are rewarded on host B
and the reverse; the one learner across hosts (the holder of the store's
learner lease) joins them into the shared log, and both hosts then rank with
the model it published. It prints which host's learner holds the lease (from
each host's ``/metrics``), how many decisions the shared log holds, and the
model version each host ranks with; then a poster uploaded on host A is
ranked and served by host B (the catalogue is in the database too). Running it
again on the same database works: it adds to what is there.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from _local import call, exchange, joined_lines, local_server, upload
from PIL import Image

GUIDANCE = """\
This example needs a PostgreSQL database: set BANDITKIT_DATABASE_URL to the URL of an
empty database you own, postgresql://USER@HOST:PORT/DATABASE (with :PASSWORD after
USER if it needs one). On Debian or Ubuntu: `sudo apt install postgresql`, then
`sudo -u postgres createuser --createdb $USER` and `createdb banditkit`, and run
BANDITKIT_DATABASE_URL=postgresql:///banditkit python examples/postgres_hosts.py
(no host: the local server's socket, as you)."""

CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}, {"hour": 21}]
ACTIONS = [{"id": f"{theme}-poster", "features": [{"Artwork": {"theme": theme}}]}
           for theme in ("romance", "action", "comedy")]
N_EACH_WAY = 20
VERSION_HEADER = "X-Banditkit-Model-Version"

database_url = os.environ.get("BANDITKIT_DATABASE_URL", "")
if not database_url:
    print(GUIDANCE, file=sys.stderr)
    sys.exit(2)


def rank(host_url: str, key: str) -> tuple[dict, str]:
    """A Personalizer rank on ``host_url``: the answer and the model version it used."""
    answer, headers = exchange("POST", f"{host_url}/personalizer/v1.0/rank", key,
                               {"contextFeatures": CONTEXT, "actions": ACTIONS})
    return answer, headers[VERSION_HEADER]


def artwork_rank(host_url: str, key: str, title: str, seconds: float = 10.0) -> dict:
    """The poster ``host_url`` shows for ``title``, once that host's catalogue cache has it
    (a title created on another host is ranked within about 1 s)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call("POST", f"{host_url}/v1/artwork/rank", key, {
                "context": {"Member": {"country": "BR", "device": "tv"}},
                "titles": [title]})["results"][0]
        except RuntimeError:  # 404 naming the title, until the cache is refreshed
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def learner_events(host_url: str) -> float:
    """``banditkit_learner_events_total`` on a host's ``/metrics``: events its learner joined."""
    with urllib.request.urlopen(f"{host_url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return sum(float(line.split()[1]) for line in text.splitlines()
               if line.startswith("banditkit_learner_events_total"))


with tempfile.TemporaryDirectory(prefix="banditkit-example-logs-") as shared:
    # The shared folder stands for the volume every host mounts (NFS in production).
    host = {"database_url": database_url, "serve_args": ("--log-dir", shared)}
    with local_server("client", "marketer", **host) as a, local_server(**host) as b:
        hosts = {"A": a.url, "B": b.url}
        # Keys made for host A are kept in the database: host B takes them too.
        key, marketer = a.keys["client"], a.keys["marketer"]
        print(f"host A on {a.url}, host B on {b.url}, one database, log folder {shared}")

        # Rank on one host, reward on the other: a member's page and its play need
        # not reach the same host.
        plays = 0
        first_version = ""
        for ranker, rewarder in (("A", "B"), ("B", "A")):
            for _ in range(N_EACH_WAY):
                answer, version = rank(hosts[ranker], key)
                first_version = first_version or version
                value = 1.0 if answer["rewardActionId"] == "comedy-poster" else 0.0
                call("POST", f"{hosts[rewarder]}/personalizer/v1.0/events/"
                     f"{answer['eventId']}/reward", key, {"value": value})
                plays += value == 1.0
        print(f"{2 * N_EACH_WAY} decisions: {N_EACH_WAY} ranked on A and rewarded on B, "
              f"{N_EACH_WAY} the reverse ({plays} plays)")

        # The lease holder's learner joins every host's decisions into the shared log.
        logs = Path(shared) / "logs"
        joined = joined_lines(logs, 2 * N_EACH_WAY)
        event_ids = {json.loads(line)["EventId"] for path in logs.rglob("*.dsjson")
                     for line in path.read_text().splitlines()}
        print(f"shared log: {joined} joined decisions, {len(event_ids)} distinct event ids")

        # Only the lease holder's learner joins; the other ships its host's journals.
        deadline = time.monotonic() + 10
        while True:
            counted = {name: learner_events(url) for name, url in hosts.items()}
            if sum(counted.values()) >= joined or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        holders = [name for name, events in counted.items() if events > 0]
        print("events joined by each host's learner (/metrics): "
              + ", ".join(f"host {name} {events:.0f}" for name, events in counted.items()))
        print(f"learner lease held by: host {' and host '.join(holders) or 'none'}")

        # Every worker of every host looks for a newer model every second.
        deadline = time.monotonic() + 15
        while True:
            versions = {name: rank(url, key)[1] for name, url in hosts.items()}
            published = int(versions["A"]) > int(first_version)
            if (published and len(set(versions.values())) == 1) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(f"model version before learning: {first_version}; after the learner published: "
              f"host A ranks with {versions['A']}, host B with {versions['B']}")

        # The catalogue is shared too: a poster uploaded on A is ranked and served by B.
        catalogue = f"{a.url}/v1/catalogue/titles"
        title = f"hosts-demo-{uuid.uuid4().hex[:8]}"  # a new one each run: the database stays
        call("POST", catalogue, marketer, {"id": title, "genres": ["drama"]})
        buffer = io.BytesIO()
        Image.new("RGB", (200, 300), (200, 60, 40)).save(buffer, "JPEG", quality=85)
        uploaded = upload(f"{catalogue}/{title}/variants", marketer, "red.jpg",
                          buffer.getvalue())
        shown = artwork_rank(b.url, key, title)
        with urllib.request.urlopen(b.url + shown["imageUrl"], timeout=30) as image:
            same = image.read() == buffer.getvalue()
        print(f"poster uploaded on host A, ranked on host B: "
              f"{'the same variant' if shown['variantId'] == uploaded['id'] else 'another'}, "
              f"its image served by B {'byte for byte' if same else 'CHANGED'}")
