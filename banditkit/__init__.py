"""banditkit: contextual bandits for artwork and row personalization.

Decisions (rank), propensity logging, the reward join and online learning.
This package knows nothing of images, HTTP, the simulator, OPE or the catalogue
(docs/architecture.md §2).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
