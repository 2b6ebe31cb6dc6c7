r"""Off-policy evaluation of page policies from the row engine's CCB dsjson log.

Each joined page line (:mod:`banditkit.rows`) gives, per slot :math:`l`, the
row shown, the logging probability :math:`\mu_{il}` of that row *given the rows
placed above* (``_outcomes[l]._p[0]``), the rows the page rules allowed
(``_slots[l]._inc``) and the slot's joined reward (``-_label_cost``). A target
page policy is asked for the same conditional probability :math:`\pi_{il}` on
the logged page, so the slate estimators of :mod:`ope.slate` get exactly
what they need:

* :class:`~ope.slate.SlateRewardInteractionIPS` ("rips") and
  :class:`~ope.slate.SlateStandardIPS` ("sips") take conditional
  probabilities: exact from the log, unbiased (RIPS when a slot's reward
  depends on the rows at and above it, SIPS always);
* :class:`~ope.slate.SlateIndependentIPS` ("iips") and
  :class:`~ope.slate.SlatePseudoInverse` ("pi") want *marginal*
  probabilities, which the log does not hold for a sequential logger. They
  are computed here with the conditional ones in their place, which is exact
  only when both policies fill slots independently of the rows above; the
  report says so in its notes. With ``reward="page"`` the page reward
  (``_banditkit.pageReward``) is the only reward, the case the pseudo-inverse
  is for.

Target policies: ``logged``, ``uniform`` (uniform over the rows the rules
allowed), ``editorial`` (each slot's first allowed row in candidate order, the
order a product team sends) and ``model:PATH`` / ``greedy:PATH`` (a saved
``--ccb_explore_adf`` model, as deployed or without exploration). All see
the logged rules, since the allowed set of a slot depends only on the rows
above it.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from banditkit.dsjson import JoinedPage, parse_page
from banditkit.errors import InvalidInputError
from banditkit.eventlog import log_files
from ope.base import OffPolicyEstimator
from ope.evaluation import EvaluationReport, evaluate_stream
from ope.slate import (
    PageRounds,
    PageTarget,
    SlateIndependentIPS,
    SlatePseudoInverse,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
)

__all__ = [
    "PagePolicy",
    "SLATE_ESTIMATOR_NAMES",
    "evaluate_pages",
    "make_page_policy",
    "make_slate_estimators",
    "read_pages",
    "slate_inputs",
]

SLATE_ESTIMATOR_NAMES = ("rips", "sips", "iips", "pi")
_CLASSES = {"rips": SlateRewardInteractionIPS, "sips": SlateStandardIPS,
            "iips": SlateIndependentIPS, "pi": SlatePseudoInverse}
_MARGINAL = ("iips", "pi")


def read_pages(paths: Iterable[str | os.PathLike]) -> Iterator[JoinedPage]:
    """Joined pages from CCB dsjson files or folders, in file order.

    Raises
    ------
    InvalidInputError
        Naming the file and line of the first line that is not a joined CCB page.
    """
    for path in log_files(paths):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield parse_page(json.loads(line))
                except (ValueError, KeyError, TypeError, IndexError) as error:
                    raise InvalidInputError(
                        f"{path}:{number}: not a joined CCB page: {error!r}") from None


# ----------------------------------------------------------------------- policies


class PagePolicy(abc.ABC):
    """A page policy, asked about logged pages only."""

    name: str

    @abc.abstractmethod
    def conditional(self, page: JoinedPage) -> np.ndarray:
        """Probability of each logged slot's row given the logged rows above; shape (n_slots,)."""


class _Logged(PagePolicy):
    name = "logged"

    def conditional(self, page: JoinedPage) -> np.ndarray:
        return np.array(page.probability)


class _Uniform(PagePolicy):
    name = "uniform"

    def conditional(self, page: JoinedPage) -> np.ndarray:
        return np.array([1.0 / len(allowed) for allowed in page.eligible])


class _Editorial(PagePolicy):
    name = "editorial"

    def conditional(self, page: JoinedPage) -> np.ndarray:
        return np.array([float(row == allowed[0])
                         for row, allowed in zip(page.chosen, page.eligible, strict=True)])


class ModelPagePolicy(PagePolicy):
    """A page learner (``open_page``/``slot_pmf``) as a page policy.

    Parameters
    ----------
    learner : banditkit.rows.learner.PageLearner
    name : str
    greedy : bool, default=False
        Show each slot's top row with probability 1 instead of exploring.
    """

    def __init__(self, *, learner, name: str, greedy: bool = False) -> None:
        self.learner = learner
        self.name = name
        self.greedy = greedy

    def conditional(self, page: JoinedPage) -> np.ndarray:
        prepared = self.learner.open_page(page.context, page.rows, page.slots,
                                          check_input=False)
        out = np.empty(len(page.chosen))
        for k, (row, allowed) in enumerate(zip(page.chosen, page.eligible, strict=True)):
            pmf = prepared.slot_pmf(k, allowed, page.chosen[:k])
            position = allowed.index(row)
            out[k] = float(np.argmax(pmf) == position) if self.greedy else pmf[position]
        return out


def make_page_policy(spec: str | PagePolicy, *, model_args: str | None = None) -> PagePolicy:
    """A page policy from its name: logged, uniform, editorial, model:PATH, greedy:PATH.

    Parameters
    ----------
    model_args : str, default=None
        VW arguments of saved models; None uses ``VWPageLearner``'s default.
    """
    if isinstance(spec, PagePolicy):
        return spec
    simple = {"logged": _Logged, "uniform": _Uniform, "editorial": _Editorial}
    if spec in simple:
        return simple[spec]()
    for prefix in ("model:", "greedy:"):
        if spec.startswith(prefix):
            from banditkit.vw import VWPageLearner

            path = Path(spec[len(prefix):])
            if not path.is_file():
                raise ValueError(f"model file does not exist: {path}")
            arguments = {} if model_args is None else {"args": model_args}
            return ModelPagePolicy(
                learner=VWPageLearner(model_data=path.read_bytes(), **arguments), name=spec,
                greedy=prefix == "greedy:")
    raise ValueError(f"page policy must be logged, uniform, editorial, model:PATH or "
                     f"greedy:PATH, got {spec!r}")


# ---------------------------------------------------------------------- estimates


def make_slate_estimators(names: Sequence[str] = ("rips", "sips"), *,
                          confidence_level: float = 0.95,
                          ci_method: str = "clt") -> list[OffPolicyEstimator]:
    """Slate estimators by name (:data:`SLATE_ESTIMATOR_NAMES`)."""
    out = []
    for name in names:
        if name not in _CLASSES:
            raise ValueError(f"slate estimator names must be among {SLATE_ESTIMATOR_NAMES}, "
                             f"got {name!r}")
        out.append(_CLASSES[name](confidence_level=confidence_level, ci_method=ci_method))
    return out


def slate_inputs(pages: Sequence[JoinedPage], policies: Sequence[PagePolicy], *,
                 reward: str = "slots", n_slots: int | None = None
                 ) -> tuple[PageRounds, dict[str, PageTarget]]:
    """The estimators' inputs for a list of pages.

    Pages shorter than ``n_slots`` (default: the longest) are padded with
    reward 0 and probability 1 for logger and targets, which leaves every
    estimator unchanged.

    Parameters
    ----------
    reward : {"slots", "page"}, default="slots"
        Per-slot rewards, or the page reward alone (in the first slot).
    """
    if reward not in ("slots", "page"):
        raise ValueError(f"reward must be 'slots' or 'page', got {reward!r}")
    width = n_slots or max(len(page.chosen) for page in pages)
    logged_reward = np.zeros((len(pages), width))
    logged = np.ones((len(pages), width))
    targets = {policy.name: np.ones((len(pages), width)) for policy in policies}
    for i, page in enumerate(pages):
        n = len(page.chosen)
        if reward == "slots":
            logged_reward[i, :n] = page.reward
        else:
            logged_reward[i, 0] = page.page_reward
        logged[i, :n] = page.probability
        for policy in policies:
            targets[policy.name][i, :n] = policy.conditional(page)
    return (PageRounds(reward=logged_reward, probability=logged),
            {name: PageTarget(probability=p) for name, p in targets.items()})


def evaluate_pages(paths: Sequence[str | os.PathLike], *,
                   policies: Sequence[str | PagePolicy] = ("logged", "uniform", "editorial"),
                   estimators: Sequence[str] = ("rips", "sips"), reward: str = "slots",
                   confidence_level: float = 0.95, chunk_size: int = 20_000,
                   model_args: str | None = None) -> EvaluationReport:
    """Slate OPE of page policies on CCB logs, streaming chunk by chunk.

    Parameters
    ----------
    paths : sequence of path
        CCB dsjson files or folders (the row engine writes ``rows/logs``).
    policies : sequence of str or PagePolicy, default=("logged", "uniform", "editorial")
    estimators : sequence of str, default=("rips", "sips")
        Any of :data:`SLATE_ESTIMATOR_NAMES`.
    reward : {"slots", "page"}, default="slots"
    confidence_level : float, default=0.95
    chunk_size : int, default=20000
        Pages per chunk (memory).
    model_args : str, default=None
        VW arguments of ``model:``/``greedy:`` policies.

    Returns
    -------
    EvaluationReport
        ``notes`` count skipped (never activated) pages and warn about
        marginal-probability estimators.
    """
    page_policies = [make_page_policy(p, model_args=model_args) for p in policies]
    chosen = make_slate_estimators(estimators, confidence_level=confidence_level)
    files = log_files(paths)
    width = 0
    for page in read_pages(files):
        width = max(width, len(page.chosen))
    if width == 0:
        raise ValueError(f"no joined CCB pages in {[str(p) for p in paths]}")
    skipped = 0

    def chunks() -> Iterator[tuple[PageRounds, dict[str, PageTarget]]]:
        nonlocal skipped
        batch: list[JoinedPage] = []
        for page in read_pages(files):
            if page.skip_learn:
                skipped += 1
                continue
            batch.append(page)
            if len(batch) == chunk_size:
                yield slate_inputs(batch, page_policies, reward=reward, n_slots=width)
                batch = []
        if batch:
            yield slate_inputs(batch, page_policies, reward=reward, n_slots=width)

    report = evaluate_stream(chunks(), estimators=chosen)
    notes: dict[str, object] = {"skipped_never_activated": skipped, "reward": reward,
                                "slots": width}
    if any(name in _MARGINAL for name in estimators):
        notes["marginals"] = ("iips/pi use slot-conditional probabilities as marginals: "
                              "exact only for policies that fill slots independently")
    return EvaluationReport(n_rounds=report.n_rounds, estimates=report.estimates,
                            notes=notes)
