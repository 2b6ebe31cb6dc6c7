"""The slate learner interface, now :mod:`banditkit.rows.learner`; kept for importers."""

from banditkit.rows.learner import SlateLearner, SlatePage

__all__ = ["SlateLearner", "SlatePage"]
