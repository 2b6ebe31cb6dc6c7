"""Re-exports the slate learner interface of :mod:`banditkit.rows.learner` under this path."""

from banditkit.rows.learner import SlateLearner, SlatePage

__all__ = ["SlateLearner", "SlatePage"]
