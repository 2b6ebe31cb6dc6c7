"""The loop settings of Personalizer's service configuration (docs/architecture.md §4)."""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass

from banditkit.errors import InvalidInputError
from banditkit.types import REWARD_LIMIT

__all__ = [
    "AGGREGATIONS",
    "EXPLORATION_ALGORITHMS",
    "FORBIDDEN_VW_OPTIONS",
    "LEARNING_MODES",
    "LoopSettings",
    "check_policy_args",
]

AGGREGATIONS = ("earliest", "sum")
LEARNING_MODES = ("online", "apprentice", "logging_only")
# VW cb_explore_adf exploration flags other than epsilon-greedy.
EXPLORATION_ALGORITHMS = ("--softmax", "--bag", "--squarecb", "--cover", "--first", "--regcb",
                          "--regcbopt", "--synthcover", "--rnd")
# Vowpal Wabbit options that read or write files, open sockets or flood the logs.
# Policy arguments may come from an HTTP client, and building a learner with
# ``-p PATH`` truncates PATH on the server, so the settings refuse them.
FORBIDDEN_VW_OPTIONS = frozenset({
    "-a", "--audit", "-c", "--cache", "--cache_file", "-d", "--data", "--daemon",
    "--dictionary", "--dictionary_path", "-f", "--final_regressor", "--feature_mask",
    "-i", "--initial_regressor", "--input_feature_regularizer", "--invert_hash",
    "-k", "--kill_cache", "--output_feature_regularizer_binary",
    "--output_feature_regularizer_text", "-p", "--predictions", "--pid_file", "--port",
    "--port_file", "-P", "--progress", "-r", "--raw_predictions", "--readable_model",
    "--audit_regressor", "--save_per_pass", "--sendto", "--span_server", "--extra_metrics",
})
DEFAULT_POLICY_ARGS = "--cb_explore_adf --cb_type mtr -q :: --power_t 0 -l 0.01"


@dataclass(frozen=True)
class LoopSettings:
    """How events are joined and learned.

    Parameters
    ----------
    reward_wait_seconds : float, default=600.0
        How long after a decision (after activation, when deferred) rewards count.
    default_reward : float, default=0.0
        Reward learned when none arrived in time.
    reward_aggregation : {"earliest", "sum"}, default="earliest"
        How several rewards of one event combine.
    exploration_percentage : float, default=0.2
        Epsilon of epsilon-greedy exploration, replacing any ``--epsilon`` of
        ``policy_args`` (see :meth:`learner_args`); ignored by the other
        algorithms (``--softmax``, ``--bag``, ``--squarecb``, ``--cover`` in
        ``policy_args``), which read ``policy_args`` alone.
    model_update_seconds : float, default=60.0
        How often the learner publishes a model snapshot for ranking.
    orphan_grace_seconds : float, default=120.0
        On a store that accepts outcomes before their decision (PostgreSQL: a
        decision ranked on another host reaches the database one shipping
        interval later), how long past ``reward_wait_seconds`` an outcome waits
        for its decision before it is kept aside as an orphan.
    log_retention_days : int, default=90
        Days joined decisions stay in the database (the dsjson log is kept).
    learning_mode : {"online", "apprentice", "logging_only"}, default="online"
        ``apprentice`` always returns the baseline (first action) and learns;
        ``logging_only`` returns the baseline and only logs.
    policy_args : str
        Vowpal Wabbit ``cb_explore_adf`` arguments, readable and stored with each
        model version.
    inference_explainability : bool, default=False
        Rank answers carry each action's largest feature contributions.
    """

    reward_wait_seconds: float = 600.0
    default_reward: float = 0.0
    reward_aggregation: str = "earliest"
    exploration_percentage: float = 0.2
    model_update_seconds: float = 60.0
    orphan_grace_seconds: float = 120.0
    log_retention_days: int = 90
    learning_mode: str = "online"
    policy_args: str = DEFAULT_POLICY_ARGS
    inference_explainability: bool = False

    def __post_init__(self) -> None:
        for name in ("reward_wait_seconds", "model_update_seconds", "orphan_grace_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"{name} must be a finite number >= 0, got {value!r}")
        if (isinstance(self.default_reward, bool)
                or not isinstance(self.default_reward, int | float)
                or not abs(self.default_reward) <= REWARD_LIMIT):
            raise InvalidInputError(f"default_reward must be a finite number within "
                                    f"±{REWARD_LIMIT:g}, got {self.default_reward!r}")
        if self.reward_aggregation not in AGGREGATIONS:
            raise InvalidInputError(
                f"reward_aggregation must be one of {AGGREGATIONS}, "
                f"got {self.reward_aggregation!r}")
        if not isinstance(self.exploration_percentage, int | float) or not (
                0.0 <= self.exploration_percentage <= 1.0):
            raise InvalidInputError(
                f"exploration_percentage must be in [0, 1], got {self.exploration_percentage!r}")
        if not isinstance(self.log_retention_days, int) or self.log_retention_days < 1:
            raise InvalidInputError(
                f"log_retention_days must be an integer >= 1, got {self.log_retention_days!r}")
        if self.learning_mode not in LEARNING_MODES:
            raise InvalidInputError(
                f"learning_mode must be one of {LEARNING_MODES}, got {self.learning_mode!r}")
        if not isinstance(self.inference_explainability, bool):
            raise InvalidInputError(f"inference_explainability must be a boolean, "
                                    f"got {self.inference_explainability!r}")
        if not isinstance(self.policy_args, str):
            raise InvalidInputError(
                f"policy_args must be a string, got {type(self.policy_args).__name__}")
        if "--cb_explore_adf" not in check_policy_args(self.policy_args):
            raise InvalidInputError(
                f"policy_args must contain --cb_explore_adf, got {self.policy_args!r}")

    def replace(self, **changes: object) -> LoopSettings:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> LoopSettings:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InvalidInputError(f"unknown settings: {sorted(unknown)}")
        return cls(**values)  # type: ignore[arg-type]

    def learner_args(self) -> str:
        """The VW arguments the learner runs with.

        Under epsilon-greedy (no other algorithm of ``EXPLORATION_ALGORITHMS`` in
        ``policy_args``), ``exploration_percentage`` is the epsilon: every
        ``--epsilon`` of ``policy_args``, in either spelling VW reads
        (``--epsilon 0.1``, ``--epsilon=0.1``), is dropped and
        ``--epsilon <exploration_percentage>`` appended. With another algorithm
        the policy arguments run unchanged.
        """
        tokens = shlex.split(self.policy_args)
        if not _epsilon_greedy(tokens):
            return " ".join(tokens)
        kept, _ = _split_epsilon(tokens)
        return " ".join([*kept, "--epsilon", _exact(self.exploration_percentage)])

    def with_policy_args(self, policy_args: str) -> LoopSettings:
        """A copy running ``policy_args``, exploring at ``exploration_percentage``.

        Under epsilon-greedy the exploration percentage alone sets the epsilon,
        so an ``--epsilon`` in ``policy_args`` (a policy exported from
        Personalizer carries one) must equal it and is dropped from the stored
        arguments; a different one is refused.

        Parameters
        ----------
        policy_args : str
            Vowpal Wabbit ``cb_explore_adf`` arguments.

        Raises
        ------
        InvalidInputError
            If an ``--epsilon`` of ``policy_args`` differs from ``exploration_percentage``.
        """
        tokens = check_policy_args(policy_args)
        if not _epsilon_greedy(tokens):
            return self.replace(policy_args=policy_args)
        kept, epsilons = _split_epsilon(tokens)
        if not epsilons:
            return self.replace(policy_args=policy_args)
        for option in epsilons:
            value = option.partition("=")[2] if "=" in option else option.split()[-1]
            try:
                same = float(value) == self.exploration_percentage
            except ValueError:
                same = False
            if not same:
                raise InvalidInputError(
                    f"policy_args set {option!r} but exploration_percentage "
                    f"(explorationPercentage) is {_exact(self.exploration_percentage)}: under "
                    "epsilon-greedy the exploration percentage alone sets the epsilon, so "
                    "drop --epsilon from the policy or change the exploration percentage")
        return self.replace(policy_args=shlex.join(kept))


def _exact(value: float) -> str:
    """``value`` written short (``0.2``), yet read back exactly (``0.1234567``)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def _option_name(token: str) -> str:
    """``--bag`` for ``--bag=3``: VW reads a long option's value after ``=`` too."""
    return token.split("=", 1)[0] if token.startswith("--") else token


def _epsilon_greedy(tokens: list[str]) -> bool:
    return not any(_option_name(token) in EXPLORATION_ALGORITHMS for token in tokens)


def _split_epsilon(tokens: list[str]) -> tuple[list[str], list[str]]:
    """The tokens without ``--epsilon`` options, and those options as written.

    VW 0.7.0 reads ``--epsilon 0.1`` and ``--epsilon=0.1``; it accepts no
    abbreviation (``--eps``) and no short form.
    """
    kept: list[str] = []
    options: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "--epsilon":
            options.append(" ".join(tokens[index:index + 2]))
            index += 2
            continue
        if token.startswith("--epsilon="):
            options.append(token)
        else:
            kept.append(token)
        index += 1
    return kept, options


def check_policy_args(arguments: str) -> list[str]:
    """Split VW arguments, refusing options that touch files, sockets or the logs.

    Returns
    -------
    list of str
        The tokens.
    """
    try:
        tokens = shlex.split(arguments)
    except ValueError as error:
        raise InvalidInputError(f"policy arguments cannot be split into options: {error}"
                                ) from None
    for token in tokens:
        option = token.split("=", 1)[0]
        # Short options may carry their value attached (-p/tmp/x).
        short = option[:2] if option.startswith("-") and not option.startswith("--") else None
        if option in FORBIDDEN_VW_OPTIONS or short in FORBIDDEN_VW_OPTIONS:
            raise InvalidInputError(
                f"policy arguments may not use {token!r}: options that read or write files, "
                "open sockets or print per-example output are not allowed")
    return tokens
