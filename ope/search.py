"""Policy optimization: a budgeted search over VW's learning arguments.

Personalizer's "policy optimization" looks for learning settings that would
have done better on the window. Every candidate is scored by progressive
validation (:mod:`ope.progressive`) and compared by its SNIPS value; the
exploration stays the service's, so only how the policy *learns* changes.

Stages (docs/evaluation.md, "Policy search: the space and the budget"):

A. interactions with default learning settings: none, ``-q ::``, each
   context x action namespace pair alone, all such pairs, then rounds of
   forward selection adding the pair that helps most. Context x context pairs
   are left out: with action-dependent features (ADF) they move every
   action's score equally and cannot change a decision.
B. on the best two interaction sets, seeded samples of learning rate,
   ``--power_t``, ``--l2`` and ``--cb_type``.

The seeds (the online policy's and every Custom policy's arguments, already
scored) are candidates too, so the optimum is never worse than the best of
them. The budget caps CPU-seconds and candidates; a stage is cut to what the
CPU-seconds spent so far say still fits.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ope.estimators import SNIPS
from ope.progressive import CandidateResult, CandidateRunner, Window, score_candidates
from ope.validation import check_integer_at_least, check_positive

__all__ = ["DEFAULT_BUDGET", "DEFAULT_SPACE", "SearchBudget", "SearchResult", "SearchSpace",
           "TraceRow", "namespaces_of", "search", "split_exploration"]

#: Exploration options of ``cb_explore_adf`` and how many values each takes.
EXPLORATION_OPTIONS = {"--epsilon": 1, "--first": 1, "--bag": 1, "--cover": 1, "--psi": 1,
                       "--softmax": 0, "--lambda": 1, "--squarecb": 0, "--gamma_scale": 1,
                       "--gamma_exponent": 1, "--regcb": 0, "--regcbopt": 0, "--nounif": 0,
                       "--greedify": 0, "--synthcover": 0, "--rnd": 1, "--mellowness": 1}
#: Options the search sets itself (dropped from the online policy's learning arguments).
SEARCHED_OPTIONS = {"-q": 1, "--quadratic": 1, "--interactions": 1, "--cubic": 1, "-l": 1,
                    "--learning_rate": 1, "--power_t": 1, "--l2": 1, "--cb_type": 1}
_DROPPED = {"--cb_explore_adf": 0, "--dsjson": 0, "--quiet": 0}


def _normalised(args: str) -> list[str]:
    """Tokens with ``--opt=value`` split in two."""
    out: list[str] = []
    for token in shlex.split(args):
        if token.startswith("--") and "=" in token:
            out.extend(token.split("=", 1))
        else:
            out.append(token)
    return out


def split_exploration(args: str) -> tuple[list[str], list[str], list[str]]:
    """A policy's arguments in three parts: exploration, searched options, the rest.

    Returns
    -------
    tuple of list of str
        ``(exploration, searched, other)`` tokens; ``--cb_explore_adf``,
        ``--dsjson`` and ``--quiet`` are dropped.
    """
    tokens = _normalised(args)
    parts: tuple[list[str], list[str], list[str]] = ([], [], [])
    i = 0
    while i < len(tokens):
        token = tokens[i]
        for part, options in enumerate((EXPLORATION_OPTIONS, SEARCHED_OPTIONS, _DROPPED)):
            if token in options:
                taken = tokens[i:i + 1 + options[token]]
                if part < 2:
                    parts[part].extend(taken)
                i += len(taken)
                break
        else:
            parts[2].append(token)
            i += 1
    return parts


def namespaces_of(window: Window, *, sample: int = 1000) -> tuple[str, str]:
    """First letters of the context and action namespaces in the window's first events.

    Returns
    -------
    tuple of str
        ``(context_letters, action_letters)``, each sorted without repeats;
        the default namespace (top-level features) has no letter to cross.
    """
    context: set[str] = set()
    action: set[str] = set()
    for line in window.lines[:sample]:
        shared = json.loads(line)["c"]
        context.update(key[0] for key, value in shared.items()
                       if isinstance(value, dict) and not key.startswith("_"))
        for entry in shared["_multi"]:
            action.update(key[0] for key, value in entry.items()
                          if isinstance(value, dict) and not key.startswith("_"))
    return "".join(sorted(context)), "".join(sorted(action))


@dataclass(frozen=True)
class SearchSpace:
    """What the search varies.

    Parameters
    ----------
    learning_rates : tuple of float, default=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
    power_t : tuple of float, default=(0.0, 0.25, 0.5)
    l2 : tuple of float, default=(0.0, 1e-8, 1e-7, 1e-6)
    cb_types : tuple of str, default=("mtr", "ips", "dr")
    forward_rounds : int, default=2
        Rounds of forward selection of interaction pairs.
    """

    learning_rates: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
    power_t: tuple[float, ...] = (0.0, 0.25, 0.5)
    l2: tuple[float, ...] = (0.0, 1e-8, 1e-7, 1e-6)
    cb_types: tuple[str, ...] = ("mtr", "ips", "dr")
    forward_rounds: int = 2


@dataclass(frozen=True)
class SearchBudget:
    """How much the search may spend.

    Parameters
    ----------
    cpu_seconds : float, default=240.0
        CPU-seconds over all candidates (summed over worker processes). They
        depend on the machine: a search cut by them is reproducible only where
        ``max_candidates`` binds first.
    max_candidates : int, default=48
        Candidates run, seeds not counted.
    stage_b_samples : int, default=24
        Learning-argument samples of stage B.
    seed : int, default=0
        Seeds stage B's samples.
    """

    cpu_seconds: float = 240.0
    max_candidates: int = 48
    stage_b_samples: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive(self.cpu_seconds, name="cpu_seconds")
        check_integer_at_least(self.max_candidates, 1, name="max_candidates")
        check_integer_at_least(self.stage_b_samples, 0, name="stage_b_samples")
        check_integer_at_least(self.seed, 0, name="seed")


@dataclass(frozen=True)
class TraceRow:
    """One candidate of the search: its arguments, stage, SNIPS value and interval, cost."""

    args: str
    stage: str
    value: float
    ci: tuple[float, float]
    cpu_seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"arguments": self.args, "stage": self.stage, "value": self.value,
                "ci": list(self.ci), "cpuSeconds": self.cpu_seconds}


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The best candidate and the trace of every candidate (seeds first).

    Attributes
    ----------
    best : CandidateResult
    trace : tuple of TraceRow
    cpu_seconds : float
        Spent on the search's own candidates (seeds not counted).
    n_candidates : int
        The search's own candidates run.
    """

    best: CandidateResult
    trace: tuple[TraceRow, ...]
    cpu_seconds: float
    n_candidates: int

    def to_dict(self) -> dict[str, object]:
        return {"best": self.best.args, "candidates": self.n_candidates,
                "cpuSeconds": self.cpu_seconds, "trace": [row.to_dict() for row in self.trace]}


#: The defaults that docs/evaluation.md states.
DEFAULT_SPACE = SearchSpace()
DEFAULT_BUDGET = SearchBudget()


def _interaction_args(pairs: Sequence[str]) -> list[str]:
    return [token for pair in pairs for token in ("-q", pair)]


def search(window: Window, *, exploration: Sequence[str], seeds: Sequence[CandidateResult],
           space: SearchSpace = DEFAULT_SPACE, budget: SearchBudget = DEFAULT_BUDGET,
           workers: int = 1, other: Sequence[str] = (),
           pool: CandidateRunner | None = None) -> SearchResult:
    """Search learning arguments for the policy with the highest SNIPS value.

    Parameters
    ----------
    window : Window
    exploration : sequence of str
        The service's exploration tokens (``["--epsilon", "0.2"]``), put on every
        candidate.
    seeds : sequence of CandidateResult, at least one
        Policies already scored (online, Custom): candidates too, not re-run.
    space : SearchSpace, default=SearchSpace()
    budget : SearchBudget, default=SearchBudget()
    workers : int, default=1
        Processes scoring candidates (:func:`ope.progressive.score_candidates`).
    other : sequence of str, default=()
        Further tokens of the online policy kept on every candidate (``-b 20``).
    pool : CandidateRunner, default=None
        An open pool on ``window`` shared with other steps, local or on Spark
        (``workers`` is then ignored).

    Returns
    -------
    SearchResult
        Ties go to the candidate with fewer interaction terms.
    """
    if not seeds:
        raise ValueError("seeds must hold at least one scored policy (the online one), got none")
    estimator = SNIPS()
    rounds = window.rounds
    scored: dict[str, tuple[CandidateResult, TraceRow]] = {}
    spent = 0.0
    count = 0

    def record(result: CandidateResult, stage: str) -> float:
        estimate = estimator.estimate(rounds, result.probability)
        value = estimate.value if np.isfinite(estimate.value) else -np.inf
        scored[result.args] = (result, TraceRow(args=result.args, stage=stage, value=value,
                                                ci=estimate.ci,
                                                cpu_seconds=result.cpu_seconds))
        return value

    for seed in seeds:
        record(seed, "seed")
    per_candidate = float(np.mean([s.cpu_seconds for s in seeds])) or 1e-3

    def command(pairs: Sequence[str], learning: Sequence[str] = ()) -> str:
        return shlex.join(["--cb_explore_adf", *exploration, *other, *learning,
                           *_interaction_args(pairs)])

    def stage(commands: list[str], name: str) -> None:
        nonlocal spent, count, per_candidate
        fresh = [c for c in dict.fromkeys(commands) if c not in scored]
        room = min(budget.max_candidates - count,
                   int((budget.cpu_seconds - spent) // max(per_candidate, 1e-9)))
        fresh = fresh[:max(room, 0)]
        if not fresh:
            return
        results = score_candidates(window, fresh, workers=workers, pool=pool)
        for result in results:
            record(result, name)
        spent += sum(r.cpu_seconds for r in results)
        count += len(results)
        per_candidate = spent / count

    def value_of(pairs: Sequence[str], learning: Sequence[str] = ()) -> float:
        entry = scored.get(command(pairs, learning))
        return entry[1].value if entry else -np.inf

    context, action = namespaces_of(window)
    pairs = [c + a for c in context for a in action]
    sets: list[tuple[str, ...]] = [(), ("::",), *((p,) for p in pairs), tuple(pairs)]
    stage([command(s) for s in sets], "interactions")
    best_set = max(sets, key=lambda s: (value_of(s), -len(s)))
    for _ in range(space.forward_rounds):
        if best_set == ("::",) or value_of(best_set) == -np.inf:
            break
        grown = [tuple(sorted({*best_set, p})) for p in pairs if p not in best_set]
        stage([command(s) for s in grown], "forward")
        sets.extend(grown)
        top = max(sets, key=lambda s: (value_of(s), -len(s)))
        if top == best_set:
            break
        best_set = top

    # dict, not set: ties keep the order the sets were tried in, in every process
    ranked = sorted(dict.fromkeys(s for s in sets if value_of(s) > -np.inf),
                    key=lambda s: (-value_of(s), len(s)))[:2]
    rng = np.random.default_rng(budget.seed)
    samples = []
    for k in range(budget.stage_b_samples):
        learning = ["-l", f"{rng.choice(space.learning_rates):g}",
                    "--power_t", f"{rng.choice(space.power_t):g}",
                    "--l2", f"{rng.choice(space.l2):g}",
                    "--cb_type", str(rng.choice(space.cb_types))]
        samples.append(command(ranked[k % len(ranked)] if ranked else (), learning))
    stage(samples, "learning")

    def terms(args: str) -> int:
        return args.count(" -q ")

    winner = max(scored.values(), key=lambda entry: (entry[1].value, -terms(entry[0].args)))
    return SearchResult(best=winner[0], trace=tuple(row for _, row in scored.values()),
                        cpu_seconds=spent, n_candidates=count)
