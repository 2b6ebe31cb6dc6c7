"""ope: off-policy estimators and the evaluation of logged decisions.

Start with :func:`evaluate` on a :class:`LoggedRounds` and one
:class:`TargetRounds` per policy; see ``docs/evaluation.md``. dsjson logs are
read by :mod:`ope.dsjson`, row (slate) logs by :mod:`ope.rows_ope`, HTML
reports written by :mod:`ope.report`.

Names are imported on first use (PEP 562), so ``import ope.rounds`` does not
pay for scikit-learn and pandas.
"""

from banditkit.lazy import lazy_exports

_MODULES = {
    "ope.base": ("Estimate", "OffPolicyEstimator", "WeightDiagnostics"),
    "ope.estimators": ("DM", "DR", "IPS", "SNDR", "SNIPS", "ClippedIPS", "DRos", "Replay",
                       "SwitchDR", "all_estimators"),
    "ope.evaluation": ("EvaluationReport", "evaluate", "evaluate_stream",
                       "make_estimators", "read_table"),
    "ope.reward_model": ("CrossFitRewardModel",),
    "ope.rounds": ("LoggedRounds", "TargetRounds", "iter_chunks"),
    "ope.slate": ("SlateIndependentIPS", "SlatePseudoInverse", "SlateRewardInteractionIPS",
                  "PageRounds", "SlateStandardIPS", "PageTarget"),
}
__getattr__, __dir__ = lazy_exports(globals(), _MODULES)

__all__ = [
    "DM",
    "DR",
    "IPS",
    "SNDR",
    "SNIPS",
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
    "PageRounds",
    "SlateStandardIPS",
    "PageTarget",
    "SwitchDR",
    "TargetRounds",
    "WeightDiagnostics",
    "all_estimators",
    "evaluate",
    "evaluate_stream",
    "iter_chunks",
    "make_estimators",
    "read_table",
]
