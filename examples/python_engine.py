"""The Python API: the engine in this process, from the first rank to a learned model.

Run it with ``python examples/python_engine.py``.

Simulated members, each liking one theme, are shown one of three posters;
they play the title when the poster's theme is theirs. The engine ranks,
takes the rewards, and at each learner step joins the due events, appends
them to the dsjson log, learns them and publishes a model. A simulated clock
stands in for the reward wait (Personalizer's default: 10 minutes), so the
run takes seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from banditkit.engine import Engine
from banditkit.settings import LoopSettings
from banditkit.types import Action

THEMES = ["comedy", "drama", "horror"]
POSTERS = [Action(id=f"{theme}-poster", features={"Artwork": {"theme": theme}})
           for theme in THEMES]
ROUNDS, STEP = 3000, 250


class Clock:
    """Simulated time: the engine reads it; the loop below moves it on."""

    def __init__(self) -> None:
        self.now = 1.7e9

    def __call__(self) -> float:
        return self.now


rng = np.random.default_rng(0)
clock = Clock()
with tempfile.TemporaryDirectory(prefix="banditkit-example-") as folder:
    data_dir = Path(folder) / "data"
    settings = LoopSettings(reward_wait_seconds=60, model_update_seconds=0,
                            exploration_percentage=0.1)
    with Engine.open(data_dir, settings=settings, clock=clock) as engine:
        plays = []
        for i in range(ROUNDS):
            taste = THEMES[rng.integers(len(THEMES))]
            # The event id seeds the draw: the same ids give the same run.
            decision = engine.rank({"Member": {"likes": taste}}, POSTERS, event_id=f"round-{i}")
            played = decision.reward_action_id == f"{taste}-poster"
            if played:
                engine.reward(decision.event_id, 1.0)  # no reward: the default (0) is learned
            plays.append(played)
            clock.now += 1.0
            if (i + 1) % STEP == 0:
                clock.now += settings.reward_wait_seconds  # the reward wait is over
                engine.process_due()  # join, log, learn, publish a model snapshot
        print(f"take rate, first {STEP} rounds: {np.mean(plays[:STEP]):.2f} "
              f"(uniform would be {1 / len(THEMES):.2f})")
        print(f"take rate, last {STEP} rounds:  {np.mean(plays[-STEP:]):.2f}")
        decision = engine.rank({"Member": {"likes": "drama"}}, POSTERS, event_id="drama-lover")
        likeliest = max(decision.ranking, key=lambda ranked: ranked.probability)
        print("a drama lover most likely sees:", likeliest.id,
              {ranked.id: round(ranked.probability, 3) for ranked in decision.ranking})
        print("model version:", engine.model_version)
        logged = sum(len(p.read_text().splitlines())
                     for p in (data_dir / "logs").rglob("*.dsjson"))
        print(f"decision log: {logged} joined events in logs/; models in models/: "
              f"{len(list((data_dir / 'models').glob('*.vw')))} files")
