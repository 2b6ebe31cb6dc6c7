"""Logs drawn from an :class:`~simulator.world.ArtworkWorld`, with their ground truth.

A policy on the world is an array of shape ``(n_members, n_titles, n_variants)``
of probabilities (``ArtworkWorld.uniform_policy()`` and friends). Requests are
(member, title) pairs drawn uniformly, so ``world.policy_value(policy)`` is the
exact value that an off-policy estimate on a :class:`WorldLog` aims at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from banditkit.dsjson import EXTRA_KEY, dsjson_context, label_fields
from banditkit.eventlog import iso_timestamp
from banditkit.sampling import rank_order
from ope.rounds import LoggedRounds, TargetRounds
from ope.validation import check_integer_at_least, check_non_negative
from simulator.world import ArtworkWorld

__all__ = [
    "WorldLog",
    "check_policy",
    "epsilon_greedy",
    "evaluate_world_log",
    "reference_policies",
    "sample_log",
    "taste_policy",
    "world_features",
    "write_world_log",
]


def check_policy(world: ArtworkWorld, policy: np.ndarray, *, name: str = "policy") -> np.ndarray:
    """Require a probability array of the world's shape whose last axis sums to 1."""
    policy = np.asarray(policy, dtype=np.float64)
    if policy.shape != world.take_probability.shape:
        raise ValueError(f"{name} must have shape {world.take_probability.shape}, "
                         f"got {policy.shape}")
    if not np.all(np.isfinite(policy)) or (policy < 0).any():
        raise ValueError(f"{name} must hold finite probabilities >= 0")
    if not np.allclose(policy.sum(axis=2), 1.0, atol=1e-6):
        raise ValueError(f"{name} must sum to 1 over variants for every member and title")
    return policy


def taste_policy(world: ArtworkWorld, *, sharpness: float = 8.0,
                 epsilon: float = 0.1) -> np.ndarray:
    """A personalized policy from what a bandit can see: the observed taste.

    Softmax of ``sharpness`` x the member's observed taste for each variant's
    theme, mixed with uniform exploration of weight ``epsilon``.

    Parameters
    ----------
    world : ArtworkWorld
    sharpness : float, default=8.0
        Inverse temperature; 0 gives the uniform policy.
    epsilon : float, default=0.1
        Uniform share in [0, 1]; > 0 keeps every variant's propensity positive.

    Returns
    -------
    ndarray of shape (n_members, n_titles, n_variants)
    """
    check_non_negative(sharpness, name="sharpness")
    epsilon = check_non_negative(epsilon, name="epsilon")
    if epsilon > 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    logit = sharpness * world.observed_taste[:, world.variant_theme]
    logit -= logit.max(axis=2, keepdims=True)
    softmax = np.exp(logit)
    softmax /= softmax.sum(axis=2, keepdims=True)
    return (1 - epsilon) * softmax + epsilon / world.n_variants


def epsilon_greedy(policy: np.ndarray, *, epsilon: float) -> np.ndarray:
    """Mix a policy with the uniform distribution: ``(1 - epsilon) pi + epsilon / K``."""
    epsilon = check_non_negative(epsilon, name="epsilon")
    if epsilon > 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    policy = np.asarray(policy, dtype=np.float64)
    return (1 - epsilon) * policy + epsilon / policy.shape[-1]


@dataclass(frozen=True, eq=False)
class WorldLog:
    """A log drawn from a world under a known logging policy.

    Attributes
    ----------
    world : ArtworkWorld
    logging_policy : ndarray of shape (n_members, n_titles, n_variants)
    requests : ndarray of shape (n_rounds, 2)
        (member, title) of each round.
    rounds : LoggedRounds
        Logged action = variant index; reward = take (0/1).
    """

    world: ArtworkWorld
    logging_policy: np.ndarray
    requests: np.ndarray
    rounds: LoggedRounds

    def target(self, policy: np.ndarray, *,
               model_predictions: np.ndarray | None = None) -> TargetRounds:
        """The target policy on the logged rounds, with the support diagnostic.

        Parameters
        ----------
        policy : ndarray of shape (n_members, n_titles, n_variants)
        model_predictions : ndarray of shape (n_rounds, n_variants) or \
(n_members, n_titles, n_variants), default=None
            Reward model; a world-shaped array is looked up per request.
        """
        policy = check_policy(self.world, policy, name="policy")
        member, title = self.requests[:, 0], self.requests[:, 1]
        dist = policy[member, title]
        q = None
        if model_predictions is not None:
            q = np.asarray(model_predictions, dtype=np.float64)
            if q.shape == self.world.take_probability.shape:
                q = q[member, title]
        return TargetRounds.from_dense(self.rounds, dist, model_predictions=q,
                                       logging_dist=self.logging_policy[member, title])

    def true_value(self, policy: np.ndarray) -> float:
        """Exact value of ``policy`` on the request distribution (uniform pairs)."""
        return self.world.policy_value(check_policy(self.world, policy))

    def take(self, index: slice) -> WorldLog:
        """The rounds at ``index`` (e.g. one repetition of a stacked sample)."""
        return WorldLog(world=self.world, logging_policy=self.logging_policy,
                        requests=self.requests[index], rounds=self.rounds.take(index))


def sample_log(world: ArtworkWorld, logging_policy: np.ndarray, *, n_rounds: int,
               seed: int) -> WorldLog:
    """Draw ``n_rounds`` logged impressions: uniform requests, logged variant, take.

    Parameters
    ----------
    world : ArtworkWorld
    logging_policy : ndarray of shape (n_members, n_titles, n_variants)
    n_rounds : int
    seed : int
        Seeds requests, choices and takes.

    Returns
    -------
    WorldLog
    """
    logging_policy = check_policy(world, logging_policy, name="logging_policy")
    check_integer_at_least(n_rounds, 1, name="n_rounds")
    rng = np.random.default_rng(seed)
    member = rng.integers(world.n_members, size=n_rounds)
    title = rng.integers(world.n_titles, size=n_rounds)
    dist = logging_policy[member, title]
    cumulative = np.cumsum(dist, axis=1)
    action = (rng.random(n_rounds)[:, None] * cumulative[:, -1:] >= cumulative).sum(axis=1)
    action = np.minimum(action, world.n_variants - 1)
    take = world.take_probability[member, title, action]
    reward = (rng.random(n_rounds) < take).astype(np.float64)
    rounds = LoggedRounds(reward=reward, action=action,
                          probability=dist[np.arange(n_rounds), action],
                          n_actions=world.n_variants)
    return WorldLog(world=world, logging_policy=logging_policy,
                    requests=np.column_stack([member, title]), rounds=rounds)


def world_features(world: ArtworkWorld, requests: np.ndarray) -> np.ndarray:
    """Numeric context a reward model may use: observed taste, device and country one-hots.

    Returns
    -------
    ndarray of shape (n_rounds, n_themes + 3 + 5)
    """
    member = np.asarray(requests)[:, 0]
    device = (world.device[member][:, None] == np.arange(3)).astype(np.float64)
    country = (world.country[member][:, None] == np.arange(5)).astype(np.float64)
    return np.hstack([world.observed_taste[member], device, country])


def reference_policies(world: ArtworkWorld, logging_policy: np.ndarray) -> dict[str, np.ndarray]:
    """The policies ``banditkit simulate`` reports: logged, baseline, uniform, oracle, best single.

    ``baseline`` always shows the first variant, as the dsjson baseline does.
    """
    baseline = np.zeros(world.take_probability.shape)
    baseline[..., 0] = 1.0
    return {"logged": np.asarray(logging_policy, dtype=np.float64), "baseline": baseline,
            "uniform": world.uniform_policy(), "oracle": world.oracle_policy(),
            "best_single_variant": world.best_single_variant_policy()}


def evaluate_world_log(log: WorldLog, policies: dict[str, np.ndarray], *,
                       estimators: list, reward_model: object | None = None) -> object:
    """Estimates for each policy next to its exact value.

    Parameters
    ----------
    log : WorldLog
    policies : dict of str to ndarray of shape (n_members, n_titles, n_variants)
    estimators : list of OffPolicyEstimator
    reward_model : CrossFitRewardModel, default=None
        Fitted on :func:`world_features` (cross-fitted); needed by DM/DR.

    Returns
    -------
    EvaluationReport
    """
    from ope.evaluation import evaluate

    predictions = None
    if reward_model is not None:
        predictions = reward_model.predict(  # type: ignore[attr-defined]
            log.rounds, world_features(log.world, log.requests))
    targets = {name: log.target(policy, model_predictions=predictions)
               for name, policy in policies.items()}
    return evaluate(log.rounds, targets, estimators=estimators,
                    true_values={name: log.true_value(policy)
                                 for name, policy in policies.items()})


def write_world_log(log: WorldLog, path: str | Path, *, start_time: float = 1.7e9,
                    seconds_between: float = 1.0, policy_name: str = "simulated") -> Path:
    """Write a simulated log as joined dsjson, readable by ``read_events`` and ``vw --dsjson``.

    Parameters
    ----------
    log : WorldLog
    path : path
        File to write (parents created; overwritten).
    start_time : float, default=1.7e9
        Unix time of the first event.
    seconds_between : float, default=1.0
    policy_name : str, default="simulated"
        Stored under ``_banditkit`` and as ``VWState.m``.
    """
    world, rounds = log.world, log.rounds
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i, ((member, title), chosen) in enumerate(zip(log.requests, rounds.action,
                                                          strict=True)):
            pmf = log.logging_policy[member, title]
            order = rank_order(pmf, int(chosen))
            reward = float(rounds.reward[i])
            event_id = f"sim-{i:09d}"
            record = {
                "EventId": event_id,
                "Timestamp": iso_timestamp(start_time + i * seconds_between),
                "Version": "1", "VWState": {"m": policy_name},
                "a": [k + 1 for k in order], "p": [float(pmf[k]) for k in order],
                "c": dsjson_context(world.context(int(member)),
                                    world.action_features(int(title))),
                **label_fields(-reward, float(pmf[chosen]), int(chosen)),
                "o": [{"EventId": event_id, "v": reward}], "_skipLearn": False,
                EXTRA_KEY: {"actionIds": [world.variant_id(int(title), v)
                                          for v in range(world.n_variants)],
                            "policy": policy_name, "member": int(member),
                            "title": int(title)},
            }
            handle.write(json.dumps(record) + "\n")
    return path
