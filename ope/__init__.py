"""ope: off-policy estimators and the evaluation of logged decisions.

Start with :func:`evaluate` on a :class:`LoggedRounds` and one
:class:`TargetRounds` per policy; see ``docs/evaluation.md``. dsjson logs are
read by :mod:`ope.dsjson`, row (slate) logs by :mod:`ope.rows_ope`, HTML
reports written by :mod:`ope.report`. Personalizer's evaluations (Online,
Baseline, Random, Custom policies by progressive validation, a policy search,
feature importance) are :func:`evaluate_window` on a :func:`freeze_window`.

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
    "ope.importance": ("FeatureScore", "feature_importance"),
    "ope.partitioned": ("evaluate_partitions", "write_log_table"),
    "ope.personalizer": ("WindowEvaluation", "evaluate_window"),
    "ope.progressive": ("CandidatePool", "CandidateResult", "Window", "freeze_window",
                        "score_candidates"),
    "ope.reward_model": ("CrossFitRewardModel",),
    "ope.rounds": ("LoggedRounds", "TargetRounds", "iter_chunks"),
    "ope.timeseries": ("PolicyResult", "TimeSeries", "series", "summary"),
    "ope.search": ("SearchBudget", "SearchResult", "SearchSpace"),
    "ope.spark": ("evaluate_spark", "to_parquet"),
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
    "CandidatePool",
    "CandidateResult",
    "ClippedIPS",
    "CrossFitRewardModel",
    "DRos",
    "Estimate",
    "EvaluationReport",
    "FeatureScore",
    "LoggedRounds",
    "OffPolicyEstimator",
    "PageRounds",
    "PageTarget",
    "PolicyResult",
    "Replay",
    "SearchBudget",
    "SearchResult",
    "SearchSpace",
    "SlateIndependentIPS",
    "SlatePseudoInverse",
    "SlateRewardInteractionIPS",
    "SlateStandardIPS",
    "SwitchDR",
    "TargetRounds",
    "TimeSeries",
    "WeightDiagnostics",
    "Window",
    "WindowEvaluation",
    "all_estimators",
    "evaluate",
    "evaluate_partitions",
    "evaluate_spark",
    "evaluate_stream",
    "evaluate_window",
    "feature_importance",
    "freeze_window",
    "iter_chunks",
    "make_estimators",
    "read_table",
    "score_candidates",
    "series",
    "summary",
    "to_parquet",
    "write_log_table",
]
