"""Where decisions, rewards, activations, model snapshots and settings are kept.

:class:`DecisionStore` is what the engines need of a store; :class:`Store` is
its SQLite implementation for the processes of one host, :class:`PostgresStore`
the one in PostgreSQL, and :func:`open_store` chooses between them
(docs/architecture.md §3). Beside it: the per-process journals that make a decision durable in one
``write`` (:mod:`~banditkit.store.journal`), the memory of used event ids
(:mod:`~banditkit.store.event_ids`), and :class:`ThreadConnections`, the
per-thread SQLite connections every store of a data directory owns. The
catalogue, the server's keys and the jobs keep their tables in a
:class:`~banditkit.store.database.Database`: a SQLite file, or a PostgreSQL
schema every host shares.
"""

from banditkit.store.base import DecisionStore
from banditkit.store.connections import ThreadConnections, write_transaction
from banditkit.store.factory import open_store
from banditkit.store.postgres import PostgresStore
from banditkit.store.records import (
    JoinedItem,
    ModelSnapshot,
    PendingEvent,
    RewardRecord,
    Unjoinable,
    UnloggedJoin,
)
from banditkit.store.sqlite import Store

__all__ = [
    "DecisionStore",
    "JoinedItem",
    "ModelSnapshot",
    "PendingEvent",
    "PostgresStore",
    "RewardRecord",
    "Store",
    "ThreadConnections",
    "write_transaction",
    "UnloggedJoin",
    "Unjoinable",
    "open_store",
]
