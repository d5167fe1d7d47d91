"""Asset keys shared by the dlt ingestion assets and the dbt sources.

One function produces the key of every raw table, so that a dbt `source('raw', 'x')`
and the ingestion asset that loads `raw.x` are the same node in the lineage graph.
"""
from __future__ import annotations

import dagster as dg

RAW_SCHEMA = "raw"


def table_key(qualified_table: str) -> dg.AssetKey:
    """`schema.table` -> the asset key of that warehouse table (`schema/table`)."""
    return dg.AssetKey(qualified_table.split("."))


def raw_asset_key(table: str, schema: str = RAW_SCHEMA) -> dg.AssetKey:
    return table_key(f"{schema}.{table}")
