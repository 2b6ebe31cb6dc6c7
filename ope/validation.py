"""Input checks shared by the OPE estimators and the simulator's public functions.

Every check names the argument, states the expectation and shows the value
received, so a bad log fails with a message a data scientist can act on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "check_1d",
    "check_confidence_level",
    "check_finite",
    "check_in_open_closed_unit",
    "check_integer_at_least",
    "check_non_negative",
    "check_positive",
    "check_probability_vector",
    "check_same_length",
]


def _show(value: Any) -> str:
    """A short rendering of a received value for error messages."""
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return repr(value.tolist())
        return f"array of shape {value.shape}, dtype {value.dtype}"
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def check_positive(value: float, *, name: str) -> float:
    """Require a real number > 0 (``inf`` allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {_show(value)}")
    if not value > 0:  # also rejects NaN
        raise ValueError(f"{name} must be > 0, got {_show(value)}")
    return float(value)


def check_non_negative(value: float, *, name: str) -> float:
    """Require a real number >= 0 (``inf`` allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a non-negative number, got {_show(value)}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {_show(value)}")
    return float(value)


def check_integer_at_least(value: int, minimum: int, *, name: str) -> int:
    """Require an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_show(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {_show(value)}")
    return int(value)


def check_confidence_level(value: float, *, name: str = "confidence_level") -> float:
    """Require a confidence level strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a number in (0, 1), got {_show(value)}")
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {_show(value)}")
    return float(value)


def check_1d(values: Any, *, name: str, dtype: type | str = float) -> np.ndarray:
    """Convert to a 1-d array of ``dtype``; reject other shapes and non-numbers."""
    try:
        array = np.asarray(values)
    except Exception as error:  # ragged nested lists and the like
        raise ValueError(f"{name} must be a 1-d array, got {type(values).__name__}") from error
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of shape (n_rounds,), "
                         f"got shape {array.shape}")
    if dtype is int or dtype == "int":
        if array.size and not np.issubdtype(array.dtype, np.integer):
            if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) \
                    and np.all(array == np.round(array)):
                array = array.astype(np.int64)
            else:
                raise ValueError(f"{name} must hold integers, got {_show(array)}")
        return array.astype(np.int64, copy=False)
    if array.size and not (np.issubdtype(array.dtype, np.number)
                           or np.issubdtype(array.dtype, np.bool_)):
        raise ValueError(f"{name} must hold numbers, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def check_finite(array: np.ndarray, *, name: str) -> np.ndarray:
    """Reject NaN and infinite entries, naming the first bad position."""
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must be finite, got {float(array.ravel()[first])!r} "
                         f"at position {first} ({int(bad.sum())} bad values)")
    return array


def check_in_open_closed_unit(array: np.ndarray, *, name: str) -> np.ndarray:
    """Require every entry in (0, 1], as a propensity of an action that was taken."""
    check_finite(array, name=name)
    bad = (array <= 0) | (array > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be in (0, 1], got {float(array[first])!r} at position "
                         f"{first} ({int(bad.sum())} bad values)")
    return array


def check_probability_vector(array: np.ndarray, *, name: str) -> np.ndarray:
    """Require every entry in [0, 1]."""
    check_finite(array, name=name)
    bad = (array < 0) | (array > 1 + 1e-12)
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must be in [0, 1], got {float(array.ravel()[first])!r} at "
                         f"position {first} ({int(bad.sum())} bad values)")
    return array


def check_same_length(n_rounds: int, array: np.ndarray | None, *, name: str) -> None:
    """Require ``len(array) == n_rounds`` when the array is given."""
    if array is not None and len(array) != n_rounds:
        raise ValueError(f"{name} must have length n_rounds={n_rounds}, got {len(array)}")
