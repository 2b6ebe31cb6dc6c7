"""Field types shared by the request and response models (docs/architecture.md §3).

Each type carries both its validation and its JSON schema, built from
:mod:`serving.contract.limits`, so every model that holds an event id, a
reward or an id states and enforces the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
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

from banditkit.types import check_event_id, check_reward
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
    "Query",
    "Reward",
    "integer",
    "text",
    "utc_text",
    "wire_name",
]

#: The JSON-schema key :class:`ConfigLimit` leaves for :mod:`serving.openapi` to resolve.
CONFIG_LIMIT = "x-config-limit"


class Body(BaseModel):
    """A JSON body: camelCase on the wire, strict JSON types, Python regular expressions.

    Strict: a string is never read as a number nor a number as a boolean. The
    patterns of the contract use look-arounds, which only Python's ``re`` reads.
    """

    model_config = ConfigDict(alias_generator=to_camel, strict=True, regex_engine="python-re")


class Query(Body):
    """A query string's parameters: each text read as its field's type (``?days=14``).

    Not strict, since a query holds only text; a number must still be finite.
    """

    model_config = ConfigDict(strict=False, allow_inf_nan=False)


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


def utc_text(moment: datetime | float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, the times of Personalizer's bodies, of an aware
    datetime or a Unix time (years 1 to 9999 alike)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def wire_name(info: ValidationInfo) -> str:
    """The JSON name of the field a validator checks (``rewardWaitTime``), for messages."""
    # ``from_`` is ``from``: a trailing underscore only dodges a Python keyword.
    return to_camel((info.field_name or "value").rstrip("_"))


def _integral(value: Any) -> Any:
    # JSON Schema, which /openapi.json states, calls 12.0 an integer.
    return int(value) if type(value) is float and value.is_integer() else value


def integer(minimum: int, maximum: int | None = None) -> Any:
    """An integer in ``[minimum, maximum]``; an integral number (``12.0``) counts.

    The bounds are checked after the type, so the message names both of them
    (``between -1 and 1000000``), as a reader of the range wants.
    """
    bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"

    def check(value: int, info: ValidationInfo) -> int:
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(f"{wire_name(info)} must be {bound}, got {value!r}")
        return value

    schema = {"minimum": minimum} if maximum is None else {"minimum": minimum,
                                                           "maximum": maximum}
    return Annotated[int, BeforeValidator(_integral), AfterValidator(check),
                     Field(json_schema_extra=schema)]


def _event_id(value: str, info: ValidationInfo) -> str:
    return check_event_id(value, name=wire_name(info))


def _reward(value: float, info: ValidationInfo) -> float:
    return check_reward(value, name=wire_name(info))


#: Every eventId: :func:`banditkit.types.check_event_id`'s rule.
EventId = Annotated[str, AfterValidator(_event_id), WithJsonSchema({
    "type": "string", "minLength": 1, "maxLength": EVENT_ID_MAX_LENGTH,
    "pattern": EVENT_ID_PATTERN,
    "description": f"1 to {EVENT_ID_MAX_LENGTH} characters: no control character, no "
                   "white space, no '/', and not '.' or '..'."})]

#: A reward value: :func:`banditkit.types.check_reward`'s bound (which also names the
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
