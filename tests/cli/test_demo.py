"""The demo's closing lines: the commands it prints work on the data it just wrote."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from cli import main
from cli.demo import next_steps


def _commands(text: str) -> list[list[str]]:
    """The ``banditkit ...`` command lines of ``text``, without their trailing comments."""
    return [shlex.split(line.split("#")[0])[1:] for line in text.splitlines()
            if line.strip().startswith("banditkit ")]


@pytest.mark.slow
def test_the_printed_next_commands_work_on_the_demo_data(tmp_path: Path) -> None:
    from simulator.demo import run_demo

    demo_dir = tmp_path / "data" / "demo"
    result = run_demo(demo_dir, n_events=1000, seed=0)  # `banditkit demo --in-process`
    # The demo's table says what theme tags are worth on new titles (the margins
    # are tests/simulator/test_releases.py's, on the same world and seed).
    line = next(x for x in result.table().splitlines() if x.startswith("New titles"))
    rates = [float(x) for x in re.findall(r"take rate ([\d.]+) with theme tags, ([\d.]+) without",
                                          line)[0]]
    assert rates[0] > rates[1] + 0.05, line
    assert "reached after 0 impressions with tags" in line
    text = next_steps(demo_dir)
    assert f"Decision log: {demo_dir}/logs   models: {demo_dir}/models" in text
    evaluate, create_key, serve = _commands(text)

    run = CliRunner().invoke(main, evaluate)
    assert run.exit_code == 0, run.output
    assert "model:v" in run.output
    assert (demo_dir / "report" / "index.html").is_file()

    run = CliRunner().invoke(main, create_key)
    assert run.exit_code == 0, run.output
    key = run.stdout.strip()

    # As printed, but on any free port rather than 8000.
    assert serve[-2:] == ["--port", "8000"]
    command = [sys.executable, "-m", "cli", *serve[:-1], "0", "--workers", "1"]
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env=env, start_new_session=True)
    try:
        url = server.stdout.readline().split()[3].rstrip(";")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            time.sleep(0.1)
        assert requests.get(url + "/marketer", timeout=10).status_code == 200
        titles = requests.get(url + "/v1/catalogue/titles", timeout=10,
                              headers={"Authorization": f"Bearer {key}"})
        assert titles.status_code == 200, titles.text
    finally:
        server.terminate()
        server.wait(30)
