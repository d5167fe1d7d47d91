"""A synthetic `marts.fct_daily_metrics` (and demand forecast) with planted incidents.

For tuning rules (`nightjar alerts backtest` against a scratch warehouse), for docs and
for tests: a shop with weekly and yearly seasonality, slow growth and count noise,
plus incidents at known dates (checkout outages, traffic spikes, revenue drops).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

WEEKLY_SESSIONS = (1.00, 0.97, 0.96, 0.99, 1.06, 1.22, 1.15)  # Mon..Sun
WEEKLY_CONVERSION = (1.00, 1.00, 1.02, 1.00, 0.97, 0.93, 1.05)

COLUMNS = ["metric_date", "dau", "wau", "mau", "stickiness", "new_users", "sessions",
           "avg_session_duration_seconds", "bounce_rate", "conversion_rate", "orders", "units", "gross_revenue",
           "refunds", "net_revenue", "aov", "arpdau"]

DDL = """
create schema if not exists marts;
create or replace table marts.fct_daily_metrics (
  metric_date date, dau bigint, wau bigint, mau bigint, stickiness double, new_users bigint, sessions bigint,
  avg_session_duration_seconds double, bounce_rate double, conversion_rate double, orders bigint, units bigint,
  gross_revenue double, refunds double, net_revenue double, aov double, arpdau double)
"""


@dataclass
class Incident:
    kind: str  # checkout_outage | traffic_spike | revenue_drop
    date: date
    days: int = 1


@dataclass
class SampleShop:
    rows: list[tuple]
    incidents: list[Incident] = field(default_factory=list)
    expected_orders: dict[date, tuple[float, float]] = field(default_factory=dict)  # mean, sd

    @property
    def dates(self) -> list[date]:
        return [r[0] for r in self.rows]


def generate(start: date, days: int, seed: int = 7, base_sessions: float = 1500.0,
             incidents: list[Incident] | None = None) -> SampleShop:
    rng = np.random.default_rng(seed)
    incidents = list(incidents or [])
    by_date = {}
    for inc in incidents:
        for k in range(inc.days):
            by_date[inc.date + timedelta(days=k)] = inc.kind
    rows = []
    expected = {}
    dau_hist: list[int] = []
    for i in range(days):
        d = start + timedelta(days=i)
        wd = d.weekday()
        season = 1 + 0.12 * math.sin(2 * math.pi * (d.timetuple().tm_yday - 80) / 365.25)
        trend = 1 + 0.15 * i / 365
        mean_sessions = base_sessions * WEEKLY_SESSIONS[wd] * season * trend
        kind = by_date.get(d)
        sessions = int(rng.poisson(mean_sessions * rng.lognormal(0, 0.04)))
        bot_share = 0.0
        if kind == "traffic_spike":
            bot_share = 0.7
            sessions = int(sessions / (1 - bot_share))
        human_sessions = int(sessions * (1 - bot_share))
        p_conv = 0.025 * WEEKLY_CONVERSION[wd] * rng.lognormal(0, 0.05)
        orders = int(rng.binomial(human_sessions, p_conv))
        expected[d] = (mean_sessions * 0.025 * WEEKLY_CONVERSION[wd], math.sqrt(mean_sessions * 0.025) * 1.15)
        if kind == "checkout_outage":
            orders = 0
        if kind == "revenue_drop":
            orders = int(orders * 0.35)
        converted = orders  # one order per converted session
        units = int(sum(rng.integers(1, 4, size=orders))) if orders else 0
        order_values = rng.lognormal(math.log(55), 0.45, size=orders) if orders else np.array([])
        gross = float(order_values.sum())
        refunds = float(order_values[rng.random(orders) < 0.04].sum()) if orders else 0.0
        dau = int(human_sessions * 0.82 + (sessions - human_sessions) * 0.95)
        new_users = int(dau * 0.35 * rng.lognormal(0, 0.05))
        dau_hist.append(dau)
        wau = int(sum(dau_hist[-7:]) * 0.8)
        mau = int(sum(dau_hist[-30:]) * 0.7)
        bounce = min(max(0.42 * rng.lognormal(0, 0.03) + (0.4 if kind == "traffic_spike" else 0), 0), 1)
        rows.append((d, dau, wau, mau, dau / mau if mau else None, new_users, sessions,
                     95.0 * rng.lognormal(0, 0.05), bounce, converted / sessions if sessions else None, orders, units,
                     round(gross, 2), round(refunds, 2), round(gross - refunds, 2), gross / orders if orders else None,
                     (gross - refunds) / dau if dau else None))
    return SampleShop(rows, incidents, expected)


def write(con, shop: SampleShop, *, forecast: bool = True, generated_at=None) -> None:
    """Create/replace marts.fct_daily_metrics (and ml.demand_forecast for orders) in `con`."""
    con.execute(DDL)
    _insert(con, shop.rows)
    if forecast:
        con.execute("create schema if not exists ml")
        con.execute("""create or replace table ml.demand_forecast (series_id varchar, metric varchar,
            forecast_date date, yhat double, yhat_lower double, yhat_upper double, model varchar,
            model_version varchar, generated_at timestamp)""")
        rows = []
        for d, (mean, sd) in shop.expected_orders.items():
            g = generated_at or (d - timedelta(days=1))
            rows.append(("total", "orders", d, mean, mean - 1.28 * sd, mean + 1.28 * sd, "sample", "v0", g))
        fc = pd.DataFrame(rows, columns=["series_id", "metric", "forecast_date", "yhat", "yhat_lower", "yhat_upper",
                                         "model", "model_version", "generated_at"])
        con.register("_nightjar_sample_fc", fc)
        con.execute("insert into ml.demand_forecast select * from _nightjar_sample_fc")
        con.unregister("_nightjar_sample_fc")


def append_rows(con, shop: SampleShop, start: date, end: date) -> None:
    """Insert the rows of `shop` between start and end (inclusive) into the mart (a nightly load)."""
    _insert(con, [r for r in shop.rows if start <= r[0] <= end])


def _insert(con, rows: list[tuple]) -> None:
    if not rows:
        return
    df = pd.DataFrame(rows, columns=COLUMNS)
    con.register("_nightjar_sample_rows", df)
    con.execute(f"insert into marts.fct_daily_metrics select {', '.join(COLUMNS)} from _nightjar_sample_rows")
    con.unregister("_nightjar_sample_rows")
