"""serving: the HTTP layer of banditkit (blueprints, keys, errors, metrics, OpenAPI).

``server.create_app`` composes these components; each has an ``init_app(app)``.
This package may import ``banditkit`` (and later ``artwork``); nothing in those
packages imports it (docs/architecture.md §2).
"""

__all__: list[str] = []
