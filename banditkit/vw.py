"""Vowpal Wabbit behind banditkit's learner interfaces (one slot, and a page of rows).

This is the only module that imports ``vowpal_wabbit_next`` (pinned, experimental),
so another engine could replace it. Examples are built by VW's own DSJSON parser
from the same ``c`` object the decision log stores, so online learning and
``vw --dsjson`` on the log see identical features, and any feature name works
(spaces, colons, unicode). ``benchmarks/bench_loop.py`` measures this against
VW's text format and against pushing hashed features one by one from Python:
the text parser is slightly faster but cannot escape names; Python-side
construction was the slowest (one pybind call per feature).

Predictions, learning and parsing on the hot paths call vw-next's core past its
Python wrappers (pinned 0.7.0), through the three functions under "vw-next's
core" below and nowhere else: the wrappers query each example's label type on
every call: timed on vw-next 0.7.0 with a shared example and five actions,
the public ``Workspace.predict_one`` took 9.3 µs where the core took 3.1 µs,
and ``DSJsonFormatParser.parse_json`` 8.5 µs where the core's parser took 3.4 µs.
Every example comes from the workspace's own parser, so the skipped check
cannot fail.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import vowpal_wabbit_next as vw
from vowpal_wabbit_next import _core as _vw_core

from banditkit.bounded import drop_older_half
from banditkit.dsjson import dsjson_context, label_fields
from banditkit.encoding import FeatureEncoder
from banditkit.errors import InvalidInputError, ModelOutputError, NotFittedError
from banditkit.learner import Learner
from banditkit.rows.learner import OpenPage, PageLearner
from banditkit.settings import check_policy_args
from banditkit.types import Features

__all__ = [
    "ACTION_EXAMPLES_KEPT",
    "SHARED_EXAMPLES_KEPT",
    "ProgressiveScorer",
    "VWLearner",
    "VWPageLearner",
    "check_model",
    "read_model_options",
]

# Parsed examples a ranker keeps for reuse. A VW example takes about 31 KB (room
# for 256 namespaces), so these bound a ranker to about 130 MB. Kept examples go
# cold and fill vw-next's example pool when dropped: keeping 1024 contexts made
# single decisions 15% slower than keeping 16 (benchmarks/bench_loop.py), and a
# page's member needs one.
ACTION_EXAMPLES_KEPT = 4_096   # catalogue artwork: each variant's example
SHARED_EXAMPLES_KEPT = 16      # contexts: a page's member


def _keep(kept: dict, entries: Iterable[tuple[str, object]], limit: int) -> None:
    """Add parsed examples to ``kept``, at most ``limit`` of them."""
    kept.update(entries)
    drop_older_half(kept, limit)


# -- vw-next's core, past its Python wrappers (see the module docstring) ---------------


def _core(workspace: vw.Workspace) -> Any:
    """The core workspace behind ``workspace``."""
    return workspace._workspace  # noqa: SLF001


def _core_examples(workspace: vw.Workspace, line: str) -> list:
    """Core examples of a dsjson line, parsed by the workspace's DSJSON parser."""
    return _vw_core._parse_line_dsjson(_core(workspace), line)  # noqa: SLF001


def _core_example(example: vw.Example) -> Any:
    """The core example behind a parsed ``example``."""
    return example._example  # noqa: SLF001


# -- the learners ------------------------------------------------------------------------


class _VWModel:
    """What both VW learners share: the workspace built from ``args`` on first use
    (the arguments are checked then, not in the constructor), its DSJSON parser,
    learning from joined log lines and serialising.

    Subclasses name the reduction they need in ``_REDUCTION``.
    """

    _REDUCTION = ""

    def __init__(self, *, args: str, model_data: bytes | None) -> None:
        self.args = args
        self.model_data = model_data
        self._workspace: vw.Workspace | None = None
        self._dsjson_parser: vw.DSJsonFormatParser | None = None
        self._n_updates = 0
        super().__init__()

    def _build(self) -> None:
        """Make the workspace from ``args`` and ``model_data``, and its DSJSON parser."""
        tokens = shlex.split(self.args)
        if self._REDUCTION not in tokens:
            raise InvalidInputError(f"args must contain {self._REDUCTION}, got {self.args!r}")
        if "--quiet" not in tokens:
            tokens.append("--quiet")  # VW's diagnostics would flood a server's stderr
        try:
            workspace = vw.Workspace(tokens, model_data=self.model_data)
        except Exception as error:  # VW raises its own types for bad arguments
            raise InvalidInputError(f"invalid VW arguments {self.args!r}: {error}") from None
        self._workspace = workspace
        self._dsjson_parser = vw.DSJsonFormatParser(workspace)

    @property
    def _vw(self) -> vw.Workspace:
        if self._workspace is None:
            self._build()
        return self._workspace

    @property
    def n_updates_(self) -> int:
        """Examples (or pages) learned since construction.

        Raises
        ------
        NotFittedError
            Before the first one.
        """
        if self._n_updates == 0:
            raise NotFittedError(f"{type(self).__name__} has not learned from any event yet")
        return self._n_updates

    def _parse(self, line: str) -> list[vw.Example]:
        if self._dsjson_parser is None:
            self._build()
        return self._dsjson_parser.parse_json(line)

    def _parse_core(self, line: str) -> list:
        """Core examples of a dsjson line, for the core calls."""
        return _core_examples(self._vw, line)

    def learn_dsjson(self, line: str, *, skip_learn: bool | None = None) -> bool:
        """Learn from one joined dsjson line, as ``vw --dsjson`` would.

        Returns False (and learns nothing) for a line marked ``_skipLearn``;
        ``skip_learn`` is that mark when the caller knows it (None: read it).
        """
        if json.loads(line).get("_skipLearn") if skip_learn is None else skip_learn:
            return False
        _core(self._vw).learn_multi_ex_one(self._parse_core(line))
        self._n_updates += 1
        return True

    def to_bytes(self) -> bytes:
        return self._vw.serialize()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(args={self.args!r})"


class VWLearner(_VWModel, Learner):
    """A ``cb_explore_adf`` contextual bandit in Vowpal Wabbit.

    Parameters
    ----------
    args : str, default="--cb_explore_adf --epsilon 0.2 -q ::"
        VW arguments; exploration is one of ``--epsilon``, ``--softmax``, ``--bag``,
        ``--squarecb``, ``--cover``. Interactions between namespaces use VW's
        first-letter convention (``-q MA`` crosses ``Member`` with ``Artwork``).
    model_data : bytes, default=None
        A model saved by :meth:`to_bytes` to start from.

    Attributes
    ----------
    n_updates_ : int
        Examples learned since construction.
    """

    _REDUCTION = "--cb_explore_adf"

    def __init__(self, *, args: str = "--cb_explore_adf --epsilon 0.2 -q ::",
                 model_data: bytes | None = None) -> None:
        super().__init__(args=args, model_data=model_data)
        # Parsed examples kept for reuse by :meth:`predict_encoded`, by encoded features.
        self._action_examples: dict[str, Any] = {}
        self._shared_examples: dict[str, list] = {}

    def _examples(self, context: Features, actions: Sequence[Features],
                  label: tuple[int, float, float] | None = None) -> list[vw.Example]:
        """Shared example plus one per action; ``label`` is (index, cost, probability)."""
        record: dict = {}
        if label is not None:
            index, cost, probability = label
            record = {**label_fields(cost, probability, index),
                      "a": [index + 1], "p": [probability]}
        record["c"] = dsjson_context(context, actions)
        return self._parse(json.dumps(record, separators=(",", ":")))

    def predict_encoded(self, context: str, actions: Sequence[str]) -> list[float]:
        """Probabilities for one decision's features encoded by
        :class:`~banditkit.encoding.FeatureEncoder` (the engine's rank path).

        Catalogue artwork recurs in every decision, and a page's titles share
        one context, so the parsed examples are kept:
        each action's (up to ``ACTION_EXAMPLES_KEPT``) and each context's (up to
        ``SHARED_EXAMPLES_KEPT``). VW leaves an example as it found it after a
        prediction (the ADF reduction adds the shared features to each action
        and removes them again); ``tests/banditkit/test_vw_learner.py`` checks
        the predictions against parsing everything afresh. A list, not an
        array: for a few actions the sampling that follows is faster in plain
        Python.

        Returns
        -------
        list of float, length len(actions)

        Raises
        ------
        ModelOutputError
            When the model's probabilities are not finite.
        """
        core = _core(self._vw)
        kept, kept_shared = self._action_examples, self._shared_examples
        unique = dict.fromkeys(actions)
        missing = [text for text in unique if text not in kept]
        if missing:
            parsed = self._parse_core('{"c":{"_multi":[' + ",".join(missing) + "]}}")[1:]
            _keep(kept, zip(missing, parsed, strict=True), ACTION_EXAMPLES_KEPT)
        if len(unique) == len(actions):
            examples = [kept[text] for text in actions]
        else:  # one example object may not appear twice
            examples = self._parse_core('{"c":{"_multi":[' + ",".join(actions) + "]}}")[1:]
        shared = kept_shared.get(context)
        if shared is None:
            shared = self._parse_core('{"c":' + FeatureEncoder.shared(context, ()) + "}")
            _keep(kept_shared, ((context, shared),), SHARED_EXAMPLES_KEPT)
        pmf = [0.0] * len(actions)
        for index, probability in core.predict_multi_ex_one([*shared, *examples]):
            pmf[index] = probability
        total = sum(pmf)
        if not 0.0 < total < math.inf:  # also NaN: a probability was not finite
            raise ModelOutputError(f"the model's probabilities are not finite: {pmf}")
        return [p / total for p in pmf]

    _predict_encoded = predict_encoded

    def explain(self, context: Features, actions: Sequence[Features], *,
                top: int = 10) -> list[list[tuple[str, float]]]:
        """Each action's largest feature contributions to its score, for Personalizer's
        inference explainability (``inferenceExplanation``).

        A contribution is the model's weight times the feature's value, for each
        feature of the action and of the context and for each quadratic
        interaction the arguments ask for (``-q``/``--quadratic``/``--interactions``
        of two namespaces, ``:`` wildcards), signed as reward: VW learns costs,
        so a positive score raises the action's estimated reward. The weights
        are read where VW's own hashing puts them; other interaction orders
        (``--cubic``) and ``--ignore`` are not explained. Terms that share a
        name (a namespace and feature in both context and action) are summed.

        Parameters
        ----------
        context : Features
        actions : sequence of Features
        top : int, default=10
            Contributions kept per action, largest magnitude first.

        Returns
        -------
        list of list of (str, float), length len(actions)
            ``("Namespace.name", score)``, interactions as ``"A.x^B.y"``.
        """
        workspace = self._vw
        flat = workspace.weights().reshape(-1)
        # VW multiplies each hashed index by the weights per feature before use
        stride = flat.size // workspace.weights().shape[0]
        pairs = _quadratic_pairs(self.args)
        shared = _terms(workspace, context)
        out = []
        for action in actions:
            groups: dict[str, list[tuple[str, int, float]]] = {}
            for group, terms in [*_terms(workspace, action).items(), *shared.items()]:
                groups.setdefault(group, []).extend(terms)
            scores: dict[str, float] = {}
            for name, index, value in (term for terms in groups.values() for term in terms):
                weight = flat[(index * stride) % flat.size]
                scores[name] = scores.get(name, 0.0) - float(weight) * value
            for first, second in _expand(pairs, list(groups)):
                for i, (name_a, index_a, value_a) in enumerate(groups[first]):
                    half = _FNV_PRIME * index_a * stride
                    others = groups[second][i:] if first == second else groups[second]
                    for name_b, index_b, value_b in others:
                        weight = flat[((half ^ (index_b * stride)) & _UINT64) % flat.size]
                        key = f"{name_a}^{name_b}"
                        scores[key] = scores.get(key, 0.0) - float(weight) * value_a * value_b
            ranked = sorted(scores.items(), key=lambda item: -abs(item[1]))
            out.append(ranked[:top])
        return out

    def _learn_one(self, context: Features, actions: Sequence[Features], chosen: int,
                   reward: float, probability: float) -> None:
        self._vw.learn_one(self._examples(context, actions, (chosen, -reward, probability)))
        self._n_updates += 1


_FNV_PRIME = 16777619  # VW's quadratic interaction hash
_UINT64 = (1 << 64) - 1
_INTERACTION_FLAGS = ("-q", "--quadratic", "--interactions")


def _quadratic_pairs(args: str) -> list[tuple[str, str]]:
    """The quadratic interactions of VW arguments, as pairs of namespace first characters
    (``:`` a wildcard)."""
    tokens = shlex.split(args)
    pairs = []
    for index, token in enumerate(tokens):
        flag, equals, value = token.partition("=")
        if flag not in _INTERACTION_FLAGS:
            continue
        if not equals:
            value = tokens[index + 1] if index + 1 < len(tokens) else ""
        if len(value) == 2:
            pairs.append((value[0], value[1]))
    return pairs


def _expand(pairs: list[tuple[str, str]], groups: list[str]) -> list[tuple[str, str]]:
    """The namespace groups each pair crosses in one example; ``::`` crosses every group
    with itself and each later one in character order, once, as VW expands it."""
    out: list[tuple[str, str]] = []
    ordered = sorted(groups)
    for first, second in pairs:
        if first == second == ":":
            out += [(a, b) for i, a in enumerate(ordered) for b in ordered[i:]]
        elif first == ":":
            out += [(a, second) for a in groups if second in groups]
        elif second == ":":
            out += [(first, b) for b in groups if first in groups]
        elif first in groups and second in groups:
            out.append((first, second))
    return list(dict.fromkeys(out))


def _terms(workspace: vw.Workspace, features: Features) -> dict[str, list[tuple[str, int, float]]]:
    """A feature set's (display name, VW index, value) by namespace group (the namespace's
    first character, ``" "`` for the default one), in the order VW's JSON parser reads
    them: a string value is the feature ``name + value`` with value 1."""
    groups: dict[str, list[tuple[str, int, float]]] = {}
    for namespace, values in features.items():
        terms = groups.setdefault(namespace[:1] or " ", [])
        for name, value in values.items():
            numeric = not isinstance(value, str)
            hashed = workspace.get_index_for_scalar_feature(
                name if numeric else name + value, namespace_name=namespace or " ")
            label = f"{namespace}.{name}" if namespace else name
            terms.append((label, hashed, float(value) if numeric else 1.0))
    return groups


class ProgressiveScorer(_VWModel):
    """Progressive validation of a ``cb_explore_adf`` policy over joined log lines.

    Each :meth:`step` returns the policy's probabilities over the line's
    actions *before* it learns the line, then learns it (vw-next's
    predict-then-learn in one call), so every event is scored by a model that
    has not seen it: what the policy would have done online on that log
    (docs/architecture.md §6).

    Parameters
    ----------
    args : str
        VW arguments; must contain ``--cb_explore_adf``. Options that read or
        write files, open sockets or print are refused
        (:func:`banditkit.settings.check_policy_args`).

    Attributes
    ----------
    n_updates_ : int
        Lines learned since construction.
    """

    _REDUCTION = "--cb_explore_adf"

    def __init__(self, *, args: str) -> None:
        super().__init__(args=args, model_data=None)

    def _build(self) -> None:
        check_policy_args(self.args)
        super()._build()

    def step(self, line: str, n_actions: int) -> np.ndarray:
        """The pmf over a joined line's actions before learning it; then learn it.

        Parameters
        ----------
        line : str
            A joined dsjson line (not ``_skipLearn``).
        n_actions : int
            Actions in the line's ``_multi``.

        Returns
        -------
        ndarray of shape (n_actions,)
        """
        pmf = np.zeros(n_actions)
        for index, probability in _core(self._vw).predict_then_learn_multi_ex_one(
                self._parse_core(line)):
            pmf[index] = probability
        self._n_updates += 1
        return pmf


# -- rows: conditional contextual bandits ---------------------------------------------


class _VWOpenPage(OpenPage):
    """Examples of one page parsed once; each slot re-labels the slot examples.

    For slot ``k`` VW sees slots ``0..k``: those above include only the row
    placed there (so VW removes it from later slots and its slot index matches
    learning on the full logged line), slot ``k`` includes the allowed rows.
    """

    def __init__(self, *, workspace: vw.Workspace, examples: list[vw.Example],
                 n_actions: int, n_slots: int) -> None:
        super().__init__(n_actions=n_actions, n_slots=n_slots)
        self._slots = examples[1 + n_actions:]
        # The core, past the wrapper's label-type check: a third of a slot's time.
        self._predict = _core(workspace).predict_multi_ex_one
        self._raw_head = [_core_example(example) for example in examples[:1 + n_actions]]
        self._raw_slots = [_core_example(example) for example in self._slots]
        self._labelled: dict[int, int] = {}  # slot -> the row its label pins

    def _slot_pmf(self, slot: int, included: list[int], chosen_above: list[int]) -> np.ndarray:
        slot_type = vw.CCBExampleType.Slot
        labelled = self._labelled
        for above, chosen in enumerate(chosen_above):
            if labelled.get(above) != chosen:  # filling top-down relabels each slot once
                self._slots[above].set_label(
                    vw.CCBLabel(slot_type, explicit_included_actions=[chosen]))
                labelled[above] = chosen
        self._slots[slot].set_label(vw.CCBLabel(slot_type, explicit_included_actions=included))
        labelled.pop(slot, None)
        scores = self._predict([*self._raw_head, *self._raw_slots[:slot + 1]])[slot]
        position = {action: i for i, action in enumerate(included)}
        pmf = np.zeros(len(included))
        for action, probability in scores:
            pmf[position[action]] = probability
        return pmf / pmf.sum()


class VWPageLearner(_VWModel, PageLearner):
    """A ``ccb_explore_adf`` conditional contextual bandit in Vowpal Wabbit.

    Parameters
    ----------
    args : str, default="--ccb_explore_adf --epsilon 0.2 -q ::"
        VW arguments; must contain ``--ccb_explore_adf``. Exploration flags are
        those of ``cb_explore_adf`` (each slot explores as one CB decision).
    model_data : bytes, default=None
        As for :class:`VWLearner`: a saved model to start from.

    Attributes
    ----------
    n_updates_ : int
        As for :class:`VWLearner`, counting pages.
    """

    _REDUCTION = "--ccb_explore_adf"

    def __init__(self, *, args: str = "--ccb_explore_adf --epsilon 0.2 -q ::",
                 model_data: bytes | None = None) -> None:
        super().__init__(args=args, model_data=model_data)

    def _open_page(self, context: Features, actions: Sequence[Features],
                   slots: Sequence[Features]) -> OpenPage:
        shared = dsjson_context(context, actions)
        shared["_slots"] = [dsjson_context(slot, [])
                            for slot in slots]
        for slot in shared["_slots"]:
            del slot["_multi"]
        examples = self._parse(json.dumps({"c": shared}, separators=(",", ":")))
        return _VWOpenPage(workspace=self._vw, examples=examples, n_actions=len(actions),
                            n_slots=len(slots))


# -- saved models ------------------------------------------------------------------------

# A VW model begins with a header holding the options it was saved under, as a
# length-prefixed (uint32, little-endian), NUL-terminated string starting " --"
# (" --cb_adf --cb_explore_adf --cb_type mtr ... --quadratic ::"); it sits within
# the first few hundred bytes, after the version, model id and label range.
_HEADER_BYTES = 4096
_OPTIONS_START = re.compile(rb" --")
# What a model is asked to rank when it is checked: two actions of one namespace.
_PROBE = ('{"Probe":{"context":1}}', ['{"Probe":{"action":"a"}}', '{"Probe":{"action":"b"}}'])


def read_model_options(data: bytes) -> str:
    """The VW options a model was saved under, as its header holds them.

    Vowpal Wabbit loads a model saved under other options without complaint
    (a ``ccb_explore_adf`` model then predicts nothing, a regressor loads as a
    bandit), so a model from elsewhere is checked against these first.

    Parameters
    ----------
    data : bytes
        A serialised VW model.

    Raises
    ------
    InvalidInputError
        When no options are found where a VW model keeps them.
    """
    head = data[:_HEADER_BYTES]
    for match in _OPTIONS_START.finditer(head):
        start = match.start()
        if start < 4:
            continue
        end = start + int.from_bytes(head[start - 4:start], "little")
        if end <= len(data) and data[end - 1:end] == b"\0":
            return data[start:end - 1].decode("ascii", "replace").strip()
    raise InvalidInputError(f"not a Vowpal Wabbit model: no saved options in its first "
                            f"{min(len(data), _HEADER_BYTES)} bytes")


def check_model(data: bytes, *, args: str) -> None:
    """Check that ``data`` is a ``cb_explore_adf`` model a :class:`VWLearner` with
    ``args`` ranks with, before anything publishes it.

    Three checks, each naming what failed: the options saved in the model equal
    those of a fresh model under ``args`` (same reductions, exploration and
    interactions); VW loads it; and it gives finite probabilities for a
    two-action decision.

    Parameters
    ----------
    data : bytes
        A serialised VW model.
    args : str
        The VW arguments of the policy in force.

    Raises
    ------
    InvalidInputError
    """
    saved = read_model_options(data)
    expected = read_model_options(VWLearner(args=args).to_bytes())
    if saved != expected:
        raise InvalidInputError(f"the model was saved under VW options {saved!r}; the policy "
                                f"in force ({args!r}) saves {expected!r}")
    learner = VWLearner(args=args, model_data=data)
    try:
        pmf = learner.predict_encoded(*_PROBE)
    except (InvalidInputError, ModelOutputError, RuntimeError) as error:
        raise InvalidInputError(f"Vowpal Wabbit cannot rank with the model: {error}") from None
    if len(pmf) != len(_PROBE[1]):
        raise InvalidInputError(f"the model ranked {len(pmf)} of 2 actions")
