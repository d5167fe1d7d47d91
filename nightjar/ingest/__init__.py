"""Raw-layer ingestion with dlt: landing event files and the shop database -> DuckDB ``raw``.

Public API (used by the Dagster assets and the CLI)::

    from nightjar.ingest import load_events, load_shop
    load_events(settings=None) -> dict
    load_shop(settings=None) -> dict
"""
from nightjar.ingest.pipeline import (
    DATASET,
    EVENTS_PIPELINE,
    SHOP_PIPELINE,
    load_events,
    load_shop,
    make_pipeline,
)

__all__ = ["load_events", "load_shop", "make_pipeline", "DATASET", "EVENTS_PIPELINE", "SHOP_PIPELINE"]
