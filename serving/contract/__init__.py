"""The HTTP contract, stated once (docs/architecture.md §3).

One module of limits (:mod:`~serving.contract.limits`), the field types built
on them (:mod:`~serving.contract.fields`), and one module per route family
holding the pydantic models of its request and response bodies and the
declaration of each of its operations. ``/openapi.json``
(:mod:`serving.openapi`) is generated from these; the handlers validate with
the same models and limits.
"""

__all__ = ["analyst", "artwork", "catalogue", "common", "fields", "limits", "operations",
           "ops", "personalizer", "rows"]
