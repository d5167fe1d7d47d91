"""CDNOW (Fader & Hardie's public CD-retailer panel) as an orders-only churn shop.

``lifetimes`` ships ``CDNOW_master.txt``: 69,659 purchases of the 23,570 customers who first
bought in Q1 1997, followed to June 1998 (``customer_id date(YYYYMMDD) cds dollars``). This
module loads it into the staging/mart tables the churn code reads, with no events and one
product, so the churn evaluation can run on real, orders-only data.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd


def master_path() -> Path:
    # `import lifetimes.datasets` needs setuptools' pkg_resources; the file is read by path.
    import lifetimes

    return Path(os.path.dirname(lifetimes.__file__)) / "datasets" / "CDNOW_master.txt"


def read_master(path: Path | None = None) -> pd.DataFrame:
    df = pd.read_csv(path or master_path(), sep=r"\s+", header=0,
                     names=["customer_id", "date", "cds", "dollars"], dtype={"customer_id": str, "date": str})
    df["created_at"] = pd.to_datetime(df["date"], format="%Y%m%d")
    return df


def load_cdnow(con: duckdb.DuckDBPyConnection, path: Path | None = None) -> int:
    """Create staging.stg_orders/_order_items/_products/_events and marts.dim_customers from
    the CDNOW master file (one order per line, noon UTC; the file has dates only). Returns the
    number of orders."""
    df = read_master(path)
    df["order_id"] = [f"cdnow_{i:06d}" for i in range(len(df))]
    df["created_at"] = df["created_at"] + pd.Timedelta(hours=12)
    con.register("_cdnow", df)
    try:
        con.execute(
            """
            CREATE SCHEMA IF NOT EXISTS staging; CREATE SCHEMA IF NOT EXISTS marts;
            CREATE OR REPLACE TABLE staging.stg_orders AS
            SELECT order_id, customer_id, 'delivered' AS status, 'USD' AS currency,
                   dollars::DOUBLE AS total_amount, dollars::DOUBLE AS total_amount_usd,
                   created_at::TIMESTAMP AS created_at, created_at::TIMESTAMP AS updated_at,
                   created_at::DATE AS order_date, false AS is_cancelled, false AS is_refunded
            FROM _cdnow;
            CREATE OR REPLACE TABLE staging.stg_products AS
            SELECT 'cd' AS product_id, 'compact disc' AS product_name, 'music' AS category, NULL::DOUBLE AS price,
                   TIMESTAMP '1997-01-01' AS updated_at;
            CREATE OR REPLACE TABLE staging.stg_order_items AS
            SELECT order_id, 1::BIGINT AS line_number, 'cd' AS product_id, cds::BIGINT AS quantity,
                   (dollars / nullif(cds, 0))::DOUBLE AS unit_price, dollars::DOUBLE AS line_amount,
                   dollars::DOUBLE AS line_amount_usd
            FROM _cdnow;
            CREATE OR REPLACE TABLE staging.stg_events (
                event_id VARCHAR, event_name VARCHAR, event_timestamp TIMESTAMP, event_date DATE,
                received_at TIMESTAMP, anonymous_id VARCHAR, user_id VARCHAR, is_bot BOOLEAN);
            CREATE OR REPLACE TABLE marts.dim_customers AS
            SELECT customer_id, min(created_at)::TIMESTAMP AS created_at, min(created_at)::TIMESTAMP AS first_order_at,
                   'unknown' AS acquisition_channel
            FROM _cdnow GROUP BY customer_id;
            """
        )
    finally:
        con.unregister("_cdnow")
    return len(df)
