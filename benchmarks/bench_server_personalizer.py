"""Requests/s and latency of ``POST /personalizer/v1.0/rank`` vs a bare Flask JSON endpoint.

Both apps are served the same way (werkzeug's threaded server, or gunicorn
with ``--server gunicorn`` when installed), each in its own process on a
loopback port, and driven by the same closed-loop load generator (keep-alive
sessions in threads, a bounded number of requests). The rank request carries
one member context and 8 artwork variants, the size of one title's decision
(docs/architecture.md §8); the bare endpoint parses the same body and returns a JSON
object of the same shape, so the ratio is the cost of banditkit's server path:
auth, validation, feature conversion, the engine's rank and its durable log.

Prints one JSON line per target and a summary line with the ratio
(goal: >= 0.6).

    python benchmarks/bench_server_personalizer.py [--requests 3000] [--concurrency 8] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]

BARE_APP = '''
from flask import Flask, request

def create_app():
    app = Flask(__name__)

    @app.post("/bare")
    def bare():
        body = request.get_json()
        actions = body["actions"]
        return {"eventId": "e", "rewardActionId": actions[0]["id"],
                "ranking": [{"id": a["id"], "probability": 1 / len(actions)} for a in actions]}, 201

    return app
'''

WERKZEUG_RUNNER = '''
import sys
from werkzeug.serving import make_server
sys.path.insert(0, sys.argv[2])
module, factory = sys.argv[1].split(":")
app = getattr(__import__(module), factory)()
server = make_server("127.0.0.1", int(sys.argv[3]), app, threaded=True)
print("ready", flush=True)
server.serve_forever()
'''


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per target")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--server", choices=["werkzeug", "gunicorn"], default="werkzeug")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="200 requests, 2 threads")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(target: str, path: Path, env: dict, args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if args.server == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "--threads",
                   str(args.concurrency), "-b", f"127.0.0.1:{port}", "--chdir", str(path),
                   f"{target}()"]
    else:
        command = [sys.executable, "-c", WERKZEUG_RUNNER, target, str(path), str(port)]
    process = subprocess.Popen(command, cwd=path, env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/", timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{target} did not start")


def make_bodies(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    countries, devices = ["BR", "US", "FR", "IN", "JP"], ["tv", "phone", "web"]
    themes = ["romance", "action", "comedy", "drama", "horror", "family", "crime", "scifi"]
    return [{
        "contextFeatures": [{"Member": {"country": str(rng.choice(countries)),
                                        "device": str(rng.choice(devices)),
                                        "hour": int(rng.integers(24))}}],
        "actions": [{"id": f"v{i}", "features": [{"Artwork": {
            "theme": themes[i], "brightness": float(rng.random()), "faces": int(rng.integers(4)),
        }}]} for i in range(8)],
    } for _ in range(n)]


def drive(url: str, headers: dict, bodies: list[dict], concurrency: int) -> dict:
    """Closed loop: each thread sends its share of the bodies back to back."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker(chunk: list[dict]) -> None:
        nonlocal errors
        session = requests.Session()
        own, failed = [], 0
        for body in chunk:
            started = time.perf_counter()
            response = session.post(url, json=body, headers=headers, timeout=30)
            own.append(time.perf_counter() - started)
            failed += response.status_code != 201
        with lock:
            latencies.extend(own)
            errors += failed

    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    seconds = np.array(latencies)
    return {"requests": len(bodies), "errors": errors, "rps": len(bodies) / elapsed,
            "p50_ms": float(np.percentile(seconds, 50) * 1000),
            "p99_ms": float(np.percentile(seconds, 99) * 1000)}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("flask", "werkzeug", "vowpal-wabbit-next", "gunicorn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.smoke:
        args.requests, args.concurrency = 200, 2
    bodies = make_bodies(args.requests + 100, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        (scratch_path / "bare_app.py").write_text(BARE_APP)
        data_dir = scratch_path / "data"
        sys.path.insert(0, str(ROOT))
        from serving.keys import KeyStore, default_path

        key, _ = KeyStore(path=default_path(data_dir)).create(role="client", name="bench")
        results = {}
        targets = {
            "bare_flask_json": ("bare_app:create_app", scratch_path, {}, "/bare"),
            "personalizer_rank": ("server:create_app", ROOT, {
                "BANDITKIT_ENGINE_DATA_DIR": str(data_dir),
                "PYTHONPATH": str(ROOT)}, "/personalizer/v1.0/rank"),
        }
        for name, (target, path, env, route) in targets.items():
            process, url = start(target, path, env, args)
            try:
                headers = {"Ocp-Apim-Subscription-Key": key}
                drive(url + route, headers, bodies[:100], args.concurrency)  # warm-up
                results[name] = drive(url + route, headers, bodies[100:], args.concurrency)
            finally:
                process.terminate()
                process.wait(10)
            print(json.dumps({"name": name, "server": args.server,
                              "concurrency": args.concurrency, **results[name], **versions()}))
    ratio = results["personalizer_rank"]["rps"] / results["bare_flask_json"]["rps"]
    print(json.dumps({"name": "summary", "ratio_rps": round(ratio, 3), "goal": 0.6,
                      "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
