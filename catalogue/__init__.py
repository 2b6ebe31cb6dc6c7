"""catalogue: titles, their artwork variants and trailer candidates, and how each performs.

Sits between :mod:`artwork` (image to features) and :mod:`serving` (HTTP):

* :mod:`catalogue.records`: the titles, variants and candidates it returns,
  the id checks and the errors;
* :mod:`catalogue.store`: the :class:`Catalogue` of one data directory (SQLite
  rows, images by content hash);
* :mod:`catalogue.performance`: per-variant impressions and takes from the
  engine's decision log;
* :mod:`catalogue.curation`: the :class:`Curator` that analyses posters and
  trailers with :mod:`artwork` and adds them to the store.

Nothing in :mod:`banditkit` or :mod:`artwork` imports this package.
"""

from catalogue.curation import MEDIA_TYPES, Curator, TrailerResult, VariantLimitError
from catalogue.performance import (
    DailyPerformance,
    TitlePerformance,
    VariantPerformance,
    title_performance,
    wilson_interval,
)
from catalogue.records import (
    ID_PATTERN,
    Candidate,
    CatalogueConflictError,
    RankableVariant,
    Title,
    UnknownItemError,
    Variant,
    check_id,
)
from catalogue.store import Catalogue

__all__ = [
    "ID_PATTERN",
    "MEDIA_TYPES",
    "Candidate",
    "Catalogue",
    "CatalogueConflictError",
    "Curator",
    "DailyPerformance",
    "RankableVariant",
    "Title",
    "TitlePerformance",
    "TrailerResult",
    "UnknownItemError",
    "Variant",
    "VariantLimitError",
    "VariantPerformance",
    "check_id",
    "title_performance",
    "wilson_interval",
]
