"""simulator: worlds with known ground truth, the logs drawn from them, and the demos.

:class:`ArtworkWorld` gives the exact value of every policy; :func:`sample_log`
draws a :class:`WorldLog` from it, which the estimators of :mod:`ope` evaluate
(``docs/evaluation.md``). :func:`supervised_to_bandit` makes a second ground
truth from labelled data; :mod:`simulator.online` runs a learner against a
world; :mod:`simulator.releases` releases a world's titles one after another,
to show what theme tags carry over to new titles; :mod:`simulator.rows_world`
is the homepage-row world.

Names are imported on first use (PEP 562), so ``import simulator.world`` or the
``banditkit`` command do not pay for scikit-learn and pandas.
"""

from banditkit.lazy import lazy_exports

_MODULES = {
    "simulator.releases": ("ReleaseWorld", "compare_tagging"),
    "simulator.supervised": ("SupervisedBandit", "digits_bandit", "supervised_to_bandit"),
    "simulator.world": ("ArtworkWorld",),
    "simulator.worldlog": ("WorldLog", "sample_log", "taste_policy", "write_world_log"),
}
__getattr__, __dir__ = lazy_exports(globals(), _MODULES)

__all__ = [
    "ArtworkWorld",
    "ReleaseWorld",
    "SupervisedBandit",
    "WorldLog",
    "compare_tagging",
    "digits_bandit",
    "sample_log",
    "supervised_to_bandit",
    "taste_policy",
    "write_world_log",
]
