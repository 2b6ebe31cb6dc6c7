"""The limits of the HTTP contract, each defined once (docs/architecture.md §3).

The request models of :mod:`serving.contract`, the hand-written rank parsers
and ``/openapi.json`` all read these names, so a limit cannot differ between
what the document states and what the service enforces. Limits of the decision
core (the event id rule, the reward bound, the 32-bit float range) are
re-exported from :mod:`banditkit`, which enforces them again below HTTP.
"""

from __future__ import annotations

from banditkit.types import (
    EVENT_ID_MAX_LENGTH,
    EVENT_ID_PATTERN,
    FLOAT32_MAX,
    REWARD_LIMIT,
    WHITESPACE,
)

__all__ = [
    "API_VERSION_PATTERN",
    "DEFAULT_NAMESPACE",
    "EVENT_ID_MAX_LENGTH",
    "EVENT_ID_PATTERN",
    "FEATURE_INT_MAX",
    "FLOAT32_MAX",
    "FOREVER_DAYS",
    "ID_MAX_LENGTH",
    "MAX_FEATURE_DEPTH",
    "MAX_NAMES",
    "MODEL_VERSION_HEADER",
    "NOT_BLANK_PATTERN",
    "POLICY_ARGUMENTS_MAX_LENGTH",
    "REWARD_LIMIT",
    "SURFACE_MAX_LENGTH",
    "WHITESPACE",
]

#: Most characters of an id the caller names: actions, slots, rows (Personalizer's
#: limit), and of the other short names (genres, policy names, title names).
ID_MAX_LENGTH = 256
#: Most characters of a policy's Vowpal Wabbit arguments.
POLICY_ARGUMENTS_MAX_LENGTH = 4096
#: Most characters of the ``surface`` an artwork page names.
SURFACE_MAX_LENGTH = 64
#: Most names in one list of an evaluation (policies, estimators).
MAX_NAMES = 16
#: A string that is not blank: the ``pattern`` of every required text field.
NOT_BLANK_PATTERN = f"[^{WHITESPACE}]"
#: How deep a Personalizer feature object may nest; deeper input is refused.
MAX_FEATURE_DEPTH = 8
#: Largest integer a namespaced feature may hold: larger ones lose precision
#: as Vowpal Wabbit's floats.
FEATURE_INT_MAX = 2**53
#: Namespace of top-level scalar Personalizer features (``[{"hour": 21}]``):
#: Vowpal Wabbit's default namespace, where Personalizer put them too.
DEFAULT_NAMESPACE = ""
#: ``logRetentionDays: -1`` (keep forever) is stored as this many days.
FOREVER_DAYS = 1_000_000
#: The ``api-version`` query parameter of the Personalizer route family that takes one.
API_VERSION_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview(\.[0-9]+)?)?$"
#: Response header of the rank routes naming the model version that decided.
MODEL_VERSION_HEADER = "X-Banditkit-Model-Version"
