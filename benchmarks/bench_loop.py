"""Decisions/s and learned events/s through banditkit's loop vs raw vw-next.

Two workloads (``--features``), each title with 4 artwork variants: the
simulated world's features (6 per variant, as the demo has), and analysed
posters' (those and the 41 features artwork's analysis gives a poster, in 7
namespaces, as a real catalogue has).

Baselines, on the same simulated contexts:
- raw vw-next: text-format lines parsed by ``TextFormatParser`` then
  ``predict_one`` / ``learn_one`` (what a team calling VW directly would write),
  with the lines built before the clock starts and, for decisions, also built
  from the same feature dicts inside the timed loop (what that team's service
  would pay per request);
- our learner's own predictions (``learner_predict``: DSJSON construction, no loop).

Ours: ``Engine.rank`` (validation, prediction, seeded sampling, the duplicate
check and the durable journal write) and ``Engine.process_due`` (ingestion of
the decisions and of a reward for one in five into SQLite, join, dsjson
append, learning). Decisions are measured three ways, each ``ratio`` against
raw given the same inputs as ours: ``decisions`` with each title's artwork
features frozen once (:class:`~banditkit.encoding.FrozenFeatures`, as the
catalogue and the server hold them) against raw action lines built once and
the context line built per call from the member's dict;
``decisions_plain_dicts`` (plain feature dicts per call) against raw lines
built from the dicts per call; ``decisions_in_pages_of_40`` (home pages: one
member, every title once in a random order, the frozen actions, a page per
:meth:`Engine.rank_many`) against raw lines all built before the clock, the
page's context line parsed for each title as raw parses every line. Beside
each single-decision ratio, ``ratio_vs_prebuilt`` is against raw with every
line of the same events built before the clock.

How it is measured, because a shared VM changes speed from second to second
(the same Python loop takes 63 to 105 ms from run to run here):
- **paired and interleaved:** the events are cut into chunks; for each chunk,
  raw and ours measure the same events back to back (in alternating order),
  so both meet the machine in the same state; a ratio is raw's total time
  over ours, on the same events;
- **a process of its own for each:** raw vw-next never runs where banditkit
  ran (vw-next returns every freed example, 31 KB each, to a process-wide
  pool, and the thousands banditkit keeps leave it large and cold: raw VW
  25-40% slower after banditkit), and each of ours has its own fresh engine;
- **warm:** the first chunk is run by all and not counted (a workspace's and
  an engine's first calls, as a running service has made them);
- each figure is the median over ``--rounds`` rounds, each with new processes.

Prints JSON lines; the goal is ratio >= 0.5 for decisions and learning.

    python benchmarks/bench_loop.py [--events 4800] [--chunk 400] [--rounds 5]
        [--features world|poster|both] [--smoke]
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
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import cv2
import numpy as np
import vowpal_wabbit_next as vw

from artwork import analyze_image, load_detectors, load_image
from banditkit import __version__
from banditkit.encoding import FrozenFeatures
from banditkit.engine import Engine, RankRequest
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWLearner
from simulator.demo import DEMO_POLICY_ARGS
from simulator.world import ArtworkWorld

PAGE_SIZE = 40  # titles on a home page: the simulated world has 40, a page shows each once


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4800, help="events measured (a multiple "
                        "of --chunk; one more chunk warms up)")
    parser.add_argument("--chunk", type=int, default=400,
                        help=f"events per paired measurement (a multiple of {PAGE_SIZE}, "
                             "the page size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5,
                        help="measurements of everything, raw and ours back to back; each "
                             "figure is the median over rounds (a shared machine varies)")
    parser.add_argument("--features", choices=("world", "poster", "both"), default="both",
                        help="artwork features: the simulated world's (6 per variant), "
                             "analysed posters' (the world's and 41 of artwork's analysis "
                             "in 7 namespaces), or both, one after the other")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.chunk, args.rounds = 80, 40, 1
    if (args.chunk <= 0 or args.chunk % PAGE_SIZE or args.events % args.chunk
            or args.events <= 0):
        parser.error(f"--events ({args.events}) must be a positive multiple of --chunk "
                     f"({args.chunk}), and --chunk a positive multiple of {PAGE_SIZE}")
    return args


_TEXT_SAFE = str.maketrans({":": "_", " ": "_", "|": "_"})  # VW text separates by these


def _text_lines(context: dict, actions: list[dict], label: tuple[int, float, float] | None
                ) -> list[str]:
    def features(ns: dict) -> str:
        parts = []
        for namespace, group in ns.items():
            items = [f"{k}{v.translate(_TEXT_SAFE)}" if isinstance(v, str) else f"{k}:{v}"
                     for k, v in group.items()]
            parts.append(f"|{namespace} " + " ".join(items))
        return " ".join(parts)

    lines = ["shared " + features(context)]
    for i, action in enumerate(actions):
        prefix = f"0:{label[1]}:{label[2]} " if label and label[0] == i else ""
        lines.append(prefix + features(action))
    return lines


def _span(k: int, chunk: int) -> slice:
    """The events of chunk ``k``."""
    return slice(k * chunk, (k + 1) * chunk)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common = {"events": args.events, "chunk": args.chunk, "banditkit": __version__,
              "vowpal_wabbit_next": vw.__version__ if hasattr(vw, "__version__")
              else vw.VW_VERSION, "python": platform.python_version()}
    kinds = ("world", "poster") if args.features == "both" else (args.features,)
    for kind in kinds:
        poster = _poster_template() if kind == "poster" else None
        rounds = [_round(args, poster) for _ in range(args.rounds)]
        for results in zip(*rounds, strict=True):
            print(json.dumps({**_median(results), "features": kind, **common}), flush=True)
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


def _poster_template() -> dict:
    """The features artwork's analysis gives a generated 2:3 poster (41 in 7 namespaces)."""
    rng = np.random.default_rng(0)
    image = (rng.random((450, 300, 3)) * 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "poster.png"
        cv2.imwrite(str(path), image)
        return analyze_image(load_image(path), detectors=load_detectors()).features


def _workload(events: int, seed: int, poster: dict | None = None, *, paged: bool = False
              ) -> tuple[ArtworkWorld, list, list, list, list]:
    """The simulated requests, contexts, artwork features and labels of a run.

    With ``poster`` (:func:`_poster_template`), every variant also has those
    features, its numbers scaled by a factor of its own (each variant's text
    differs, as analysed posters' do). ``paged``: home pages of ``PAGE_SIZE``
    events, each one member's with every title once, in a random order.
    """
    world = ArtworkWorld.generate(seed=seed)
    requests = world.sample_requests(events, seed=seed + 1)
    if paged:
        if world.n_titles < PAGE_SIZE:
            raise ValueError(f"a page shows {PAGE_SIZE} titles; the world has {world.n_titles}")
        rng = np.random.default_rng(seed + 2)
        titles = [rng.permutation(world.n_titles) for _ in range(0, events, PAGE_SIZE)]
        requests = [(requests[i - i % PAGE_SIZE][0], titles[i // PAGE_SIZE][i % PAGE_SIZE])
                    for i in range(events)]
    contexts = [world.context(m) for m, _ in requests]
    if paged:  # one context object for the page, as the server's artwork rank passes it
        contexts = [contexts[i - i % PAGE_SIZE] for i in range(events)]
    by_title = {}
    for t in {int(t) for _, t in requests}:
        variants = world.action_features(t)
        if poster is not None:
            for v, features in enumerate(variants):
                scale = np.random.default_rng((seed, t, v)).uniform(0.5, 1.5)
                features.update({ns: {k: x if isinstance(x, str) else round(x * scale, 4)
                                      for k, x in group.items()}
                                 for ns, group in poster.items()})
        by_title[t] = variants
    action_features = [by_title[int(t)] for _, t in requests]
    rng = np.random.default_rng(seed)
    labels = [(int(rng.integers(world.n_variants)), -float(rng.random() < 0.2), 0.25)
              for _ in requests]
    return world, requests, contexts, action_features, labels


def _vw_args() -> list[str]:
    return [*DEMO_POLICY_ARGS.split(), "--epsilon", "0.2", "--quiet"]


class _Raw:
    """Raw vw-next: text lines parsed by ``TextFormatParser``, then learn or predict."""

    def __init__(self, events: int, chunk: int, seed: int, poster: dict | None,
                 paged: bool = False) -> None:
        _, _, self.contexts, self.action_features, labels = _workload(events, seed, poster,
                                                                       paged=paged)
        self.chunk = chunk
        self.workspace = vw.Workspace(_vw_args())
        self.parser = vw.TextFormatParser(self.workspace)
        self.texts = [_text_lines(c, a, None)
                      for c, a in zip(self.contexts, self.action_features, strict=True)]
        self.labelled = [_text_lines(c, a, lab) for c, a, lab
                         in zip(self.contexts, self.action_features, labels, strict=True)]
        self.action_lines = [t[1:] for t in self.texts]  # the catalogue's, built once

    def learn(self, k: int) -> dict:
        return self._prebuilt(self.labelled, self.workspace.learn_one, k)

    def predict(self, k: int) -> dict:
        return self._prebuilt(self.texts, self.workspace.predict_one, k)

    def _prebuilt(self, examples: list[list[str]], call: Callable, k: int) -> dict:
        """``call`` on each example of chunk ``k``, its lines built before, parsed here."""
        parse = self.parser.parse_line
        start = time.perf_counter()
        for lines in examples[_span(k, self.chunk)]:
            call([parse(line) for line in lines])
        return {"seconds": time.perf_counter() - start}

    def from_dicts(self, k: int) -> dict:
        """Each text line built from the feature dicts, as a caller must."""
        parse, predict = self.parser.parse_line, self.workspace.predict_one
        span = _span(k, self.chunk)
        start = time.perf_counter()
        for c, a in zip(self.contexts[span], self.action_features[span], strict=True):
            predict([parse(line) for line in _text_lines(c, a, None)])
        return {"seconds": time.perf_counter() - start}

    def catalogue(self, k: int) -> dict:
        """Each title's action lines built once, the context line per call."""
        parse, predict = self.parser.parse_line, self.workspace.predict_one
        span = _span(k, self.chunk)
        start = time.perf_counter()
        for c, lines in zip(self.contexts[span], self.action_lines[span], strict=True):
            predict([parse(line) for line in (*_text_lines(c, [], None), *lines)])
        return {"seconds": time.perf_counter() - start}


class _Learner:
    """banditkit's learner alone: the same predictions through DSJSON construction."""

    def __init__(self, events: int, chunk: int, seed: int, poster: dict | None) -> None:
        _, _, self.contexts, self.action_features, _ = _workload(events, seed, poster)
        self.chunk = chunk
        self.learner = VWLearner(args=" ".join(_vw_args()))

    def predict(self, k: int) -> dict:
        span = _span(k, self.chunk)
        predict = self.learner.predict_one
        start = time.perf_counter()
        for c, a in zip(self.contexts[span], self.action_features[span], strict=True):
            predict(c, a)
        return {"seconds": time.perf_counter() - start}


class _Loop:
    """Our loop on a fresh engine, decisions of one ``kind`` and their learning.

    ``kind`` is "frozen" (catalogue artwork as :class:`FrozenFeatures`, one
    decision per call), "plain" (plain feature dicts) or "pages" (the frozen
    actions, 40 decisions per :meth:`Engine.rank_many`). The engine's clock
    is fake: chunk ``k`` is ranked at second ``k`` and learned at ``k + 0.5``,
    after its rewards came, so each learner step joins exactly that chunk.
    """

    def __init__(self, events: int, chunk: int, seed: int, poster: dict | None,
                 kind: str) -> None:
        world, requests, self.contexts, action_features, self.labels = _workload(
            events, seed, poster, paged=kind == "pages")
        if kind == "plain":
            self.candidates = [
                [Action(id=world.variant_id(t, v), features=f) for v, f in enumerate(fs)]
                for (_, t), fs in zip(requests, action_features, strict=True)]
        else:
            catalogue = {t: [Action(id=world.variant_id(t, v), features=FrozenFeatures(f))
                             for v, f in enumerate(fs)]
                         for (_, t), fs in zip(requests, action_features, strict=True)}
            self.candidates = [catalogue[t] for _, t in requests]
        self.kind, self.chunk = kind, chunk
        self.event_ids = [f"e{i}" for i in range(events)]  # the caller's, as raw's lines are
        self.now = 1_767_225_600.0
        self.folder = tempfile.TemporaryDirectory()
        self.engine = Engine.open(self.folder.name, clock=lambda: self.now,
                                  settings=LoopSettings(reward_wait_seconds=0,
                                                        model_update_seconds=1e9,
                                                        policy_args=DEMO_POLICY_ARGS))

    def rank(self, k: int) -> dict:
        self.now = 1_767_225_600.0 + k
        span = _span(k, self.chunk)
        work = list(zip(self.contexts[span], self.candidates[span], self.event_ids[span],
                        strict=True))
        if self.kind == "pages":
            pages = [[RankRequest(context=c, actions=a, event_id=e)
                      for c, a, e in work[p:p + PAGE_SIZE]]
                     for p in range(0, len(work), PAGE_SIZE)]
            rank_many = self.engine.rank_many
            start = time.perf_counter()
            for page in pages:
                rank_many(page)
            out = {"seconds": time.perf_counter() - start}
        else:
            rank, latencies = self.engine.rank, []
            start = time.perf_counter()
            for c, a, event_id in work:
                t0 = time.perf_counter()
                rank(c, a, event_id=event_id)
                latencies.append(time.perf_counter() - t0)
            out = {"seconds": time.perf_counter() - start, "latencies": latencies}
        for i in range(span.start, span.stop):  # rewards for the learning step, untimed
            if self.labels[i][1] < 0:
                self.engine.reward(self.event_ids[i], 1.0)
        return out

    def learn(self, k: int) -> dict:
        self.now = 1_767_225_600.0 + k + 0.5
        start = time.perf_counter()
        learned = self.engine.process_due()
        seconds = time.perf_counter() - start
        if learned != self.chunk:
            raise RuntimeError(f"the learner step joined {learned} events, not the chunk's "
                               f"{self.chunk}")
        return {"seconds": seconds}

    def close(self) -> None:
        self.engine.close()
        self.folder.cleanup()


def _serve(connection: Connection, subject_type: type, *args: object) -> None:
    """A subject's process: build it, then run ``(method, chunk)`` requests until None.

    Answers each with the method's result, or with the text of what it raised.
    """
    try:
        subject = subject_type(*args)
    except Exception:  # noqa: BLE001 - reported to the parent, which stops
        connection.send(traceback.format_exc())
        return
    connection.send("ready")
    while (request := connection.recv()) is not None:
        method, k = request
        try:
            connection.send(getattr(subject, method)(k))
        except Exception:  # noqa: BLE001 - reported to the parent, which stops
            connection.send(traceback.format_exc())
    if isinstance(subject, _Loop):
        subject.close()


class _Process:
    """A subject in a fresh (spawned) process of its own."""

    def __init__(self, subject_type: type, *args: object) -> None:
        self.connection, theirs = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(theirs, subject_type, *args), daemon=True)
        self.process.start()

    def ready(self) -> None:
        answer = self.connection.recv()
        if answer != "ready":
            raise RuntimeError(f"a benchmark process did not start:\n{answer}")

    def run(self, method: str, k: int) -> dict:
        self.connection.send((method, k))
        answer = self.connection.recv()
        if isinstance(answer, str):
            raise RuntimeError(f"{method} of chunk {k} failed:\n{answer}")
        return answer

    def close(self) -> None:
        if self.process.is_alive():
            self.connection.send(None)
        self.process.join()


# (metric, raw's subject, raw's method, our subject, our method); in this order
# for each chunk, so that a chunk is ranked before it is learned.
_PAIRS = (
    ("learner_predict", "raw", "predict", "learner", "predict"),
    ("decisions", "raw", "catalogue", "frozen", "rank"),
    ("decisions_plain_dicts", "raw", "from_dicts", "plain", "rank"),
    ("decisions_in_pages_of_40", "raw_pages", "predict", "pages", "rank"),
    ("learning", "raw", "learn", "frozen", "learn"),
)


def _round(args: argparse.Namespace, poster: dict | None) -> list[dict]:
    """One measurement of every metric, on new processes, raw and ours paired per chunk."""
    n_chunks = args.events // args.chunk
    events = (n_chunks + 1) * args.chunk  # chunk 0 warms up and is not counted
    common = (events, args.chunk, args.seed, poster)
    processes = {"raw": _Process(_Raw, *common), "raw_pages": _Process(_Raw, *common, True),
                 "learner": _Process(_Learner, *common),
                 **{kind: _Process(_Loop, *common, kind) for kind in ("frozen", "plain", "pages")}}
    for process in processes.values():
        process.ready()
    raw_s = {name: 0.0 for name, *_ in _PAIRS}
    ours_s = dict(raw_s)
    latencies: list[float] = []
    try:
        for k in range(n_chunks + 1):
            for name, raw, raw_method, subject, method in _PAIRS:
                pair = [(raw, raw_method), (subject, method)]
                if k % 2:  # alternate who goes first: a drift in speed hits both alike
                    pair.reverse()
                results = {who: processes[who].run(how, k) for who, how in pair}
                if k == 0:
                    continue
                raw_s[name] += results[raw]["seconds"]
                ours_s[name] += results[subject]["seconds"]
                if (subject, method) == ("frozen", "rank"):
                    latencies += results[subject]["latencies"]
    finally:
        for process in processes.values():
            process.close()
    n = n_chunks * args.chunk
    return [
        {"name": "learner_predict", "ours_per_s": _rate(n, ours_s["learner_predict"]),
         "raw_vw_text_per_s": _rate(n, raw_s["learner_predict"]),
         "ratio": raw_s["learner_predict"] / ours_s["learner_predict"]},
        {"name": "decisions", "ours_per_s": _rate(n, ours_s["decisions"]),
         "raw_vw_context_per_call_per_s": _rate(n, raw_s["decisions"]),
         "ratio": raw_s["decisions"] / ours_s["decisions"],
         "ratio_vs_prebuilt": raw_s["learner_predict"] / ours_s["decisions"],
         "rank_p50_ms": 1e3 * statistics.median(latencies),
         "rank_p95_ms": 1e3 * float(np.quantile(latencies, 0.95)), "goal": ">= 0.5"},
        {"name": "decisions_plain_dicts", "ours_per_s": _rate(n, ours_s["decisions_plain_dicts"]),
         "raw_vw_from_dicts_per_s": _rate(n, raw_s["decisions_plain_dicts"]),
         "ratio": raw_s["decisions_plain_dicts"] / ours_s["decisions_plain_dicts"],
         "ratio_vs_prebuilt": raw_s["learner_predict"] / ours_s["decisions_plain_dicts"]},
        {"name": "decisions_in_pages_of_40",
         "ours_per_s": _rate(n, ours_s["decisions_in_pages_of_40"]),
         "raw_vw_predict_per_s": _rate(n, raw_s["decisions_in_pages_of_40"]),
         "ratio": raw_s["decisions_in_pages_of_40"] / ours_s["decisions_in_pages_of_40"]},
        {"name": "learning", "ours_per_s": _rate(n, ours_s["learning"]),
         "raw_vw_learn_per_s": _rate(n, raw_s["learning"]),
         "ratio": raw_s["learning"] / ours_s["learning"], "goal": ">= 0.5"},
    ]


if __name__ == "__main__":
    sys.exit(main())
