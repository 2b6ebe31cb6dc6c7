"""A clock the demos move by hand, so a simulated day of traffic runs in seconds."""

from __future__ import annotations

__all__ = ["SimulatedClock"]


class SimulatedClock:
    """Seconds since the epoch, as far as :meth:`advance` has moved them.

    Pass it as an engine's ``clock``: reward waits and model update intervals
    then elapse in simulated time.

    Parameters
    ----------
    start : float
        The first reading, in seconds since the epoch.
    """

    def __init__(self, *, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.now += seconds
