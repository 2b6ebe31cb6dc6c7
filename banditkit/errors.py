"""Errors raised by banditkit; each message names the problem and the value received."""

from __future__ import annotations

__all__ = [
    "BanditkitError",
    "DuplicateEventError",
    "InvalidInputError",
    "ModelOutputError",
    "NotFittedError",
    "UnknownEventError",
]


class BanditkitError(Exception):
    """Base class of every error banditkit raises on purpose."""


class InvalidInputError(BanditkitError, ValueError):
    """An argument is malformed: wrong type, out of range, empty, ..."""


class UnknownEventError(BanditkitError, KeyError):
    """A reward or activation names an event id that was never ranked."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateEventError(BanditkitError):
    """A rank call reuses an event id: ids are unique, a repeat is not a second event."""


class ModelOutputError(BanditkitError, ArithmeticError):
    """A model's probabilities are not finite (its weights overflowed): not to be shown."""


class NotFittedError(BanditkitError, AttributeError):
    """Learned state was read before any update."""
