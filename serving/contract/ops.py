"""The operator routes and the marketer page: public, no body to validate."""

from __future__ import annotations

from typing import Any

from serving.contract.common import Error
from serving.contract.fields import Body
from serving.contract.operations import Answer, Operation

__all__ = [
    "LANDING_OPERATIONS",
    "MARKETER_OPERATIONS",
    "OPS_OPERATIONS",
    "StaticPath",
]

_OBJECT = dict[str, Any]

#: ``/healthz``, ``/readyz`` and ``/metrics`` by view name.
OPS_OPERATIONS = {
    "healthz": Operation("Liveness.", {200: Answer("Alive.", _OBJECT)}),
    "readyz": Operation("Readiness: engine, key store and learner.", {
        200: Answer("Ready.", _OBJECT),
        503: Answer("Not ready; the body lists failed checks.", _OBJECT)}),
    "metrics": Operation("Prometheus metrics.", {
        200: Answer("Text exposition format.", str, ("text/plain",))}),
}

_NOT_MODIFIED = Answer("Not modified.")


class StaticPath(Body):
    filename: str


#: The marketer page and its files by view name.
MARKETER_OPERATIONS = {
    "page": Operation("The marketer web page.", {200: Answer("HTML.", str, ("text/html",)),
                                                 304: _NOT_MODIFIED}),
    "static": Operation("The page's script and stylesheet.", {
        200: Answer("The file.", str, ("text/css", "text/javascript", "application/javascript",
                                       "text/html")),
        304: _NOT_MODIFIED,
        404: Answer("No such file.", Error)}, path=StaticPath),
}

#: The landing page by view name.
LANDING_OPERATIONS = {
    "landing": Operation("A page linking to the marketer page and this document.",
                         {200: Answer("HTML.", str, ("text/html",))}),
}
