"""dlt ingestion assets: landing-file events and the shop database into `raw`."""

import dagster as dg

from dagster_project.keys import raw_asset_key
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource
from nightjar.marts_reader import refresh_views

EVENT_TABLES = {
    "events": "Valid app events from the landing files, one row per line (duplicates kept; staging de-duplicates).",
    "events_rejected": "Quarantined landing-file lines with file, line number and the reason they were rejected.",
    "events_load_log": "Per file and run: lines read, rows loaded, rows rejected (they always reconcile).",
}
SHOP_TABLES = {
    "customers": "Shop customers (merged on customer_id, incremental on updated_at).",
    "products": "Product catalogue (merged on product_id, incremental on updated_at).",
    "orders": "Orders with their current status (merged on order_id, incremental on updated_at).",
    "order_items": "Order lines (merged on order_id, line_number).",
}
# Group "ingestion" (the package is `ingest`, like nightjar.ingest): selections such as
# `group:ingestion` and the docs use this name.
_COMMON = dict(group_name="ingestion", owners=["team:data-platform"], kinds={"dlt", "duckdb"})


def _dlt_asset(name: str, tables: dict[str, str], source: str, description: str):
    """A multi-asset that loads `tables` of `source` into `raw`, under the warehouse pool."""
    specs = [
        dg.AssetSpec(raw_asset_key(t), description=d, tags={"source": source}, **_COMMON)
        for t, d in tables.items()
    ]
    return dg.multi_asset(name=name, specs=specs, pool=WAREHOUSE_POOL, description=description)


@_dlt_asset(
    "dlt_landing_events", EVENT_TABLES, "landing_files",
    description="Loads new landing files (never a file twice) with dlt's Arrow/Parquet path.",
)
def landing_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from nightjar.ingest import load_events

    # the engine's raw layer: the DuckDB warehouse, or under NIGHTJAR_ENGINE=spark the lake
    summary = load_events(warehouse.settings())
    context.log.info(
        "events: %s files, %s lines read, %s loaded, %s rejected",
        summary["files_loaded"], summary["lines_read"], summary["rows_loaded"], summary["rows_rejected"],
    )
    reconciled = summary["lines_read"] == summary["rows_loaded"] + summary["rows_rejected"]
    totals = _table_counts(warehouse, EVENT_TABLES)
    common = {
        "files_loaded": summary["files_loaded"],
        "lines_read": summary["lines_read"],
        "rows_loaded": summary["rows_loaded"],
        "rows_rejected": summary["rows_rejected"],
        "reconciled": reconciled,
        "load_id": str(summary.get("load_id")),
    }
    for table in EVENT_TABLES:
        yield dg.MaterializeResult(
            asset_key=raw_asset_key(table),
            metadata={**common, "dagster/row_count": totals[table]},
        )


@_dlt_asset(
    "dlt_shop_db", SHOP_TABLES, "shop_db",
    description="Loads changed shop rows (incremental on updated_at, merged on primary keys) with dlt sql_database.",
)
def shop_db(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from nightjar.ingest import load_shop

    # the engine's raw layer (see landing_events)
    summary = load_shop(warehouse.settings())
    extracted = summary.get("rows", {})
    totals = _table_counts(warehouse, SHOP_TABLES)
    for table in SHOP_TABLES:
        yield dg.MaterializeResult(
            asset_key=raw_asset_key(table),
            metadata={
                "rows_extracted": int(extracted.get(table, 0)),
                "dagster/row_count": totals[table],
                "load_id": str(summary.get("load_id")),
            },
        )


def _table_counts(warehouse: WarehouseResource, tables: dict[str, str]) -> dict[str, int]:
    # engine=spark: raw is the lake, read through views over its parquet files (no-op on DuckDB)
    refresh_views(warehouse.settings())
    with warehouse.connect(read_only=True) as con:
        existing = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'"
            ).fetchall()
        }
        return {
            t: (con.execute(f'select count(*) from raw."{t}"').fetchone()[0] if t in existing else 0)
            for t in tables
        }
