"""The row routes (``/v1/rows``) and Personalizer's multi-slot routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from serving.contract.common import event_operations
from serving.contract.fields import (
    Body,
    ConfigLimit,
    EventId,
    FeatureList,
    Id,
    NamespacedFeatures,
    Probability,
    Reward,
    text,
)
from serving.contract.limits import ID_MAX_LENGTH
from serving.contract.operations import Answer, Operation
from serving.contract.validation import FieldError

__all__ = [
    "CandidateRow",
    "FilledSlot",
    "MULTISLOT_OPERATIONS",
    "MultiSlot",
    "MultiSlotAction",
    "MultiSlotChoice",
    "MultiSlotRankRequest",
    "MultiSlotRankResponse",
    "MultiSlotRewardRequest",
    "PageRulesBody",
    "PageSlot",
    "ROWS_OPERATIONS",
    "RowsRankRequest",
    "RowsRankResponse",
    "RowsRewardRequest",
    "SlotReward",
]

_ROWS = ConfigLimit("maxItems", "ROWS_MAX_ROWS")
_SLOTS = ConfigLimit("maxItems", "ROWS_MAX_SLOTS")


class CandidateRow(Body):
    id: Id
    features: NamespacedFeatures | None = None
    genre: text(ID_MAX_LENGTH) | None = None


class PageSlot(Body):
    id: Id
    features: NamespacedFeatures | None = None
    baseline: Id | None = None
    excluded_rows: list[Id] | None = None


class PageRulesBody(Body, extra="forbid"):
    """Page rules: pinned rows and genre spread."""

    pinned: dict[str, Annotated[int, Field(ge=1)]] | None = None
    no_adjacent_same_genre: bool | None = None
    min_distinct_genres: Annotated[int, Field(ge=0)] | None = None
    distinct_genres_within: Annotated[int, Field(ge=0)] | None = None


class RowsRankRequest(Body, extra="forbid"):
    """A page to fill: candidate rows, its slots (a number, or described) and rules."""

    context: NamespacedFeatures | None = None
    rows: Annotated[list[CandidateRow], Field(min_length=1, max_length=100), _ROWS]
    slots: (Annotated[int, Field(ge=1, le=50), ConfigLimit("maximum", "ROWS_MAX_SLOTS")]
            | Annotated[list[PageSlot], Field(min_length=1, max_length=50), _SLOTS])
    rules: PageRulesBody | None = None
    excluded_rows: list[Id] | None = None
    event_id: EventId | None = None
    defer_activation: bool | None = False


class FilledSlot(Body):
    id: str
    row_id: str
    probability: Probability
    eligible_rows: Annotated[int, Field(ge=1)]


class RowsRankResponse(Body):
    """Each slot's row and probability."""

    event_id: EventId
    model_version: str
    slots: list[FilledSlot]
    page_probability: Probability


class SlotReward(Body):
    slot_id: Id
    value: Reward

    @model_validator(mode="before")
    @classmethod
    def _both(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("slotId") is None or "value" not in data):
            raise ValueError("needs slotId and value")
        return data


_SOME_REWARD = [
    {"required": ["rewards"], "properties": {"rewards": {"type": "array", "minItems": 1}}},
    {"required": ["pageReward"], "properties": {"pageReward": {"type": "number"}}}]


class RowsRewardRequest(Body, extra="forbid", json_schema_extra={"anyOf": _SOME_REWARD}):
    """At least one of a non-empty rewards and a pageReward."""

    rewards: list[SlotReward] | None = None
    page_reward: Reward | None = None

    @model_validator(mode="after")
    def _some_reward(self) -> RowsRewardRequest:
        if not self.rewards and self.page_reward is None:
            raise FieldError("rewards", "Give rewards ([{slotId, value}]) or pageReward")
        return self


class MultiSlotAction(Body):
    id: Id
    features: FeatureList | None = None


class MultiSlot(Body):
    id: Id
    baseline_action: Id
    features: FeatureList | None = None
    excluded_actions: list[Id] | None = None


class MultiSlotRankRequest(Body):
    """Personalizer's multi-slot rank body."""

    context_features: FeatureList | None = None
    actions: Annotated[list[MultiSlotAction], Field(min_length=1, max_length=50),
                       ConfigLimit("maxItems", "RANK_MAX_ACTIONS")]
    slots: Annotated[list[MultiSlot], Field(min_length=1, max_length=50), _SLOTS]
    event_id: EventId | None = None
    defer_activation: bool | None = False


class MultiSlotChoice(Body):
    id: str
    reward_action_id: str | None


class MultiSlotRankResponse(Body):
    """One action per slot."""

    event_id: EventId
    slots: list[MultiSlotChoice]


class MultiSlotRewardRequest(Body):
    """One value per slot."""

    reward: Annotated[list[SlotReward], Field(min_length=1)]


#: ``/v1/rows`` by view name.
ROWS_OPERATIONS = {
    "rank": Operation("Fill a page's slots from candidate rows (one event per page).",
                      {201: Answer("Each slot's row and probability.", RowsRankResponse)},
                      errors=(400, 409, 413, 415), request=RowsRankRequest),
    **event_operations("Report rewards of slots and/or of the page.",
                       "Activate a deferred page so its rewards count.",
                       request=RowsRewardRequest),
}

#: Personalizer's multi-slot routes by view name.
MULTISLOT_OPERATIONS = {
    "multislot_rank": Operation("Multi-slot rank: the action to show in each slot.",
                      {201: Answer("One action per slot.", MultiSlotRankResponse)},
                      errors=(400, 409, 413, 415), request=MultiSlotRankRequest),
    **{f"multislot_{name}": operation for name, operation in event_operations(
        "Multi-slot reward: one value per slot.", "Multi-slot activate a deferred event.",
        request=MultiSlotRewardRequest).items()},
}
