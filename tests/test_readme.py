"""README.md's code as pasted: each Python block runs in a fresh folder, its output read;
each ``banditkit`` command of its shell blocks names a real subcommand and real options."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README, re.DOTALL | re.MULTILINE)
COMMANDS = [shlex.split(line, comments=True)
            for block in re.findall(r"^```bash\n(.*?)^```$", README, re.DOTALL | re.MULTILINE)
            for part in block.replace("\\\n", " ").splitlines()
            for line in part.split("&&") if line.strip().startswith("banditkit ")]


def run_block(code: str, folder: Path) -> str:
    """Run ``code`` as a script in ``folder`` (a new user's working directory); its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    finished = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def test_the_readme_has_python_blocks() -> None:
    assert BLOCKS


@pytest.mark.slow
@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_each_python_block_runs_as_pasted(code: str, tmp_path: Path) -> None:
    run_block(code, tmp_path)


@pytest.mark.slow
def test_the_engine_block_ranks_learns_and_publishes(tmp_path: Path) -> None:
    (code,) = [block for block in BLOCKS if "Engine.open" in block]
    chosen, ranking, joined, version = run_block(code, tmp_path).splitlines()
    assert chosen in ("poster-a", "poster-b")
    assert ranking.startswith(f"(RankedAction(id='{chosen}', probability=")
    assert joined == "1"  # the reward wait passed: the learner joined the one event
    assert version == "1"
    assert (tmp_path / "banditkit-data" / "models" / "model-v1.vw").is_file()
    (partition,) = (tmp_path / "banditkit-data" / "logs").iterdir()
    assert len((partition / "events.dsjson").read_text().splitlines()) == 1


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:3]) for c in COMMANDS])
def test_each_banditkit_command_parses(command: list[str]) -> None:
    # --help is eager: click parses every option given (an unknown one is an
    # error, exit 2) and then prints the help instead of running the command.
    run = CliRunner().invoke(main, [*command[1:], "--help"])
    assert run.exit_code == 0, run.output
