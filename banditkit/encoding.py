"""Namespaced features to dsjson text, validated once per distinct content.

Catalogue artwork brings the same action features to every decision, and
checking them feature by feature in Python cost more than VW's prediction
(``benchmarks/bench_loop.py``). :class:`FeatureEncoder` remembers the text of
features it validated, keyed by their pickle: a pickle loads back to content
equal in types and values (unlike JSON text, it tells ``1``, ``1.0``, ``True``,
``"1"`` and string from non-string keys apart), so a hit is content that passed
:func:`~banditkit.types.check_features`; and pickling is ten times faster than
``repr`` or JSON for float-heavy artwork features.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Generic, TypeVar

from banditkit.bounded import drop_older_half
from banditkit.types import Features, check_features

__all__ = ["ContentMemo", "FeatureEncoder", "FrozenFeatures", "compact_json",
           "dsjson_namespaces", "json_string"]

V = TypeVar("V")


def _compact_encoder() -> Callable[[object], str]:
    """``json.JSONEncoder(separators=(",", ":")).encode``, its C encoder built once.

    ``JSONEncoder.encode`` builds a C encoder on every call, half the time of
    encoding a decision's extra fields or a member's context. The one built
    here keeps no circular-reference marks (they would outlive a failed call):
    a structure that contains itself raises RecursionError instead of ValueError.
    """
    make_encoder = json.encoder.c_make_encoder
    python_encode = json.JSONEncoder(separators=(",", ":")).encode
    if make_encoder is None:  # an interpreter without json's C accelerator
        return python_encode
    encoder = make_encoder(None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii,
                           None, ":", ",", False, False, True)

    def encode(value: object) -> str:
        if isinstance(value, str):
            return json.encoder.encode_basestring_ascii(value)
        return "".join(encoder(value, 0))

    return encode


#: JSON without spaces, as dsjson lines are written.
compact_json = _compact_encoder()
#: A JSON string literal exactly as :data:`compact_json` writes one (ASCII, escaped).
json_string = json.encoder.encode_basestring_ascii


def dsjson_namespaces(features: Features) -> dict:
    """Namespaces as VW's JSON expects them: the default namespace ``""`` at the top level."""
    out: dict = {}
    for namespace, group in features.items():
        if namespace == "":
            out.update(group)
        else:
            out[namespace] = group if type(group) is dict else dict(group)
    return out


class FrozenFeatures(Mapping):
    """Validated, read-only features whose dsjson text is computed once.

    For features that every decision reuses (catalogue artwork): the engine
    takes ``text`` as it is, with no check or encoding per decision, and being
    read-only they cannot drift from it.

    Raises
    ------
    InvalidInputError
        As :func:`~banditkit.types.check_features`.
    """

    __slots__ = ("_groups", "text")

    def __init__(self, features: Features, *, name: str = "features") -> None:
        check_features(features, name=name)
        self._groups = {namespace: MappingProxyType(dict(group))
                        for namespace, group in features.items()}
        self.text = compact_json(dsjson_namespaces(features))

    def __getitem__(self, namespace: str) -> Mapping:
        return self._groups[namespace]

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def __repr__(self) -> str:
        return f"FrozenFeatures({self.text})"


class ContentMemo(Generic[V]):
    """Values computed once per distinct content, keyed by the content's pickle.

    A pickle loads back to content equal in types and values, so a hit is a
    value computed from exactly this content. Keeps at most ``max_entries``
    (past it, the older half goes); thread-safe. Content that cannot be pickled is
    computed every time.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._values: dict[bytes, V] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, content: object, compute: Callable[[], V]) -> V:
        """The value remembered for ``content``, or ``compute()`` remembered."""
        try:
            key = pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - whatever cannot be pickled is computed
            return compute()
        value = self._values.get(key)
        if value is None:
            value = compute()  # raises for invalid content: nothing is remembered
            with self._lock:
                self._values[key] = value
                drop_older_half(self._values, self.max_entries)
        return value


class FeatureEncoder:
    """Validates and encodes features, remembering up to ``max_entries`` distinct ones.

    Thread-safe. Encodings are compact JSON objects of :func:`dsjson_namespaces`.
    Each entry holds the features' pickle and text: a few hundred bytes for a
    member context, a few KB for an analysed poster's features (catalogue
    artwork comes as :class:`FrozenFeatures` and is not stored here), so the
    default bounds the memory to tens of MB.
    """

    def __init__(self, max_entries: int = 16_384) -> None:
        self.texts: ContentMemo[str] = ContentMemo(max_entries)

    def encode(self, features: object, *, name: str = "features") -> str:
        """The JSON text of valid features.

        Raises
        ------
        InvalidInputError
            As :func:`~banditkit.types.check_features`, naming ``name``.
        """
        if type(features) is FrozenFeatures:
            return features.text
        return self.texts.get(features, lambda: _checked_text(features, name))

    def encode_all(self, features: Sequence[object], *, name: str) -> list[str]:
        """:meth:`encode` each; ``name`` is a format string given the position."""
        frozen = FrozenFeatures
        return [f.text if type(f) is frozen else self.encode(f, name=name.format(i))
                for i, f in enumerate(features)]

    @staticmethod
    def shared(context: str, actions: Sequence[str]) -> str:
        """The dsjson ``c`` object from encoded context and actions (``_multi``)."""
        head = context[:-1] + "," if context != "{}" else "{"
        return head + '"_multi":[' + ",".join(actions) + "]}"


def _checked_text(features: object, name: str) -> str:
    check_features(features, name=name)
    return compact_json(dsjson_namespaces(features))
