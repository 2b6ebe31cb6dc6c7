"""Package names imported on first use (PEP 562), for packages with costly modules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict[str, Any], modules: Mapping[str, Iterable[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` that import each name from its module
    the first time it is asked for.

    So ``import package.light_module`` does not pay for the heavy modules
    (scikit-learn, pandas) the package's other names need. A name, once
    imported, is stored in ``namespace`` and found there from then on.

    Parameters
    ----------
    namespace : dict
        The package's ``globals()``.
    modules : mapping of str to iterable of str
        Module path -> the names the package takes from it.

    Returns
    -------
    tuple of callable
        ``(__getattr__, __dir__)``, to assign at the package's top level.
    """
    where = {name: module for module, names in modules.items() for name in names}
    package = namespace["__name__"]

    def attribute(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(where[name]), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *where})

    return attribute, names
