"""The ``banditkit`` group: its entry points, and the packages it sits on top of."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_cli_is_the_banditkit_command() -> None:
    finished = subprocess.run([sys.executable, "-m", "cli", "--help"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=True)
    assert finished.stdout.startswith("Usage: banditkit ")
    for name in ("artwork", "demo", "evaluate", "keys", "serve", "simulate"):
        assert f"\n  {name} " in finished.stdout
    assert "serve-learner" not in finished.stdout


def test_serve_learner_is_hidden_but_runs() -> None:
    result = CliRunner().invoke(main, ["serve-learner", "--help"])
    assert result.exit_code == 0, result.output
    assert "--data-dir" in result.output and "--parent" in result.output


def test_the_learner_process_loads_neither_opencv_nor_the_simulator() -> None:
    code = ("import sys; from cli import main; main.get_command(None, 'serve-learner'); "
            "loaded = {m.split('.')[0] for m in sys.modules}; "
            "print(sorted(loaded & {'cv2', 'artwork', 'ope', 'simulator'}))")
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=True)
    assert finished.stdout.strip() == "[]"


def test_no_library_package_imports_cli() -> None:
    files = [ROOT / "server.py"]
    for package in ("banditkit", "serving", "ope", "simulator", "artwork"):
        files.extend((ROOT / package).rglob("*.py"))
    importers = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(name == "cli" or name.startswith("cli.") for name in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == []
