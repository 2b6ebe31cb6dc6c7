"""Decisions/s and learned events/s through banditkit's loop vs raw vw-next.

Every measurement runs in a fresh process of its own (``_in_fresh_process``),
raw and ours back to back in each round. Baselines, on the same simulated contexts:
- raw vw-next: text-format lines parsed by ``TextFormatParser`` then
  ``predict_one`` / ``learn_one`` (what a team calling VW directly would write),
  with the lines built before the clock starts and, for decisions, also built
  from the same feature dicts inside the timed loop (what that team's service
  would pay per request);
- our learner's own predictions (``learner_predict``: DSJSON construction, no loop).

Ours: ``Engine.rank`` (validation, prediction, seeded sampling, the duplicate
check and the durable journal write), each kind on a fresh engine, and
``Engine.process_due`` (ingestion of
the decisions and of a reward for one in five into SQLite, join, dsjson
append, learning; the learner's model built before the clock, as raw's
workspace is). Decisions are measured
twice, each ``ratio`` against raw given the same inputs as ours: ``decisions``
with each title's artwork features frozen once
(:class:`~banditkit.encoding.FrozenFeatures`, as the catalogue and the server
hold them) against raw action lines built once and the context line built per
call from the member's dict, and ``decisions_plain_dicts`` (plain feature dicts
per call) against raw lines built from the dicts per call; both also against
raw lines all built before the clock (``ratio_vs_prebuilt``).
``decisions_in_pages_of_40`` ranks the frozen actions a page at a time.

Prints JSON lines; the goal of issue 2 is ratio >= 0.5 for decisions and learning.

    python benchmarks/bench_loop.py [--events 5000] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import vowpal_wabbit_next as vw

from banditkit import __version__
from banditkit.encoding import FrozenFeatures
from banditkit.engine import Engine, RankRequest
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWLearner
from simulator.demo import DEMO_POLICY_ARGS
from simulator.world import ArtworkWorld


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5,
                        help="measurements of everything, raw and ours back to back; each "
                             "figure is the median over rounds (a shared machine varies)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds = 300, 1
    return args


def _text_lines(context: dict, actions: list[dict], label: tuple[int, float, float] | None
                ) -> list[str]:
    def features(ns: dict) -> str:
        parts = []
        for namespace, group in ns.items():
            items = [f"{k}{v}" if isinstance(v, str) else f"{k}:{v}" for k, v in group.items()]
            parts.append(f"|{namespace} " + " ".join(items))
        return " ".join(parts)

    lines = ["shared " + features(context)]
    for i, action in enumerate(actions):
        prefix = f"0:{label[1]}:{label[2]} " if label and label[0] == i else ""
        lines.append(prefix + features(action))
    return lines


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = [_round(args) for _ in range(args.rounds)]
    common = {"events": args.events, "banditkit": __version__, "vowpal_wabbit_next": vw.__version__
              if hasattr(vw, "__version__") else vw.VW_VERSION, "python": platform.python_version()}
    for results in zip(*rounds, strict=True):
        print(json.dumps({**_median(results), **common}))
    return 0


def _median(results: tuple[dict, ...]) -> dict:
    """One metric over the rounds: the median of each number, and every round's ratio."""
    out = {"rounds": len(results)}
    for key, value in results[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in results)
        else:
            out[key] = value
    out["ratio_per_round"] = [round(r["ratio"], 3) for r in results]
    return out


def _workload(events: int, seed: int) -> tuple[ArtworkWorld, list, list, list, list]:
    """The simulated requests, contexts, artwork features and labels of a run."""
    world = ArtworkWorld.generate(seed=seed)
    requests = world.sample_requests(events, seed=seed + 1)
    contexts = [world.context(m) for m, _ in requests]
    action_features = [world.action_features(t) for _, t in requests]
    rng = np.random.default_rng(seed)
    labels = [(int(rng.integers(world.n_variants)), -float(rng.random() < 0.2), 0.25)
              for _ in requests]
    return world, requests, contexts, action_features, labels


def _vw_args() -> list[str]:
    return [*DEMO_POLICY_ARGS.split(), "--epsilon", "0.2", "--quiet"]


def _in_fresh_process(function: Callable[..., dict], *args: object) -> dict:
    """``function(*args)`` in a process of its own.

    Measured one after the other in one process, each measurement ran slower
    for the ones before it: raw VW 25-40% slower after banditkit, whose kept
    parsed examples (30 KB each) leave the heap fragmented once freed, and
    banditkit slower after its other measurements. A fresh process each is
    what a freshly started service meets.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as process:
        return process.submit(function, *args).result()


def _raw_seconds(events: int, seed: int) -> dict[str, float]:
    """Raw vw-next: text lines parsed by ``TextFormatParser``, then learn or predict."""
    _, _, contexts, action_features, labels = _workload(events, seed)
    raw = vw.Workspace(_vw_args())
    parser = vw.TextFormatParser(raw)
    texts = [_text_lines(c, a, None) for c, a in zip(contexts, action_features, strict=True)]
    labelled = [_text_lines(c, a, lab)
                for c, a, lab in zip(contexts, action_features, labels, strict=True)]
    seconds = {}
    start = time.perf_counter()
    for t in labelled:
        raw.learn_one([parser.parse_line(line) for line in t])
    seconds["learn"] = time.perf_counter() - start
    start = time.perf_counter()
    for t in texts:
        raw.predict_one([parser.parse_line(line) for line in t])
    seconds["predict"] = time.perf_counter() - start
    # The same, building each text line from the feature dicts as a caller must.
    start = time.perf_counter()
    for c, a in zip(contexts, action_features, strict=True):
        raw.predict_one([parser.parse_line(line) for line in _text_lines(c, a, None)])
    seconds["from_dicts"] = time.perf_counter() - start
    # The catalogue case: each title's action lines built once, the context line per call.
    action_lines = [t[1:] for t in texts]
    start = time.perf_counter()
    for c, lines in zip(contexts, action_lines, strict=True):
        raw.predict_one([parser.parse_line(line) for line in (*_text_lines(c, [], None),
                                                               *lines)])
    seconds["catalogue"] = time.perf_counter() - start
    return seconds


def _learner_seconds(events: int, seed: int) -> dict[str, float]:
    """banditkit's learner alone: the same predictions through DSJSON construction."""
    _, _, contexts, action_features, _ = _workload(events, seed)
    ours = VWLearner(args=" ".join(_vw_args()))
    start = time.perf_counter()
    for c, a in zip(contexts, action_features, strict=True):
        ours.predict_one(c, a)
    return {"predict": time.perf_counter() - start}


def _loop_seconds(events: int, seed: int, kind: str) -> dict:
    """Our loop on a fresh engine: decisions of one ``kind``, then (for "frozen") learning.

    ``kind`` is "frozen" (catalogue artwork as :class:`FrozenFeatures`, one
    decision per call), "plain" (plain feature dicts) or "pages" (the frozen
    actions, 40 decisions per :meth:`Engine.rank_many`).
    """
    world, requests, contexts, action_features, labels = _workload(events, seed)
    if kind == "plain":
        candidates = [[Action(id=world.variant_id(t, v), features=f) for v, f in enumerate(fs)]
                      for (_, t), fs in zip(requests, action_features, strict=True)]
    else:
        catalogue = {t: [Action(id=world.variant_id(t, v), features=FrozenFeatures(f))
                         for v, f in enumerate(world.action_features(t))]
                     for t in {t for _, t in requests}}
        candidates = [catalogue[t] for _, t in requests]
    fake_now = [1_767_225_600.0]
    out: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine.open(folder, clock=lambda: fake_now[0], settings=LoopSettings(
            reward_wait_seconds=0, model_update_seconds=1e9, policy_args=DEMO_POLICY_ARGS))
        engine.rank(contexts[0], candidates[0], event_id="warm-up")
        # The learner's model (its VW workspace takes 6 ms to build) made before the
        # clock, as raw's workspace is: a running learner has it.
        engine.process_due()
        if kind == "pages":
            pages = [[RankRequest(context=c, actions=a, event_id=f"page{p}-{j}")
                      for j, (c, a) in enumerate(zip(contexts[p:p + 40], candidates[p:p + 40],
                                                     strict=True))]
                     for p in range(0, events - 39, 40)]
            start = time.perf_counter()
            for page in pages:
                engine.rank_many(page)
            out["seconds"] = time.perf_counter() - start
            out["decisions"] = sum(len(page) for page in pages)
        else:
            latencies = []
            event_ids = [f"e{i}" for i in range(events)]  # the caller's, as raw's lines are
            start = time.perf_counter()
            for c, a, event_id in zip(contexts, candidates, event_ids, strict=True):
                t0 = time.perf_counter()
                engine.rank(c, a, event_id=event_id)
                latencies.append(time.perf_counter() - t0)
            out["seconds"] = time.perf_counter() - start
            out["latencies"] = latencies
        if kind == "frozen":
            for i, label in enumerate(labels):  # rewards for the learning step, untimed
                if label[1] < 0:
                    engine.reward(f"e{i}", 1.0)
            fake_now[0] += 1
            start = time.perf_counter()
            out["learned"] = engine.process_due()
            out["learn_seconds"] = time.perf_counter() - start
        engine.close()
    return out


def _round(args: argparse.Namespace) -> list[dict]:
    """One measurement of every metric, each in a fresh process, back to back."""
    n, seed = args.events, args.seed
    raw = _in_fresh_process(_raw_seconds, n, seed)
    raw_learn_s, raw_predict_s = raw["learn"], raw["predict"]
    raw_from_dicts_s, raw_catalogue_s = raw["from_dicts"], raw["catalogue"]
    learner_predict_s = _in_fresh_process(_learner_seconds, n, seed)["predict"]
    frozen = _in_fresh_process(_loop_seconds, n, seed, "frozen")
    rank_s, latencies = frozen["seconds"], frozen["latencies"]
    learn_s, learned = frozen["learn_seconds"], frozen["learned"]
    plain_s = _in_fresh_process(_loop_seconds, n, seed, "plain")["seconds"]
    paged = _in_fresh_process(_loop_seconds, n, seed, "pages")
    page_s, n_paged = paged["seconds"], paged["decisions"]
    return [
        {"name": "learner_predict", "ours_per_s": _rate(n, learner_predict_s),
         "raw_vw_text_per_s": _rate(n, raw_predict_s),
         "ratio": raw_predict_s / learner_predict_s},
        {"name": "decisions", "ours_per_s": _rate(n, rank_s),
         "raw_vw_context_per_call_per_s": _rate(n, raw_catalogue_s),
         "ratio": raw_catalogue_s / rank_s,
         "raw_vw_predict_per_s": _rate(n, raw_predict_s),
         "ratio_vs_prebuilt": raw_predict_s / rank_s,
         "rank_p50_ms": 1e3 * statistics.median(latencies),
         "rank_p95_ms": 1e3 * float(np.quantile(latencies, 0.95)), "goal": ">= 0.5"},
        {"name": "decisions_plain_dicts", "ours_per_s": _rate(n, plain_s),
         "raw_vw_from_dicts_per_s": _rate(n, raw_from_dicts_s),
         "ratio": raw_from_dicts_s / plain_s, "ratio_vs_prebuilt": raw_predict_s / plain_s},
        {"name": "decisions_in_pages_of_40", "ours_per_s": _rate(n_paged, page_s),
         "raw_vw_predict_per_s": _rate(n, raw_predict_s),
         "ratio": (raw_predict_s / n) / (page_s / n_paged) if n_paged else None,
         "ratio_vs_from_dicts": (raw_from_dicts_s / n) / (page_s / n_paged) if n_paged else None},
        {"name": "learning", "ours_per_s": _rate(learned, learn_s),
         "raw_vw_learn_per_s": _rate(n, raw_learn_s),
         "ratio": (raw_learn_s / n) / (learn_s / learned), "goal": ">= 0.5"},
    ]


if __name__ == "__main__":
    sys.exit(main())
