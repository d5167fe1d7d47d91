"""The daily series we forecast, one model per (series_id, metric).

* ``total``: orders, units and net revenue from ``marts.fct_daily_metrics``;
* ``category:<name>``: units per product category, from staging orders/items/products.
Categories come from the data, so a new category is forecast without code changes.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

TOTAL_METRICS = ("orders", "units", "net_revenue")


@dataclass(frozen=True)
class SeriesKey:
    series_id: str
    metric: str

    @property
    def label(self) -> str:
        return f"{self.series_id}/{self.metric}"

    @property
    def slug(self) -> str:
        # File-name safe, for artifacts (categories may contain spaces or slashes).
        return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{self.series_id}__{self.metric}")


def _daily(df: pd.DataFrame, value: str, end: pd.Timestamp) -> pd.Series:
    """A gap-free daily series from its first non-zero day to ``end`` (missing days = 0)."""
    s = df.set_index("ds")[value].astype(float)
    s.index = pd.DatetimeIndex(pd.to_datetime(s.index))
    nz = s[s != 0]
    if nz.empty:
        return pd.Series(dtype=float)
    # Leading zeros are "before the shop/category existed", not demand of zero.
    idx = pd.date_range(nz.index.min(), end, freq="D")
    return s.reindex(idx, fill_value=0.0).rename(value)


def load_series(con: duckdb.DuckDBPyConnection) -> dict[SeriesKey, pd.Series]:
    totals = con.execute(
        "SELECT metric_date AS ds, orders, units, net_revenue FROM marts.fct_daily_metrics ORDER BY 1"
    ).df()
    if totals.empty:
        return {}
    end = pd.Timestamp(totals["ds"].max())
    out: dict[SeriesKey, pd.Series] = {}
    for metric in TOTAL_METRICS:
        s = _daily(totals, metric, end)
        if len(s):
            out[SeriesKey("total", metric)] = s
    cats = con.execute(
        """
        SELECT p.category, o.order_date AS ds, sum(i.quantity) AS units
        FROM staging.stg_orders o
        JOIN staging.stg_order_items i USING (order_id)
        JOIN staging.stg_products p USING (product_id)
        WHERE NOT o.is_cancelled AND p.category IS NOT NULL AND o.order_date <= ?
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        [end.date()],
    ).df()
    for cat, g in cats.groupby("category", sort=True):
        s = _daily(g, "units", end)
        if len(s):
            out[SeriesKey(f"category:{cat}", "units")] = s
    return out
