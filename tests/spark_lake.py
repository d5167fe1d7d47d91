"""A parquet lake made from a DuckDB warehouse's ``raw`` schema, as the Spark engine reads it.

``export_raw(warehouse, lake, night)`` writes each raw table's rows that are new since the
previous export to ``<lake>/raw/<table>/night<N>.parquet`` (same table and column names),
so the lake holds what dlt's filesystem destination appends: events once per load, and the
shop tables as append-only versions (a changed order appears again with a newer
``_dlt_load_id``). ``stale_versions=True`` adds an older version of some shop rows, which
staging must ignore (latest version per primary key).
"""
from __future__ import annotations

from pathlib import Path

import duckdb

RAW_TABLES = ("events", "events_rejected", "events_load_log", "customers", "products", "orders", "order_items")
SHOP_TABLES = ("customers", "products", "orders", "order_items")
# dlt load ids are unix-time strings; this one sorts before any real load
STALE_LOAD_ID = "1000000000.000000"


def _select(con: duckdb.DuckDBPyConnection, table: str) -> str:
    # JSON columns as text: what dlt's parquet writer stores and what Spark reads as string
    cols = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'raw' and table_name = ? order by ordinal_position", [table]).fetchall()
    return ", ".join(f'cast("{c}" as varchar) as "{c}"' if t == "JSON" else f'"{c}"' for c, t in cols)


def export_raw(warehouse: Path, lake: Path, night: int, *, stale_versions: bool = False) -> dict[str, int]:
    """Append tonight's new raw rows of `warehouse` to `lake`; returns rows written per table."""
    written: dict[str, int] = {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for table in RAW_TABLES:
            folder = lake / "raw" / table
            folder.mkdir(parents=True, exist_ok=True)
            earlier = sorted(str(p) for p in folder.glob("*.parquet"))
            rows = f"select {_select(con, table)} from raw.{table}"
            if earlier:
                files = "[" + ", ".join(f"'{p}'" for p in earlier) + "]"
                # new since the last export: a row (with its load id / load time) not written yet
                key = "_dlt_load_id" if table in SHOP_TABLES else "_loaded_at"
                rows += f" where {key} not in (select {key} from read_parquet({files}))"
            out = folder / f"night{night}.parquet"
            con.execute(f"copy ({rows}) to '{out}' (format parquet)")
            written[table] = con.execute(f"select count(*) from read_parquet('{out}')").fetchone()[0]
            if stale_versions and table in ("customers", "products", "orders"):
                # an older version of every third row: a day earlier, an earlier load
                stale = con.execute(f"select * exclude (_dlt_load_id) from ({rows}) limit 0").description
                cols = [d[0] for d in stale]
                select = ", ".join(
                    "updated_at - interval 1 day as updated_at" if c == "updated_at"
                    else "'placed' as status" if c == "status"
                    else f'"{c}"' for c in cols)
                con.execute(
                    f"copy (select {select}, '{STALE_LOAD_ID}' as _dlt_load_id from ({rows}) "
                    f"where hash(\"{table[:-1] if table != 'order_items' else 'order'}_id\") % 3 = 0) "
                    f"to '{folder / f'night{night}-stale.parquet'}' (format parquet)")
    finally:
        con.close()
    return written
