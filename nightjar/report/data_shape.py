"""Which sources a warehouse has data from (DESIGN.md §6 "Shapes"), and what that leaves out.

A shop may send events and orders, orders only (no landing folder) or events only (no
shop database). The marts exist in every shape, empty where the data is missing; the run
summary and the report use :func:`data_shape` to say which parts need the missing source
instead of showing zeros as if they were measurements.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

# What each source feeds (KPI columns of marts.fct_daily_metrics, report sections, models).
EVENT_KPIS = frozenset({"dau", "wau", "mau", "stickiness", "new_users", "sessions", "conversion_rate",
                        "bounce_rate", "arpdau"})
ORDER_KPIS = frozenset({"orders", "units", "gross_revenue", "refunds", "net_revenue", "aov", "arpdau"})
EVENT_SECTIONS = ("active-users", "sessions", "retention", "funnel")
ORDER_SECTIONS = ("revenue", "churn", "clv")
NEEDS_EVENTS = "active users (DAU/WAU/MAU), sessions, conversion and bounce rates, retention cohorts and the funnel"
NEEDS_ORDERS = "orders, revenue, AOV, ARPDAU, churn scores, customer lifetime value and demand forecasts"


@dataclass(frozen=True)
class DataShape:
    events: int  # rows in raw.events
    orders: int  # rows in raw.orders

    @property
    def has_events(self) -> bool:
        return self.events > 0

    @property
    def has_orders(self) -> bool:
        return self.orders > 0

    @property
    def label(self) -> str:
        if self.has_events and self.has_orders:
            return "events and orders"
        if self.has_orders:
            return "orders only (no event data)"
        if self.has_events:
            return "events only (no shop orders)"
        return "no data loaded yet"

    def missing_kpis(self) -> frozenset[str]:
        """KPI columns that need a source this warehouse has no data from."""
        missing: set[str] = set()
        if not self.has_events:
            missing |= EVENT_KPIS
        if not self.has_orders:
            missing |= ORDER_KPIS
        return frozenset(missing)

    def section_gap(self, section_id: str) -> str | None:
        """Why report section `section_id` cannot show anything in this shape, or None."""
        if section_id in EVENT_SECTIONS and not self.has_events:
            return "needs event data, and no events have been loaded (no landing files)"
        if section_id in ORDER_SECTIONS and not self.has_orders:
            return "needs shop orders, and none have been loaded (no shop database, or it has no orders)"
        return None

    def notes(self) -> list[str]:
        """One plain sentence per missing source."""
        out = []
        if self.has_orders and not self.has_events:
            out.append(f"No event data (no landing files): {NEEDS_EVENTS} need events and are empty.")
        if self.has_events and not self.has_orders:
            out.append(f"No shop orders (no shop database): {NEEDS_ORDERS} need orders and are empty.")
        return out


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = ?", [table]
    ).fetchone()[0]
    return int(con.execute(f'select count(*) from raw."{table}"').fetchone()[0]) if exists else 0


def data_shape(con: duckdb.DuckDBPyConnection) -> DataShape:
    return DataShape(events=_count(con, "events"), orders=_count(con, "orders"))
