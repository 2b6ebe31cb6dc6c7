"""Route declarations: what ``/openapi.json`` says of each view (docs/architecture.md §3).

A component declares each view's operation once, by the view's name, with
the models of its bodies and parameters; :mod:`serving.openapi` turns the
declarations and the models into the document. Roles are not declared here:
they are read from the view's :func:`serving.auth.require_roles`, the rule
that is enforced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = [
    "Answer",
    "JSON",
    "Operation",
]

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """One documented response.

    Parameters
    ----------
    description : str
    body : type, default=None
        A model (or any type pydantic describes); None for an empty body.
    media_types : tuple of str, default=("application/json",)
        Content types the body may have.
    """

    description: str
    body: Any = None
    media_types: tuple[str, ...] = (JSON,)


@dataclass(frozen=True)
class Operation:
    """One operation of a view.

    Parameters
    ----------
    summary : str
    responses : mapping of int to Answer
        Its answers but the error ones.
    errors : tuple of int, default=()
        Error statuses, each with the ``Error`` body (401 and 403 come with
        the view's roles; 414 and 431 with every operation).
    request : type of BaseModel or callable, default=None
        The model of the request body, or a function returning it when the
        model needs a module that is imported late (:mod:`ope`).
    request_media_type : str, default="application/json"
    path : type of BaseModel, default=None
        The model of the path parameters, one field per ``<name>`` of the rule.
    query : type of BaseModel, default=None
        The model of the query parameters.
    description : str, default=None
    """

    summary: str
    responses: Mapping[int, Answer]
    errors: tuple[int, ...] = ()
    request: type[BaseModel] | Callable[[], type[BaseModel]] | None = None
    request_media_type: str = JSON
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    description: str | None = None

    def request_model(self) -> type[BaseModel] | None:
        """The model of the request body, None when there is no body."""
        if self.request is None or isinstance(self.request, type):
            return self.request
        return self.request()
