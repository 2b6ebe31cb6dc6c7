"""simulator: worlds with known ground truth, off-policy estimators and replay.

Start with :func:`evaluate` on a :class:`LoggedRounds` and one
:class:`TargetRounds` per policy; see ``docs/evaluation.md``. dsjson logs are
read by :mod:`simulator.dsjson`, HTML reports written by :mod:`simulator.report`.

Names are imported on first use (PEP 562), so ``import simulator.world`` or the
``banditkit`` command do not pay for scikit-learn and pandas.
"""

from importlib import import_module
from typing import Any

_MODULES = {
    "simulator.estimators": ("DM", "DR", "IPS", "SNDR", "SNIPS", "ClippedIPS", "DRos",
                             "Estimate", "OffPolicyEstimator", "Replay", "SwitchDR",
                             "WeightDiagnostics", "all_estimators"),
    "simulator.evaluation": ("EvaluationReport", "evaluate", "evaluate_stream",
                             "make_estimators", "read_table"),
    "simulator.reward_model": ("CrossFitRewardModel",),
    "simulator.rounds": ("LoggedRounds", "TargetRounds", "iter_chunks"),
    "simulator.slate": ("SlateIndependentIPS", "SlatePseudoInverse", "SlateRewardInteractionIPS",
                        "SlateRounds", "SlateStandardIPS", "SlateTarget"),
    "simulator.supervised": ("SupervisedBandit", "digits_bandit", "supervised_to_bandit"),
    "simulator.world": ("ArtworkWorld",),
    "simulator.worldlog": ("WorldLog", "sample_log", "taste_policy"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_WHERE))


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
