"""Headline KPIs: the last complete day against the same weekday a week earlier.

Plain DuckDB, no Dagster: `nightjar run` prints :func:`kpi_summary`, the report asset
renders it as a markdown table and as the first section of the HTML report.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple

import duckdb

from nightjar.report.data_shape import data_shape

DAILY_METRICS = ("marts", "fct_daily_metrics")

# (label, column, format kind)
KPIS: tuple[tuple[str, str, str], ...] = (
    ("DAU", "dau", "int"),
    ("WAU", "wau", "int"),
    ("MAU", "mau", "int"),
    ("Stickiness (DAU/MAU)", "stickiness", "pct"),
    ("New users", "new_users", "int"),
    ("Sessions", "sessions", "int"),
    ("Conversion rate", "conversion_rate", "pct"),
    ("Bounce rate", "bounce_rate", "pct"),
    ("Orders", "orders", "int"),
    ("Net revenue (USD)", "net_revenue", "usd"),
    ("AOV (USD)", "aov", "usd"),
    ("ARPDAU (USD)", "arpdau", "usd"),
)


class KpiRow(NamedTuple):
    """One line of :func:`kpi_summary`: unpacks as ``(kpi, value, change_vs_last_week)``.

    ``change_vs_last_week`` is the relative change (0.05 = +5 %) against the same day a
    week earlier, or None when that day has no value or a zero value.
    """

    kpi: str
    value: float | int | None
    change_vs_last_week: float | None


@dataclass(frozen=True)
class KpiDetail:
    kpi: str
    column: str
    kind: str
    value: float | int | None
    previous: float | int | None
    change: float | None


# --------------------------------------------------------------------------- helpers


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str] | None:
    """Column names of `schema.table` (lower-case), or None when it does not exist."""
    rows = con.execute(
        "select lower(column_name) from information_schema.columns "
        "where lower(table_schema) = lower(?) and lower(table_name) = lower(?) order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [r[0] for r in rows] or None


def has_rows(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return con.execute(f'select exists (select 1 from "{schema}"."{table}")').fetchone()[0]


def last_complete_day(con: duckdb.DuckDBPyConnection, today: date | None = None) -> date | None:
    """The day the headline KPIs describe: the latest metric date, but never today.

    A nightly run sees yesterday as the last complete day; a partial today (events that
    arrived after midnight) is ignored. A historical shop (a simulation ending long ago)
    reports on its own last day.
    """
    cols = table_columns(con, *DAILY_METRICS)
    if not cols or "metric_date" not in cols:
        return None
    today = today or datetime.now(timezone.utc).date()
    row = con.execute(
        'select max(metric_date)::date from "marts"."fct_daily_metrics" where metric_date < ?', [today]
    ).fetchone()
    return row[0] if row and row[0] else None


def as_float(v) -> float | None:
    """`v` as a float; None for None, NaN and what float() refuses."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f  # NaN -> None


def _num(v):
    # as_float's check, but the value itself is kept (an int stays an int).
    return None if as_float(v) is None else v


def kpi_details(
    con: duckdb.DuckDBPyConnection, as_of: date | None = None, today: date | None = None
) -> tuple[date | None, list[KpiDetail]]:
    """KPIs of `as_of` (default: :func:`last_complete_day`) with the value of 7 days earlier.
    KPIs that need a source the shop sends no data from (events or orders, see
    nightjar.report.data_shape) are left out rather than shown as zeros."""
    cols = table_columns(con, *DAILY_METRICS)
    if not cols:
        return None, []
    as_of = as_of or last_complete_day(con, today)
    if as_of is None:
        return None, []
    shape = data_shape(con)
    # a warehouse with neither source loaded (marts built by hand) keeps every KPI
    missing = shape.missing_kpis() if shape.has_events or shape.has_orders else frozenset()
    present = [k for k in KPIS if k[1] in cols and k[1] not in missing]
    if not present:
        return as_of, []
    sel = ", ".join(f'"{c}"' for _, c, _ in present)
    q = f'select {sel} from "marts"."fct_daily_metrics" where metric_date = ? limit 1'
    cur = con.execute(q, [as_of]).fetchone()
    prev = con.execute(q, [as_of - timedelta(days=7)]).fetchone()
    out = []
    for i, (label, col, kind) in enumerate(present):
        v = _num(cur[i]) if cur else None
        p = _num(prev[i]) if prev else None
        change = None
        if v is not None and p not in (None, 0):
            change = float(v) / float(p) - 1.0
        out.append(KpiDetail(label, col, kind, v, p, change))
    return as_of, out


def kpi_summary(
    con: duckdb.DuckDBPyConnection, as_of: date | None = None, today: date | None = None
) -> list[KpiRow]:
    """``[(kpi, value, change_vs_last_week), ...]`` for the last complete day; [] if no metrics."""
    _, details = kpi_details(con, as_of, today)
    return [KpiRow(d.kpi, d.value, d.change) for d in details]


# --------------------------------------------------------------------------- formatting


def format_value(v, kind: str) -> str:
    if v is None:
        return "–"
    if kind == "int":
        return f"{int(round(float(v))):,}"
    if kind == "pct":
        return f"{float(v) * 100:.1f}%"
    if kind == "usd":
        return f"${float(v):,.2f}"
    return f"{v}"


def format_change(change: float | None) -> str:
    if change is None:
        return "n/a"
    arrow = "▲" if change > 0 else ("▼" if change < 0 else "→")
    return f"{arrow} {change * 100:+.1f}%"


def kpis_markdown(as_of: date | None, details: list[KpiDetail]) -> str:
    """A markdown table of the KPIs (Dagster metadata, `nightjar run` output)."""
    if as_of is None or not details:
        return "_No daily metrics yet (`marts.fct_daily_metrics` is missing or empty)._"
    prev = as_of - timedelta(days=7)
    lines = [
        f"| KPI | {as_of.isoformat()} | {prev.isoformat()} | change |",
        "|---|---:|---:|---:|",
    ]
    for d in details:
        lines.append(
            f"| {d.kpi} | {format_value(d.value, d.kind)} | {format_value(d.previous, d.kind)} "
            f"| {format_change(d.change)} |"
        )
    return "\n".join(lines)


def format_kpi_summary(con: duckdb.DuckDBPyConnection, printer: Callable[[str], None] | None = None) -> str:
    """Plain-text KPI block for the `nightjar run` summary."""
    as_of, details = kpi_details(con)
    if as_of is None or not details:
        text = "KPIs: no daily metrics yet"
    else:
        width = max(len(d.kpi) for d in details)
        lines = [f"KPIs for {as_of.isoformat()} (change vs {(as_of - timedelta(days=7)).isoformat()})"]
        lines += [
            f"  {d.kpi.ljust(width)}  {format_value(d.value, d.kind):>14}  {format_change(d.change)}"
            for d in details
        ]
        lines += [f"  {note}" for note in data_shape(con).notes()]
        text = "\n".join(lines)
    if printer:
        printer(text)
    return text
