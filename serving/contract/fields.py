"""Field types shared by the request and response models (docs/architecture.md §3).

Each type carries both its validation and its JSON schema, built from
:mod:`serving.contract.limits`, so every model that holds an event id, a
reward or an id states and enforces the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from banditkit.loop import check_event_id, check_reward
from serving.contract.limits import (
    EVENT_ID_MAX_LENGTH,
    EVENT_ID_PATTERN,
    ID_MAX_LENGTH,
    NOT_BLANK_PATTERN,
    REWARD_LIMIT,
)

__all__ = [
    "Body",
    "CONFIG_LIMIT",
    "ConfigLimit",
    "EventId",
    "FeatureList",
    "Id",
    "NamespacedFeatures",
    "Probability",
    "Reward",
    "text",
]

#: The JSON-schema key :class:`ConfigLimit` leaves for :mod:`serving.openapi` to resolve.
CONFIG_LIMIT = "x-config-limit"


class Body(BaseModel):
    """A JSON body: camelCase on the wire, strict JSON types, Python regular expressions.

    Strict: a string is never read as a number nor a number as a boolean. The
    patterns of the contract use look-arounds, which only Python's ``re`` reads.
    """

    model_config = ConfigDict(alias_generator=to_camel, strict=True, regex_engine="python-re")


@dataclass(frozen=True)
class ConfigLimit:
    """Marks a schema keyword (``maxItems``) whose value is an app config key's.

    The models hold the default; :mod:`serving.openapi` writes the app's value
    (:func:`serving.config.get_config`) into the document it serves, as the
    handlers read the same key.

    Parameters
    ----------
    keyword : str
        The JSON-schema keyword, ``maxItems`` or ``maximum``.
    key : str
        The config key, ``RANK_MAX_ACTIONS``.
    """

    keyword: str
    key: str

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.setdefault(CONFIG_LIMIT, {})[self.keyword] = self.key
        return schema


def text(max_length: int) -> Any:
    """A string of 1 to ``max_length`` characters that is not blank."""
    return Annotated[str, StringConstraints(min_length=1, max_length=max_length,
                                            pattern=NOT_BLANK_PATTERN)]


#: An action, slot or row id.
Id = text(ID_MAX_LENGTH)


def _name(info: ValidationInfo) -> str:
    return to_camel(info.field_name or "value")


def _event_id(value: str, info: ValidationInfo) -> str:
    return check_event_id(value, name=_name(info))


def _reward(value: float, info: ValidationInfo) -> float:
    return check_reward(value, name=_name(info))


#: Every eventId: :func:`banditkit.loop.check_event_id`'s rule.
EventId = Annotated[str, AfterValidator(_event_id), WithJsonSchema({
    "type": "string", "minLength": 1, "maxLength": EVENT_ID_MAX_LENGTH,
    "pattern": EVENT_ID_PATTERN,
    "description": f"1 to {EVENT_ID_MAX_LENGTH} characters: no control character, no "
                   "white space, no '/', and not '.' or '..'."})]

#: A reward value: :func:`banditkit.loop.check_reward`'s bound (which also names the
#: non-finite values the schema's bounds exclude).
Reward = Annotated[float, AfterValidator(_reward), Field(json_schema_extra={
    "minimum": -REWARD_LIMIT, "maximum": REWARD_LIMIT,
    "description": f"A finite number within ±{REWARD_LIMIT:g} (larger ones overflow the "
                   "learner's 32-bit weights; Personalizer asked for [-1, 1])."})]

Probability = Annotated[float, Field(ge=0, le=1)]

#: Personalizer's feature list: objects whose object-valued keys name namespaces.
FeatureList = Annotated[list[dict[str, Any] | None], Field(
    description="Feature objects: a key with an object value names a namespace; "
                "a null item is skipped.")]

#: banditkit's namespaced features, ``{"Member": {"country": "BR"}}``.
NamespacedFeatures = Annotated[dict[str, dict[str, str | float | bool]], Field(
    description='Namespaced features, e.g. {"Member": {"country": "BR"}}.')]
