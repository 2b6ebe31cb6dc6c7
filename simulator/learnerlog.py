"""A decision log written by a learner learning online in an :class:`~simulator.world.ArtworkWorld`.

What a banditkit service logs: at each request the learner's pmf, the variant
drawn from it, the take, and the learner learning that event, then the joined
dsjson line. Unlike :func:`simulator.worldlog.write_world_log`, whose logging
policy is fixed, the logging policy here changes with every event, as an online
policy's does, which is what Personalizer's evaluations compare against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from banditkit.dsjson import EXTRA_KEY, dsjson_context, label_fields
from banditkit.eventlog import iso_timestamp
from banditkit.sampling import rank_order
from ope.validation import check_integer_at_least, check_positive
from simulator.world import ArtworkWorld

__all__ = ["write_learner_log"]


def write_learner_log(world: ArtworkWorld, learner: Any, path: str | Path, *, n_rounds: int,
                      seed: int, start_time: float = 1.7e9,
                      seconds_between: float = 1.0) -> Path:
    """Let ``learner`` learn online for ``n_rounds`` requests and write its joined log.

    Parameters
    ----------
    world : ArtworkWorld
    learner : banditkit.learner.Learner
        ``predict_one(context, actions)`` and ``learn_one(...)``, e.g. a ``VWLearner``.
    path : path
        dsjson file to write (parents created; overwritten).
    n_rounds : int
    seed : int
        Seeds requests, draws and takes.
    start_time : float, default=1.7e9
        Unix time of the first decision.
    seconds_between : float, default=1.0

    Returns
    -------
    Path
    """
    check_integer_at_least(n_rounds, 1, name="n_rounds")
    check_positive(seconds_between, name="seconds_between")
    rng = np.random.default_rng(seed)
    requests = world.sample_requests(n_rounds, seed=int(rng.integers(2**32)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i, (member, title) in enumerate(requests):
            context = world.context(int(member))
            actions = world.action_features(int(title))
            pmf = np.asarray(learner.predict_one(context, actions), dtype=np.float64)
            chosen = int(rng.choice(len(pmf), p=pmf / pmf.sum()))
            reward = world.sample_take(int(member), int(title), chosen, rng)
            learner.learn_one(context, actions, chosen=chosen, reward=reward,
                              probability=float(pmf[chosen]))
            order = rank_order(pmf, chosen)
            event_id = f"online-{i:09d}"
            record = {
                **label_fields(-reward, float(pmf[chosen]), chosen),
                "o": [{"EventId": event_id, "v": reward}],
                "EventId": event_id, "Timestamp": iso_timestamp(start_time + i * seconds_between),
                "Version": "1", "a": [k + 1 for k in order], "p": [float(pmf[k]) for k in order],
                "c": dsjson_context(context, actions),
                EXTRA_KEY: {"actionIds": [world.variant_id(int(title), v)
                                          for v in range(world.n_variants)]},
            }
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    return path
