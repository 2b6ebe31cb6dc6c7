"""The logged-data types shared by the simulator, replay and the event log reader.

:class:`LoggedRounds` holds what the logging policy did: per round the reward,
the index of the logged action, its logging propensity and how many actions the
round offered. :class:`TargetRounds` holds what a *target* policy would do on
the same rounds, compressed to per-round scalars so that evaluation needs
O(n_rounds) memory whatever the number of actions: the target's probability of
the logged action, and (for DM/DR-type estimators) a reward model's prediction
for the logged action and its expectation under the target's distribution.

:meth:`TargetRounds.from_dense` is the one place that accepts dense
``(n_rounds, n_actions)`` arrays, for callers who have them anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from ope.validation import (
    check_1d,
    check_finite,
    check_in_open_closed_unit,
    check_integer_at_least,
    check_probability_vector,
    check_same_length,
)

__all__ = ["LoggedRounds", "TargetRounds", "iter_chunks"]

_DENSE_BLOCK = 1 << 16


def _freeze(array: np.ndarray) -> np.ndarray:
    """A read-only copy, so freezing never touches the caller's array; an array that
    nothing can write (read-only down to its memory's owner, as pyarrow's buffers are)
    is kept as it is, a copy of a million rounds saved per column."""
    if _immutable(array):
        return array
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def _immutable(array: np.ndarray) -> bool:
    while isinstance(array, np.ndarray):
        if array.flags.writeable:
            return False
        array = array.base
    # behind read-only views, an owner that is not a view of something else (pyarrow's
    # buffer, bytes); a memoryview may show a bytearray that is still written
    return array is not None and not isinstance(array, memoryview)


@dataclass(frozen=True, eq=False)
class LoggedRounds:
    """Logged bandit rounds: one entry per decision, arrays of length ``n_rounds``.

    Arrays are converted to ``float64``/``int64`` on construction, validated,
    and made read-only.

    Parameters
    ----------
    reward : ndarray of shape (n_rounds,)
        Observed reward of each round (e.g. 1.0 for a take). Must be finite.
    action : ndarray of shape (n_rounds,), dtype int
        0-based index of the logged (chosen) action within its round.
    probability : ndarray of shape (n_rounds,)
        Logging propensity of the logged action, in (0, 1].
    n_actions : ndarray of shape (n_rounds,) or int
        Number of actions offered in each round (rounds may differ); an int
        applies to every round. ``action < n_actions`` must hold.
    round_id : ndarray of shape (n_rounds,), default=None
        Optional identifiers (e.g. dsjson ``EventId``).
    context : ndarray of shape (n_rounds, n_features) or (n_rounds,), default=None
        Optional per-round context: a numeric feature matrix, or an object
        array of namespaced feature dicts.
    first_index : int, default=0
        Position of the first round in the whole log. :meth:`chunks` sets it,
        so that counter-based random draws (Replay's rejection sampling) are
        the same whether a log is evaluated in one piece or chunk by chunk.

    Raises
    ------
    ValueError
        On an empty log, mismatched lengths, propensities outside (0, 1],
        non-finite rewards or action indices outside ``[0, n_actions)``.
    """

    reward: np.ndarray
    action: np.ndarray
    probability: np.ndarray
    n_actions: np.ndarray
    round_id: np.ndarray | None = None
    context: np.ndarray | None = None
    first_index: int = 0

    def __post_init__(self) -> None:
        reward = check_finite(check_1d(self.reward, name="reward"), name="reward")
        n = len(reward)
        if n == 0:
            raise ValueError("reward must hold at least one round, got an empty log")
        action = check_1d(self.action, name="action", dtype=int)
        probability = check_in_open_closed_unit(
            check_1d(self.probability, name="probability"), name="probability")
        if np.ndim(self.n_actions) == 0:
            n_actions = np.full(n, check_integer_at_least(
                int(self.n_actions) if isinstance(self.n_actions, np.ndarray)
                else self.n_actions, 1, name="n_actions"), dtype=np.int64)
        else:
            n_actions = check_1d(self.n_actions, name="n_actions", dtype=int)
        for name, array in (("action", action), ("probability", probability),
                            ("n_actions", n_actions)):
            check_same_length(n, array, name=name)
        if (n_actions < 1).any():
            first = int(np.flatnonzero(n_actions < 1)[0])
            raise ValueError(f"n_actions must be >= 1, got {n_actions[first]} at position {first}")
        bad = (action < 0) | (action >= n_actions)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"action must be in [0, n_actions), got action={action[first]} "
                             f"with n_actions={n_actions[first]} at position {first}")
        round_id = None if self.round_id is None else np.asarray(self.round_id)
        context = None if self.context is None else np.asarray(self.context)
        check_same_length(n, round_id, name="round_id")
        check_same_length(n, context, name="context")
        check_integer_at_least(self.first_index, 0, name="first_index")
        set_ = object.__setattr__
        set_(self, "reward", _freeze(reward))
        set_(self, "action", _freeze(action))
        set_(self, "probability", _freeze(probability))
        set_(self, "n_actions", _freeze(n_actions))
        set_(self, "round_id", None if round_id is None else _freeze(round_id))
        set_(self, "context", None if context is None else _freeze(context))

    @property
    def n_rounds(self) -> int:
        """Number of rounds."""
        return len(self.reward)

    def __len__(self) -> int:
        return len(self.reward)

    def take(self, index: np.ndarray | slice) -> LoggedRounds:
        """The rounds at ``index`` (a slice keeps ``first_index`` consistent)."""
        first = self.first_index
        if isinstance(index, slice):
            start, _, step = index.indices(len(self))
            first = self.first_index + start if step == 1 else 0
        return LoggedRounds(
            reward=self.reward[index], action=self.action[index],
            probability=self.probability[index], n_actions=self.n_actions[index],
            round_id=None if self.round_id is None else self.round_id[index],
            context=None if self.context is None else self.context[index],
            first_index=first)

    def block(self, start: int, stop: int) -> LoggedRounds:
        """Rounds ``start:stop`` as views of these arrays, without re-validation (estimators
        stream over blocks of rounds)."""
        view = object.__new__(LoggedRounds)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = value[start:stop]
            object.__setattr__(view, f.name, value)
        object.__setattr__(view, "first_index", self.first_index + start)
        return view

    def chunks(self, size: int) -> Iterator[LoggedRounds]:
        """Consecutive pieces of at most ``size`` rounds, each knowing its position."""
        check_integer_at_least(size, 1, name="size")
        for start in range(0, len(self), size):
            yield self.take(slice(start, start + size))

    @classmethod
    def concatenate(cls, parts: Sequence[LoggedRounds]) -> LoggedRounds:
        """Join logs end to end; optional fields are kept only if every part has them."""
        parts = list(parts)
        if not parts:
            raise ValueError("parts must hold at least one LoggedRounds, got none")
        def join(name: str) -> np.ndarray | None:
            arrays = [getattr(part, name) for part in parts]
            if any(array is None for array in arrays):
                return None
            return np.concatenate(arrays)
        return cls(reward=join("reward"), action=join("action"),
                   probability=join("probability"), n_actions=join("n_actions"),
                   round_id=join("round_id"), context=join("context"),
                   first_index=parts[0].first_index)

    def with_reward(self, reward: np.ndarray) -> LoggedRounds:
        """A copy with other rewards (e.g. another outcome of the same decisions)."""
        return replace(self, reward=reward)


@dataclass(frozen=True, eq=False)
class TargetRounds:
    r"""What a target policy :math:`\pi_e` does on logged rounds, as per-round scalars.

    Parameters
    ----------
    probability : ndarray of shape (n_rounds,)
        :math:`\pi_e(a_i \mid x_i)`, the target's probability of the logged action.
    model_reward : ndarray of shape (n_rounds,), default=None
        :math:`\hat q(x_i, a_i)`, a reward model's prediction for the logged
        action. Needed by DR, SNDR, Switch-DR and DRos.
    model_value : ndarray of shape (n_rounds,), default=None
        :math:`\hat v_i = \sum_a \pi_e(a \mid x_i)\, \hat q(x_i, a)`, the
        model's expected reward under the target. Needed by DM and the DR family.
    unsupported_mass : ndarray of shape (n_rounds,), default=None
        :math:`\sum_{a:\, \pi_b(a \mid x_i) = 0} \pi_e(a \mid x_i)`, the target's
        mass on actions the logging policy never explores in that round. Known
        only when the logging distribution is; feeds the support diagnostic.
    """

    probability: np.ndarray
    model_reward: np.ndarray | None = None
    model_value: np.ndarray | None = None
    unsupported_mass: np.ndarray | None = None

    def __post_init__(self) -> None:
        probability = check_probability_vector(
            check_1d(self.probability, name="target probability"), name="target probability")
        n = len(probability)
        for name in ("model_reward", "model_value", "unsupported_mass"):
            value = getattr(self, name)
            if value is None:
                continue
            array = check_finite(check_1d(value, name=name), name=name)
            check_same_length(n, array, name=name)
            if name == "unsupported_mass":
                check_probability_vector(array, name=name)
            object.__setattr__(self, name, _freeze(array))
        object.__setattr__(self, "probability", _freeze(probability))

    def __len__(self) -> int:
        return len(self.probability)

    def take(self, index: np.ndarray | slice) -> TargetRounds:
        """The rounds at ``index``."""
        return TargetRounds(**{f.name: None if getattr(self, f.name) is None
                               else getattr(self, f.name)[index] for f in fields(self)})

    def block(self, start: int, stop: int) -> TargetRounds:
        """Rounds ``start:stop`` as views of these arrays, without re-validation (estimators
        stream over blocks of rounds)."""
        view = object.__new__(TargetRounds)
        for f in fields(self):
            value = getattr(self, f.name)
            object.__setattr__(view, f.name, None if value is None else value[start:stop])
        return view

    @classmethod
    def concatenate(cls, parts: Sequence[TargetRounds]) -> TargetRounds:
        """Join per-round arrays end to end; optional ones kept only if all parts have them."""
        parts = list(parts)
        if not parts:
            raise ValueError("parts must hold at least one TargetRounds, got none")
        joined = {}
        for f in fields(cls):
            arrays = [getattr(part, f.name) for part in parts]
            joined[f.name] = None if any(a is None for a in arrays) else np.concatenate(arrays)
        return cls(**joined)

    @classmethod
    def from_dense(
        cls,
        rounds: LoggedRounds,
        action_dist: np.ndarray,
        *,
        model_predictions: np.ndarray | None = None,
        logging_dist: np.ndarray | None = None,
    ) -> TargetRounds:
        """Compress dense per-action arrays to per-round scalars.

        This is the explicit O(n_rounds x n_actions) entry point; everything
        after it is O(n_rounds).

        Parameters
        ----------
        rounds : LoggedRounds
        action_dist : ndarray of shape (n_rounds, max_actions)
            Target distribution over each round's actions; entries at positions
            ``>= rounds.n_actions`` must be 0 and rows must sum to 1.
        model_predictions : ndarray of shape (n_rounds, max_actions), default=None
            Reward model predictions :math:`\\hat q(x_i, a)` for every action.
        logging_dist : ndarray of shape (n_rounds, max_actions), default=None
            The logging distribution, to compute ``unsupported_mass``.
        """
        dist = np.asarray(action_dist, dtype=np.float64)
        n = len(rounds)
        if dist.ndim != 2 or dist.shape[0] != n or dist.shape[1] < rounds.n_actions.max():
            raise ValueError(f"action_dist must have shape (n_rounds={n}, >= "
                             f"{int(rounds.n_actions.max())}), got {dist.shape}")
        q = mu = None
        if model_predictions is not None:
            q = np.asarray(model_predictions, dtype=np.float64)
            if q.shape != dist.shape:
                raise ValueError(f"model_predictions must have shape {dist.shape}, got {q.shape}")
        if logging_dist is not None:
            mu = np.asarray(logging_dist, dtype=np.float64)
            if mu.shape != dist.shape:
                raise ValueError(f"logging_dist must have shape {dist.shape}, got {mu.shape}")
        probability = np.empty(n)
        model_reward = np.empty(n) if q is not None else None
        model_value = np.empty(n) if q is not None else None
        unsupported = np.empty(n) if mu is not None else None
        ragged = bool(rounds.n_actions.min() < dist.shape[1])
        # Blocks of rows keep every temporary small (and in cache).
        for start in range(0, n, _DENSE_BLOCK):
            stop = min(start + _DENSE_BLOCK, n)
            block = slice(start, stop)
            d = dist[block]
            rows = np.arange(stop - start)
            action = rounds.action[block]
            bad = ~((d >= 0) & (d <= 1 + 1e-12))  # also catches NaN
            if bad.any():
                row, column = np.argwhere(bad)[0]
                raise ValueError(f"action_dist must be in [0, 1], got {float(d[row, column])!r}"
                                 f" in row {start + row}")
            sums = d.sum(axis=1)
            off = np.abs(sums - 1.0) > 1e-6
            if off.any():
                row = int(np.flatnonzero(off)[0])
                raise ValueError(f"action_dist rows must sum to 1, got {float(sums[row])!r} "
                                 f"in row {start + row}")
            outside = None
            if ragged:
                outside = np.arange(d.shape[1])[None, :] >= rounds.n_actions[block, None]
                if (d[outside] > 0).any():
                    raise ValueError("action_dist puts mass on positions >= n_actions of "
                                     "its round")
            probability[block] = d[rows, action]
            if q is not None:
                qb = q[block] if outside is None else np.where(outside, 0.0, q[block])
                check_finite(qb, name="model_predictions")
                model_reward[block] = qb[rows, action]  # type: ignore[index]
                model_value[block] = np.einsum("ij,ij->i", d, qb)  # type: ignore[index]
            if mu is not None:
                unsupported[block] = np.einsum(  # type: ignore[index]
                    "ij,ij->i", d, (mu[block] <= 0).astype(np.float64))
        if unsupported is not None:
            np.clip(unsupported, 0.0, 1.0, out=unsupported)
        return cls(probability=probability, model_reward=model_reward,
                   model_value=model_value, unsupported_mass=unsupported)


def iter_chunks(rounds: LoggedRounds, target: TargetRounds,
                size: int) -> Iterator[tuple[LoggedRounds, TargetRounds]]:
    """Matching chunks of a log and of a target policy's per-round arrays."""
    if len(target) != len(rounds):
        raise ValueError(f"target must have length n_rounds={len(rounds)}, got {len(target)}")
    for chunk in rounds.chunks(size):
        start = chunk.first_index - rounds.first_index
        yield chunk, target.take(slice(start, start + len(chunk)))
