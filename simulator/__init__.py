"""simulator: worlds with known ground truth, the logs drawn from them, and the demos.

:class:`ArtworkWorld` gives the exact value of every policy; :func:`sample_log`
draws a :class:`WorldLog` from it, which the estimators of :mod:`ope` evaluate
(``docs/evaluation.md``). :func:`supervised_to_bandit` makes a second ground
truth from labelled data; :mod:`simulator.online` runs a learner against a
world; :mod:`simulator.rows_world` is the homepage-row world.

Names are imported on first use (PEP 562), so ``import simulator.world`` or the
``banditkit`` command do not pay for scikit-learn and pandas.
"""

from importlib import import_module
from typing import Any

_MODULES = {
    "simulator.supervised": ("SupervisedBandit", "digits_bandit", "supervised_to_bandit"),
    "simulator.world": ("ArtworkWorld",),
    "simulator.worldlog": ("WorldLog", "sample_log", "taste_policy", "write_world_log"),
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
    "ArtworkWorld",
    "SupervisedBandit",
    "WorldLog",
    "digits_bandit",
    "sample_log",
    "supervised_to_bandit",
    "taste_policy",
    "write_world_log",
]
