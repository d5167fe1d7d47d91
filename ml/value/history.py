"""Per-customer purchase summary at a cutoff, and actual spend after it, from staging.stg_orders.

Orders follow the marts' revenue rules (DESIGN §2: not cancelled, refunds deducted, USD),
point in time: a status only counts if it changed before the cutoff. Purchases are counted
on distinct order days, as in the BG/NBD churn baseline and the CDNOW literature.
"""
from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from ml.churn.bgnbd import DAYS_PER_UNIT

INPUT_TABLES = ["staging.stg_orders"]


def summary_at(con: duckdb.DuckDBPyConnection, cutoff: dt.date) -> pd.DataFrame:
    """One row per customer with a valid order before ``cutoff``.

    Columns: customer_id, order_days, revenue (net USD), first_order_age_days,
    recency_days, repeat_value (mean net value of the repeat order days; NULL without one).
    """
    return con.execute(
        """
        WITH o AS (
            SELECT customer_id, order_date, created_at,
                   CASE WHEN is_refunded AND updated_at < $1::TIMESTAMP THEN 0 ELSE total_amount_usd END AS value
            FROM staging.stg_orders
            WHERE created_at < $1::TIMESTAMP AND NOT (is_cancelled AND updated_at < $1::TIMESTAMP)
        ), d AS (
            SELECT customer_id, order_date, sum(value) AS value, min(created_at) AS first_at, max(created_at) AS last_at,
                   row_number() OVER (PARTITION BY customer_id ORDER BY order_date) AS day_rank
            FROM o GROUP BY customer_id, order_date
        )
        SELECT customer_id, count(*)::BIGINT AS order_days, sum(value)::DOUBLE AS revenue,
               date_diff('second', min(first_at), $1::TIMESTAMP) / 86400.0 AS first_order_age_days,
               date_diff('second', max(last_at), $1::TIMESTAMP) / 86400.0 AS recency_days,
               avg(value) FILTER (WHERE day_rank > 1)::DOUBLE AS repeat_value
        FROM d GROUP BY customer_id ORDER BY customer_id
        """,
        [cutoff],
    ).df()


def spend_between(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Net USD spend per customer on orders created in [start, end), as known today."""
    return con.execute(
        """
        SELECT customer_id, sum(CASE WHEN is_refunded THEN 0 ELSE total_amount_usd END)::DOUBLE AS spend
        FROM staging.stg_orders
        WHERE created_at >= ?::TIMESTAMP AND created_at < ?::TIMESTAMP AND NOT is_cancelled
        GROUP BY customer_id
        """,
        [start, end],
    ).df()


def order_span(con: duckdb.DuckDBPyConnection) -> tuple[dt.date | None, dt.date | None]:
    """(first, last) order date in staging.stg_orders; (None, None) when empty."""
    first, last = con.execute("SELECT min(order_date), max(order_date) FROM staging.stg_orders").fetchone()
    return first, last


def rfm(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in BG/NBD units (weeks): repeat order days, first → last order, first order → cutoff."""
    x = (summary["order_days"].to_numpy(float) - 1).clip(min=0)
    T = summary["first_order_age_days"].to_numpy(float) / DAYS_PER_UNIT
    t_x = np.where(x > 0, np.clip(T - summary["recency_days"].to_numpy(float) / DAYS_PER_UNIT, 0, None), 0.0)
    return x, t_x, T
