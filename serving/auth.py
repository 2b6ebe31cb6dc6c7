"""Who may do what: API keys with roles on every protected route.

A key arrives in the ``Ocp-Apim-Subscription-Key`` header (Azure's, so the
Personalizer SDKs work unchanged) or as ``Authorization: Bearer <key>``.
A missing or unknown key gives 401; a valid key whose role may not use the
route gives 403. ``admin`` may use every route.

Configured by the ``AUTH_`` keys of :class:`serving.config.ServerConfig`:
``AUTH_ENABLED``, ``AUTH_CACHE_SECONDS`` (also the longest a revoked key keeps
working in a running server) and ``AUTH_KEYS_PATH``. While a shared key store
(PostgreSQL) cannot be reached, keys this process verified before keep working
and others get 503.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app, g, request

from serving.config import get_config
from serving.errors import ApiError
from serving.keys import ROLES, ApiKey, KeyStore, hash_key

__all__ = ["KEY_HEADER", "close", "current_key", "get_key_store", "init_app", "require_roles"]

KEY_HEADER = "Ocp-Apim-Subscription-Key"
_EXTENSION = "banditkit.auth"
_CACHE_LIMIT = 4096
_STORE_RETRY_SECONDS = 1.0
F = TypeVar("F", bound=Callable[..., Any])


class _Auth:
    """The key store plus a small cache of verified keys (per process)."""

    def __init__(self, *, store: KeyStore, enabled: bool, cache_seconds: float) -> None:
        self.store = store
        self.enabled = enabled
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()
        # Until when (time.monotonic()) verified keys skip a key store found unreachable,
        # so that only one call a second waits for it.
        self._store_down_until = 0.0

    def verify(self, key: str) -> ApiKey | None:
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and (hit[1] > now or now < self._store_down_until):
            return hit[0]
        try:
            record = self.store.lookup(key)
        except self.store.database.unreachable_errors as error:
            # A key verified before keeps working while the shared key store is
            # down, as ranks answer from the journals meanwhile.
            self._store_down_until = time.monotonic() + _STORE_RETRY_SECONDS
            if hit is not None:
                return hit[0]
            raise ApiError(f"The key store cannot be reached to check this key "
                           f"({type(error).__name__}); retry shortly.", status=503,
                           code="ServiceUnavailable") from None
        with self._lock:
            if record is None:
                self._cache.pop(digest, None)
            else:  # kept past cache_seconds as the answer while the store is down
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[digest] = (record, now + self.cache_seconds)
        return record


def init_app(app: Flask, *, data_dir: Path) -> None:
    """Attach the key store to ``app`` (its ``AUTH_`` config keys).

    Parameters
    ----------
    app : Flask
        The application.
    data_dir : Path
        The data directory; the key store defaults to ``data_dir/serving.sqlite3``
        (``AUTH_KEYS_PATH``), or is the shared one of ``DATABASE_URL``.
    """
    config = get_config(app)
    app.extensions[_EXTENSION] = _Auth(
        store=KeyStore.open(data_dir, database_url=config.database_url,
                            path=config.auth_keys_path),
        enabled=config.auth_enabled,
        cache_seconds=config.auth_cache_seconds,
    )


def get_key_store(app: Flask | None = None) -> KeyStore:
    """The app's :class:`~serving.keys.KeyStore`."""
    return (app or current_app).extensions[_EXTENSION].store


def close(app: Flask) -> None:
    """Close the app's key store (idempotent)."""
    holder = app.extensions.pop(_EXTENSION, None)
    if holder is not None:
        holder.store.close()


def _presented_key() -> str | None:
    key = request.headers.get(KEY_HEADER)
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def current_key() -> ApiKey | None:
    """The verified key of this request, or None (auth disabled or public route)."""
    return g.get("banditkit_key")


def require_roles(*roles: str) -> Callable[[F], F]:
    """Decorate a view so only keys with one of ``roles`` (or ``admin``) may call it.

    Parameters
    ----------
    *roles : str
        Roles from :data:`~serving.keys.ROLES` allowed besides ``admin``.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"roles must be among {ROLES}; got {sorted(unknown)}")
    allowed = frozenset(roles) | {"admin"}

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            auth: _Auth = current_app.extensions[_EXTENSION]
            if auth.enabled:
                key = _presented_key()
                if key is None:
                    raise ApiError(
                        f"Missing API key: send it in the {KEY_HEADER} header.",
                        status=401,
                        code="Unauthorized",
                    )
                record = auth.verify(key)
                if record is None:
                    raise ApiError(
                        "Invalid or revoked API key.", status=401, code="Unauthorized"
                    )
                if record.role not in allowed:
                    raise ApiError(
                        f"A key with role {record.role!r} may not use this route; "
                        f"it needs one of: {', '.join(sorted(allowed))}.",
                        status=403,
                        code="Forbidden",
                    )
                g.banditkit_key = record
            return view(*args, **kwargs)

        wrapper.banditkit_roles = tuple(sorted(allowed))  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
