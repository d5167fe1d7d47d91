"""The self-contained HTML KPI report (plain Python + DuckDB, no Dagster imports).

`build_report(con)` reads the marts, ML and alert tables and returns the HTML as one
string: CSS inline, charts as inline SVG, no scripts, no http(s) references, so the file
opens offline and can be mailed as is. A section whose table is missing or empty shows a
"not available yet" note, and one that needs a source the shop sends no data from (events
or orders: nightjar.report.data_shape) says which; a section that fails for another reason (e.g. a column a
model has not got yet) shows the error in a note and never fails the whole report.

Over 500 lines because each section is one function (its query and its markup) next to the
note and layout helpers they all share.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from html import escape
from pathlib import Path

import duckdb

from nightjar.report import svg
from nightjar.report.data_shape import data_shape
from nightjar.report.kpi import (
    KpiDetail,
    as_float as _f,
    format_change,
    format_value,
    has_rows,
    kpi_details,
    kpis_markdown,
    table_columns,
)

log = logging.getLogger(__name__)

HISTORY_DAYS = 90
NOT_AVAILABLE = "Not available yet"

# The tables the report reads (schema, table); the Dagster asset depends on their assets.
SOURCE_TABLES = (
    ("marts", "fct_daily_metrics"),
    ("marts", "fct_retention_weekly"),
    ("marts", "fct_retention_daily"),
    ("marts", "fct_funnel_daily"),
    ("marts", "fct_channel_daily"),
    ("ml", "demand_forecast"),
    ("ml", "churn_scores"),
    ("ml", "customer_value"),
    ("alerts", "alert_events"),
    ("monitoring", "dq_event_quality"),
    ("monitoring", "dq_rejects"),
    ("monitoring", "dq_schema_drift"),
    ("monitoring", "dq_shop_changes"),
)


class TableUnavailable(Exception):
    """A table a section needs is missing or empty."""


@dataclass
class Section:
    id: str
    title: str
    body: str = ""
    available: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    html: str
    as_of: date | None
    kpis: list[KpiDetail]
    kpis_markdown: str
    sections: list[Section]

    @property
    def available_sections(self) -> list[str]:
        return [s.id for s in self.sections if s.available]

    @property
    def unavailable_sections(self) -> list[str]:
        return [s.id for s in self.sections if not s.available]


# --------------------------------------------------------------------------- helpers


def _require(con: duckdb.DuckDBPyConnection, schema: str, table: str, *columns: str) -> list[str]:
    cols = table_columns(con, schema, table)
    if cols is None:
        raise TableUnavailable(f"table {schema}.{table} does not exist")
    missing = [c for c in columns if c not in cols]
    if missing:
        raise TableUnavailable(f"table {schema}.{table} has no column(s) {', '.join(missing)}")
    if not has_rows(con, schema, table):
        raise TableUnavailable(f"table {schema}.{table} is empty")
    return cols


def _note(text: str, kind: str = "na") -> str:
    return f'<p class="note note-{kind}">{escape(text)}</p>'


def _na(reason: str) -> str:
    return f"{NOT_AVAILABLE}: {reason}."


def _table(headers: list[str], rows: list[list[str]], cls: str = "data", raw: bool = False) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _metrics_window(con, as_of: date | None, columns: list[str]) -> tuple[list[date], dict[str, list]]:
    cols = _require(con, "marts", "fct_daily_metrics", "metric_date")
    use = [c for c in columns if c in cols]
    if not use:
        raise TableUnavailable(f"marts.fct_daily_metrics has none of {', '.join(columns)}")
    end = as_of or con.execute('select max(metric_date)::date from "marts"."fct_daily_metrics"').fetchone()[0]
    start = end - timedelta(days=HISTORY_DAYS - 1)
    rows = con.execute(
        f'select metric_date::date, {", ".join(chr(34) + c + chr(34) for c in use)} '
        'from "marts"."fct_daily_metrics" where metric_date between ? and ? order by metric_date',
        [start, end],
    ).fetchall()
    xs = [r[0] for r in rows]
    return xs, {c: [_f(r[i + 1]) for r in rows] for i, c in enumerate(use)}


# --------------------------------------------------------------------------- sections


def _section_kpis(con, as_of, details: list[KpiDetail]) -> Section:
    s = Section("kpis", "Headline KPIs")
    if as_of is None or not details:
        s.available = False
        s.body = _note(_na("no daily metrics (marts.fct_daily_metrics is missing or empty)"))
        return s
    prev = as_of - timedelta(days=7)
    cards = []
    for d in details:
        direction = "flat" if not d.change else ("up" if d.change > 0 else "down")
        cards.append(
            f'<div class="card" data-kpi="{escape(d.column)}"><div class="k">{escape(d.kpi)}</div>'
            f'<div class="v">{escape(format_value(d.value, d.kind))}</div>'
            f'<div class="c {direction}">{escape(format_change(d.change))} '
            f'<span class="muted">vs {escape(format_value(d.previous, d.kind))}</span></div></div>'
        )
    s.body = (
        f'<p class="muted">Last complete day <b>{as_of.isoformat()}</b> compared with the same weekday a week '
        f"earlier ({prev.isoformat()}).</p>"
        f'<div class="cards">{"".join(cards)}</div>'
        + "".join(_note(n) for n in data_shape(con).notes())
    )
    return s


def _section_active_users(con, as_of) -> Section:
    s = Section("active-users", "Active users: DAU, WAU, MAU")
    xs, m = _metrics_window(con, as_of, ["dau", "wau", "mau"])
    series = [svg.Series(c.upper(), xs, m[c]) for c in ("dau", "wau", "mau") if c in m]
    s.body = svg.line_chart(series, title="Active users") + _last_values(xs, m, ("dau", "wau", "mau"), "int")
    if "stickiness" in (table_columns(con, "marts", "fct_daily_metrics") or []):
        xs2, m2 = _metrics_window(con, as_of, ["stickiness"])
        s.body += svg.line_chart(
            [svg.Series("Stickiness (DAU/MAU)", xs2, m2["stickiness"], color=svg.PALETTE[3])],
            y_format=svg.fmt_pct, title="Stickiness", height=180,
        )
    return s


def _last_values(xs: list[date], m: dict[str, list], cols, kind: str) -> str:
    if not xs:
        return ""
    items = ", ".join(f"{c.upper()} {format_value(m[c][-1], kind)}" for c in cols if c in m)
    return f'<p class="muted">On {xs[-1].isoformat()}: {escape(items)}.</p>'


def _section_sessions(con, as_of) -> Section:
    s = Section("sessions", "Sessions and conversion")
    xs, m = _metrics_window(con, as_of, ["sessions", "orders", "conversion_rate", "bounce_rate"])
    counts = [svg.Series(n, xs, m[c]) for c, n in (("sessions", "Sessions"), ("orders", "Orders")) if c in m]
    rates = [
        svg.Series(n, xs, m[c], color=col)
        for c, n, col in (("conversion_rate", "Conversion rate", svg.PALETTE[1]), ("bounce_rate", "Bounce rate", svg.PALETTE[4]))
        if c in m
    ]
    body = ""
    if counts:
        body += svg.line_chart(counts, title="Sessions and orders")
    if rates:
        body += svg.line_chart(rates, y_format=svg.fmt_pct, title="Conversion and bounce rate", height=200)
    s.body = body
    return s


def _pick_forecast(con) -> tuple[str, str, list[tuple]]:
    """The revenue series of the latest forecast run: (series_id, metric, rows)."""
    cols = _require(con, "ml", "demand_forecast", "forecast_date", "yhat")
    metric_col = "metric" if "metric" in cols else None
    series_col = "series_id" if "series_id" in cols else None
    combos = con.execute(
        f"select {metric_col or chr(39) + 'forecast' + chr(39)}, {series_col or chr(39) + 'all' + chr(39)}, count(*) "
        'from "ml"."demand_forecast" group by all'
    ).fetchall()

    def rank(c):
        metric, series, n = (str(c[0]).lower(), str(c[1]).lower(), c[2])
        return (
            0 if "net_revenue" in metric else 1 if "revenue" in metric else 2,
            0 if series in ("total", "all", "overall", "shop", "global") else 1,
            -n,
            series,
        )

    metric, series, _ = sorted(combos, key=rank)[0]
    cond, params = [], []
    if metric_col:
        cond.append(f"{metric_col} = ?")
        params.append(metric)
    if series_col:
        cond.append(f"{series_col} = ?")
        params.append(series)
    if "generated_at" in cols:  # the latest forecast run of that series only
        sub = " and ".join(cond) or "true"
        cond.append(f'generated_at = (select max(generated_at) from "ml"."demand_forecast" where {sub})')
        params = params + params
    lo = "yhat_lower" if "yhat_lower" in cols else "null"
    hi = "yhat_upper" if "yhat_upper" in cols else "null"
    extra = ", ".join(c if c in cols else "null" for c in ("model", "model_version", "generated_at"))
    rows = con.execute(
        f'select forecast_date::date, yhat, {lo}, {hi}, {extra} from "ml"."demand_forecast" '
        f'{" where " + " and ".join(cond) if cond else ""} order by forecast_date',
        params,
    ).fetchall()
    return str(series), str(metric), rows


def _section_revenue(con, as_of) -> Section:
    s = Section("revenue", "Revenue and demand forecast")
    notes, series, band, body = [], [], None, ""
    actual_xs: list[date] = []
    metric = "net_revenue"
    fc_rows: list[tuple] = []
    try:
        fc_series, metric, fc_rows = _pick_forecast(con)
    except TableUnavailable as e:
        notes.append(_na(f"demand forecast — {e}"))
        fc_series = None
    actual_col = metric if metric in ("net_revenue", "gross_revenue", "orders", "units") else "net_revenue"
    try:
        actual_xs, m = _metrics_window(con, as_of, [actual_col])
        series.append(svg.Series(f"Actual {actual_col.replace('_', ' ')}", actual_xs, m[actual_col]))
    except TableUnavailable as e:
        notes.append(_na(f"actual revenue — {e}"))
    money = "revenue" in actual_col
    fmt = svg.fmt_usd if money else svg.fmt_number
    if fc_rows:
        # show the forecast from a little before the last actual day onwards
        start = (actual_xs[-1] - timedelta(days=HISTORY_DAYS)) if actual_xs else fc_rows[0][0]
        rows = [r for r in fc_rows if r[0] >= start]
        xs = [r[0] for r in rows]
        series.append(svg.Series(f"Forecast ({metric}, {fc_series})", xs, [_f(r[1]) for r in rows], color=svg.PALETTE[2], dashed=True))
        if any(r[2] is not None and r[3] is not None for r in rows):
            band = svg.Band("Forecast interval", xs, [_f(r[2]) for r in rows], [_f(r[3]) for r in rows])
        model, version, generated = rows[-1][4:7] if rows else (None, None, None)
        future = [r for r in rows if not actual_xs or r[0] > actual_xs[-1]]
        if future:
            total = sum(_f(r[1]) or 0.0 for r in future)
            lo = sum(_f(r[2]) or 0.0 for r in future) if future[0][2] is not None else None
            hi = sum(_f(r[3]) or 0.0 for r in future) if future[0][3] is not None else None
            rng = f" (interval {fmt(lo)} – {fmt(hi)})" if lo is not None and hi is not None else ""
            body += (
                f'<p class="muted">Forecast for the next {len(future)} days, {escape(future[0][0].isoformat())} '
                f"to {escape(future[-1][0].isoformat())}: <b>{escape(fmt(total))}</b>{escape(rng)}. "
                f"Model {escape(str(model or '?'))} {escape(str(version or ''))}, generated {escape(str(generated or '?'))}.</p>"
            )
    if not series:
        s.available = False
        s.body = "".join(_note(n) for n in notes)
        return s
    s.body = svg.line_chart(series, band=band, y_format=fmt, title="Revenue and forecast") + body + "".join(
        _note(n) for n in notes
    )
    return s


def _section_retention(con) -> Section:
    s = Section("retention", "Retention cohorts")
    try:
        _require(con, "marts", "fct_retention_weekly", "cohort_week", "week_number", "retention_rate")
        table, cohort, period, unit, n_cohorts, n_periods = "fct_retention_weekly", "cohort_week", "week_number", "Week", 12, 12
    except TableUnavailable as weekly_err:
        try:
            _require(con, "marts", "fct_retention_daily", "cohort_date", "day_number", "retention_rate")
            table, cohort, period, unit, n_cohorts, n_periods = "fct_retention_daily", "cohort_date", "day_number", "Day", 14, 14
        except TableUnavailable:
            s.available = False
            s.body = _note(_na(str(weekly_err)))
            return s
    cols = table_columns(con, "marts", table) or []
    size = "cohort_size" if "cohort_size" in cols else "null"
    rows = con.execute(
        f'select {cohort}::date, {period}, {size}, retention_rate from "marts"."{table}" '
        f'where {cohort} in (select distinct {cohort} from "marts"."{table}" order by 1 desc limit {n_cohorts}) '
        f"and {period} between 0 and {n_periods} order by 1, 2"
    ).fetchall()
    cohorts: dict[date, dict[int, float | None]] = {}
    sizes: dict[date, object] = {}
    for c, p, sz, r in rows:
        cohorts.setdefault(c, {})[int(p)] = _f(r)
        if sz is not None:
            sizes[c] = sz
    periods = list(range(0, n_periods + 1))
    head = "".join(f"<th>{unit[0]}{p}</th>" for p in periods)
    body_rows = []
    for c in sorted(cohorts):
        cells = []
        for p in periods:
            v = cohorts[c].get(p)
            if v is None:
                cells.append('<td class="empty"></td>')
            else:
                fg = "#ffffff" if v > 0.35 else "#111827"
                cells.append(f'<td style="background:{svg.heat_color(v)};color:{fg}">{v * 100:.0f}%</td>')
        sz = sizes.get(c)
        body_rows.append(
            f"<tr><th>{c.isoformat()}</th><td class='num'>{format_value(sz, 'int') if sz is not None else '–'}</td>{''.join(cells)}</tr>"
        )
    s.title = f"Retention cohorts ({'weekly' if unit == 'Week' else 'daily'})"
    s.body = (
        f'<p class="muted">Share of each {"week" if unit == "Week" else "day"}\'s new users active {unit.lower()} N later '
        f"(marts.{table}, latest {len(cohorts)} cohorts).</p>"
        f'<div class="scroll"><table class="heatmap"><thead><tr><th>cohort</th><th>users</th>{head}</tr></thead>'
        f'<tbody>{"".join(body_rows)}</tbody></table></div>'
    )
    return s


# marts.fct_funnel_daily is wide (one row per day, one column per step); a long layout
# (step, step_order, users) is read too.
FUNNEL_STEPS = (
    ("Viewed a page", "viewers"),
    ("Viewed a product", "product_viewers"),
    ("Added to cart", "cart_adders"),
    ("Started checkout", "checkout_starters"),
    ("Purchased", "purchasers"),
)


def _section_funnel(con, as_of) -> Section:
    s = Section("funnel", "Purchase funnel")
    cols = _require(con, "marts", "fct_funnel_daily", "metric_date")
    end = con.execute('select max(metric_date)::date from "marts"."fct_funnel_daily"').fetchone()[0]
    if as_of is not None and as_of < end:
        end = as_of
    start = end - timedelta(days=6)
    wide = [(label, c) for label, c in FUNNEL_STEPS if c in cols]
    if wide:
        sums = con.execute(
            f'select {", ".join(f"sum({c})" for _, c in wide)} from "marts"."fct_funnel_daily" '
            "where metric_date between ? and ?",
            [start, end],
        ).fetchone()
        rows = [(label, _f(v) or 0.0) for (label, _), v in zip(wide, sums)]
    elif "step" in cols and "users" in cols:
        order = "step_order" if "step_order" in cols else "null"
        rows = [
            (str(r[0]), _f(r[2]) or 0.0)
            for r in con.execute(
                f'select step, min({order}) as o, sum(users) from "marts"."fct_funnel_daily" '
                "where metric_date between ? and ? group by step order by o nulls last, 3 desc",
                [start, end],
            ).fetchall()
        ]
    else:
        raise TableUnavailable("marts.fct_funnel_daily has neither step columns nor (step, users)")
    if not rows or not any(v for _, v in rows):
        raise TableUnavailable(f"marts.fct_funnel_daily has no users between {start} and {end}")
    labels = [r[0] for r in rows]
    values = [r[1] for r in rows]
    notes, table_rows = [], []
    for i, v in enumerate(values):
        prev = values[i - 1] if i else None
        step_conv = v / prev if prev else None
        overall = v / values[0] if values[0] else None
        notes.append("" if i == 0 else f"{(step_conv or 0) * 100:.1f}% of previous · {(overall or 0) * 100:.1f}% of first")
        table_rows.append([
            labels[i], format_value(v, "int"),
            "–" if step_conv is None else f"{step_conv * 100:.1f}%",
            "–" if overall is None else f"{overall * 100:.1f}%",
        ])
    s.body = (
        f'<p class="muted">Users reaching each step per day, summed over the 7 days {start.isoformat()} '
        f"to {end.isoformat()}.</p>"
        + svg.bar_chart(labels, values, horizontal=True, annotations=notes, title="Funnel")
        + _table(["step", "user-days", "of previous step", "of first step"], table_rows)
    )
    return s


# (label, model) of the attribution models, as fct_channel_daily's column suffixes
ATTRIBUTION_MODELS: tuple[tuple[str, str], ...] = (
    ("first touch", "first_touch"),
    ("last touch", "last_touch"),
    ("last non-direct", "last_non_direct_touch"),
    ("linear", "linear"),
    ("time decay", "time_decay"),
    ("position based", "position_based"),
)
CHANNEL_DAYS = 30


def _section_channels(con, as_of) -> Section:
    """Sessions and attributed revenue by channel over the last 30 days, one column per model."""
    s = Section("channels", "Channels and attribution")
    cols = _require(con, "marts", "fct_channel_daily", "metric_date", "channel", "sessions")
    models = [(label, m) for label, m in ATTRIBUTION_MODELS if f"attributed_revenue_usd_{m}" in cols]
    if not models:
        raise TableUnavailable("marts.fct_channel_daily has no attributed revenue columns")
    end = con.execute('select max(metric_date)::date from "marts"."fct_channel_daily"').fetchone()[0]
    if as_of is not None and as_of < end:
        end = as_of
    start = end - timedelta(days=CHANNEL_DAYS - 1)
    converted = "sum(converted_sessions)" if "converted_sessions" in cols else "null"
    revenue = ", ".join(f'sum("attributed_revenue_usd_{m}")' for _, m in models)
    # ordered by the GA4 default reporting model (last non-direct) when present, else the first
    key = next((i for i, (_, m) in enumerate(models) if m == "last_non_direct_touch"), 0)
    rows = con.execute(
        f'select channel, sum(sessions), {converted}, {revenue} from "marts"."fct_channel_daily" '
        f"where metric_date between ? and ? group by channel order by {4 + key} desc, channel",
        [start, end],
    ).fetchall()
    if not rows:
        raise TableUnavailable(f"marts.fct_channel_daily has no rows between {start} and {end}")
    table_rows = []
    for channel, sessions, conv, *rev in rows:
        rate = _f(conv) / _f(sessions) if conv is not None and sessions else None
        table_rows.append([str(channel), format_value(_f(sessions), "int"),
                           "–" if rate is None else f"{rate * 100:.1f}%",
                           *(format_value(_f(v), "usd") for v in rev)])
    labels = [str(r[0]) for r in rows]
    values = [_f(r[3 + key]) or 0.0 for r in rows]
    s.body = (
        f'<p class="muted">Sessions by channel and the revenue of the orders placed {start.isoformat()} to '
        f"{end.isoformat()} credited to each channel by each attribution model (30-day lookback; "
        "orders without sessions go to direct).</p>"
        + svg.bar_chart(labels, values, horizontal=True, value_format=svg.fmt_usd,
                        title=f"Attributed revenue, {models[key][0]} (USD)")
        + _table(["channel", "sessions", "conversion", *(f"revenue: {label}" for label, _ in models)], table_rows)
    )
    return s


def _section_churn(con) -> Section:
    s = Section("churn", "Churn risk")
    cols = _require(con, "ml", "churn_scores", "customer_id", "score")
    ts = "scored_at" if "scored_at" in cols else "null"
    band = "band" if "band" in cols else "null"
    version = "model_version" if "model_version" in cols else "null"
    kind = "model_kind" if "model_kind" in cols else "null"
    latest = (
        f'select customer_id, score, {band} as band, {version} as model_version, {kind} as model_kind, '
        f'{ts} as scored_at '
        f'from "ml"."churn_scores" qualify row_number() over (partition by customer_id order by {ts} desc nulls last) = 1'
    )
    bins = con.execute(
        f"select least(greatest(floor(score * 10), 0), 9)::int as b, count(*) from ({latest}) "
        "where score is not null group by 1 order by 1"
    ).fetchall()
    counts = dict(bins)
    labels = [f"{b / 10:.1f}–{(b + 1) / 10:.1f}" for b in range(10)]
    values = [counts.get(b, 0) for b in range(10)]
    total, avg, model, model_kind, scored = con.execute(
        f"select count(*), avg(score), max(model_version), string_agg(distinct model_kind, ', '), max(scored_at) "
        f"from ({latest})"
    ).fetchone()
    # which model scored: the candidate, or the baseline that won its evaluation
    scored_by = escape(str(model_kind)) + " " if model_kind else ""
    s.body = (
        f'<p class="muted">{format_value(total, "int")} customers scored, mean churn probability '
        f"{format_value(avg, 'pct')} (model {scored_by}{escape(str(model or '?'))}, "
        f"scored {escape(str(scored or '?'))}).</p>"
        + svg.bar_chart(labels, values, title="Churn score distribution", color=svg.PALETTE[4])
    )
    if band != "null":
        bands = con.execute(
            f"select coalesce(band, '(none)'), count(*), avg(score) from ({latest}) group by 1 order by 3 desc"
        ).fetchall()
        s.body += _table(
            ["risk band", "customers", "share", "mean score"],
            [[str(b), format_value(n, "int"), f"{n / total * 100:.1f}%", f"{(_f(a) or 0):.3f}"] for b, n, a in bands],
        )
    return s


def _section_clv(con) -> Section:
    s = Section("clv", "Customer lifetime value")
    _require(con, "ml", "customer_value", "customer_id", "predicted_clv")
    cols = table_columns(con, "ml", "customer_value") or []
    meta = {c: (c if c in cols else "null") for c in ("horizon_days", "aov_model", "model_version", "as_of")}
    total, n, horizon, aov_model, version, as_of = con.execute(
        f"select sum(predicted_clv), count(*), max({meta['horizon_days']}), string_agg(distinct {meta['aov_model']}, ', '), "
        f"max({meta['model_version']}), max({meta['as_of']}) from \"ml\".\"customer_value\" where predicted_clv is not null"
    ).fetchone()
    # decile 1 = the tenth of customers with the highest predicted value
    deciles = con.execute(
        "select decile, count(*), avg(predicted_clv), sum(predicted_clv), min(predicted_clv), max(predicted_clv) from ("
        "select predicted_clv, ntile(10) over (order by predicted_clv desc, customer_id) as decile "
        "from \"ml\".\"customer_value\" where predicted_clv is not null) d group by decile order by decile"
    ).fetchall()
    total = _f(total) or 0.0
    over = f"the next {format_value(horizon, 'int')} days" if horizon else "the horizon"
    aov = {"gamma_gamma": "Gamma-Gamma", "empirical": "each customer's own mean"}.get(str(aov_model), str(aov_model or "?"))
    s.body = (
        f'<p class="muted">{format_value(n, "int")} customers, predicted value over {escape(over)} '
        f'{format_value(total, "usd")} (BG/NBD purchases × average order value from {escape(aov)}; '
        f"model {escape(str(version or '?'))}, as of {escape(str(as_of or '?'))}).</p>"
        + _table(
            ["decile", "customers", "mean CLV", "CLV range", "share of total"],
            [[str(d), format_value(k, "int"), format_value(_f(mean), "usd"),
              f"{format_value(_f(lo), 'usd')} – {format_value(_f(hi), 'usd')}",
              f"{(_f(part) or 0) / total * 100:.1f}%" if total > 0 else "–"] for d, k, mean, part, lo, hi in deciles],
        )
    )
    return s


_ALERT_TIME_COLUMNS = ("metric_date", "evaluated_at", "fired_at", "triggered_at", "created_at", "event_time",
                       "occurred_at", "ts", "timestamp", "date")
# Columns of alerts.alert_events worth showing, in this order, when present.
# `change_pct` is in percent already (nightjar/alerts/evaluate.py).
_ALERT_COLUMNS = ("metric_date", "rule_name", "severity", "metric", "transition", "status_after",
                  "value", "expected", "change_pct", "notification", "detail")


def _section_alerts(con) -> Section:
    s = Section("alerts", "Recent alerts")
    cols = _require(con, "alerts", "alert_events")
    types = dict(
        con.execute(
            "select lower(column_name), data_type from information_schema.columns "
            "where table_schema = 'alerts' and table_name = 'alert_events'"
        ).fetchall()
    )
    # alert_events logs every evaluation (ok, no_data, ...): an alert is a breach or a
    # state transition (pending, firing, resolved, cancelled).
    cond = []
    if "outcome" in cols:
        cond.append("outcome = 'breach'")
    if "transition" in cols:
        cond.append("transition is not null")
    where = f" where {' or '.join(cond)}" if cond else ""
    time_cols = [c for c in _ALERT_TIME_COLUMNS if c in cols] or [
        c for c in cols if "TIMESTAMP" in types.get(c, "").upper() or types.get(c, "").upper() == "DATE"
    ]
    order = " order by " + ", ".join(f'"{c}" desc nulls last' for c in time_cols[:2]) if time_cols else ""
    evaluated = con.execute('select count(*) from "alerts"."alert_events"').fetchone()[0]
    total = con.execute(f'select count(*) from "alerts"."alert_events"{where}').fetchone()[0]
    shown = [c for c in _ALERT_COLUMNS if c in cols] or [c for c in cols if not c.startswith("_dlt")][:10]
    rows = con.execute(
        f'select {", ".join(chr(34) + c + chr(34) for c in shown)} from "alerts"."alert_events"{where}{order} limit 20'
    ).fetchall()

    def cell(c: str, v) -> str:
        if v is None:
            return ""
        if c == "change_pct" and _f(v) is not None:
            return f"{_f(v):+.1f}%"
        if isinstance(v, float):
            return f"{v:,.2f}"
        t = str(v)
        return t if len(t) <= 160 else t[:157] + "…"

    parts = [f"{total:,} alert events"]
    if where:
        parts[0] += f" (breaches and state changes, out of {evaluated:,} evaluations)"
    if "severity" in cols and total:
        sev = con.execute(
            f'select severity, count(*) from "alerts"."alert_events"{where} group by 1 order by 2 desc'
        ).fetchall()
        parts.append("by severity: " + ", ".join(f"{k}: {n}" for k, n in sev))
    if {"fingerprint", "status_after"} <= set(cols):
        key = "metric_date" if "metric_date" in cols else time_cols[0] if time_cols else None
        if key:
            firing = con.execute(
                f'select count(*) from (select status_after from "alerts"."alert_events" '
                f'qualify row_number() over (partition by fingerprint order by "{key}" desc) = 1) '
                "where status_after = 'firing'"
            ).fetchone()[0]
            parts.append(f"{firing} firing now")
    if not rows:
        s.body = f'<p class="muted">{escape("; ".join(parts))}.</p>' + _note("No alert has fired yet.", "ok")
        return s
    s.body = (
        f'<p class="muted">{escape("; ".join(parts))}. The latest {len(rows)}:</p>'
        + '<div class="scroll">'
        + _table(shown, [[cell(c, v) for c, v in zip(shown, r)] for r in rows])
        + "</div>"
    )
    return s


DQ_DAYS = 14
# (column header, table, measure expression, filter, format): the daily data-quality
# measures (dbt_project/models/monitoring) shown side by side, newest day first.
_DQ_COLUMNS = (
    ("events", "dq_event_quality", "events", "source = 'all'", "int"),
    ("bot share", "dq_event_quality", "bot_share", "source = 'all'", "pct"),
    ("duplicate share", "dq_event_quality", "duplicate_share", "source = 'all'", "pct"),
    ("reject rate", "dq_rejects", "sum(reject_rate)", "", "pct"),
    ("new / vanished event names", "dq_schema_drift", "new_event_names || ' / ' || vanished_event_names", "", "str"),
    ("new / vanished property keys", "dq_schema_drift", "new_property_keys || ' / ' || vanished_property_keys", "",
     "str"),
    ("order rows changed", "dq_shop_changes", "sum(rows_changed)", "table_name = 'orders'", "int"),
)


def _section_data_quality(con) -> Section:
    """The last DQ_DAYS days of the dq_* measures and the data-quality alerts that fired."""
    s = Section("data-quality", "Data quality")
    present = {t for _, t, *_ in _DQ_COLUMNS if table_columns(con, "monitoring", t) is not None}
    if not present:
        raise TableUnavailable("no monitoring.dq_* table exists")
    by_col: list[dict[date, object]] = []
    days: set[date] = set()
    for _, table, expr, flt, _ in _DQ_COLUMNS:
        if table not in present:
            by_col.append({})
            continue
        agg = expr if expr.startswith("sum(") else f"max({expr})"
        where = f" where {flt}" if flt else ""
        rows = con.execute(f'select metric_date, {agg} from "monitoring"."{table}"{where} '
                           f"group by 1 order by 1 desc limit {DQ_DAYS}").fetchall()
        by_col.append(dict(rows))
    for col in by_col:
        days.update(col)
    shown = sorted(days, reverse=True)[:DQ_DAYS]

    def cell(v, fmt: str) -> str:
        if v is None:
            return "–"
        if fmt == "pct":
            return f"{float(v) * 100:.2f}%"
        if fmt == "int":
            return f"{int(v):,}"
        return str(v)

    table = _table(["date"] + [h for h, *_ in _DQ_COLUMNS],
                   [[d.isoformat()] + [cell(col.get(d), c[4]) for col, c in zip(by_col, _DQ_COLUMNS)]
                    for d in shown])
    alerts = ""
    if table_columns(con, "alerts", "alert_events") is not None:
        fired = con.execute(
            "select metric_date, rule_name, severity, value, expected, detail from alerts.alert_events "
            "where transition = 'firing' and json_extract_string(labels, '$.table') like 'monitoring.%' "
            "order by metric_date desc, rule_name limit 20").fetchall()
        if fired:
            alerts = ("<p class=\"muted\">Data-quality alerts that fired (latest first):</p>"
                      + _table(["metric_date", "rule", "severity", "value", "expected", "detail"],
                               [[str(r[0]), r[1], r[2], "" if r[3] is None else f"{r[3]:,.4g}",
                                 "" if r[4] is None else f"{r[4]:,.4g}", r[5] or ""] for r in fired]))
        else:
            alerts = _note("No data-quality alert has fired.", "ok")
    s.body = (f'<p class="muted">Measures of the data itself per day (all sources; dq_* rules in '
              f'the alert rule file watch them). The latest {len(shown)} days:</p>'
              f'<div class="scroll">{table}</div>{alerts}')
    return s


# --------------------------------------------------------------------------- page

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f9fafb;color:#111827}
header{background:#111827;color:#f9fafb;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#9ca3af;font-size:13px}
nav{padding:8px 28px;background:#fff;border-bottom:1px solid #e5e7eb;font-size:13px}
nav a{margin-right:14px;color:#2563eb;text-decoration:none}
main{padding:8px 28px 40px;max-width:1100px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 18px;margin:16px 0}
section h2{margin:0 0 8px;font-size:17px}
.muted{color:#6b7280;font-size:13px}
.note{padding:10px 12px;border-radius:6px;font-size:14px}
.note-na{background:#fef3c7;color:#92400e}.note-ok{background:#dcfce7;color:#166534}.note-err{background:#fee2e2;color:#991b1b}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{border:1px solid #e5e7eb;border-radius:6px;padding:10px}
.card .k{font-size:12px;color:#6b7280}.card .v{font-size:22px;font-weight:600;margin:2px 0}
.card .c{font-size:12px}.up{color:#15803d}.down{color:#b91c1c}.flat{color:#6b7280}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
table.data th,table.data td{border-bottom:1px solid #e5e7eb;padding:4px 8px;text-align:left}
table.heatmap td,table.heatmap th{padding:3px 6px;text-align:center;min-width:34px}
table.heatmap tbody th{text-align:left;white-space:nowrap}td.empty{background:#f9fafb}
td.num{text-align:right;color:#374151}
.scroll{overflow-x:auto}svg.chart{display:block;margin:6px 0;max-width:100%}
"""


def build_report(
    con: duckdb.DuckDBPyConnection,
    as_of: date | None = None,
    today: date | None = None,
    generated_at: datetime | None = None,
    source: str = "",
) -> Report:
    """Render the report from the tables visible on `con` (any missing table is fine)."""
    generated_at = generated_at or datetime.now(timezone.utc)
    try:
        as_of, details = kpi_details(con, as_of, today)
    except duckdb.Error as e:  # e.g. a metrics mart of an unexpected shape
        log.warning("KPIs unavailable: %s", e)
        as_of, details = None, []
    builders = [
        ("kpis", "Headline KPIs", lambda: _section_kpis(con, as_of, details)),
        ("active-users", "Active users: DAU, WAU, MAU", lambda: _section_active_users(con, as_of)),
        ("sessions", "Sessions and conversion", lambda: _section_sessions(con, as_of)),
        ("revenue", "Revenue and demand forecast", lambda: _section_revenue(con, as_of)),
        ("retention", "Retention cohorts", lambda: _section_retention(con)),
        ("funnel", "Purchase funnel", lambda: _section_funnel(con, as_of)),
        ("channels", "Channels and attribution", lambda: _section_channels(con, as_of)),
        ("churn", "Churn risk", lambda: _section_churn(con)),
        ("clv", "Customer lifetime value", lambda: _section_clv(con)),
        ("alerts", "Recent alerts", lambda: _section_alerts(con)),
        ("data-quality", "Data quality", lambda: _section_data_quality(con)),
    ]
    shape = data_shape(con)
    sections: list[Section] = []
    for sid, title, build in builders:
        # say which source a section needs instead of drawing the missing one as zeros
        gap = shape.section_gap(sid) if shape.has_events or shape.has_orders else None
        if gap:
            sections.append(Section(sid, title, _note(f"{NOT_AVAILABLE}: this section {gap}."), available=False))
            continue
        try:
            sections.append(build())
        except TableUnavailable as e:
            sections.append(Section(sid, title, _note(_na(str(e))), available=False))
        except (duckdb.Error, ValueError, TypeError, ZeroDivisionError) as e:
            log.warning("report section %s failed: %s", sid, e)
            sections.append(
                Section(sid, title, _note(f"{NOT_AVAILABLE}: this section could not be rendered ({type(e).__name__}: {e}).", "err"), available=False)
            )
    nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}" data-status="{"ok" if s.available else "unavailable"}"><h2>{escape(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    day = as_of.isoformat() if as_of else "no data yet"
    src = f" · warehouse {escape(source)}" if source else ""
    html = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Nightjar KPI report — {escape(day)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Nightjar KPI report — {escape(day)}</h1>"
        f"<p>Generated {escape(generated_at.strftime('%Y-%m-%d %H:%M UTC'))}{src}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
    return Report(html, as_of, details, kpis_markdown(as_of, details), sections)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: Report, reports_dir: Path, run_date: date | None = None) -> tuple[Path, Path]:
    """Write `kpi_report_<date>.html` and `kpi_report_latest.html`; returns both paths.

    `<date>` is the day the KPIs describe (the last complete day), or the run date when
    there are no metrics yet.
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    day = report.as_of or run_date or datetime.now(timezone.utc).date()
    dated = reports_dir / f"kpi_report_{day.isoformat()}.html"
    latest = reports_dir / "kpi_report_latest.html"
    _atomic_write(dated, report.html)
    _atomic_write(latest, report.html)
    return dated, latest


def generate_report(warehouse: Path, reports_dir: Path, *, config: Mapping[str, str | int],
                    **kwargs) -> tuple[Report, Path, Path]:
    """Open the warehouse read-only with its DuckDB ``config`` (``Settings.duckdb_config()``)
    and write the report (an absent warehouse renders an all-"not available" report)."""
    if warehouse.exists():
        # the lock every warehouse reader takes (nightjar.marts_reader.connect; re-entrant for
        # the report asset, which already holds it)
        from nightjar.warehouse_lock import locked_connection

        with locked_connection(warehouse, read_only=True, config=config, purpose="kpi report") as con:
            report = build_report(con, source=str(warehouse), **kwargs)
    else:
        con = duckdb.connect(":memory:")
        try:
            report = build_report(con, source=str(warehouse), **kwargs)
        finally:
            con.close()
    dated, latest = write_report(report, reports_dir)
    return report, dated, latest
