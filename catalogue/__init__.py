"""catalogue: titles, their artwork variants and trailer candidates, and how each performs.

Sits between :mod:`artwork` (image to features) and :mod:`serving` (HTTP):

* :mod:`catalogue.records`: the titles, variants and candidates it returns,
  the id checks and the errors;
* :mod:`catalogue.store`: the :class:`Catalogue` of one data directory (SQLite
  rows, images by content hash) or of every host sharing a PostgreSQL
  database (:mod:`catalogue.schema`: its tables in both);
* :mod:`catalogue.performance`: per-variant impressions and takes from the
  engine's decision log;
* :mod:`catalogue.insights`: each variant's propensity-weighted take rate per
  audience segment (who likes which variant);
* :mod:`catalogue.tags`: a variant's label and tags (themes from the
  catalogue's vocabulary, tone, cast, setting, visual) and the action
  features they give;
* :mod:`catalogue.curation`: the :class:`Curator` that analyses posters and
  trailers with :mod:`artwork` and adds them to the store, and the visual
  tags an analysis suggests.

Nothing in :mod:`banditkit` or :mod:`artwork` imports this package.
"""

from catalogue.curation import (
    MEDIA_TYPES,
    Curator,
    TrailerResult,
    VariantLimitError,
    suggest_visual_tags,
)
from catalogue.insights import (
    SegmentInsight,
    TitleInsights,
    UnknownFeatureError,
    VariantInsight,
    title_insights,
)
from catalogue.performance import (
    DailyPerformance,
    TitlePerformance,
    VariantPerformance,
    title_performance,
    wilson_bounds,
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
    VariantRevision,
    check_id,
)
from catalogue.store import RANKED_NAMESPACES, Catalogue
from catalogue.tags import DEFAULT_THEMES, TAGS_NAMESPACE, VISUAL_TAGS, Tags, UnknownThemeError

__all__ = [
    "DEFAULT_THEMES",
    "ID_PATTERN",
    "MEDIA_TYPES",
    "RANKED_NAMESPACES",
    "Candidate",
    "Catalogue",
    "CatalogueConflictError",
    "Curator",
    "DailyPerformance",
    "RankableVariant",
    "SegmentInsight",
    "TAGS_NAMESPACE",
    "Tags",
    "Title",
    "TitleInsights",
    "TitlePerformance",
    "TrailerResult",
    "UnknownFeatureError",
    "UnknownItemError",
    "UnknownThemeError",
    "VISUAL_TAGS",
    "Variant",
    "VariantInsight",
    "VariantLimitError",
    "VariantPerformance",
    "VariantRevision",
    "check_id",
    "suggest_visual_tags",
    "title_insights",
    "title_performance",
    "wilson_bounds",
    "wilson_interval",
]
