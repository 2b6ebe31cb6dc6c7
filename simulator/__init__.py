"""simulator: worlds with known ground truth, off-policy estimators and replay.

Start with :func:`evaluate` on a :class:`LoggedRounds` and one
:class:`TargetRounds` per policy; see ``docs/evaluation.md``. dsjson logs are
read by :mod:`simulator.dsjson`, HTML reports written by :mod:`simulator.report`.
"""

from simulator.estimators import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    ClippedIPS,
    DRos,
    Estimate,
    OffPolicyEstimator,
    Replay,
    SwitchDR,
    WeightDiagnostics,
    all_estimators,
)
from simulator.evaluation import (
    EvaluationReport,
    evaluate,
    evaluate_stream,
    make_estimators,
    read_table,
)
from simulator.reward_model import CrossFitRewardModel
from simulator.rounds import LoggedRounds, TargetRounds, iter_chunks
from simulator.slate import (
    SlateIndependentIPS,
    SlatePseudoInverse,
    SlateRewardInteractionIPS,
    SlateRounds,
    SlateStandardIPS,
    SlateTarget,
)
from simulator.supervised import SupervisedBandit, digits_bandit, supervised_to_bandit
from simulator.world import ArtworkWorld
from simulator.worldlog import WorldLog, sample_log, taste_policy

__all__ = [
    "DM",
    "DR",
    "IPS",
    "SNDR",
    "SNIPS",
    "ArtworkWorld",
    "ClippedIPS",
    "CrossFitRewardModel",
    "DRos",
    "Estimate",
    "EvaluationReport",
    "LoggedRounds",
    "OffPolicyEstimator",
    "Replay",
    "SlateIndependentIPS",
    "SlatePseudoInverse",
    "SlateRewardInteractionIPS",
    "SlateRounds",
    "SlateStandardIPS",
    "SlateTarget",
    "SupervisedBandit",
    "SwitchDR",
    "TargetRounds",
    "WeightDiagnostics",
    "WorldLog",
    "all_estimators",
    "digits_bandit",
    "evaluate",
    "evaluate_stream",
    "iter_chunks",
    "make_estimators",
    "read_table",
    "sample_log",
    "supervised_to_bandit",
    "taste_policy",
]
