"""Vowpal Wabbit behind banditkit's learner interface.

This is the only module that imports ``vowpal_wabbit_next`` (pinned, experimental),
so another engine could replace it. Examples are built directly from namespaced
features: each distinct (namespace, feature[, string value]) is hashed once by
VW's own DSJSON parser and cached, so online examples carry exactly the feature
indices that ``vw --dsjson`` would compute from the decision log
(``benchmarks/bench_loop.py`` measures this against text parsing).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

import numpy as np
import vowpal_wabbit_next as vw

from banditkit.errors import InvalidInputError, NotFittedError
from banditkit.eventlog import dsjson_context
from banditkit.learner import Learner
from banditkit.types import Features

__all__ = ["VWLearner"]

# A workspace holds a cache of every hashed feature; a cap bounds it when callers
# send high-cardinality values (ids, timestamps) despite DESIGN.md §3.
_MAX_CACHED_FEATURES = 1_000_000


class _FeatureHasher:
    """Maps a feature to (feature group, VW index, value), hashing each name once."""

    def __init__(self, workspace: vw.Workspace) -> None:
        self._parser = vw.DSJsonFormatParser(workspace)
        self._cache: dict[tuple[str, str, str | None], tuple[int, int]] = {}

    def encode(self, features: Features) -> list[tuple[int, list[tuple[int, float]]]]:
        """Features grouped by VW feature group: ``[(group, [(index, value), ...]), ...]``."""
        groups: dict[int, list[tuple[int, float]]] = {}
        cache = self._cache
        for namespace, group in features.items():
            for name, value in group.items():
                if value is False or (not isinstance(value, str) and value == 0):
                    continue  # VW drops absent flags and zero values
                if isinstance(value, str):
                    key, weight = (namespace, name, value), 1.0
                else:
                    key, weight = (namespace, name, None), float(value)
                slot = cache.get(key) or self._hash(*key)
                groups.setdefault(slot[0], []).append((slot[1], weight))
        return list(groups.items())

    def _hash(self, namespace: str, name: str, value: str | None) -> tuple[int, int]:
        probe = {namespace: {name: 1 if value is None else value}}
        examples = self._parser.parse_json(json.dumps({"c": dsjson_context(probe, [])}))
        group = next(iter(examples[0]))
        slot = (group.feat_group_index, int(group.indices[0]))
        if len(self._cache) >= _MAX_CACHED_FEATURES:
            self._cache.clear()
        self._cache[(namespace, name, value)] = slot
        return slot


class VWLearner(Learner):
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

    def __init__(self, *, args: str = "--cb_explore_adf --epsilon 0.2 -q ::",
                 model_data: bytes | None = None) -> None:
        self.args = args
        self.model_data = model_data

    @property
    def _vw(self) -> vw.Workspace:
        workspace = self.__dict__.get("_workspace")
        if workspace is None:
            tokens = shlex.split(self.args)
            if "--cb_explore_adf" not in tokens:
                raise InvalidInputError(f"args must contain --cb_explore_adf, got {self.args!r}")
            if "--quiet" not in tokens:
                tokens.append("--quiet")  # VW's diagnostics would flood a server's stderr
            try:
                workspace = vw.Workspace(tokens, model_data=self.model_data)
            except Exception as error:  # VW raises its own types for bad arguments
                raise InvalidInputError(f"invalid VW arguments {self.args!r}: {error}") from None
            self._workspace = workspace
            self._hasher = _FeatureHasher(workspace)
            self._dsjson_parser = vw.DSJsonFormatParser(workspace)
            self._label_type = workspace.label_type
        return workspace

    @property
    def n_updates_(self) -> int:
        n = self.__dict__.get("_n_updates", 0)
        if n == 0:
            raise NotFittedError("VWLearner has not learned from any event yet")
        return n

    def _examples(self, context: Features, actions: Sequence[Features],
                  label: tuple[int, float, float] | None = None) -> list[vw.Example]:
        _ = self._vw  # builds the workspace and its hasher on first use
        shared = self._example(context)
        shared.set_label(vw.CBLabel(shared=True))
        examples = [shared]
        for position, features in enumerate(actions):
            example = self._example(features)
            if label is not None and position == label[0]:
                example.set_label(vw.CBLabel(label=(position + 1, label[1], label[2])))
            else:
                example.set_label(vw.CBLabel())
            examples.append(example)
        return examples

    def _example(self, features: Features) -> vw.Example:
        example = vw.Example(_label_type=self._label_type)
        for group, pairs in self._hasher.encode(features):
            feature_group = example[group]
            for index, value in pairs:
                feature_group.push_feature(index, value)
        return example

    def _predict_one(self, context: Features, actions: Sequence[Features]) -> np.ndarray:
        scores = self._vw.predict_one(self._examples(context, actions))
        pmf = np.zeros(len(actions))
        for index, probability in scores:
            pmf[index] = probability
        return pmf / pmf.sum()

    def _learn_one(self, context: Features, actions: Sequence[Features], chosen: int,
                   reward: float, probability: float) -> None:
        self._vw.learn_one(self._examples(context, actions, (chosen, -reward, probability)))
        self._n_updates = self.__dict__.get("_n_updates", 0) + 1

    def learn_dsjson(self, line: str) -> bool:
        """Learn from one joined dsjson line, as ``vw --dsjson`` would.

        Returns False (and learns nothing) for a line marked ``_skipLearn``.
        """
        if json.loads(line).get("_skipLearn"):
            return False
        workspace = self._vw
        workspace.learn_one(self._dsjson_parser.parse_json(line))
        self._n_updates = self.__dict__.get("_n_updates", 0) + 1
        return True

    def to_bytes(self) -> bytes:
        return self._vw.serialize()

    def __repr__(self) -> str:
        return f"VWLearner(args={self.args!r})"

